"""Synchronisation: where buffers meet the pipeline clock (GStreamer's basesink/basesrc).

- A sink with `sync=true` renders each buffer when the running time reaches its pts plus
  `ts-offset` (basesink's do_sync); a buffer without a pts is rendered at once. One whose
  end (pts + duration) is more than `max-lateness` ns behind the clock is dropped, counted
  (`dropped_late`, in `Pipeline.metrics()`) and reported (an ELEMENT message with
  `event="qos"`, GStreamer's QOS message). EOS is posted when the last buffer has ended.
- A source with `do-timestamp=true` gives a buffer without a pts the running time at
  which it is pushed; a live source that syncs (`Source.live_sync()`) waits, before
  pushing a buffer with a pts, until the running time reaches it (basesrc's pseudo-live
  sync), and drops it if paused or stopped meanwhile, as basesrc does.

Plan: both are a wrapper around a chain function, put in place when the element goes
PLAYING and taken away when it stops, so an element that does not sync pays nothing per
buffer: its pad's chain function is the element's own (the per-buffer benchmark). A
sink's wrapper sits on its sink pad; a source's on its src pad's copy of the peer's chain
function (`Pad._chain`), so every source's loop gets it without knowing.

Limits: no segments (a buffer's running time is its pts), no latency (a live source's
buffers are not delayed by a pipeline latency before a sink renders them), no QOS events
upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parallax.buffer import Buffer

from ._bus import MessageType
from ._clock import CLOCK_TIME_NONE
from ._props import Property

if TYPE_CHECKING:
    from ._element import Element
    from ._shapes import Source

    _SinkBase = Element
else:
    _SinkBase = object

Chain = Callable[[Buffer], None]


# The function a sink's sync wrapper wraps, as an attribute of the wrapper.
_SINK_INNER = "parallax_unsynced"


def _inner(chain: Chain, attr: str) -> Chain:
    """The chain function behind a wrapper of kind `attr`, or `chain` if it is none."""
    inner: Chain | None = getattr(chain, attr, None)
    return inner if inner is not None else chain


class SinkSync(_SinkBase):
    """Sink's clock synchronisation: `sync`, `max-lateness`, `ts-offset` (a mixin of Sink)."""

    # GStreamer's basesink defaults to sync=true, its file-like sinks (fakesink, filesink,
    # fdsink) to false. Here false is the default, so a sink syncs only when asked to or
    # when it hands buffers out in time (appsink says true, as GStreamer's does).
    sync = Property(False, doc="render each buffer when the running time reaches its pts")
    max_lateness = Property(
        -1,
        doc="with sync: drop buffers later than this many ns (-1: never)",
        minimum=-1,
        mutable=True,
    )
    ts_offset = Property(
        0, doc="ns added to each pts before syncing (negative: earlier)", mutable=True
    )

    dropped_late = 0
    """Buffers dropped in this run for being later than max-lateness."""
    _eos_time = CLOCK_TIME_NONE  # with sync: the running time at which the last buffer ends

    def activate(self) -> None:
        super().activate()
        for pad in self.sink_pads:
            if getattr(pad._chain, _SINK_INNER, None) is None:  # not resuming from PAUSED
                self.dropped_late, self._eos_time = 0, CLOCK_TIME_NONE
                if self.sync:
                    pad.set_chain_function(self._clocked(pad._chain))

    def deactivate(self) -> None:
        super().deactivate()
        for pad in self.sink_pads:
            pad.set_chain_function(_inner(pad._chain, _SINK_INNER))

    def _clocked(self, chain: Chain) -> Chain:
        """`chain` behind a wait for each buffer's running time and the lateness check."""
        wait, flushing = self.wait_running_time, self._is_flushing

        def clocked(buf: Buffer) -> None:
            pts = buf.pts
            if pts < 0:  # no timestamp: render at once
                chain(buf)
                return
            start = pts + self.ts_offset
            jitter = wait(start, flushing)
            if jitter is None:  # stopping: not rendered
                return
            duration = buf.duration if buf.duration > 0 else 0
            self._eos_time = start + duration
            # Too late (basesink): its end is more than max-lateness behind the clock.
            if 0 <= self.max_lateness < jitter - duration:
                self._drop_late(buf, start, jitter)
                return
            chain(buf)

        setattr(clocked, _SINK_INNER, chain)
        clocked.__wrapped__ = chain  # type: ignore[attr-defined]  # timing wraps it only once
        return clocked

    def _drop_late(self, buf: Buffer, running_time: int, jitter: int) -> None:
        self.dropped_late += 1
        self.post(
            MessageType.ELEMENT,
            event="qos",
            running_time=running_time,
            jitter=jitter,
            sequence=buf.sequence,
            dropped=self.dropped_late,
        )

    def on_eos(self) -> None:
        """With sync, EOS goes on when the running time reaches the last buffer's end."""
        end = self._eos_time
        if self.sync and end >= 0 and self.wait_running_time(end) is None:
            return  # stopped meanwhile: no EOS
        super().on_eos()

    def metrics_extra(self) -> dict[str, Any]:
        """With sync, `dropped_late`: buffers dropped for being later than max-lateness."""
        return {"dropped_late": self.dropped_late} if self.sync else {}


def clock_srcpad(source: Source[Any]) -> None:
    """Put the clock between `source` and its peer where its buffers need it: stamp them
    (do-timestamp) and wait for their pts (live sync). Otherwise the src pad pushes
    straight to the peer's chain function: nothing per buffer. Called going PLAYING."""
    pad = source.srcpad
    stamp, sync = source.do_timestamp, source.live_sync()
    if not (stamp or sync):
        pad.through(None)
        return
    running_time, wait = source.running_time, source.wait_running_time

    def stopped() -> bool:  # paused, stopped or sent EOS: the loop is leaving
        return not source._running

    def clocked_before(inner: Chain) -> Chain:
        def clocked(buf: Buffer) -> None:
            if stamp and buf.pts < 0:  # basesrc: DTS = running time, and PTS = DTS
                buf.pts = buf.dts = running_time()
            if sync and buf.pts >= 0 and wait(buf.pts, stopped) is None:
                return  # basesrc drops a buffer whose clock wait was unscheduled
            inner(buf)

        return clocked

    pad.through(clocked_before)
