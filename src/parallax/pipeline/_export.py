"""Export a pipeline as Graphviz DOT or JSON, and load one back from JSON.

JSON keeps what is needed to rebuild the graph: each element's factory, name and
non-default properties (as launch text), and each link's pads; negotiated caps are
included for reading but not needed to load.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from parallax._errors import ParallaxError

from . import _registry
from ._pad import pad_info

if TYPE_CHECKING:
    from ._element import Element
    from ._pipeline import Pipeline

JSON_VERSION = 1


def props_text(element: Element) -> dict[str, str]:
    """The element's non-default, settable properties, as launch text."""
    out: dict[str, str] = {}
    for prop in element.properties():
        if prop.readonly:  # a level or count: not a setting, and refused by parse_launch
            continue
        value = getattr(element, prop.attr)
        if value is not None and value != prop.default:
            out[prop.name] = prop.to_string(value)
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _node(element: Element) -> str:
    return _quote(element.name)


def to_dot(pipeline: Pipeline) -> str:
    """The graph in DOT: one record node per element (pads as ports), edges labelled
    with negotiated caps; bins from the launch string become clusters."""
    lines = [
        f"digraph {_quote(pipeline.name)} {{",
        "  rankdir=LR;",
        '  node [shape=record, fontname="monospace"];',
    ]
    in_bin: set[str] = set()
    for i, b in enumerate(pipeline.bins):
        lines.append(f"  subgraph cluster_{i} {{ label={_quote(b['name'])};")
        for name in b["elements"]:
            lines.append(f"    {_quote(name)};")
            in_bin.add(name)
        lines.append("  }")
    for element in pipeline.elements.values():
        sinks = "|".join(f"<{p.name}> {p.name}" for p in element.sink_pads)
        srcs = "|".join(f"<{p.name}> {p.name}" for p in element.src_pads)
        props = "\\n".join(f"{k}={v}" for k, v in props_text(element).items())
        middle = f"{element.name}\\n({element.factory_name})" + (f"\\n{props}" if props else "")
        fields = (
            [f"{{{x}}}" for x in (sinks,) if x]
            + [middle.replace('"', '\\"')]
            + [f"{{{x}}}" for x in (srcs,) if x]
        )
        lines.append(f'  {_node(element)} [label="{{{"|".join(fields)}}}"];')
    for src, sink in pipeline.links():
        label = str(src.caps) if src.caps is not None else ""
        lines.append(
            f"  {_node(src.element)}:{src.name} -> {_node(sink.element)}:{sink.name}"
            f" [label={_quote(label)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_launch(pipeline: Pipeline) -> str:
    """A launch string that `parse_launch` turns back into the same graph: every element
    named, its non-default properties as text, each link through its pads."""
    from ._description import Description, ElementDecl, Endpoint, Link, Prop
    from ._print import to_launch as print_launch

    keys = {name: i for i, name in enumerate(pipeline.elements)}
    elements = tuple(
        ElementDecl(
            key=keys[e.name],
            factory=e.factory_name,
            name=e.name,
            props=tuple(Prop(k, v, 0, 0) for k, v in props_text(e).items()),
            column=0,
            bin=None,
        )
        for e in pipeline.elements.values()
    )
    links = tuple(
        Link(
            # Static pads need no name: "a ! b" picks them; request pads keep theirs.
            src=Endpoint(keys[src.element.name], None if src.name == "src" else src.name, 0),
            sink=Endpoint(keys[sink.element.name], None if sink.name == "sink" else sink.name, 0),
            caps=None,
            caps_column=None,
            column=0,
        )
        for src, sink in pipeline.links()
    )
    return print_launch(Description(text="", elements=elements, bins=(), links=links))


def to_dict(pipeline: Pipeline) -> dict[str, Any]:
    """The JSON-ready description (see module docstring)."""
    return {
        "version": JSON_VERSION,
        "name": pipeline.name,
        "elements": [
            {
                "name": e.name,
                "factory": e.factory_name,
                "properties": props_text(e),
                "pads": [pad_info(p) for p in e.pads.values()],
            }
            for e in pipeline.elements.values()
        ],
        "links": [
            {
                "src": src.element.name,
                "src_pad": src.name,
                "sink": sink.element.name,
                "sink_pad": sink.name,
                "caps": str(src.caps) if src.caps is not None else None,
            }
            for src, sink in pipeline.links()
        ],
        "bins": pipeline.bins,
    }


def to_json(pipeline: Pipeline) -> str:
    """`to_dict` as indented JSON text."""
    return json.dumps(to_dict(pipeline), indent=2)


def from_json(text: str) -> Pipeline:
    """Rebuild a pipeline from `to_json` output.

    Raises:
        ValueError: not JSON, or not a pipeline description (says which key).
        ParallaxError: unknown factory, bad property, or a link that fails.
    """
    from ._pipeline import Pipeline

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"pipeline JSON is not valid JSON: {e}") from e
    if not isinstance(data, dict) or data.get("version") != JSON_VERSION:
        raise ValueError(f'pipeline JSON must be an object with "version": {JSON_VERSION}')
    try:
        pipeline = Pipeline(str(data.get("name", "pipeline0")))
        for entry in data["elements"]:
            element = _registry.make(entry["factory"], entry["name"])
            for key, value in entry.get("properties", {}).items():
                element.set_property(key, value)
            pipeline.add(element)
        for link in data["links"]:
            pipeline.link(
                pipeline.get_by_name(link["src"]),
                pipeline.get_by_name(link["sink"]),
                src_pad=link["src_pad"],
                sink_pad=link["sink_pad"],
            )
        pipeline.bins = list(data.get("bins", []))
    except (KeyError, TypeError) as e:
        if isinstance(e, ParallaxError):
            raise
        raise ValueError(f"pipeline JSON is missing or has a bad {e}") from e
    return pipeline
