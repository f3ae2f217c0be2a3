"""Caps text to structures: a sans-IO recursive-descent reader of GStreamer's caps syntax.

    caps       := "ANY" | "EMPTY" | "NONE" | "" | structure (";" structure)* [";"]
    structure  := NAME [features] ("," field)* [","]
    features   := "(" FEATURE ("," FEATURE)* ")"      no spaces; FEATURE is namespace:Name
    field      := FIELD "=" value
    value      := ["(" TYPE ")"] (range | list | array | QUOTED | BARE)
    range      := "[" value "," value "]"            numbers of one kind, low < high
    list       := "{" value ("," value)* "}"
    array      := "<" [value ("," value)*] ">"

Whitespace may surround any punctuation. A type annotation applies to everything inside
the value it prefixes (`(string){1,2}` is two strings), as in GStreamer; a token with no
type, quoted or not, reads by `_value.read_bare` (quotes group characters, they do not make
a string). The trailing ',' and ';' GStreamer tolerates are tolerated here too.

Where this is stricter than gst_caps_from_string, on purpose: a repeated field is an error
(GStreamer keeps the last), so is an empty list `{}`, and so is a one-value range `[5,5]`
(GStreamer logs a critical: 'start < end' failed). Lists and arrays may mix kinds, which
GStreamer refuses. Range steps (`[2,16,2]`) are refused with a message that says so.

Caps features: `video/x-raw(memory:SystemMemory)` is read as `video/x-raw`, since system
memory is what caps without features mean (GstCapsFeatures' default, which
gst_caps_to_string leaves out too). Any other feature (`memory:NVMM`, `memory:CUDAMemory`,
`meta:...`, `ANY`) is refused naming it, as written; GPU memory here is the field
`memory=cuda`, not a feature. Stricter than GStreamer, which logs a warning and goes on: a
malformed feature name, `()`, spaces inside the parentheses or an unclosed '('.

Errors are `ParseError(message, text, column)`, the column 1-based and pointing at the
token at fault, or at the opening bracket or quote of something left unterminated. Any
input either parses or raises ParseError; the hypothesis tests hold the reader to that.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

from parallax._errors import ParseError

from ._structure import FIELD, NAME, RESERVED, Structure
from ._value import (
    SIMPLE,
    TYPE_NAMES,
    FloatRange,
    FractionRange,
    IntRange,
    Value,
    ValueArray,
    ValueList,
    format_value,
    read_bare,
    read_typed,
    unquote,
)

# Bounds on what one caps string may cost. The longest caps GStreamer's own elements
# advertise (videoconvert's format lists) run to a few KiB; 64 Ki characters is far past
# any real one yet keeps a hostile string cheap. Depth 16 allows arrays of lists of ranges
# with room to spare, and keeps recursion far from Python's limit.
MAX_LENGTH: Final = 65536
MAX_DEPTH: Final = 16

_WS: Final = " \t\r\n"
# gst_caps_feature_name_is_valid (gstcapsfeatures.c): letters, ':', a letter, alphanumerics.
_FEATURE: Final = re.compile(r"[A-Za-z]+:[A-Za-z][A-Za-z0-9]*")
SYSTEM_MEMORY: Final = "memory:SystemMemory"  # GST_CAPS_FEATURE_MEMORY_SYSTEM_MEMORY
_TYPE_NAME: Final = re.compile(r"\w+", re.ASCII)
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_CLOSERS: Final = {"[": "]", "{": "}", "<": ">"}
_WHAT: Final = {"[": "range", "{": "list", "<": "array"}
_KIND_OF: Final[dict[type, str]] = {
    int: "int",
    float: "float",
    Fraction: "fraction",
    str: "string",
    bool: "boolean",
    IntRange: "range",
    FractionRange: "range",
    FloatRange: "range",
    ValueList: "list",
    ValueArray: "array",
}


def parse_caps(text: str) -> tuple[Structure, ...] | None:
    """Read caps text into its structures; None means ANY, () means EMPTY.

    Args:
        text: caps in GStreamer syntax, such as 'video/raw,width=[1,100];bytes'.

    Returns:
        The structures in order, `()` for 'EMPTY', 'NONE' or blank text, None for 'ANY'.

    Raises:
        ParseError: the text is malformed; `column` points at the fault. No other
            exception escapes for any `str` input.
    """
    if len(text) > MAX_LENGTH:
        raise ParseError(
            f"caps text of {len(text):,} characters is over the {MAX_LENGTH:,} limit",
            text[:80],
            1,
        )
    stripped = text.strip(_WS)
    if stripped == "ANY":
        return None
    if stripped in ("", "EMPTY", "NONE"):
        return ()
    return _Reader(text).caps()


class _Reader:
    """One pass over one text; `pos` is the 0-based index of the next unread character."""

    __slots__ = ("n", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.n = text, 0, len(text)

    def error(self, message: str, pos: int) -> ParseError:
        """A ParseError blaming the 0-based index `pos` (reported 1-based)."""
        return ParseError(message, self.text, pos + 1)

    def got(self, pos: int) -> str:
        """The character at `pos`, described for a message."""
        return "the end" if pos >= self.n else repr(self.text[pos])

    def skip_ws(self) -> None:
        """Move `pos` past spaces, tabs and newlines."""
        text, pos, n = self.text, self.pos, self.n
        while pos < n and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        """The next character, or '' at the end."""
        return self.text[self.pos] if self.pos < self.n else ""

    def caps(self) -> tuple[Structure, ...]:
        """The whole text: structures separated by ';'."""
        structures = []
        self.skip_ws()
        while True:
            structures.append(self.structure())
            # structure() stops only at ';' or the end.
            if self.pos == self.n:
                return tuple(structures)
            self.pos += 1
            self.skip_ws()
            if self.pos == self.n:
                return tuple(structures)  # a trailing ';'
            if self.peek() == ";":
                raise self.error("empty structure between ';'", self.pos)

    def structure(self) -> Structure:
        """A name and its fields, up to the next ';' or the end."""
        start = self.pos
        m = NAME.match(self.text, start)
        if m is None:
            raise self.error(f"expected a media type name, got {self.got(start)}", start)
        name = m.group()
        if name in RESERVED:
            raise self.error(f"{name} must stand alone, not as one of several structures", start)
        self.pos = m.end()
        if self.peek() == "(":
            self.features()
        fields: dict[str, Value] = {}
        field = ""
        while True:
            self.skip_ws()
            c = self.peek()
            if c in ("", ";"):
                break
            if c == "(":
                where = f"after field {field!r}: " if fields else "a space before it: "
                raise self.error(
                    f"unexpected '(' {where}caps features go right after the media type "
                    f"name, as in '{name}({SYSTEM_MEMORY})'",
                    self.pos,
                )
            if c != ",":
                after = f"field {field!r}" if fields else repr(name)
                raise self.error(f"expected ',' or ';' after {after}, got {c!r}", self.pos)
            self.pos += 1
            self.skip_ws()
            if self.peek() in ("", ";"):
                break  # a trailing ','
            field_at = self.pos
            if self.peek() == "=":
                raise self.error("empty field name", field_at)
            m = FIELD.match(self.text, field_at)
            if m is None:
                raise self.error(f"expected a field name, got {self.got(field_at)}", field_at)
            field = m.group()
            self.pos = m.end()
            self.skip_ws()
            if self.peek() != "=":
                raise self.error(
                    f"expected '=' after field {field!r}, got {self.got(self.pos)}", self.pos
                )
            self.pos += 1
            value = self.value(None, 0)
            if field in fields:
                raise self.error(f"duplicate field {field!r}", field_at)
            fields[field] = value
        return Structure(name, fields)

    def features(self) -> None:
        """`(feature,...)` at `pos`, right after a structure name; only the default,
        memory:SystemMemory, is accepted, and it means what no features mean."""
        open_at = self.pos
        close = self.text.find(")", open_at)
        if close < 0:
            raise self.error("unterminated caps features: no ')' after '('", open_at)
        if close == open_at + 1:
            raise self.error(
                f"empty caps features '()': write '({SYSTEM_MEMORY})' or none", open_at
            )
        at = open_at + 1
        for feature in self.text[open_at + 1 : close].split(","):
            if feature != SYSTEM_MEMORY:
                raise self.error(_refused_feature(feature), at)
            at += len(feature) + 1
        self.pos = close + 1

    def value(self, kind: str | None, depth: int) -> Value:
        """One value; `kind` is the annotated type in force, if any."""
        self.skip_ws()
        at = self.pos
        if depth > MAX_DEPTH:
            raise self.error(f"values nested deeper than {MAX_DEPTH}", at)
        c = self.peek()
        if c == "(":
            kind = self.annotation()
            self.skip_ws()
            at, c = self.pos, self.peek()
        if c == "[":
            return self.range_value(kind, depth)
        if c == "{":
            items = self.items(kind, depth)
            if not items:
                raise self.error("empty list '{}' accepts nothing", at)
            return ValueList(v for _, v in items)
        if c == "<":
            return ValueArray(v for _, v in self.items(kind, depth))
        if c == '"':
            m = _QUOTED.match(self.text, at)
            if m is None:
                raise self.error("unterminated string", at)
            # As in GStreamer, quotes group characters but do not choose the kind: untyped
            # "30" is the int 30, and only (string)"30" is a string. Other types refuse
            # quotes, as gst_caps_from_string does.
            if kind not in (None, "string"):
                raise self.error(f"expected {kind}, got a quoted string", at)
            token = unquote(m.group(1))
        else:
            m = SIMPLE.match(self.text, at)
            if m is None:
                raise self.error(f"expected a value, got {self.got(at)}", at)
            token = m.group()
        self.pos = m.end()
        try:
            return read_bare(token) if kind is None else read_typed(token, kind)
        except ValueError as e:
            raise self.error(str(e), at) from None

    def annotation(self) -> str:
        """`(type)` at `pos`: the kind it names."""
        open_at = self.pos
        self.pos += 1
        self.skip_ws()
        name_at = self.pos
        m = _TYPE_NAME.match(self.text, name_at)
        name = m.group() if m else ""
        self.pos = m.end() if m else name_at
        self.skip_ws()
        if self.peek() != ")":
            if self.pos == self.n:
                raise self.error("unterminated type annotation", open_at)
            raise self.error(f"expected ')' to close the type, got {self.got(self.pos)}", self.pos)
        self.pos += 1
        kind = TYPE_NAMES.get(name)
        if kind is None:
            raise self.error(f"unknown type {name!r}", name_at)
        return kind

    def items(self, kind: str | None, depth: int) -> list[tuple[int, Value]]:
        """The comma-separated values between the bracket at `pos` and its closer, each
        with the index where it began."""
        open_at = self.pos
        opener = self.text[open_at]
        closer, what = _CLOSERS[opener], _WHAT[opener]
        self.pos += 1
        self.skip_ws()
        if self.peek() == closer:
            self.pos += 1
            return []
        items: list[tuple[int, Value]] = []
        while True:
            self.skip_ws()
            if self.pos == self.n:
                raise self.error(f"unterminated {what}", open_at)
            items.append((self.pos, self.value(kind, depth + 1)))
            self.skip_ws()
            c = self.peek()
            if c == "":
                raise self.error(f"unterminated {what}", open_at)
            self.pos += 1
            if c == closer:
                return items
            if c != ",":
                raise self.error(f"expected ',' or '{closer}' in {what}, got {c!r}", self.pos - 1)

    def range_value(self, kind: str | None, depth: int) -> Value:
        """`[lo,hi]` at `pos`: an IntRange, FractionRange or FloatRange."""
        open_at = self.pos
        items = self.items(kind, depth)
        starts, bounds = [at for at, _ in items], [v for _, v in items]
        if len(bounds) == 3:
            raise self.error("range steps are not supported", starts[2])
        if len(bounds) != 2:
            raise self.error(f"a range needs two bounds, got {len(bounds)}", open_at)
        lo, hi = bounds
        for bound, at in zip(bounds, starts, strict=True):
            if type(bound) not in (int, float, Fraction):
                raise self.error(f"a range bound must be a number, got {_describe(bound)}", at)
        if type(lo) is not type(hi):
            raise self.error(f"mixed kinds in range: {_describe(lo)} and {_describe(hi)}", open_at)
        try:
            if isinstance(lo, Fraction) and isinstance(hi, Fraction):
                return FractionRange(lo, hi)
            if isinstance(lo, float) and isinstance(hi, float):
                return FloatRange(lo, hi)
            assert isinstance(lo, int)  # bool was refused above
            assert isinstance(hi, int)
            return IntRange(lo, hi)
        except ValueError:
            # The bounds are in range, so the constructors refuse only lo >= hi.
            text = f"[{format_value(lo)},{format_value(hi)}]"
            if lo == hi:
                raise self.error(
                    f"range {text} holds one value: write {format_value(lo)}", open_at
                ) from None
            raise self.error(
                f"empty range {text}: the low bound is above the high", open_at
            ) from None


def _refused_feature(feature: str) -> str:
    """Why caps feature `feature` (as written) is refused."""
    if feature == "ANY":
        return "caps features '(ANY)' are not supported"
    if _FEATURE.fullmatch(feature) is None:
        return (
            f"invalid caps feature {feature!r}: a feature is namespace:Name without spaces, "
            f"as in '{SYSTEM_MEMORY}'"
        )
    hint = "; GPU memory is the field memory=cuda here" if feature.startswith("memory:") else ""
    return (
        f"caps feature {feature!r} is not supported: only {SYSTEM_MEMORY} (the default, "
        f"the same as none) is{hint}"
    )


def _describe(v: Value) -> str:
    """'int 5', 'string abc': a value with its kind, for messages."""
    return f"{_KIND_OF[type(v)]} {format_value(v)}"
