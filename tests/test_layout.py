"""The module rules of issue 9: no module in src/ over 600 lines, and each package's
`__init__` docstring names every module it holds (one concept each, STYLE.md §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "parallax"
MAX_LINES = 600
MODULES = sorted(SRC.rglob("*.py"))
PACKAGES = sorted(p.parent for p in SRC.rglob("__init__.py") if p.parent != SRC)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_600_lines(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module.relative_to(SRC)} has {lines} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_each_package_docstring_names_its_modules(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"parallax.{package.name} has no docstring"
    missing = [
        m.name
        for m in sorted(package.glob("_*.py"))
        if m.name != "__init__.py" and m.name not in doc
    ]
    assert not missing, f"parallax.{package.name}'s docstring does not name: {missing}"
