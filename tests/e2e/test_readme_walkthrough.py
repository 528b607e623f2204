"""The README's "First model in five minutes", run exactly as written (its ```sh
walkthrough blocks, in order) against a fresh platform: it cannot drift from the API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT

pytestmark = pytest.mark.e2e
BLOCK = re.compile(r"^```sh walkthrough\n(.*?)^```$", re.S | re.M)


def walkthrough() -> str:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) >= 2, "README lost its walkthrough blocks"
    return "\n".join(blocks)


def test_the_readme_walkthrough_runs_as_written(host, tmp_path, client, admin_headers) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    script = "set -euo pipefail\n" + walkthrough()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        # The venv's python3 first: the walkthrough's JSON one-liners need nothing else.
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "BASE": host.url,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    # What the walkthrough says it did, checked through the API and on disk.
    champion = client.get("/models/churn/aliases/champion", headers=admin_headers).json()
    assert champion["version"] == 2
    scored = pd.read_csv(tmp_path / "churn-scored.csv")
    assert len(scored) == 300 and {"customer_id", "prediction"} <= set(scored.columns)
    assert '"promotion"' in done.stdout and '"drift_detected"' in done.stdout
