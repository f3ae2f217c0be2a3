"""Set algebra on single values, below the caps tables in test_caps.py."""

from __future__ import annotations

from fractions import Fraction

from parallax.caps import FloatRange, FractionRange, IntRange, Value, ValueArray, ValueList
from parallax.caps._algebra import fixate, intersect, is_fixed, is_subset

F = Fraction


# Tables checked in one test each, every wrong row reported at once: a row per pytest
# item would spend more time in the per-test leak check than in the checks themselves.
INTERSECT: list[tuple[Value, Value, Value | None]] = [
    (1, 1, 1),
    (1, 2, None),
    (1, True, None),
    ("a", "a", "a"),
    (IntRange(1, 5), IntRange(5, 9), 5),
    (IntRange(1, 5), IntRange(2, 3), IntRange(2, 3)),
    (FloatRange(0, 1), 1.0, 1.0),
    (FloatRange(0, 1), 1, None),
    (FractionRange(F(0), F(1)), F(1, 2), F(1, 2)),
    (ValueList([1, 2]), ValueList([2, 3]), 2),
    (ValueList([1, 2, 3]), ValueList([3, 2]), ValueList([2, 3])),
    (ValueList([IntRange(1, 3), IntRange(2, 5)]), 3, 3),
    (ValueArray([1, 2]), ValueArray([1, IntRange(0, 9)]), ValueArray([1, 2])),
    (ValueArray([1, 2]), ValueList([ValueArray([1, 2]), 7]), ValueArray([1, 2])),
    (ValueArray([1]), 1, None),
    (ValueArray([]), ValueArray([]), ValueArray([])),
]


def test_intersect() -> None:
    wrong = [
        (a, b, intersect(a, b), intersect(b, a), expected)
        for a, b, expected in INTERSECT
        if not intersect(a, b) == intersect(b, a) == expected
    ]
    assert not wrong


def test_intersect_keeps_the_first_values_order() -> None:
    got = intersect(ValueList(["c", "b", "a"]), ValueList(["a", "b", "c"]))
    assert isinstance(got, ValueList)
    assert got.items == ("c", "b", "a")


SUBSET: list[tuple[Value, Value, bool]] = [
    (IntRange(1, 3), ValueList([1, 2, 3]), True),
    (IntRange(1, 4), ValueList([IntRange(1, 2), IntRange(3, 4)]), True),  # ints are discrete
    (FloatRange(1, 4), ValueList([FloatRange(1, 2), FloatRange(3, 4)]), False),
    (FloatRange(1, 4), ValueList([FloatRange(1, 2), FloatRange(2, 4)]), True),
    (FractionRange(F(0), F(1)), ValueList([F(0), FractionRange(F(0), F(1))]), True),
    (IntRange(1, 3), FloatRange(1, 3), False),
    ("a", ValueList(["b", "a"]), True),
    (True, ValueList([1, False]), False),
    (ValueList([1, 2]), IntRange(1, 2), True),
    (ValueArray([1, 2]), ValueArray([1, 2, 3]), False),
    (ValueArray([IntRange(1, 2)]), ValueArray([ValueList([1, 2])]), True),
]


def test_is_subset() -> None:
    wrong = [(a, b, expected) for a, b, expected in SUBSET if is_subset(a, b) is not expected]
    assert not wrong


FIXATE: list[tuple[Value, bool, Value]] = [
    (IntRange(3, 9), False, 3),
    (FloatRange(0.5, 1), False, 0.5),
    (FractionRange(F(1, 2), F(1)), False, F(1, 2)),
    (ValueList([IntRange(4, 5), 1]), False, 4),
    (ValueList(["only"]), False, "only"),
    (ValueArray([1, ValueList([2, 3])]), False, ValueArray([1, 2])),
    (ValueArray([1, 2]), True, ValueArray([1, 2])),
    ("s", True, "s"),
]


def test_fixate() -> None:
    wrong = [
        (value, is_fixed(value), fixate(value))
        for value, fixed, expected in FIXATE
        if is_fixed(value) is not fixed or fixate(value) != expected or not is_fixed(fixate(value))
    ]
    assert not wrong
