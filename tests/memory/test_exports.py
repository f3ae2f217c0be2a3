"""What parallax.memory promises beyond tests/test_exports.py (which pins its `__all__`):
a docstring on every public method of its classes, and its layer (it imports nothing from
Parallax but the errors)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import parallax.memory
from parallax import memory


def test_exported_classes_name_the_public_module_and_have_docstrings() -> None:
    for name in memory.__all__:
        obj = getattr(memory, name)
        assert obj.__module__ == "parallax.memory", name
        assert inspect.getdoc(obj), f"{name} has no docstring"
        for attr, member in vars(obj).items():
            if attr.startswith("_") or (not callable(member) and not isinstance(member, property)):
                continue
            if isinstance(member, property | classmethod | staticmethod) or inspect.isfunction(
                member
            ):
                assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_memory_imports_nothing_from_parallax_but_errors() -> None:
    package = Path(parallax.memory.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "parallax":
                    assert name == "parallax._errors", f"{path.name} imports {name}"
