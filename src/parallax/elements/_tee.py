"""`tee`: zero-copy fan-out. The same (read-only) buffer goes to every branch.

Like GStreamer's tee it pushes to each src pad in turn, in the upstream thread; put a
`queue` at the head of a branch to give it a thread of its own. A branch that signals
EOS (its sink wants no more) is skipped; the tee signals EOS upstream when all have.

Not linked, as gsttee.c: a tee with no linked src pad fails its first buffer with a
`FlowError` naming it (GStreamer's not-linked flow return), unless
`allow-not-linked=true`, when it drops every buffer, as GStreamer's returns GST_FLOW_OK.
(A requested pad left unlinked is refused when the pipeline starts, so "no linked pad"
means "no branch".) Links do not change while a pipeline plays, so the linked pads are
taken once, when the tee starts.
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
    Property,
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

    allow_not_linked = Property(
        False, doc="drop buffers when no src pad is linked, instead of failing (not-linked)"
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._active: list[Pad] = []
        self._ended = False  # every branch signalled EOS

    def activate(self) -> None:
        super().activate()
        self._active = [p for p in self.src_pads if p.peer is not None]
        self._ended = False

    def chain(self, buf: Buffer) -> None:
        if not self._active:
            self._unlinked()
            return
        ended = Pad.push_all(self._active, buf)
        if ended:
            self._active = [p for p in self._active if p not in ended]
            if not self._active:
                self._ended = True
                raise EndOfStream

    def _unlinked(self) -> None:
        """A buffer with no branch to take it: EOS again, dropped, or not-linked."""
        if self._ended:
            raise EndOfStream
        if self.allow_not_linked:
            return
        raise FlowError(
            f"{self.name}: not-linked: no src pad is linked (a branch starts with "
            f"'{self.name}. ! ...'); set allow-not-linked=true to drop the buffers",
            element=self.name,
        )
