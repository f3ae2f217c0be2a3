"""The public surface: every exported name exists, is documented, and reads as public."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = [
    "parallax",
    "parallax.memory",
    "parallax.caps",
    "parallax.buffer",
    "parallax.pipeline",
    "parallax.elements",
    "parallax.gpu",
    "parallax.cli",
]


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_names_exist_and_have_docstrings(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no docstring"
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


@pytest.mark.parametrize("module_name", PUBLIC[1:])
def test_classes_report_a_public_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            assert not obj.__module__.split(".")[-1].startswith("_"), f"{name}: {obj.__module__}"


def test_builtin_elements_come_from_entry_points() -> None:
    from parallax.pipeline import registry

    names = set(registry.names())
    assert {
        "filesrc",
        "filesink",
        "fakesrc",
        "fakesink",
        "identity",
        "tee",
        "queue",
        "capsfilter",
        "consolesink",
        "appsrc",
        "appsink",
    } <= names


def test_errors_are_one_tree() -> None:
    import parallax

    for name in (
        "ParseError",
        "PropertyError",
        "LinkError",
        "FlowError",
        "PoolExhausted",
        "StateError",
    ):
        assert issubclass(getattr(parallax, name), parallax.ParallaxError)
        assert getattr(parallax, name).__module__ == "parallax"
