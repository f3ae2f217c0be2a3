"""Set algebra on single field values: intersect, subset, fixate.

A value stands for the set of concrete values it accepts: a scalar for itself, a range for
every number between its bounds, a list for the union of its items, an array for the
element-wise product. These functions follow GStreamer's (gstvalue.c: gst_value_intersect,
gst_value_is_subset, gst_value_fixate), with two simplifications, both documented where
they apply: no range steps, and a subset test that is exact for scalars, ranges and lists
of them, but for arrays inside lists only checks array against array.
"""

from __future__ import annotations

from collections.abc import Hashable
from fractions import Fraction

from ._value import (
    FloatRange,
    FractionRange,
    IntRange,
    Value,
    ValueArray,
    ValueList,
    value_key,
)

_Range = IntRange | FractionRange | FloatRange
_RANGES = (IntRange, FractionRange, FloatRange)
# The scalar kind each range holds.
_ELEMENT: dict[type, type] = {IntRange: int, FractionRange: Fraction, FloatRange: float}


def intersect(a: Value, b: Value) -> Value | None:
    """The values both `a` and `b` accept, or None when there are none.

    Same-kind scalars intersect when equal; a scalar and a range of its kind when the scalar
    lies in the range; two ranges of a kind in their overlap (a one-value overlap is that
    value); a list with anything in the union of its items' intersections (one survivor is
    that item, not a list); two arrays of one length element by element. Kinds never mix:
    `1` and `1.0` do not intersect. The result keeps `a`'s order.
    """
    if a is b:
        return a
    if isinstance(a, ValueList):
        return _intersect_list(a, b)
    if isinstance(b, ValueList):
        return _intersect_list(b, a)
    if isinstance(a, _RANGES):
        return _intersect_range(a, b)
    if isinstance(b, _RANGES):
        return _intersect_range(b, a)
    if isinstance(a, ValueArray) or isinstance(b, ValueArray):
        if isinstance(a, ValueArray) and isinstance(b, ValueArray):
            return _intersect_array(a, b)
        return None
    return a if type(a) is type(b) and a == b else None


def _intersect_list(items: ValueList, other: Value) -> Value | None:
    """The union of each item's intersection with `other`, in `items`' order."""
    if other == items:
        return items
    found: list[Value] = []
    for item in items:
        r = intersect(item, other)
        if isinstance(r, ValueList):
            found.extend(r)
        elif r is not None:
            found.append(r)
    if not found:
        return None
    result = ValueList(found)  # drops repeats, so a lone survivor shows here
    return result.items[0] if len(result) == 1 else result


def _intersect_range(r: _Range, other: Value) -> Value | None:
    """The overlap of `r` with a range of its kind, or `other` if it is a number inside `r`."""
    kind = type(r)
    if isinstance(other, kind):
        lo, hi = max(r.lo, other.lo), min(r.hi, other.hi)
        if lo < hi:
            return r if (lo, hi) == (r.lo, r.hi) else kind(lo, hi)  # type: ignore[arg-type]
        return lo if lo == hi else None
    if type(other) is _ELEMENT[kind] and r.lo <= other <= r.hi:  # type: ignore[operator]
        return other
    return None


def _intersect_array(a: ValueArray, b: ValueArray) -> Value | None:
    """Element-wise intersection of two arrays; None if lengths differ or any element fails."""
    if len(a) != len(b):
        return None
    out: list[Value] = []
    for x, y in zip(a, b, strict=True):
        r = intersect(x, y)
        if r is None:
            return None
        out.append(r)
    return ValueArray(out)


def is_subset(a: Value, b: Value) -> bool:
    """Whether every value `a` accepts, `b` accepts too.

    Exact for scalars, ranges and lists of them, by covering `a`'s interval with the union
    of `b`'s intervals of the same kind (`[1,3]` is a subset of `{1,2,3}` and of
    `{[1,2],3}`). An array is a subset when some single array of `b` contains it element by
    element, as gst_caps_is_subset checks structure by structure.
    """
    if a is b or value_key(a) == value_key(b):
        return True
    if isinstance(a, ValueList):
        return all(is_subset(item, b) for item in a)
    candidates = b.items if isinstance(b, ValueList) else (b,)
    if isinstance(a, ValueArray):
        return any(
            isinstance(c, ValueArray)
            and len(c) == len(a)
            and all(is_subset(x, y) for x, y in zip(a, c, strict=True))
            for c in candidates
        )
    span = _span(a)
    if span is None:  # a string or a boolean: it must be one of b's items
        key = value_key(a)
        return any(value_key(c) == key for c in candidates)
    kind, lo, hi = span
    spans = sorted(s[1:] for c in candidates if (s := _span(c)) is not None and s[0] is kind)
    # Merge b's intervals left to right and see whether one merged run covers [lo, hi].
    # Ints are discrete, so [1,2] and 3 join; reals join only where intervals touch.
    gap = 1 if kind is int else 0
    run: tuple[int | float | Fraction, int | float | Fraction] | None = None
    for s_lo, s_hi in spans:
        if run is not None and s_lo <= run[1] + gap:
            run = (run[0], max(run[1], s_hi))
        else:
            run = (s_lo, s_hi)
        if run[0] <= lo and hi <= run[1]:
            return True
    return False


def _span(v: Value) -> tuple[Hashable, int | float | Fraction, int | float | Fraction] | None:
    """(kind, lo, hi) for a number or a range; None for anything else."""
    t = type(v)
    if t is int or t is float or t is Fraction:
        return (t, v, v)  # type: ignore[return-value]
    element = _ELEMENT.get(t)
    if element is not None:
        return (element, v.lo, v.hi)  # type: ignore[union-attr]
    return None


def is_fixed(v: Value) -> bool:
    """Whether `v` is one concrete value: a scalar, or an array of fixed elements."""
    if isinstance(v, ValueArray):
        return all(map(is_fixed, v))
    return not isinstance(v, (*_RANGES, ValueList))


def fixate(v: Value) -> Value:
    """One concrete value `v` accepts: a range's low bound, a list's first item (fixated).

    GStreamer's gst_value_fixate makes the same choice; elements that prefer another value
    (nearest to a target) intersect with it before fixating.
    """
    if isinstance(v, _RANGES):
        return v.lo
    if isinstance(v, ValueList):
        return fixate(v.items[0])
    if isinstance(v, ValueArray) and not is_fixed(v):
        return ValueArray(map(fixate, v))
    return v
