"""`tee`: zero-copy fan-out. The same (read-only) buffer goes to every branch.

Like GStreamer's tee it pushes to each src pad in turn, in the upstream thread; put a
`queue` at the head of a branch to give it a thread of its own. A branch that signals
EOS (its sink wants no more) is skipped; the tee signals EOS upstream when all have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
        self._pushes: list[tuple[Pad, Callable[[Buffer], None]]] = []

    def activate(self) -> None:
        super().activate()
        self._pushes = [(p, p.push) for p in self.src_pads]

    def chain(self, buf: Buffer) -> None:
        for pad, push in self._pushes:
            try:
                push(buf)
            except EndOfStream:
                self._pushes = [(p, f) for p, f in self._pushes if p is not pad]
                if not self._pushes:
                    raise
