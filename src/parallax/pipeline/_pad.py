"""Pads: where elements link. A source pad pushes; the peer sink pad's chain function runs.

The push is the per-buffer hot path (PLATFORM.md: two calls and one small object cost
≈ 0.85 µs), so `Pad.push` does four things only: mark the buffer read-only, count it,
call the peer's chain function, and name the element if that call fails.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parallax._errors import FlowError, LinkError
from parallax.buffer import Buffer
from parallax.caps import Caps

from ._bus import MessageType
from ._events import Event, EventType
from ._flow import EndOfStream

if TYPE_CHECKING:
    from ._element import Element


class PadDirection(enum.Enum):
    """Which way data leaves or enters the element."""

    SRC = "src"
    SINK = "sink"


class PadPresence(enum.Enum):
    """When a pad exists: always, on request (`src_%u`), or sometimes (made while running)."""

    ALWAYS = "always"
    REQUEST = "request"
    SOMETIMES = "sometimes"


@dataclass(frozen=True, slots=True)
class PadTemplate:
    """Describes pads an element can have: a name (or `src_%u` pattern), direction, caps."""

    name: str
    direction: PadDirection
    presence: PadPresence = PadPresence.ALWAYS
    caps: Caps = Caps.any()

    def matches(self, pad_name: str) -> bool:
        """Does `pad_name` fit this template (`src_3` fits `src_%u`)? The template's own
        name fits too: asking for `src_%u` asks for a new pad from the template, as
        gst_element_request_pad_simple takes either."""
        if "%u" not in self.name or pad_name == self.name:
            return pad_name == self.name
        prefix, _, suffix = self.name.partition("%u")
        middle = pad_name[len(prefix) : len(pad_name) - len(suffix) or None]
        return pad_name.startswith(prefix) and pad_name.endswith(suffix) and middle.isdigit()


def _not_linked(buf: Buffer) -> None:
    raise FlowError("pad is not linked")


class Pad:
    """One connection point of an element. Made by the element, linked by the pipeline."""

    __slots__ = (
        "_chain",
        "_through",
        "buffers",
        "bytes",
        "caps",
        "direction",
        "element",
        "eos",
        "name",
        "peer",
        "template",
    )

    def __init__(self, element: Element, name: str, template: PadTemplate) -> None:
        self.element = element
        self.name = name
        self.template = template
        self.direction = template.direction
        self.peer: Pad | None = None
        self.caps: Caps | None = None
        self.eos = False
        self.buffers = 0
        self.bytes = 0
        # For a src pad: the peer sink pad's chain function; for a sink pad: its own.
        self._chain: Callable[[Buffer], None] = _not_linked
        # For a src pad: what it puts between itself and that chain function (`through`).
        self._through: Callable[[Callable[[Buffer], None]], Callable[[Buffer], None]] | None = None

    @property
    def full_name(self) -> str:
        """`element:pad`, as GStreamer prints pads."""
        return f"{self.element.name}:{self.name}"

    def __repr__(self) -> str:
        peer = f" -> {self.peer.full_name}" if self.peer else ""
        return f"<Pad {self.full_name} {self.direction.value}{peer}>"

    # -- linking -------------------------------------------------------------------

    def link(self, sink: Pad) -> None:
        """Link this src pad to `sink`. Checks direction, that both are free, and caps.

        Raises:
            LinkError: naming both pads and why.
        """
        what = f"cannot link {self.full_name} to {sink.full_name}"
        if self.direction is not PadDirection.SRC:
            raise LinkError(f"{what}: {self.full_name} is not a src pad")
        if sink.direction is not PadDirection.SINK:
            raise LinkError(f"{what}: {sink.full_name} is not a sink pad")
        if self.peer is not None:
            raise LinkError(f"{what}: {self.full_name} is already linked to {self.peer.full_name}")
        if sink.peer is not None:
            raise LinkError(f"{what}: {sink.full_name} is already linked to {sink.peer.full_name}")
        # What each side can do now (a capsfilter narrows its template; a passthrough
        # element asks further downstream), not only the templates.
        ours, theirs = self.query_caps(), sink.query_caps()
        if not ours.can_intersect(theirs):
            raise LinkError(f"{what}: caps '{ours}' and '{theirs}' do not intersect")
        self.peer, sink.peer = sink, self
        self._chain = sink._chain if self._through is None else self._through(sink._chain)

    def unlink(self) -> None:
        """Undo `link` (either end)."""
        peer = self.peer
        if peer is None:
            return
        src = self if self.direction is PadDirection.SRC else peer
        src._chain = _not_linked
        self.peer = peer.peer = None

    def set_chain_function(self, chain: Callable[[Buffer], None]) -> None:
        """A sink pad's handler for buffers; re-points an already linked peer too (through
        what that peer puts in between, `through`)."""
        self._chain = chain
        peer = self.peer
        if peer is not None:
            peer._chain = chain if peer._through is None else peer._through(chain)

    def through(
        self, wrap: Callable[[Callable[[Buffer], None]], Callable[[Buffer], None]] | None
    ) -> None:
        """Have this src pad push to `wrap(peer's chain function)` instead of to the
        peer's chain function itself (None: directly again). The wrap is applied again
        whenever the peer's chain function changes, so it is never lost: how a source
        puts its clock (do-timestamp, live sync) in front of its peer. Nothing runs per
        buffer when there is none."""
        self._through = wrap
        peer = self.peer
        if peer is not None:
            self._chain = peer._chain if wrap is None else wrap(peer._chain)

    # -- data flow -----------------------------------------------------------------

    def push(self, buf: Buffer) -> None:
        """Push `buf` to the peer (synchronously, in the caller's thread).

        The buffer becomes read-only: downstream branches share it.

        Raises:
            FlowError: the peer (or something further down) failed; `element` names it.
        """
        # Buffer's own fields, not make_readonly() and .size: the one place the pipeline
        # reaches into them, the per-buffer hot path (two calls cost 60 ns a push, 12% of
        # benches/per_buffer.py's chain). Pad.push_all does the same.
        buf._readonly = True
        self.buffers += 1
        self.bytes += buf._size
        try:
            self._chain(buf)
        except (FlowError, EndOfStream):
            raise
        except Exception as e:
            name = self.peer.element.name if self.peer else self.element.name
            raise FlowError(f"{name}: {type(e).__name__}: {e}", element=name) from e

    @staticmethod
    def push_all(pads: Sequence[Pad], buf: Buffer) -> list[Pad]:
        """Push `buf` to each of `pads` in turn (a tee's branches), as `push` does for one:
        made read-only once, each pad counted and its peer chained (≈ 0.2 µs a branch,
        not a `push` call). A pad whose downstream wants no more (EndOfStream) is
        skipped and returned; the others still get the buffer.

        Raises:
            FlowError: a peer (or something further down) failed; `element` names it.
        """
        buf._readonly = True
        size = buf._size
        ended: list[Pad] = []
        for pad in pads:
            pad.buffers += 1
            pad.bytes += size
            try:
                pad._chain(buf)
            except EndOfStream:
                ended.append(pad)
            except FlowError:
                raise
            except Exception as e:
                peer = pad.peer.element.name if pad.peer is not None else pad.element.name
                raise FlowError(f"{peer}: {type(e).__name__}: {e}", element=peer) from e
        return ended

    def push_event(self, event: Event) -> None:
        """Send `event` to the peer's event handler (in order with buffers). Caps going
        out are announced on the bus (PROPERTY_NOTIFY), as GStreamer's pad `caps` notify."""
        peer = self.peer
        if peer is None:
            raise FlowError(f"{self.full_name}: pad is not linked", element=self.element.name)
        if event.type is EventType.CAPS:  # rare (once per stream), off the buffer path
            self.element.post(
                MessageType.PROPERTY_NOTIFY, pad=self.name, property="caps", value=event.caps
            )
        try:
            peer.element.handle_event(peer, event)
        except FlowError:
            raise
        except Exception as e:
            name = peer.element.name
            raise FlowError(f"{name}: {type(e).__name__}: {e}", element=name) from e

    def query_caps(self) -> Caps:
        """What this pad's side of the link accepts/produces, asked of the element."""
        return self.element.query_caps(self)

    def peer_query_caps(self) -> Caps:
        """What the peer accepts (ANY when unlinked)."""
        return self.peer.query_caps() if self.peer is not None else Caps.any()


def pad_info(pad: Pad) -> dict[str, Any]:
    """A JSON-friendly description of a pad (for export and metrics)."""
    return {
        "name": pad.name,
        "direction": pad.direction.value,
        "caps": str(pad.caps) if pad.caps is not None else None,
        "template_caps": str(pad.template.caps),
        "peer": pad.peer.full_name if pad.peer else None,
    }
