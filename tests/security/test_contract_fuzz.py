"""Contract fuzzing (issue 15): schemathesis generates requests from the served
/openapi.json and sends them through the local host as an admin, a plain user and a
`predict` API key. Every answer must be no 5xx, a documented status code, the documented
content type and schema, and problem+json for every error.

FUZZ_EXAMPLES (default 5) is the number of examples per operation and principal: the
default run sends more than 1,000 cases in about a minute; `FUZZ_EXAMPLES=100` is the
long run (README: Testing).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
CASES: Counter[str] = Counter()
# Logout would revoke the fuzzing token itself (it is tested on its own elsewhere).
SKIPPED = {("POST", "/auth/jwt/logout")}


def _document() -> dict:
    import function_app  # noqa: F401 - registers every route
    from shared.http.openapi import build_openapi

    return build_openapi("local")


# Generated from the same document the host serves at /openapi.json (checked below; the
# pytest plugin's lazy loader from a fixture does not run on this pytest).
DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Positive data (schema-valid requests): their answers must be documented and conform.
# Malformed input is replayed by the attack tests of this suite instead, because a path
# the host's route table cannot match ("null" for an integer version) is the host's bare
# 404, as on Azure, which no schema of the app's can describe.
schema.config.generation.update(modes=[GenerationMode.POSITIVE], no_shrink=True)


def test_the_served_document_is_the_fuzzed_one(client) -> None:
    served = client.get("/openapi.json").json()
    assert served["paths"] == DOCUMENT["paths"]
    assert served["components"] == DOCUMENT["components"]


@pytest.fixture(scope="session")
def fuzz_headers(host) -> dict[str, dict[str, str]]:
    """A separate admin (so the bootstrap admin is never touched), a user, a predict key."""
    with httpx.Client(base_url=host.url, timeout=30) as c:
        admin = bearer(login(c, ADMIN, ADMIN_PASSWORD))
        out: dict[str, dict[str, str]] = {}
        for who, roles in (("admin", ["admin"]), ("user", ["user"]), ("predict_key", ["user"])):
            name, password = f"fuzz{secrets.token_hex(4)}", secrets.token_urlsafe(16)
            body = {"username": name, "password": password, "roles": roles}
            assert c.post("/auth/register", json=body, headers=admin).status_code == 201
            out[who] = bearer(login(c, name, password))
        r = c.post(
            "/api-keys", headers=out["predict_key"], json={"name": "f", "scopes": ["predict"]}
        )
        out["predict_key"] = {"X-API-Key": r.json()["key"]}
    return out


def problem_json_on_errors(ctx, response, case) -> bool | None:
    """Every error the app answers is RFC 9457 problem+json with a code."""
    if response.status_code < 400:
        return None
    ctype = response.headers.get("content-type", [""])
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if response.status_code in (404, 405) and not response.content:
        return None  # the host itself: no route for the method/path (no app involved)
    assert ctype.startswith("application/problem+json"), (response.status_code, ctype)
    body = response.json()
    assert body.get("status") == response.status_code and body.get("code"), body
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def _storage_stalled(response) -> bool:
    if response.status_code != 503:
        return False
    try:
        return response.json().get("code") == "STORAGE_TIMEOUT"
    except ValueError:
        return False


def run_case(case, who: str, headers: dict[str, str], base_url: str) -> None:
    if (case.method.upper(), case.path) in SKIPPED:
        return
    for header in [h for h in (case.headers or {}) if h.lower() in ("authorization", "x-api-key")]:
        case.headers.pop(header)
    CASES[who] += 1
    response = case.call(base_url=base_url, headers=headers, timeout=60)
    for pause in (1, 3, 9):
        if not _storage_stalled(response):
            break
        # Azurite serves one call at a time, and on a loaded CI machine (the batch-scoring
        # jobs this fuzzing starts run beside it) it stalled past the 5 s budget: the
        # documented 503. The same case is sent again after a pause, three times at most;
        # a route slow every time still fails.
        time.sleep(pause)
        response = case.call(base_url=base_url, headers=headers, timeout=60)
    case.validate_response(response, checks=CHECKS)
    problem_json_on_errors(None, response, case)


@schema.parametrize()
@FUZZ
def test_contract_as_admin(case, fuzz_headers, host) -> None:
    run_case(case, "admin", fuzz_headers["admin"], host.url)


@schema.parametrize()
@FUZZ
def test_contract_as_user(case, fuzz_headers, host) -> None:
    run_case(case, "user", fuzz_headers["user"], host.url)


@schema.parametrize()
@FUZZ
def test_contract_with_a_predict_key(case, fuzz_headers, host) -> None:
    run_case(case, "predict_key", fuzz_headers["predict_key"], host.url)


def test_zz_enough_cases_were_fuzzed() -> None:
    """Runs after the fuzzing above (file order): the default run covers >= 1,000 cases."""
    total = sum(CASES.values())
    print(f"contract fuzzing: {total} cases {dict(CASES)}")
    if total == 0:
        pytest.skip("the fuzzing tests were not selected in this run")
    assert total >= 1000 or EXAMPLES < 5, CASES
