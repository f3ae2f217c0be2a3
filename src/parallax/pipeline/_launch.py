"""`parse_launch`: a gst-launch string → a linked `Pipeline`.

The grammar lives in `_parse.py` (pure; its tokens in `_lex.py`, its result in
`_description.py`); this module resolves factories through the registry, sets
properties from text, inserts a `capsfilter` for each `! caps !`, and links. Every
error is located: it carries the launch text and the column.
"""

from __future__ import annotations

from parallax._errors import ParallaxError, ParseError
from parallax.caps import Caps

from . import _registry
from ._description import Description
from ._element import Element
from ._parse import parse
from ._pipeline import Pipeline


def parse_launch(text: str, *, name: str = "pipeline0") -> Pipeline:
    """Build a pipeline from a gst-launch-1.0 style description.

    Example: `parse_launch("fakesrc num-buffers=10 ! tee name=t ! fakesink  t. ! fakesink")`.

    Raises:
        ParseError: malformed text or unknown element (with the column).
        PropertyError: a bad property name or value (with the column).
        LinkError: pads that cannot link (with the column of the `!`).
    """
    return build(parse(text), name=name)


def build(desc: Description, *, name: str = "pipeline0") -> Pipeline:
    """Make and link the elements a parsed description names."""
    pipeline = Pipeline(name)
    made: dict[int, Element] = {}
    for decl in desc.elements:
        try:
            cls = _registry.get(decl.factory)
        except _registry.UnknownElement as e:
            raise ParseError(str(e), desc.text, decl.column) from e
        element = cls(name=decl.name)
        for prop in decl.props:
            try:
                element.set_property(prop.name, prop.value)
            except ParallaxError as e:
                column = prop.value_column if element.find_property(prop.name) else prop.column
                raise e.locate(desc.text, column) from None
        try:
            pipeline.add(element)
        except ParallaxError as e:
            raise e.locate(desc.text, decl.column) from None
        made[decl.key] = element
    for link in desc.links:
        src, sink = made[link.src.element], made[link.sink.element]
        try:
            if link.caps is not None:
                flt = _capsfilter(link.caps, desc.text, link.caps_column or link.column)
                pipeline.add(flt)
                pipeline.link(src, flt, src_pad=link.src.pad)
                pipeline.link(flt, sink, sink_pad=link.sink.pad)
            else:
                pipeline.link(src, sink, src_pad=link.src.pad, sink_pad=link.sink.pad)
        except ParallaxError as e:
            if e.column is None:
                e.locate(desc.text, link.column)
            raise
    for b in desc.bins:
        members = [made[d.key].name for d in desc.elements if d.bin == b.key]
        pipeline.bins.append(
            {"name": b.name or f"bin{b.key}", "parent": b.parent, "elements": members}
        )
    return pipeline


def _capsfilter(text: str, launch: str, column: int) -> Element:
    try:
        caps = Caps.from_string(text)
    except ParseError as e:
        raise ParseError(e.message, launch, column + e.column - 1) from None
    return _registry.make("capsfilter", caps=caps)
