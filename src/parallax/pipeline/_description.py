"""What a launch line describes: elements, bins and links, every name resolved.

A `Description` is the value between the grammar and the builder: `_parse.parse` makes
one from text, `_print.to_launch` writes one back as text, and `_launch.build` turns one
into linked elements. It holds only what the text says (factories, names, properties as
strings, pads as written, caps filters as text) and where it says it (1-based columns,
so the builder's errors point at the same characters as the parser's). Nothing here
knows the registry, property types or caps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = [
    "BIN_TYPES",
    "BinDecl",
    "Description",
    "ElementDecl",
    "Endpoint",
    "Link",
    "Prop",
    "strip_positions",
]

BIN_TYPES: Final = ("bin", "pipeline")
"""What ``type.( ... )`` may name: the bin types (GStreamer's GstBin and GstPipeline)."""


@dataclass(frozen=True, slots=True)
class Prop:
    """One ``key=value`` assignment, as written; the builder converts the value's type."""

    name: str  # e.g. "location", "num-buffers"
    value: str  # unquoted, escapes resolved
    column: int  # 1-based column of the property name
    value_column: int  # 1-based column where the value starts (the quote if quoted)


@dataclass(frozen=True, slots=True)
class ElementDecl:
    """An element: its factory, optional name, properties and innermost bin."""

    key: int  # index in Description.elements (declaration order)
    factory: str  # e.g. "filesrc"
    name: str | None  # from name=..., else None (the builder names it filesrc0, ...)
    props: tuple[Prop, ...]  # in order, without name=
    column: int  # column of the factory word
    bin: int | None  # key of the innermost BinDecl containing it, or None


@dataclass(frozen=True, slots=True)
class BinDecl:
    """A bin: ``( ... )`` (factory "bin") or ``factory.( ... )``, with its properties."""

    key: int
    factory: str  # "bin" for plain parentheses, or the word before ".(": one of BIN_TYPES
    name: str | None
    props: tuple[Prop, ...]
    column: int  # column of "("
    parent: int | None  # enclosing BinDecl key


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a link: an element (names resolved) and an optional pad name."""

    element: int  # key of an ElementDecl
    pad: str | None  # explicit pad name, or None = "pick a compatible pad"
    column: int  # column of the word that produced this endpoint


@dataclass(frozen=True, slots=True)
class Link:
    """A ``!`` between two elements, with the caps filter written between two ``!``."""

    src: Endpoint
    sink: Endpoint
    caps: str | None  # caps filter text (stripped, unquoted), or None
    caps_column: int | None
    column: int  # column of the (first) '!'


@dataclass(frozen=True, slots=True)
class Description:
    """A parsed launch line: declarations in text order, links in the order of their '!'."""

    text: str
    elements: tuple[ElementDecl, ...]
    bins: tuple[BinDecl, ...]
    links: tuple[Link, ...]

    def same_structure(self, other: Description) -> bool:
        """Whether both describe the same pipeline, ignoring `text` and every column."""
        return strip_positions(self) == strip_positions(other)


def strip_positions(desc: Description) -> Description:
    """`desc` with `text` emptied and every column zeroed (caps_column None): its structure."""

    def props(ps: tuple[Prop, ...]) -> tuple[Prop, ...]:
        return tuple(replace(p, column=0, value_column=0) for p in ps)

    return Description(
        "",
        tuple(replace(e, column=0, props=props(e.props)) for e in desc.elements),
        tuple(replace(b, column=0, props=props(b.props)) for b in desc.bins),
        tuple(
            Link(replace(ln.src, column=0), replace(ln.sink, column=0), ln.caps, None, 0)
            for ln in desc.links
        ),
    )
