"""The kinds of value a caps field holds, their canonical text, and how a bare token reads.

    kind            Python                      text
    int             int                         320, -1 (0x10 on input)
    float           float                       1.5, 1e-05, inf
    fraction        fractions.Fraction          30/1
    boolean         bool                        true, false (yes/no/t/f on input too)
    string          str                         RGBA8, "two words", (string)30
    int range       IntRange(lo, hi)            [1,100]
    fraction range  FractionRange(lo, hi)       [0/1,60/1]
    float range     FloatRange(lo, hi)          [0.0,1.0]
    list            ValueList(items)            {RGBA8,BGRA8}      one of these
    array           ValueArray(items)           <1,3,224,224>      exactly this tuple

Values compare by kind *and* value: `1`, `1.0`, `1/1` and `true` are four different values,
as in GStreamer, where an int never intersects a double. Python's own `==` says `1 == 1.0 ==
True`, so containers and structures compare `value_key(v)`, never `v` itself.

Reading and writing share one rule for a token without a type annotation, `read_bare`, in
GStreamer's order (gstvalue.c, `_priv_gst_value_parse_value` with no type: int, double,
fraction, boolean, string). Quotes only group characters: GStreamer reads an untyped "30"
as the int 30. So `format_value` writes a string that the rule would read as something
else with its type, `(string)30`, which is what makes `str` → `Caps.from_string` a round
trip.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, TypeAlias

# Ints are bounded to what int64 or uint64 can hold: GStreamer's widest ints (G_TYPE_INT64,
# G_TYPE_UINT64). The bound also keeps `int()` and `str()` far from Python's 4300-digit limit.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1

# GStreamer's unquoted-string characters (gstvalue.c, GST_ASCII_IS_STRING).
SIMPLE: Final = re.compile(r"[A-Za-z0-9_+\-/:.]+")
_INT: Final = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|([0-9]+))")
_FLOAT: Final = re.compile(
    r"[+-]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
)
_FRACTION: Final = re.compile(r"([+-]?[0-9]+)/([+-]?[0-9]+)")
# gstvalue.c, gst_value_deserialize_boolean (compared case-insensitively).
_TRUE: Final = frozenset({"true", "yes", "t", "1"})
_FALSE: Final = frozenset({"false", "no", "f", "0"})
_ESCAPED: Final = re.compile(r"\\(.)", re.DOTALL)


Scalar: TypeAlias = "bool | int | float | Fraction | str"
Value: TypeAlias = (
    "bool | int | float | Fraction | str | IntRange | FractionRange | FloatRange"
    " | ValueList | ValueArray"
)


def _check_int(v: int, what: str) -> int:
    """`v` if it fits int64 or uint64, else ValueError naming `what`."""
    if not INT_MIN <= v <= INT_MAX:
        raise ValueError(f"{what} {v} is out of range (caps ints fit in int64 or uint64)")
    return v


def _as_int(v: object, what: str) -> int:
    """`v` as an exact int (any Integral but bool), range-checked."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(v).__name__} {v!r}")
    return _check_int(int(v), what)


def _as_fraction(v: object, what: str) -> Fraction:
    """`v` as an exact Fraction (any Rational but bool), its parts range-checked."""
    if isinstance(v, bool) or not isinstance(v, numbers.Rational):
        raise TypeError(f"{what} must be a Fraction, got {type(v).__name__} {v!r}")
    f = Fraction(int(v.numerator), int(v.denominator))
    _check_int(f.numerator, f"{what} numerator")
    _check_int(f.denominator, f"{what} denominator")
    return f


