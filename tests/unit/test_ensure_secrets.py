"""The postprovision hook creates only absent secrets, long enough, never on a command line.

``az`` is replaced by a recorder standing for a vault (no Azure call is possible here)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import ensure_secrets  # noqa: E402


class FakeVault:
    def __init__(self, existing: dict[str, str]) -> None:
        self.values = dict(existing)
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess:
        args = list(args)
        self.calls.append(args)
        name = args[args.index("-n") + 1]
        if args[:3] == ["keyvault", "secret", "show"]:
            if name in self.values:
                return subprocess.CompletedProcess(args, 0, '"id"', "")
            return subprocess.CompletedProcess(args, 3, "", "(SecretNotFound) not found")
        if args[:3] == ["keyvault", "secret", "set"]:
            self.values[name] = Path(args[args.index("--file") + 1]).read_text(encoding="utf-8")
            return subprocess.CompletedProcess(args, 0, '"id"', "")
        raise AssertionError(args)


def test_absent_secrets_are_created_and_present_ones_left_alone() -> None:
    vault = FakeVault({"jwt-signing-key": "existing-key-value-that-must-stay-as-it-is!!"})
    names = ensure_secrets.wanted({"PREDEFINED_USER_SECRETS": "bootstrap-admin-password, adf-pw"})
    created = ensure_secrets.ensure("kv", names, vault)
    assert created == ["model-signing-key", "bootstrap-admin-password", "adf-pw"]
    assert vault.values["jwt-signing-key"] == "existing-key-value-that-must-stay-as-it-is!!"
    assert len(vault.values["model-signing-key"].encode()) >= 32
    assert len(vault.values["adf-pw"]) >= 12
    assert ensure_secrets.ensure("kv", names, vault) == []  # a second run changes nothing


def test_values_never_appear_on_the_command_line_and_temp_files_are_removed() -> None:
    vault = FakeVault({})
    ensure_secrets.ensure("kv", ["model-signing-key"], vault)
    value = vault.values["model-signing-key"]
    assert not any(value in arg for call in vault.calls for arg in call)
    [set_call] = [c for c in vault.calls if c[2] == "set"]
    assert not Path(set_call[set_call.index("--file") + 1]).exists()


def test_an_unreadable_vault_stops_the_hook() -> None:
    def denied(args: Sequence[str]) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(list(args), 1, "", "(Forbidden) not authorized")

    with pytest.raises(RuntimeError, match="cannot read secret"):
        ensure_secrets.ensure("kv", ["jwt-signing-key"], denied)


def test_azure_yaml_runs_the_hook_after_provisioning() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert "postprovision:" in text and "scripts/ensure_secrets.py" in text
    main = (ROOT / "infra" / "bicep" / "main.bicep").read_text(encoding="utf-8")
    assert "output PREDEFINED_USER_SECRETS string" in main
