"""The top-level packages import one way: `pipeline` composes; `transforms` and `sinks` do the work on `core`;
`core` imports nothing of ours. No cycle among them, and none inside a package's import-time graph either."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("core", "pipeline", "transforms", "sinks")
# Each package and the packages of ours it may import (directly or lazily, inside a function).
ALLOWED = {
    "core": set(),
    "sinks": {"core"},
    "transforms": {"core", "sinks"},
    "pipeline": {"core", "sinks", "transforms"},
}


def _imports(path: Path) -> set[str]:
    """Every module of ours a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in OURS}


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", OURS)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = [f"{path.relative_to(ROOT)} imports {name}" for path in _files(package) for name in _imports(path)
             if name.split(".")[0] not in ALLOWED[package] | {package}]
    assert wrong == []


def test_the_allowed_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"cycle: {' -> '.join(path + (package,))}"
        for below in ALLOWED[package]:
            if below not in done:
                visit(below, path + (package,))
        done.add(package)

    for package in OURS:
        visit(package, ())


def test_no_module_imports_one_that_imports_it_back() -> None:
    """Module-level cycles (a imports b imports a), which make import order matter."""
    graph: dict[str, set[str]] = {}
    for package in OURS:
        for path in _files(package):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            graph[name] = _imports(path)
    cycles = sorted({" <-> ".join(sorted((a, b))) for a, deps in graph.items() for b in deps
                     if b in graph and a in graph[b] and a != b})
    assert cycles == []
