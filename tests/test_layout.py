"""The architecture the folders draw: product code never imports the tests, and the agent side
never imports the issuing side or the lab."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path}: {name}"
        for path, names in _imports(folder).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


@pytest.mark.parametrize("folder", ["cloud", "nas_agent", "lab", "demo", "bench", "tools", "infra"])
def test_product_code_never_imports_the_tests(folder):
    assert _offenders(folder, ("tests",)) == []


def test_the_agent_imports_neither_the_issuing_side_nor_the_lab():
    assert _offenders("nas_agent", ("cloud", "lab", "flask")) == []
