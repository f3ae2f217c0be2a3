"""The three shapes a user subclasses: `Source` (a streaming thread that pushes),
`Transform` and `Filter` (one buffer in, one out), `Sink` (consumes; syncs to the clock
when asked, `_sync.py`). `Element` and the media types are in `_element.py`.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any, Generic

from parallax._errors import FlowError
from parallax.buffer import Buffer
from parallax.caps import Caps

from ._bus import MessageType
from ._element import Element, In, Media, Out
from ._events import EOS_EVENT, STREAM_START_EVENT, Event, EventType
from ._flow import EndOfStream
from ._pad import Pad, PadDirection, PadPresence, PadTemplate
from ._props import Property
from ._sync import SinkSync, clock_srcpad


class Source(Element, Generic[Out]):
    """An element that produces buffers in its own streaming thread.

    Override `create()` (return a Buffer, or None at the end of the stream); for the
    fastest sources override `loop()` too. `negotiate()` picks the output caps.
    """

    klass = "Source"
    pad_templates = (PadTemplate("src", PadDirection.SRC, PadPresence.ALWAYS, Caps.any()),)

    do_timestamp = Property(
        False, doc="give buffers without a pts the running time at which they are pushed"
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._running = False
        self._resume = threading.Event()
        self._eos_requested = False
        self.sequence = 0

    @property
    def srcpad(self) -> Pad:
        """The `src` pad."""
        return self.pads["src"]

    @abstractmethod
    def create(self) -> Buffer | None:
        """The next buffer, or None at the end of the stream. Runs in the streaming thread."""

    def loop(self) -> bool:
        """Push buffers while running. Returns True at the end of the stream, False when
        stopped or paused (`self._running` went False)."""
        create, push = self.create, self.srcpad.push
        while self._running:
            buf = create()
            if buf is None:
                # EOS, unless create() gave up because we were stopped or paused meanwhile
                return self._running
            push(buf)
        return False

    def output_caps(self) -> Caps:
        """The caps this source can produce (default: its template's)."""
        return self.srcpad.template.caps

    def query_caps(self, pad: Pad) -> Caps:
        """A source's src pad offers what `output_caps()` says, so links check it."""
        return self.output_caps() if pad.direction is PadDirection.SRC else super().query_caps(pad)

    def negotiate(self) -> Caps:
        """Fix the output caps: what we produce ∩ what downstream accepts, fixated.

        Raises:
            FlowError: nothing is acceptable to both ("not negotiated").
        """
        want = self.srcpad.peer_query_caps()
        caps = self.output_caps().intersect(want)
        if caps.is_empty:
            raise FlowError(
                f"{self.name}: not negotiated: produces '{self.output_caps()}', "
                f"downstream accepts '{want}'",
                element=self.name,
            )
        return Caps.bytes() if caps.is_any else caps.fixate()

    def _stream(self) -> None:
        pad = self.srcpad
        pad.push_event(STREAM_START_EVENT)
        self.post(MessageType.STREAM_START)
        caps = self.negotiate()
        pad.caps = caps
        pad.push_event(Event(EventType.CAPS, caps=caps))
        while True:
            try:
                ended = self.loop()
            except EndOfStream:
                ended = True
            if ended or self._eos_requested:
                pad.push_event(EOS_EVENT)
                return
            self._resume.wait()
            if self._flushing:
                return
            self._resume.clear()
            self._running = not self._eos_requested  # loop() returns at once, then EOS

    def activate(self) -> None:
        super().activate()
        self._running = not self._eos_requested
        if self._tasks:  # resuming from PAUSED
            self._resume.set()
        else:
            self._resume.clear()  # a set left by the last deactivate() is no resume
            clock_srcpad(self)  # do-timestamp, live sync: only where asked for
            self.start_task(self._stream)

    def pause(self) -> None:
        """PLAYING → PAUSED: the streaming thread parks after the current buffer."""
        self._running = False
        self._interrupt_clock()  # a live source waiting on the clock drops its buffer

    def live_sync(self) -> bool:
        """Whether this source waits, before pushing each buffer that has a pts, until the
        running time reaches it (GStreamer's pseudo-live sources: basesrc with is-live and
        sync times, as `fakesrc is-live=true sync=true`). Default False."""
        return False

    def send_eos(self) -> None:
        """End the stream after the buffer being pushed now, as if `create()` returned
        None (GStreamer: an EOS event sent to a source). Safe from any thread.

        It stops the loop as `pause()` does (`_running` goes False, and a subclass's
        `pause()` interrupts its wait), then the streaming thread pushes EOS instead of
        parking; a paused source pushes EOS at once, one not yet playing when it plays.
        """
        self._eos_requested = True
        self.pause()
        self._resume.set()

    def deactivate(self) -> None:
        super().deactivate()
        self._running = False
        self._eos_requested = False
        self._resume.set()


class Transform(Element, Generic[In, Out]):
    """One sink pad, one src pad: `transform()` each buffer (return None to drop it)."""

    klass = "Filter"
    pad_templates = (
        PadTemplate("sink", PadDirection.SINK, PadPresence.ALWAYS, Caps.any()),
        PadTemplate("src", PadDirection.SRC, PadPresence.ALWAYS, Caps.any()),
    )

    @property
    def srcpad(self) -> Pad:
        """The `src` pad."""
        return self.pads["src"]

    @property
    def sinkpad(self) -> Pad:
        """The `sink` pad."""
        return self.pads["sink"]

    def chain(self, buf: Buffer) -> None:
        out = self.transform(buf)
        if out is not None:
            self.pads["src"].push(out)

    @abstractmethod
    def transform(self, buf: Buffer) -> Buffer | None:
        """Turn one input buffer into one output buffer (or None to drop it)."""


class Filter(Transform[Media, Media]):
    """A transform whose output has its input's type (identity, queue, capsfilter):
    the typed builder keeps the chain's type across it."""

    passthrough_caps = True

    def transform(self, buf: Buffer) -> Buffer | None:
        """Pass the buffer on unchanged; override to inspect, delay or drop it."""
        return buf


class Sink(SinkSync, Element, Generic[In]):
    """An element that consumes buffers: override `render()`. `sync`, `max-lateness`
    and `ts-offset` (GStreamer's basesink) come from `SinkSync` (_sync.py)."""

    klass = "Sink"
    pad_templates = (PadTemplate("sink", PadDirection.SINK, PadPresence.ALWAYS, Caps.any()),)

    @property
    def sinkpad(self) -> Pad:
        """The `sink` pad."""
        return self.pads["sink"]

    def chain(self, buf: Buffer) -> None:
        self.render(buf)

    @abstractmethod
    def render(self, buf: Buffer) -> None:
        """Consume one buffer."""
