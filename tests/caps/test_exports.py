"""The public surface of parallax.caps, pinned: names, modules, docstrings."""

from __future__ import annotations

import parallax.caps

PUBLIC = {
    "Caps",
    "FloatRange",
    "FractionRange",
    "IntRange",
    "Structure",
    "Value",
    "ValueArray",
    "ValueList",
}


def test_all_lists_the_public_names() -> None:
    assert set(parallax.caps.__all__) == PUBLIC
    assert {n for n in dir(parallax.caps) if not n.startswith("_")} == PUBLIC


def test_classes_name_the_public_module_and_have_docstrings() -> None:
    for name in PUBLIC - {"Value"}:
        cls = getattr(parallax.caps, name)
        assert cls.__module__ == "parallax.caps", name
        assert cls.__doc__, name
        for attr, member in vars(cls).items():
            if not attr.startswith("_") and callable(member):
                assert member.__doc__, f"{name}.{attr}"
    assert parallax.caps.__doc__
