"""The dashboard's static files: allow-listed, no inline script or style, strict CSP."""

from __future__ import annotations

import re

import pytest

from shared.dashboard.assets import ASSETS, CSP, PAGE, STATIC, read_static
from shared.http.openapi import openapi_path


def test_root_route_is_documented_as_slash() -> None:
    from functions.dashboard import ROOT_ROUTE

    assert openapi_path(ROOT_ROUTE) == ("/", [])
    assert openapi_path("models/{name}/versions/{version:int}/plots/{*path}")[0] == (
        "/models/{name}/versions/{version}/plots/{path}"
    )


def test_only_listed_files_are_read() -> None:
    assert read_static(PAGE).startswith(b"<!doctype html>")
    for name in ASSETS:
        assert (STATIC / name).is_file()
    for name in ("../assets.py", "plots.py", "/etc/passwd", "index.html/"):
        with pytest.raises(KeyError):
            read_static(name)


def test_page_has_no_inline_code_for_the_csp_to_refuse() -> None:
    page = read_static(PAGE).decode()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all(re.search(r'src="/dashboard/[a-z]+\.js"', s) for s in scripts)
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    for name in ASSETS:
        assert f"/dashboard/{name}" in page
    assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
    assert "script-src 'self'" in CSP and "default-src 'none'" in CSP


def test_scripts_never_write_html_or_storage() -> None:
    for name in ("app.js", "charts.js"):
        code = read_static(name).decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, (name, sink)
        for store in ("localStorage.", "sessionStorage.", "document.cookie"):
            assert store not in code, (name, store)


def test_the_job_page_follows_a_job_until_the_platform_calls_it_finished() -> None:
    """The job page polled only while `queued` or `running`: a job seen `registering` froze
    there (CI caught it under load). It now stops only on the platform's terminal set."""
    from shared.training.jobs import ACTIVE, TERMINAL

    script = read_static("app.js").decode()
    found = re.search(r"JOB_TERMINAL = \[([^\]]*)\]", script)
    assert found, "app.js names the terminal job statuses"
    listed = set(re.findall(r'"([a-z_]+)"', found.group(1)))
    assert listed == set(TERMINAL)
    assert not listed & set(ACTIVE)
