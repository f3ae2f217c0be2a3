"""What parallax.caps promises beyond tests/test_exports.py (which pins its `__all__`):
the public module and a docstring on every class and public method."""

from __future__ import annotations

import parallax.caps


def test_classes_name_the_public_module_and_have_docstrings() -> None:
    for name in set(parallax.caps.__all__) - {"Value"}:
        cls = getattr(parallax.caps, name)
        assert cls.__module__ == "parallax.caps", name
        assert cls.__doc__, name
        for attr, member in vars(cls).items():
            if not attr.startswith("_") and callable(member):
                assert member.__doc__, f"{name}.{attr}"
    assert parallax.caps.__doc__
