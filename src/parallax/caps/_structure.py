"""`Structure`: one media description, a type name plus named field values.

GStreamer's GstStructure, minus mutation: a structure here is immutable and hashable, so
caps can be cached, shared between threads, and used as dict keys.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping
from typing import Final

from . import _algebra
from ._value import Value, format_value, normalize, value_key

# A media type name: 'bytes', 'text/lines', 'video/raw', 'application/x-rtp+xml'.
NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_/+.-]*")
# A field name: 'width', 'pixel-aspect-ratio'. GStreamer allows more punctuation; these
# are the characters that read unambiguously before '='.
FIELD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")
# Whole caps strings with a meaning of their own (gstcaps.c, gst_caps_from_string).
RESERVED: Final = frozenset({"ANY", "EMPTY", "NONE"})


class Structure(Mapping[str, Value]):
    """A media type name with ordered fields; read-only, hashable, equal by value.

    A structure is a mapping from field name to value (`s["width"]`, `s.get("width")`,
    `"width" in s`, `s.items()`), in the order the fields were given. Equality, like
    GStreamer's gst_structure_is_equal, ignores field order but not value kinds:
    `video/raw,width=1` is not `video/raw,width=1.0`.

    Args:
        name: the media type, such as 'video/raw' or 'tensor'.
        fields: field name to value; ints, floats, Fractions, bools, strs, ranges,
            `ValueList` and `ValueArray`.

    Raises:
        ValueError: a malformed or reserved name ('ANY', 'EMPTY', 'NONE'), a malformed
            field name, or a value out of range.
        TypeError: a name that is not a str, or a value of no caps kind.
    """

    __slots__ = ("_fields", "_hash", "_key", "_name")

    def __init__(self, name: str, fields: Mapping[str, Value] | None = None, /) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a media type name is a str, got {type(name).__name__} {name!r}")
        if NAME.fullmatch(name) is None:
            raise ValueError(
                f"media type name {name!r} must start with a letter, then letters, digits or _/+.-"
            )
        if name in RESERVED:
            raise ValueError(f"{name!r} is reserved: it means the whole caps, not a structure")
        checked: dict[str, Value] = {}
        for field, value in (fields or {}).items():
            if not isinstance(field, str) or FIELD.fullmatch(field) is None:
                raise ValueError(
                    f"{name}: field name {field!r} must start with a letter, then letters, "
                    "digits or _.+-"
                )
            checked[field] = normalize(value, f"{name}: field {field!r}")
        self._name = name
        self._fields = checked
        self._key: Hashable = frozenset((k, value_key(v)) for k, v in checked.items())
        self._hash = hash((name, self._key))

    @property
    def name(self) -> str:
        """The media type, such as 'video/raw'."""
        return self._name

    @property
    def is_fixed(self) -> bool:
        """Whether every field holds one concrete value (no range, no list)."""
        return all(map(_algebra.is_fixed, self._fields.values()))

    def __getitem__(self, field: str) -> Value:
        return self._fields[field]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Structure):
            return NotImplemented
        return self is other or (
            self._hash == other._hash and self._name == other._name and self._key == other._key
        )

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return ",".join([self._name, *(f"{k}={format_value(v)}" for k, v in self.items())])

    def __repr__(self) -> str:
        return f"Structure({str(self)!r})"

    def __reduce__(self) -> tuple[type[Structure], tuple[str, dict[str, Value]]]:
        # Rebuild through __init__: the cached hash depends on the process's str hash seed.
        return (Structure, (self._name, self._fields))

    def intersect(self, other: Structure) -> Structure | None:
        """What both structures accept, or None when nothing.

        Names must match; a field in both must intersect (see `Caps.intersect`); a field in
        only one is kept, since the other does not constrain it (gst_structure_intersect).
        Fields come in `self`'s order, then `other`'s extra ones.
        """
        if self is other:
            return self
        if self._name != other._name:
            return None
        fields: dict[str, Value] = {}
        for field, value in self._fields.items():
            theirs = other._fields.get(field)
            if theirs is not None:
                common = _algebra.intersect(value, theirs)
                if common is None:
                    return None
                value = common
            fields[field] = value
        for field, value in other._fields.items():
            fields.setdefault(field, value)
        return Structure(self._name, fields)

    def can_intersect(self, other: Structure) -> bool:
        """Whether `intersect` would find something; it builds no structure."""
        if self._name != other._name:
            return False
        for field, value in self._fields.items():
            theirs = other._fields.get(field)
            if theirs is not None and _algebra.intersect(value, theirs) is None:
                return False
        return True

    def is_subset(self, other: Structure) -> bool:
        """Whether everything `self` accepts, `other` accepts (gst_structure_is_subset).

        Every field of `other` must be in `self` with a value that is a subset of `other`'s;
        fields only `self` has make it narrower, so they are allowed.
        """
        if self == other:
            return True
        if self._name != other._name:
            return False
        for field, theirs in other._fields.items():
            mine = self._fields.get(field)
            if mine is None or not _algebra.is_subset(mine, theirs):
                return False
        return True

    def fixate(self) -> Structure:
        """This structure with each field fixated: a range to its low bound, a list to its
        first item. The result `is_fixed`."""
        if self.is_fixed:
            return self
        return Structure(self._name, {k: _algebra.fixate(v) for k, v in self._fields.items()})