def _as_float(v: object, what: str) -> float:
    """`v` as an exact float (any Real but bool); nan refused."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{what} must be a float, got {type(v).__name__} {v!r}")
    f = float(v)
    if math.isnan(f):
        raise ValueError(f"{what} is nan, which equals nothing and so cannot be negotiated")
    return f


def _check_bounds(lo: object, hi: object) -> None:
    """ValueError unless `lo < hi`."""
    # GStreamer refuses start >= end too (gst_value_set_int_range_step: 'start < end').
    if lo > hi:  # type: ignore[operator]
        raise ValueError(f"empty range: low bound {lo} is above high bound {hi}")
    if lo == hi:
        raise ValueError(f"a range from {lo} to {hi} holds one value: use the value itself")


@dataclass(frozen=True, slots=True)
class IntRange:
    """Every int from `lo` to `hi`, both included; written `[lo,hi]`.

    Raises:
        TypeError: a bound is not an int.
        ValueError: `lo >= hi` (a one-value range is that value), or a bound is outside
            int64/uint64.
    """

    lo: int
    hi: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo", _as_int(self.lo, "IntRange low bound"))
        object.__setattr__(self, "hi", _as_int(self.hi, "IntRange high bound"))
        _check_bounds(self.lo, self.hi)

    def __str__(self) -> str:
        return f"[{self.lo},{self.hi}]"


@dataclass(frozen=True, slots=True)
class FractionRange:
    """Every fraction from `lo` to `hi`, both included; written `[0/1,60/1]`.

    Raises:
        TypeError: a bound is not a rational number (ints are taken as n/1).
        ValueError: `lo >= hi`, or a numerator or denominator outside int64/uint64.
    """

    lo: Fraction
    hi: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo", _as_fraction(self.lo, "FractionRange low bound"))
        object.__setattr__(self, "hi", _as_fraction(self.hi, "FractionRange high bound"))
        _check_bounds(self.lo, self.hi)

    def __str__(self) -> str:
        return f"[{format_value(self.lo)},{format_value(self.hi)}]"


@dataclass(frozen=True, slots=True)
class FloatRange:
    """Every float from `lo` to `hi`, both included; written `[0.0,1.0]`.

    Raises:
        TypeError: a bound is not a real number (ints are taken as floats).
        ValueError: `lo >= hi`, or a bound is nan.
    """

    lo: float
    hi: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo", _as_float(self.lo, "FloatRange low bound"))
        object.__setattr__(self, "hi", _as_float(self.hi, "FloatRange high bound"))
        _check_bounds(self.lo, self.hi)

    def __str__(self) -> str:
        return f"[{format_value(self.lo)},{format_value(self.hi)}]"


RANGE_TYPES: Final = (IntRange, FractionRange, FloatRange)


class _Collection:
    """What ValueList and ValueArray share: items, hashing by a kind-aware key, printing
    between brackets, and pickling through the constructor."""

    __slots__ = ("_hash", "_items", "_key")
    _brackets = "()"
    _items: tuple[Value, ...]
    _key: Hashable
    _hash: int

    @property
    def items(self) -> tuple[Value, ...]:
        """The values, in the order given."""
        return self._items

    def __iter__(self) -> Iterator[Value]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Collection)
        return self._hash == other._hash and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self._brackets[0] + ",".join(map(format_value, self._items)) + self._brackets[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._items)!r})"

    def __reduce__(self) -> tuple[type[_Collection], tuple[tuple[Value, ...]]]:
        # Rebuild through __init__: the cached hash depends on the process's str hash seed.
        return (type(self), (self._items,))


class ValueList(_Collection):
    """A set of alternatives, any one of which is acceptable; written `{a,b,c}`.

    Order is kept, because fixation takes the first alternative, but equality ignores it:
    `{a,b}` equals `{b,a}`, as in GStreamer (gst_value_compare on lists is unordered).
    Nested lists are flattened (`{a,{b,c}}` is `{a,b,c}`) and repeats dropped.

    Args:
        items: the alternatives; any value kind.

    Raises:
        ValueError: no items (an empty list accepts nothing; use `Caps.empty()` for that).
        TypeError: an item is not a caps value.
    """

    __slots__ = ()
    _brackets = "{}"

    def __init__(self, items: Iterable[Value]) -> None:
        seen: set[Hashable] = set()
        kept: list[Value] = []
        for item in items:
            value = normalize(item, "list item")
            for v in value._items if isinstance(value, ValueList) else (value,):
                k = value_key(v)
                if k not in seen:
                    seen.add(k)
                    kept.append(v)
        if not kept:
            raise ValueError("an empty ValueList accepts nothing")
        self._items: tuple[Value, ...] = tuple(kept)
        self._key = frozenset(seen)
        self._hash = hash(self._key)


class ValueArray(_Collection):
    """An ordered, fixed-length tuple of values, such as a tensor shape; written `<1,3,224>`.

    Two arrays intersect element by element, so `<1,[1,8],224>` accepts `<1,3,224>`.
    Unlike a list, an array is fixed when every element is.

    Args:
        items: the elements; any value kind, empty allowed.

    Raises:
        TypeError: an item is not a caps value.
    """

    __slots__ = ()
    _brackets = "<>"

    def __init__(self, items: Iterable[Value]) -> None:
        self._items: tuple[Value, ...] = tuple(normalize(v, "array item") for v in items)
        self._key = tuple(map(value_key, self._items))
        self._hash = hash(self._key)


def value_key(v: Value) -> Hashable:
    """A hashable key equal only for values of the same kind and value (`1` ≠ `1.0` ≠ `true`)."""
    t = type(v)
    if t is bool or t is int or t is float or t is str or t is Fraction:
        return (t, v)
    return v  # ranges, lists and arrays compare kinds themselves


def normalize(v: object, what: str = "value") -> Value:
    """Check that `v` is a caps value and return it as its exact kind.

    Subclasses become their base kind (an `IntEnum` an int, numpy's int64 an int, a
    `StrEnum` a str), so that equality and hashing see one kind per value.

    Raises:
        TypeError: `v` is no caps value kind.
        ValueError: an int out of int64/uint64 range, or a nan float.
    """
    t = type(v)
    if t is int:
        return _check_int(v, what)  # type: ignore[arg-type]
    if t is str or t is bool or t in _CONTAINERS:
        return v  # type: ignore[return-value]
    if t is float:
        return _as_float(v, what)
    if t is Fraction:
        return _as_fraction(v, what)
    # Subclasses and other numeric types (IntEnum, StrEnum, numpy scalars): the base kind.
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, numbers.Integral):
        return _as_int(v, what)
    if isinstance(v, numbers.Rational):
        return _as_fraction(v, what)
    if isinstance(v, numbers.Real):
        return _as_float(v, what)
    raise TypeError(
        f"{what} must be an int, float, Fraction, bool, str, IntRange, FractionRange, "
        f"FloatRange, ValueList or ValueArray; got {t.__name__} {v!r}"
    )


_CONTAINERS: Final = frozenset({IntRange, FractionRange, FloatRange, ValueList, ValueArray})


def looks_typed(s: str) -> bool:
    """Whether `read_bare` would take `s` for a number or a boolean (or refuse it as one)."""
    return (
        _INT.fullmatch(s) is not None
        or _FLOAT.fullmatch(s) is not None
        or _FRACTION.fullmatch(s) is not None
        or s.lower() in _TRUE
        or s.lower() in _FALSE
    )


def quote(s: str) -> str:
    """`s` in double quotes, with `\\` and `"` escaped by a backslash."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(body: str) -> str:
    """The inverse of `quote` for the text between the quotes: `\\x` reads as `x`."""
    return _ESCAPED.sub(r"\1", body) if "\\" in body else body


