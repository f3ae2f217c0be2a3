"""Value kinds: what their constructors accept and refuse, and their text."""

from __future__ import annotations

import enum
from fractions import Fraction

import numpy as np
import pytest

from parallax.caps import FloatRange, FractionRange, IntRange, Value, ValueArray, ValueList
from parallax.caps._value import format_value, normalize, value_key


def test_ranges_hold_their_bounds_and_print() -> None:
    assert (IntRange(1, 100).lo, IntRange(1, 100).hi) == (1, 100)
    assert str(IntRange(1, 100)) == "[1,100]"
    assert str(FractionRange(Fraction(0), Fraction(60))) == "[0/1,60/1]"
    assert str(FloatRange(0, 1.5)) == "[0.0,1.5]"


def test_ranges_of_different_kinds_differ() -> None:
    assert IntRange(1, 2) != FloatRange(1.0, 2.0)  # type: ignore[comparison-overlap]
    assert IntRange(1, 2) != FractionRange(Fraction(1), Fraction(2))  # type: ignore[comparison-overlap]
    assert IntRange(1, 2) == IntRange(1, 2)
    assert hash(IntRange(1, 2)) == hash(IntRange(1, 2))


def test_ranges_take_integral_and_rational_bounds_as_their_kind() -> None:
    assert type(FloatRange(0, 1).lo) is float
    assert type(FractionRange(0, 1).hi) is Fraction  # type: ignore[arg-type]
    assert type(IntRange(np.int64(1), 2).lo) is int  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: IntRange(5, 1), ValueError, "empty range"),
        (lambda: IntRange(5, 5), ValueError, "holds one value"),
        (lambda: IntRange(0, 2**64), ValueError, "out of range"),
        (lambda: IntRange(1.0, 2), TypeError, "must be an int, got float"),  # type: ignore[arg-type]
        (lambda: IntRange(True, 2), TypeError, "must be an int, got bool"),
        (lambda: FloatRange(0.0, float("nan")), ValueError, "nan"),
        (lambda: FloatRange("0", 1.0), TypeError, "must be a float, got str"),  # type: ignore[arg-type]
        (lambda: FractionRange(0.5, 1), TypeError, "must be a Fraction, got float"),  # type: ignore[arg-type]
        (lambda: FractionRange(Fraction(2**64), Fraction(2**65)), ValueError, "out of range"),
    ],
)
def test_range_constructors_refuse(make: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


def test_value_list_flattens_dedupes_and_ignores_order_for_equality() -> None:
    items = ValueList(["a", ValueList(["b", "a"]), "c", "b"])
    assert items.items == ("a", "b", "c")
    assert len(items) == 3
    assert list(items) == ["a", "b", "c"]
    assert items == ValueList(["c", "b", "a"])
    assert hash(items) == hash(ValueList(["c", "b", "a"]))
    assert str(items) == "{a,b,c}"
    assert repr(items) == "ValueList(['a', 'b', 'c'])"


def test_value_list_keeps_kinds_apart() -> None:
    assert len(ValueList([1, 1.0, True, Fraction(1), "1"])) == 5


def test_value_list_refuses_nothing() -> None:
    with pytest.raises(ValueError, match="empty ValueList accepts nothing"):
        ValueList([])


def test_value_array_is_ordered() -> None:
    shape = ValueArray([1, 3, 224, 224])
    assert shape.items == (1, 3, 224, 224)
    assert shape != ValueArray([3, 1, 224, 224])
    assert ValueArray([1]) != ValueArray([1.0])
    assert ValueArray([]) == ValueArray([])
    assert str(shape) == "<1,3,224,224>"
    assert repr(shape) == "ValueArray([1, 3, 224, 224])"


class _Color(enum.StrEnum):
    RED = "red"


class _Size(enum.IntEnum):
    BIG = 9


@pytest.mark.parametrize(
    ("given", "kind", "value"),
    [
        (np.int32(7), int, 7),
        (np.float32(0.5), float, 0.5),
        (np.uint64(2**64 - 1), int, 2**64 - 1),
        (_Color.RED, str, "red"),
        (_Size.BIG, int, 9),
        (True, bool, True),
        (Fraction(6, 4), Fraction, Fraction(3, 2)),
    ],
)
def test_normalize_gives_the_exact_kind(given: object, kind: type, value: Value) -> None:
    got = normalize(given)
    assert type(got) is kind
    assert value_key(got) == value_key(value)


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        (None, TypeError, "got NoneType None"),
        ((1, 2), TypeError, "ValueList or ValueArray; got tuple"),
        (b"x", TypeError, "got bytes"),
        (2**64, ValueError, "out of range"),
        (-(2**63) - 1, ValueError, "out of range"),
        (float("nan"), ValueError, "nan"),
    ],
)
def test_normalize_refuses(given: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        normalize(given)


FORMATS: list[tuple[Value, str]] = [
    (True, "true"),
    (-3, "-3"),
    (0.1, "0.1"),
    (1e16, "1e+16"),
    (float("-inf"), "-inf"),
    (Fraction(30000, 1001), "30000/1001"),
    ("RGBA8", "RGBA8"),
    ("30", "(string)30"),
    ("yes", "(string)yes"),
    ("1/0", "(string)1/0"),
    ("two words", '"two words"'),
    ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
    ("", '""'),
    ("é", '"é"'),
]


def test_format_value() -> None:
    # One test for the table: a pytest item per row costs more in the leak check than here.
    wrong = [
        (value, format_value(value), text) for value, text in FORMATS if format_value(value) != text
    ]
    assert not wrong
