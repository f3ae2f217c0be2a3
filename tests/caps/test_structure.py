"""Structure: a name plus fields, read-only and equal by value."""

from __future__ import annotations

import pytest

from parallax.caps import Caps, IntRange, Structure, ValueList


def test_mapping_access() -> None:
    s = Structure("video/raw", {"width": 320, "format": "RGBA8"})
    assert s.name == "video/raw"
    assert s["width"] == 320
    assert s.get("height") is None
    assert s.get("height", 240) == 240
    assert "format" in s
    assert list(s) == ["width", "format"]
    assert len(s) == 2
    assert dict(s.items()) == {"width": 320, "format": "RGBA8"}
    with pytest.raises(KeyError, match="height"):
        s["height"]


def test_text_and_repr() -> None:
    s = Structure("video/raw", {"width": IntRange(1, 8), "f": ValueList(["a", "b"])})
    assert str(s) == "video/raw,width=[1,8],f={a,b}"
    assert repr(s) == "Structure('video/raw,width=[1,8],f={a,b}')"
    assert str(Structure("bytes")) == "bytes"


def test_read_only() -> None:
    s = Structure("x", {"w": 1})
    with pytest.raises(AttributeError):
        s.name = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s["w"] = 2  # type: ignore[index]


def test_equality_ignores_field_order_not_kinds() -> None:
    assert Structure("x", {"a": 1, "b": 2}) == Structure("x", {"b": 2, "a": 1})
    assert Structure("x", {"a": 1}) != Structure("x", {"a": 1.0})
    assert Structure("x", {"a": 1}) != Structure("y", {"a": 1})
    assert Structure("x", {"a": 1}) != {"a": 1}


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("", {}, "media type name '' must start with a letter"),
        ("1x", {}, "must start with a letter"),
        ("video raw", {}, "must start with a letter"),
        ("ANY", {}, "'ANY' is reserved"),
        ("NONE", {}, "'NONE' is reserved"),
        ("x", {"": 1}, "field name '' must start with a letter"),
        ("x", {"a=b": 1}, "field name 'a=b'"),
        ("x", {"_w": 1}, "field name '_w'"),
        ("x", {"w": 2**64}, "x: field 'w' 18446744073709551616 is out of range"),
    ],
)
def test_constructor_refuses(name: str, fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        Structure(name, fields)


def test_constructor_refuses_values_of_no_kind() -> None:
    with pytest.raises(TypeError, match="x: field 'w' must be an int, float"):
        Structure("x", {"w": [1, 2]})  # type: ignore[dict-item]


def test_intersect_subset_fixate() -> None:
    a = Structure("x", {"w": IntRange(1, 10)})
    b = Structure("x", {"w": IntRange(5, 20), "h": 1})
    assert a.intersect(b) == Structure("x", {"w": IntRange(5, 10), "h": 1})
    assert a.intersect(Structure("y")) is None
    assert a.intersect(Structure("x", {"w": 11})) is None
    assert a.can_intersect(b)
    assert not a.can_intersect(Structure("x", {"w": 0}))
    assert Structure("x", {"w": 3, "h": 1}).is_subset(a)
    assert not a.is_subset(b)
    assert a.fixate() == Structure("x", {"w": 1})
    assert a.fixate().is_fixed
    assert not a.is_fixed


def test_a_structure_makes_caps() -> None:
    assert Caps(Structure("x", {"pixel-aspect-ratio": 1})) == Caps.from_string(
        "x,pixel-aspect-ratio=1"
    )
