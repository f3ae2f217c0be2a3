"""`Graph`: the elements of a pipeline and the links between them, a DAG — adding and
finding elements, linking pads, and the orders the executor walks. `Pipeline`
(`_pipeline.py`) is a graph that also runs; building is allowed only in state NULL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from parallax._errors import LinkError, StateError

from ._element import Element, ElementParent, State
from ._pad import Pad, PadDirection

_E = TypeVar("_E", bound=Element)


class Graph(ElementParent):
    """Named elements, linked into a DAG. The parent of every element it holds (the
    `ElementParent` methods are the running pipeline's)."""

    name: str
    elements: dict[str, Element]
    bins: list[dict[str, Any]]
    state: State

    def _require(self, state: State, action: str) -> None:
        if self.state > state:
            raise StateError(f"{self.name}: cannot {action} in state {self.state.name}")

    # -- building ------------------------------------------------------------------

    def add(self, *elements: Element) -> None:
        """Add elements. Names must be unique within the pipeline.

        Raises:
            LinkError: a name is taken, or the element is in another pipeline.
        """
        self._require(State.NULL, "add elements")
        for element in elements:
            if element.name in self.elements:
                raise LinkError(f"{self.name} already has an element named '{element.name}'")
            if element.parent is not None and element.parent is not self:
                raise LinkError(f"{element.name} is already in another pipeline")
            element.parent = self
            self.elements[element.name] = element

    def get_by_name(self, name: str) -> Element:
        """The element called `name`.

        Raises:
            KeyError: no such element (the message lists the names there are).
        """
        try:
            return self.elements[name]
        except KeyError:
            raise KeyError(
                f"{self.name} has no element '{name}' (has: {', '.join(self.elements)})"
            ) from None

    __getitem__ = get_by_name

    def get(self, name: str, kind: type[_E]) -> _E:
        """The element called `name`, checked to be a `kind` and typed as one, so that
        `pipeline.get("src", AppSrc).push_buffer(b"...")` passes `mypy --strict`.

        Raises:
            KeyError: no such element (as `get_by_name`).
            TypeError: the element is not a `kind`; the message names both types.
        """
        element = self.get_by_name(name)
        if not isinstance(element, kind):
            raise TypeError(
                f"{self.name}: element '{name}' is a {_qualified(type(element))} "
                f"({element.factory_name}), not a {_qualified(kind)}"
            )
        return element

    def link(
        self,
        src: Element,
        sink: Element,
        *,
        src_pad: str | None = None,
        sink_pad: str | None = None,
    ) -> tuple[Pad, Pad]:
        """Link `src` to `sink`, on the named pads or the first compatible free ones.

        Raises:
            LinkError: no free compatible pad, the pads' caps do not intersect, or the
                link would close a cycle (the graph is a DAG).
        """
        self._require(State.NULL, "link elements")
        for element in (src, sink):
            if element.parent is not self:
                self.add(element)
        if src is sink or self._reaches(sink, src):
            raise LinkError(f"cannot link {src.name} to {sink.name}: it would make a cycle")
        spad = src.get_pad(src_pad) if src_pad else src.free_pad(PadDirection.SRC)
        if spad is None:
            raise LinkError(
                f"cannot link {src.name} to {sink.name}: {src.name} has no free src pad"
            )
        kpad: Pad | None
        if sink_pad:
            kpad = sink.get_pad(sink_pad)
        else:
            kpad = sink.free_pad(PadDirection.SINK, spad.template.caps) or sink.free_pad(
                PadDirection.SINK
            )
        if kpad is None:
            raise LinkError(
                f"cannot link {src.name} to {sink.name}: {sink.name} has no free sink pad"
            )
        spad.link(kpad)
        return spad, kpad

    def link_many(self, *elements: Element) -> None:
        """Link each element to the next, like gst_element_link_many."""
        for a, b in itertools.pairwise(elements):
            self.link(a, b)

    def _reaches(self, start: Element, goal: Element) -> bool:
        stack, seen = [start], set()
        while stack:
            e = stack.pop()
            if e is goal:
                return True
            if e.name in seen:
                continue
            seen.add(e.name)
            stack.extend(p.peer.element for p in e.src_pads if p.peer is not None)
        return False

    def links(self) -> list[tuple[Pad, Pad]]:
        """Every (src pad, sink pad) link, in element order."""
        return [
            (p, p.peer) for e in self.elements.values() for p in e.src_pads if p.peer is not None
        ]

    def topological(self) -> list[Element]:
        """Elements ordered upstream first."""
        indegree = dict.fromkeys(self.elements, 0)
        for _, sink in self.links():
            indegree[sink.element.name] += 1
        ready = [e for n, e in self.elements.items() if indegree[n] == 0]
        order: list[Element] = []
        while ready:
            e = ready.pop(0)
            order.append(e)
            for p in e.src_pads:
                if p.peer is not None:
                    n = p.peer.element.name
                    indegree[n] -= 1
                    if indegree[n] == 0:
                        ready.append(p.peer.element)
        return order

    def sinks(self) -> list[Element]:
        """Elements with sink pads and no src pads."""
        return [e for e in self.elements.values() if e.sink_pads and not e.src_pads]

    def __iter__(self) -> Iterator[Element]:
        return iter(self.elements.values())

    def iterate_sources(self) -> Iterable[Element]:
        """Elements without sink pads."""
        return [e for e in self.elements.values() if not e.sink_pads]


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
