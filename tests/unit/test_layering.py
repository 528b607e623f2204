"""The layering of shared/, read from the source with ``ast`` (nothing is imported).

Layers, from the top: functions/ -> the HTTP edge (shared/http) -> the container
(shared/container.py) -> domain packages -> storage clients. Every import counts: at
module level, inside functions, and under ``TYPE_CHECKING`` alike, so a cycle cannot
hide behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
DOMAIN = ("identity", "registry", "ml", "training", "prediction", "monitoring", "datasets")
FORBIDDEN_FOR_DOMAIN = ("shared.http", "shared.container", "azure.functions")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SHARED.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports, anywhere in its body, as absolute dotted names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # ``from shared import services`` imports the module shared.services.
            found.update(
                f"{module}.{alias.name}"
                for alias in node.names
                if f"{module}.{alias.name}" in MODULES
            )
    return found


def internal(target: str) -> str | None:
    """The shared/ module an import resolves to (the longest known prefix), if any."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        deps = {internal(t) for t in imports_of(name)} - {None, name}
        # A package's __init__ is imported on the way to any of its modules; the edge
        # that matters is to the module itself, so parents are not added here.
        edges[name] = {d for d in deps if d is not None}
    return edges


def in_domain(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and parts[0] == "shared" and parts[1] in DOMAIN


def test_every_domain_package_is_checked() -> None:
    for package in DOMAIN:
        assert any(in_domain(m) and m.split(".")[1] == package for m in MODULES), package


@pytest.mark.parametrize("name", [m for m in MODULES if in_domain(m)])
def test_domain_modules_never_import_the_edge_or_the_container(name: str) -> None:
    bad = sorted(
        t
        for t in imports_of(name)
        if any(t == f or t.startswith(f + ".") for f in FORBIDDEN_FOR_DOMAIN)
    )
    assert bad == [], f"{name} imports {bad}"


def test_only_the_http_edge_imports_azure_functions() -> None:
    offenders = sorted(
        name
        for name in MODULES
        if not name.startswith("shared.http")
        and any(
            t == "azure.functions" or t.startswith("azure.functions.") for t in imports_of(name)
        )
    )
    assert offenders == []


def test_the_shared_vocabulary_has_no_dependencies() -> None:
    # Principal and scopes are used by every layer: standard library only.
    assert {t.split(".")[0] for t in imports_of("shared.identity.principal")} <= {
        "__future__",
        "dataclasses",
    }
    assert {t.split(".")[0] for t in imports_of("shared.resources")} <= {"__future__", "typing"}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_of_shared_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
