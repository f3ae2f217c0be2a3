"""Typed properties: launch-text conversion, Python-value checks, precise errors."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax import PropertyError
from parallax.elements import FakeSrc, FileSrc, Identity, IpcSrc, Queue
from parallax.pipeline import Property
from parallax.pipeline._props import parse_bool, parse_int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-1", -1),
        ("64k", 65536),
        ("64KiB", 65536),
        ("1M", 1 << 20),
        ("2G", 2 << 30),
        ("0x10", 16),
        (" 7 ", 7),
    ],
)
def test_parse_int_with_size_suffixes(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["", "ten", "1.5", "4X", "k", "0x", "--1"])
def test_parse_int_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        assert isinstance(parse_int(text), int)
    except ValueError:
        pass


@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_int_round_trip(n: int) -> None:
    assert parse_int(str(n)) == n


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("yes", True), ("off", False), ("1", True)],
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_error_names_element_property_value_and_range() -> None:
    src = FakeSrc(name="src0")
    with pytest.raises(PropertyError) as info:
        src.set_property("num-buffers", "ten")
    assert str(info.value) == "src0: property 'num-buffers' expects an int >= -1, got 'ten'"
    assert (info.value.element, info.value.prop, info.value.value) == ("src0", "num-buffers", "ten")


def test_out_of_range_and_wrong_type_from_python() -> None:
    q = Queue(name="q")
    with pytest.raises(PropertyError, match="expects an int >= 0, got -5"):
        q.max_size_buffers = -5
    with pytest.raises(PropertyError, match="got True"):
        q.set_property("max_size_buffers", True)
    with pytest.raises(PropertyError, match="got '3'"):
        FileSrc(name="f").set_property("mmap", "3")


def test_unknown_property_lists_the_known_ones() -> None:
    with pytest.raises(
        PropertyError, match=r"no property 'locaton' on filesrc \(it has: .*location"
    ):
        FileSrc(name="f").set_property("locaton", "x")


def test_python_and_gstreamer_names_both_work() -> None:
    src = FakeSrc(num_buffers=3)
    assert src.get_property("num-buffers") == 3
    src.set_property("num_buffers", "4")
    assert src.num_buffers == 4


class Color(enum.Enum):
    DARK_RED = 1
    BLUE = 2


class _Holder:
    name = "holder"
    color = Property(Color.BLUE, doc="a color")
    ratio = Property(0.5, doc="a ratio", minimum=0.0, maximum=1.0)


def test_enum_and_float_properties() -> None:
    prop = _Holder.color
    assert prop.from_string("dark-red") is Color.DARK_RED
    assert prop.from_string("2") is Color.BLUE
    assert prop.to_string(Color.DARK_RED) == "dark-red"
    with pytest.raises(PropertyError, match="expects one of 'dark-red', 'blue'"):
        prop.from_string("green")
    h = _Holder()
    h.ratio = 1
    assert h.ratio == 1.0
    with pytest.raises(PropertyError, match=r"in \[0, 1\], got 1.5"):
        h.ratio = 1.5


class _Floats:
    name = "floats0"
    free = Property(0.0, doc="any number")
    at_least = Property(5.0, doc="a bound below", minimum=0.0)
    at_most = Property(1.0, doc="a bound above", maximum=10.0)


def _set(attr: str, value: float | str) -> None:
    """Set `value` on a fresh holder: a float as Python does, a str as launch text."""
    if isinstance(value, str):
        getattr(_Floats, attr).from_string(value, element="floats0")
    else:
        setattr(_Floats(), attr, value)


@pytest.mark.parametrize("attr", ["free", "at_least", "at_most"])
@pytest.mark.parametrize("value", [math.nan, -math.nan, "nan", "NaN", "-nan"])
def test_nan_is_refused_by_every_float_property(attr: str, value: float | str) -> None:
    prop = getattr(_Floats, attr)
    with pytest.raises(PropertyError) as info:
        _set(attr, value)
    assert str(info.value).startswith(f"floats0: property '{prop.name}' expects a number")
    assert str(info.value).endswith("(NaN is not a number)")
    assert info.value.element == "floats0"
    assert info.value.prop == prop.name
    got = info.value.value
    assert isinstance(got, str) or (isinstance(got, float) and math.isnan(got))


@pytest.mark.parametrize("attr", ["at_least", "at_most"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, "inf", "-inf", "infinity"])
def test_infinity_is_refused_where_a_bound_is_given(attr: str, value: float | str) -> None:
    prop = getattr(_Floats, attr)
    with pytest.raises(PropertyError, match=rf"^floats0: property '{prop.name}' expects"):
        _set(attr, value)


def test_infinity_is_a_value_where_no_bound_is_given() -> None:
    f = _Floats()
    f.free = math.inf
    assert f.free == math.inf
    assert _Floats.free.from_string("-inf") == -math.inf


def test_nan_timeout_and_probability_on_real_elements() -> None:
    with pytest.raises(PropertyError, match=r"^src: property 'timeout' expects a number >= 0, got"):
        IpcSrc(name="src", service="x").set_property("timeout", "nan")
    with pytest.raises(PropertyError, match=r"^id: property 'timeout' expects .* got inf"):
        IpcSrc(name="id", service="x").timeout = math.inf
    with pytest.raises(PropertyError, match=r"^i: property 'drop-probability' expects a number in"):
        Identity(name="i", drop_probability=math.nan)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_kept_exactly_or_refused(x: float) -> None:
    for prop in (_Floats.free, _Floats.at_least, _Floats.at_most):
        lo = -math.inf if prop.minimum is None else prop.minimum
        hi = math.inf if prop.maximum is None else prop.maximum
        bounded = prop.minimum is not None or prop.maximum is not None
        ok = not math.isnan(x) and lo <= x <= hi and not (bounded and math.isinf(x))
        for value in (x, repr(x)):
            if ok:
                got = prop.validate(value) if isinstance(value, float) else prop.from_string(value)
                assert got == x
            else:
                with pytest.raises(PropertyError, match=f"property '{prop.name}' expects"):
                    _set(prop.attr, value)
