"""Size of the deployment package: the installed runtime dependencies plus the app's files.

Flex Consumption builds the package remotely (pip install -r requirements.txt) and runs it
from a mounted, read-only copy; the instance's temporary storage is 0.8 GB. The budget
keeps room under that for model downloads, staging and /tmp.

    python scripts/package_budget.py                 # table of the largest distributions
    python scripts/package_budget.py --check         # exit 1 when over BUDGET_MIB
    python scripts/package_budget.py --profile serving-onnx   # what a lean app would carry

Sizes come from each installed distribution's RECORD (what pip would put in the package),
for the dependency closure of the requirements, in the current environment.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
BUDGET_MIB = 800  # deps + app; Flex Consumption temporary storage is 0.8 GB

# A lean serving app (login, predict with ONNX exports, models read) would need only these
# top-level requirements; "serving-sklearn" adds the scikit-learn fallback for versions
# without a verified ONNX export.
PROFILES = {
    "all": None,
    "serving-onnx": [
        "azure-functions", "azure-identity", "azure-keyvault-secrets", "azure-storage-blob",
        "azure-storage-queue", "azure-data-tables", "pydantic", "pydantic-settings", "PyJWT",
        "argon2-cffi", "prometheus-client", "psutil", "azure-monitor-opentelemetry",
        "numpy", "onnxruntime",
    ],
}  # fmt: skip
PROFILES["serving-sklearn"] = [*PROFILES["serving-onnx"], "scikit-learn", "skops", "pandas"]


def requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(Requirement(line).name)
    return names


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the named ones need (markers evaluated here)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if _key(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"warning: {name} is not installed; not counted", file=sys.stderr)
            continue
        found[_key(name)] = dist
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def dist_bytes(dist: metadata.Distribution) -> int:
    total = 0
    # Byte code included: pip compiles it at install, in the remote build as well.
    for file in dist.files or []:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total


def app_bytes() -> int:
    """The project's own files, minus what .funcignore keeps out of the package."""
    patterns = [
        p.strip().rstrip("/")
        for p in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.startswith("#")
    ]
    total = 0
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in patterns):
            continue
        if path.is_file() and not path.is_symlink() and "__pycache__" not in rel.parts:
            total += path.stat().st_size
    return total


def measure(profile: str = "all") -> tuple[list[tuple[str, int]], int]:
    names = PROFILES[profile] or requirement_names(ROOT / "requirements.txt")
    sizes = sorted(
        ((d.metadata["Name"], dist_bytes(d)) for d in closure(names).values()),
        key=lambda item: -item[1],
    )
    return sizes, app_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="all")
    parser.add_argument("--check", action="store_true", help=f"fail above {BUDGET_MIB} MiB")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    sizes, app = measure(args.profile)
    deps = sum(size for _, size in sizes)
    print(f"| {args.profile}: distribution | MiB |\n| --- | ---: |")
    for name, size in sizes[: args.top]:
        print(f"| {name} | {size / MiB:.1f} |")
    rest = sizes[args.top :]
    print(f"| {len(rest)} others | {sum(s for _, s in rest) / MiB:.1f} |")
    print(f"| **dependencies ({len(sizes)})** | **{deps / MiB:.1f}** |")
    print(f"| app files | {app / MiB:.2f} |")
    total = (deps + app) / MiB
    print(f"| **package** | **{total:.1f}** (budget {BUDGET_MIB}) |")
    if args.check and total > BUDGET_MIB:
        print(f"over budget: {total:.1f} MiB > {BUDGET_MIB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