def format_value(v: Value) -> str:
    """The canonical text of `v`, which `read_bare` or the caps parser reads back equal."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # shortest text that reads back to the same float; 'inf' included
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}"
    if isinstance(v, str):
        # Quotes do not make a string (see read_bare), so a string that reads as a number
        # or boolean says its type; the patterns that could match are all unquoted chars.
        if looks_typed(v):
            return "(string)" + v
        return v if SIMPLE.fullmatch(v) else quote(v)
    return str(v)


def _read_int(token: str, what: str = "int") -> int | None:
    """A decimal or 0x-hex int token, range-checked; None if the token is no int."""
    m = _INT.fullmatch(token)
    if m is None:
        return None
    sign, hexdigits, digits = m.groups()
    # 20 decimal or 16 hex digits hold any int64/uint64; more is out of range, and refusing
    # before int() keeps a hostile million-digit token cheap.
    if len((hexdigits or digits).lstrip("0")) > (16 if hexdigits else 20):
        raise ValueError(f"{what} {token} is out of range (caps ints fit in int64 or uint64)")
    v = int(hexdigits, 16) if hexdigits else int(digits)
    return _check_int(-v if sign == "-" else v, what)


def _read_fraction(token: str) -> Fraction | None:
    """An `n/d` token; None if the token is no fraction, ValueError for `n/0`."""
    m = _FRACTION.fullmatch(token)
    if m is None:
        return None
    num = _read_int(m.group(1), "fraction numerator")
    den = _read_int(m.group(2), "fraction denominator")
    # The pattern admits only decimal ints, which _read_int always reads.
    assert num is not None
    assert den is not None
    if den == 0:
        raise ValueError(f"fraction {token} has a zero denominator")
    return _as_fraction(Fraction(num, den), "fraction")


def _read_bool(token: str) -> bool | None:
    """GStreamer's boolean words, any case; None for anything else."""
    low = token.lower()
    return True if low in _TRUE else False if low in _FALSE else None


