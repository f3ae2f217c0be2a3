"""Typed element properties, settable from Python values or from launch-string text.

A property is a descriptor declared on the element class::

    class FileSrc(Source[Bytes]):
        location = Property("", doc="file to read")
        blocksize = Property(4096, doc="bytes per buffer", minimum=1)

`src.blocksize` reads as an `int` (mypy sees it), `src.blocksize = 10` is checked, and
`set_property("blocksize", "64k")` converts launch text. Property names follow GStreamer:
the Python attribute `num_buffers` is the property `num-buffers`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from parallax._errors import PropertyError

T = TypeVar("T")

_SIZE = re.compile(r"^\s*([+-]?(?:0[xX][0-9a-fA-F]+|\d+))\s*([kKMGT]?)(i?B?)\s*$")
_UNITS = {"": 1, "k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def parse_int(text: str) -> int:
    """Parse an int from launch text: decimal, 0x hex, or with a binary size suffix.

    `64k` and `64KiB` are 65536, `1M` is 1 MiB, `2G` is 2 GiB (powers of 1024, as
    block sizes are).

    Raises:
        ValueError: the text is not an integer.
    """
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(text)
    return int(m.group(1), 0) * _UNITS[m.group(2)]


def parse_bool(text: str) -> bool:
    """Parse `true/false/yes/no/on/off/1/0` (any case)."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


class Property(Generic[T]):
    """A typed element property (a data descriptor).

    Args:
        default: the value a new element has; its type is the property's type unless
            `kind` says otherwise.
        doc: one line for `parallax inspect`.
        kind: the value type, when `default` cannot tell (e.g. a default of None).
        minimum, maximum: inclusive bounds for numbers.
        parse: converts launch text to a value (default: by `kind`).
        mutable: may change while the pipeline is playing (default: only before).
        getter: makes the property read-only: reading it calls `getter(element)` (a
            level, a count); setting it is a `PropertyError`. `default` is what a new
            element reads.
    """

    __slots__ = (
        "attr",
        "default",
        "doc",
        "getter",
        "kind",
        "maximum",
        "minimum",
        "mutable",
        "name",
        "parse",
    )

    def __init__(
        self,
        default: T,
        *,
        doc: str,
        kind: type[Any] | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        parse: Callable[[str], T] | None = None,
        mutable: bool = False,
        getter: Callable[[Any], T] | None = None,
    ) -> None:
        self.default = default
        self.getter = getter
        self.doc = doc
        self.kind: type[Any] = kind if kind is not None else type(default)
        self.minimum, self.maximum = minimum, maximum
        self.parse = parse
        self.mutable = mutable
        self.attr = ""
        self.name = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr
        self.name = attr.replace("_", "-")

    @overload
    def __get__(self, obj: None, owner: type) -> Property[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: object | None, owner: type) -> Property[T] | T:
        if obj is None:
            return self
        if self.getter is not None:
            return self.getter(obj)
        try:
            return obj.__dict__[self.attr]  # type: ignore[no-any-return]
        except KeyError:
            return self.default

    def __set__(self, obj: object, value: T) -> None:
        check = getattr(obj, "_check_property_change", None)
        if check is not None:
            check(self)
        obj.__dict__[self.attr] = self.validate(value, element=getattr(obj, "name", ""))

    @property
    def readonly(self) -> bool:
        """Whether the property can only be read (it has a `getter`)."""
        return self.getter is not None

    # -- conversion and checks -------------------------------------------------------

    def expects(self) -> str:
        """What the property accepts, in words: 'an int >= -1', "one of 'a', 'b'"."""
        kind = self.kind
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return "one of " + ", ".join(repr(_nick(m)) for m in kind)
        word = {bool: "a boolean (true/false)", int: "an int", float: "a number", str: "a string"}
        text = word.get(kind, f"a {kind.__name__}")
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            text += f" in [{_num(lo)}, {_num(hi)}]"
        elif lo is not None:
            text += f" >= {_num(lo)}"
        elif hi is not None:
            text += f" <= {_num(hi)}"
        return text

    def _fail(self, element: str, value: object, why: str = "") -> PropertyError:
        prefix = f"{element}: " if element else ""
        reason = f" ({why})" if why else ""
        return PropertyError(
            f"{prefix}property '{self.name}' expects {self.expects()}, got {value!r}{reason}",
            element=element,
            prop=self.name,
            value=value,
        )

    def _read_only(self, element: str, value: object) -> PropertyError:
        prefix = f"{element}: " if element else ""
        return PropertyError(
            f"{prefix}property '{self.name}' is read-only",
            element=element,
            prop=self.name,
            value=value,
        )

    def from_string(self, text: str, *, element: str = "") -> T:
        """Convert launch text to a checked value.

        Raises:
            PropertyError: naming the element, the property, the text and what it accepts.
        """
        if self.getter is not None:
            raise self._read_only(element, text)
        try:
            if self.parse is not None:
                value: Any = self.parse(text)
            elif self.kind is bool:
                value = parse_bool(text)
            elif self.kind is int:
                value = parse_int(text)
            elif self.kind is float:
                value = float(text)
            elif self.kind is str:
                value = text
            elif issubclass(self.kind, enum.Enum):
                value = _enum_from_string(self.kind, text)
            else:
                value = self.kind(text)
        except PropertyError:
            raise
        except (ValueError, TypeError, KeyError) as e:
            why = (getattr(e, "message", None) or str(e)) if self.parse is not None else ""
            raise self._fail(element, text, why) from e
        return self.validate(value, element=element)

    def validate(self, value: object, *, element: str = "") -> T:
        """Check a Python value's type and range; ints are accepted where floats are.

        NaN is refused by every float property; infinity by one with a bound (an
        unbounded float property may be infinite).

        Raises:
            PropertyError: the value has the wrong type, is NaN, or is out of range; or
                the property is read-only.
        """
        if self.getter is not None:
            raise self._read_only(element, value)
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok_none = value is None and self.default is None
        if not ok_none:
            if isinstance(value, bool) and kind is not bool:
                raise self._fail(element, value)
            if not isinstance(value, kind):
                raise self._fail(element, value)
            if isinstance(value, float):
                # NaN compares false with every bound, so it would pass any range check
                # and then never time out / never match; infinity passes a one-sided bound.
                if math.isnan(value):
                    raise self._fail(element, value, "NaN is not a number")
                bounded = self.minimum is not None or self.maximum is not None
                if bounded and math.isinf(value):
                    raise self._fail(element, value, "infinity is out of range")
            if isinstance(value, int | float) and not isinstance(value, bool):
                if self.minimum is not None and value < self.minimum:
                    raise self._fail(element, value)
                if self.maximum is not None and value > self.maximum:
                    raise self._fail(element, value)
        return value  # type: ignore[return-value]

    def to_string(self, value: object) -> str:
        """Launch text that `from_string` turns back into `value`."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, enum.Enum):
            return _nick(value)
        return str(value)


def _nick(member: enum.Enum) -> str:
    return member.name.lower().replace("_", "-")


def _enum_from_string(kind: type[enum.Enum], text: str) -> enum.Enum:
    want = text.strip().lower().replace("_", "-")
    for member in kind:
        if _nick(member) == want or str(member.value) == text.strip():
            return member
    raise ValueError(text)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def properties_of(cls: type) -> Sequence[Property[Any]]:
    """Every property of an element class, base classes first, by GStreamer name."""
    seen: dict[str, Property[Any]] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Property):
                seen[value.name] = value
    return list(seen.values())
