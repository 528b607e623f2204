"""The deployment package stays within its budget (scripts/package_budget.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import package_budget  # noqa: E402

MiB = package_budget.MiB


def test_the_package_is_within_budget() -> None:
    sizes, app = package_budget.measure("all")
    total = sum(size for _, size in sizes) + app
    names = {package_budget._key(name) for name, _ in sizes}
    # Every runtime requirement is installed and counted.
    for requirement in package_budget.requirement_names(ROOT / "requirements.txt"):
        assert package_budget._key(requirement) in names
    assert total < package_budget.BUDGET_MIB * MiB, f"{total / MiB:.0f} MiB"
    assert app < 5 * MiB  # tests, devhost, benchmarks stay out (.funcignore)


def test_dev_tools_are_not_in_the_package() -> None:
    sizes, _ = package_budget.measure("all")
    names = {package_budget._key(name) for name, _ in sizes}
    assert not names & {"pytest", "ruff", "httpx", "croniter", "openapi-spec-validator"}


def test_a_lean_serving_app_would_carry_no_training_stack() -> None:
    sizes, _ = package_budget.measure("serving-onnx")
    names = {package_budget._key(name) for name, _ in sizes}
    assert not names & {"scikit-learn", "scipy", "pandas", "pyarrow", "skl2onnx", "onnx"}
    assert {"onnxruntime", "numpy"} <= names


def test_check_mode_fails_over_budget(monkeypatch) -> None:
    monkeypatch.setattr(package_budget, "BUDGET_MIB", 1)
    assert package_budget.main(["--check"]) == 1
    monkeypatch.undo()
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_budget.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "| **package** |" in out.stdout
