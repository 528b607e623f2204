"""The storage clients' requests session reads nothing from the environment per request
where the environment holds nothing requests would use, and goes on reading it otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import requests

from shared import storage
from shared.settings import Settings
from shared.storage import environment_configures_requests

URL = "http://127.0.0.1:10000/devstoreaccount1/models/a/b.skops"


@pytest.mark.parametrize(
    "name",
    [
        "HTTPS_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "no_proxy",
        "Ftp_Proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NETRC",
    ],
)
def test_any_variable_requests_reads_keeps_it_reading(name: str, tmp_path: Path) -> None:
    assert environment_configures_requests({name: "x", "PATH": "/bin"}, tmp_path)


@pytest.mark.parametrize("netrc", [".netrc", "_netrc"])
def test_a_netrc_file_keeps_it_reading(netrc: str, tmp_path: Path) -> None:
    (tmp_path / netrc).write_text("machine example.com login a password b\n")
    assert environment_configures_requests({"PATH": "/bin"}, tmp_path)


def test_an_environment_without_them_is_not_read(tmp_path: Path) -> None:
    assert not environment_configures_requests(
        {"PATH": "/bin", "HOME": str(tmp_path), "PROXYISH": "1", "AzureWebJobsStorage": "x"},
        tmp_path,
    )


def _merged(trust_env: bool) -> dict:
    session = requests.Session()
    session.trust_env = trust_env
    return session.merge_environment_settings(URL, {}, None, True, None)


def test_without_them_requests_finds_nothing_either_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The premise, on this requests: in a clean environment, reading it changes nothing."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    assert not environment_configures_requests()
    assert _merged(True) == _merged(False)
    assert requests.utils.get_netrc_auth(URL) is None
    # ... and with a proxy variable it would: this is why the session then keeps reading.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert _merged(True)["proxies"] != _merged(False)["proxies"]


@pytest.mark.skipif(sys.platform != "linux", reason="elsewhere the session always reads it")
def test_the_clients_session_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(storage_connection_string="UseDevelopmentStorage=true")
    monkeypatch.setattr(storage, "environment_configures_requests", lambda: False)
    assert all(
        options["session"].trust_env is False for options in storage.client_options(settings)
    )
    monkeypatch.setattr(storage, "environment_configures_requests", lambda: True)
    assert all(options["session"].trust_env is True for options in storage.client_options(settings))