def read_bare(token: str) -> Scalar:
    """Read an unquoted token without a type: int, float, fraction, boolean, else string.

    Raises:
        ValueError: the token is a number out of range, or a fraction over zero.
    """
    i = _read_int(token)
    if i is not None:
        return i
    if _FLOAT.fullmatch(token):
        return float(token)
    f = _read_fraction(token)
    if f is not None:
        return f
    b = _read_bool(token)
    return token if b is None else b


# Type annotations GStreamer accepts (gststructure.c, gst_structure_gtype_from_abbr, plus
# the GType names of the same types), mapped to the kind they read as.
TYPE_NAMES: Final = {
    "int": "int",
    "i": "int",
    "gint": "int",
    "int64": "int",
    "gint64": "int",
    "uint": "uint",
    "u": "uint",
    "guint": "uint",
    "uint64": "uint",
    "guint64": "uint",
    "float": "float",
    "f": "float",
    "gfloat": "float",
    "double": "float",
    "d": "float",
    "gdouble": "float",
    "fraction": "fraction",
    "GstFraction": "fraction",
    "boolean": "boolean",
    "bool": "boolean",
    "b": "boolean",
    "gboolean": "boolean",
    "string": "string",
    "str": "string",
    "s": "string",
    "gchararray": "string",
}


def read_typed(token: str, kind: str) -> Scalar:
    """Read an unquoted token as `kind` (a value of `TYPE_NAMES`).

    Raises:
        ValueError: the token is not a valid `kind`, saying what was expected.
    """
    if kind == "string":
        return token
    if kind in ("int", "uint"):
        i = _read_int(token)
        if i is None:
            raise ValueError(f"expected an int, got {token!r}")
        if kind == "uint" and i < 0:
            raise ValueError(f"expected an unsigned int, got {token}")
        return i
    if kind == "float":
        if _FLOAT.fullmatch(token):
            return float(token)
        i = _read_int(token, "float")  # GStreamer reads '(double)1' as 1.0
        if i is None:
            raise ValueError(f"expected a float, got {token!r}")
        return float(i)
    if kind == "fraction":
        f = _read_fraction(token)
        if f is not None:
            return f
        i = _read_int(token, "fraction")  # GStreamer reads '30' as 30/1
        if i is None:
            raise ValueError(f"expected a fraction such as 30/1, got {token!r}")
        return _as_fraction(Fraction(i), "fraction")
    b = _read_bool(token)
    if b is None:
        raise ValueError(f"expected a boolean (true or false), got {token!r}")
    return b
