"""`tee`: zero-copy fan-out. The same (read-only) buffer goes to every branch.

Like GStreamer's tee it pushes to each src pad in turn, in the upstream thread; put a
`queue` at the head of a branch to give it a thread of its own. A branch that signals
EOS (its sink wants no more) is skipped; the tee signals EOS upstream when all have.
"""

from __future__ import annotations

from typing import Any

from parallax._errors import FlowError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import (
    Element,
    EndOfStream,
    Pad,
    PadDirection,
    PadPresence,
    PadTemplate,
)


class Tee(Element, factory="tee"):
    """1-to-N fan-out without copying."""

    klass = "Generic"
    description = "Send each buffer to every src pad, without copying"
    passthrough_caps = True
    pad_templates = (
        PadTemplate("sink", PadDirection.SINK, PadPresence.ALWAYS, Caps.any()),
        PadTemplate("src_%u", PadDirection.SRC, PadPresence.REQUEST, Caps.any()),
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._active: list[Pad] = []

    def activate(self) -> None:
        super().activate()
        self._active = list(self.src_pads)

    def chain(self, buf: Buffer) -> None:
        # Pad.push, unrolled for N pads: the buffer is made read-only once and each
        # branch costs a counter update and its chain call (≈ 0.2 µs), not a push.
        buf._readonly = True
        size = buf._size
        for pad in self._active:
            pad.buffers += 1
            pad.bytes += size
            try:
                pad._chain(buf)
            except EndOfStream:
                self._active = [p for p in self._active if p is not pad]
                if not self._active:
                    raise
            except FlowError:
                raise
            except Exception as e:
                peer = pad.peer.element.name if pad.peer is not None else self.name
                raise FlowError(f"{peer}: {type(e).__name__}: {e}", element=peer) from e
