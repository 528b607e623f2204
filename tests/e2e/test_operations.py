"""GET /metrics and GET /status through the local host."""

from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def heartbeat_count(client: httpx.Client, headers: dict[str, str]) -> float:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    key = (
        "ml_http_requests_total",
        (("method", "GET"), ("route", "heartbeat"), ("status", "200")),
    )
    return samples(r.text).get(key, 0.0)


def test_metrics_count_the_requests_made_here(client: httpx.Client, admin_headers) -> None:
    before = heartbeat_count(client, admin_headers)
    for _ in range(7):
        assert client.get("/heartbeat").status_code == 200
    assert heartbeat_count(client, admin_headers) == before + 7
    text = client.get("/metrics", headers=admin_headers).text
    assert 'ml_http_request_duration_seconds_bucket{le="0.005",method="GET",route="heartbeat"}' in (
        text
    )


def test_metrics_need_the_metrics_scope(client: httpx.Client, make_user, admin_headers) -> None:
    _, _, _, user = make_user(["user"])
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=user).status_code == 403
    role = f"scraper-{secrets.token_hex(3)}"
    r = client.post(
        "/roles", headers=admin_headers, json={"name": role, "scopes": ["metrics:read"]}
    )
    assert r.status_code == 201, r.text
    _, _, _, scraper = make_user([role])
    assert client.get("/metrics", headers=scraper).status_code == 200


def test_status_for_an_admin_and_403_for_a_user(client: httpx.Client, make_user, admin_headers):
    r = client.get("/status", headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["memory"]["process_rss_mib"] > 0 and body["memory"]["total_mib"] > 0
    assert body["cpu"]["count"] >= 1 and body["uptime_seconds"] > 0
    assert body["disks"] and all(d["total_mib"] > 0 for d in body["disks"])
    assert isinstance(body["loaded_models"], list)
    _, _, _, user = make_user(["user"])
    refused = client.get("/status", headers=user)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
