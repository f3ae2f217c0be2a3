"""`appsrc` and `appsink`: where Python code feeds or drains a pipeline.

    src = pipeline.get_by_name("src");  src.push_buffer(b"..."); src.end_of_stream()
    for buf in pipeline.pull("sink"): ...

Both are bounded (max-buffers; appsrc also max-bytes, max-time): a producer that
outruns the pipeline blocks (or, with block=false, gets an error, or with leaky-type
loses the newest or oldest buffers), and an appsink that nobody drains holds the stream
back (or, with drop=true, keeps only the newest buffers).

Time (docs/pipelines.md#the-clock): appsrc's do-timestamp stamps a buffer without a pts
with the running time at which `push_buffer` is called, as GStreamer's appsrc; a live
appsrc (is-live) holds each buffer with a pts until the running time reaches it. appsink
syncs by default (sync=true, as GStreamer's): a buffer is handed out at its pts.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from parallax._errors import FlowError, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import FLUSH_POLL, Media, Pad, Property, Sink, Source, State

from ._signals import Signals

_EOS = object()


class LeakyType(enum.Enum):
    """What a full appsrc does with a pushed buffer (GStreamer's GstAppLeakyType)."""

    NONE = 0  # block (or raise, with block=false)
    UPSTREAM = 1  # drop the buffer being pushed
    DOWNSTREAM = 2  # drop the oldest queued buffer


class AppSrc(Source[Media], factory="appsrc"):
    """Push buffers (or bytes) from Python into a pipeline."""

    movable = False  # its buffers come from / go to this process's code

    description = "Feed buffers from Python"

    caps = Property(Caps.any(), doc="caps of the pushed data", parse=Caps.from_string)
    max_buffers = Property(
        16, doc="buffers queued before push_buffer blocks (0: unbounded)", minimum=0
    )
    max_bytes = Property(0, doc="bytes queued before push_buffer blocks (0: unbounded)", minimum=0)
    max_time = Property(
        0,
        doc="ns of data (by duration) queued before push_buffer blocks (0: unbounded)",
        minimum=0,
    )
    block = Property(True, doc="block push_buffer when full (else raise)")
    leaky_type = Property(LeakyType.NONE, doc="when full: drop the new (upstream) or oldest buffer")
    is_live = Property(False, doc="a live source: push each buffer with a pts at that running time")
    num_buffers = Property(-1, doc="EOS after this many buffers (-1: unlimited)", minimum=-1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._level_bytes = self._level_time = 0
        self.dropped = 0  # buffers dropped by leaky-type

    def output_caps(self) -> Caps:
        return self.caps

    def live_sync(self) -> bool:
        return self.is_live

    def _full(self) -> bool:
        return bool(
            (self.max_buffers and len(self._items) >= self.max_buffers)
            or (self.max_bytes and self._level_bytes >= self.max_bytes)
            or (self.max_time and self._level_time >= self.max_time)
        )

    def _take(self) -> Any:
        """Pop the oldest item, keeping the levels (with self._cond held)."""
        item = self._items.popleft()
        if item is not _EOS:
            self._level_bytes -= item.size
            self._level_time -= max(item.duration, 0)
        return item

    def push_buffer(
        self, data: Buffer | bytes | bytearray | memoryview, timeout: float | None = None
    ) -> None:
        """Queue one buffer for the pipeline. Safe from any thread.

        With do-timestamp, a buffer without a pts gets the running time of this call (a
        `Buffer` passed in is not changed: a sub-buffer over its memory is queued).

        Raises:
            StateError: after end_of_stream().
            FlowError: full and block=false, or still full after `timeout` seconds, or
                the pipeline is stopping.
        """
        buf = data if isinstance(data, Buffer) else Buffer(data)
        if self.do_timestamp and buf.pts < 0:  # GStreamer appsrc: stamped when pushed
            if buf is data:
                buf = buf.sub(0)
            buf.pts = buf.dts = max(self.running_time(), 0)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._ended:
                raise StateError(f"{self.name}: push_buffer after end_of_stream")
            while self._full():
                if self.leaky_type is LeakyType.UPSTREAM:
                    self.dropped += 1
                    return
                if self.leaky_type is LeakyType.DOWNSTREAM and self._items:
                    self._take()
                    self.dropped += 1
                    continue
                if not self.block:
                    raise FlowError(
                        f"{self.name}: queue full ({self.max_buffers} buffers)", element=self.name
                    )
                if self._flushing and self.state == State.NULL:
                    raise FlowError(f"{self.name}: pipeline is stopped", element=self.name)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise FlowError(f"{self.name}: still full after {timeout} s", element=self.name)
                self._cond.wait(0.1 if left is None else min(left, 0.1))
            self._items.append(buf)
            self._level_bytes += buf.size
            self._level_time += max(buf.duration, 0)
            self._cond.notify_all()

    def end_of_stream(self) -> None:
        """No more buffers: the pipeline gets EOS after those already queued."""
        with self._cond:
            self._ended = True
            self._items.append(_EOS)
            self._cond.notify_all()

    def create(self) -> Buffer | None:
        if 0 <= self.num_buffers <= self.sequence:
            return None
        with self._cond:
            while not self._items:
                if not self._running:
                    return None
                self._cond.wait(FLUSH_POLL)
            item = self._take()
            self._cond.notify_all()
        if item is _EOS:
            return None
        buf: Buffer = item
        if buf.caps is None:
            buf.caps = self.srcpad.caps
        buf.sequence = self.sequence
        self.sequence += 1
        return buf

    def loop(self) -> bool:
        push = self.srcpad.push
        while self._running:
            buf = self.create()
            if buf is None:
                return self._running
            push(buf)
        return False

    def metrics_extra(self) -> dict[str, Any]:
        """The queue's fill (GStreamer's current-level-*), and leaky-type's drops."""
        with self._cond:
            buffers = len(self._items) - self._items.count(_EOS)  # C-speed, under the lock
            return {
                "level_buffers": buffers,
                "level_bytes": self._level_bytes,
                "level_time": self._level_time,
                "dropped": self.dropped,
            }


class AppSink(Signals, Sink[Media], factory="appsink"):
    """Hand buffers to Python: `pull()`, iterate, or `pipeline.pull(name)`."""

    movable = False  # its buffers come from / go to this process's code

    description = "Deliver buffers to Python"

    # As GStreamer's appsink (basesink's default): buffers are handed out at their pts.
    sync = Property(True, doc="hand each buffer out when the running time reaches its pts")
    caps = Property(Caps.any(), doc="caps accepted", parse=Caps.from_string)
    max_buffers = Property(16, doc="buffers held before the stream waits (0: unbounded)", minimum=0)
    drop = Property(False, doc="when full, drop the oldest instead of waiting")
    emit_signals = Property(False, doc="call new-sample and eos callbacks (see connect)")

    signals = ("new-sample", "eos")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Buffer] = deque()
        self._cond = threading.Condition()
        self.is_eos = False
        self.dropped = 0

    def _emit(self, signal: str) -> None:
        if self.emit_signals:  # callbacks get the appsink: connect(signal, fn(appsink))
            self.emit(signal, self)

    def query_caps(self, pad: Pad) -> Caps:
        return pad.template.caps.intersect(self.caps)

    def start(self) -> None:
        self.is_eos = False
        self._items.clear()

    def render(self, buf: Buffer) -> None:
        with self._cond:
            while self.max_buffers and len(self._items) >= self.max_buffers:
                if self.drop:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if self._flushing:
                    return
                self._cond.wait(0.1)
            self._items.append(buf)
            self._cond.notify_all()
        self._emit("new-sample")

    def on_eos(self) -> None:
        with self._cond:
            self.is_eos = True
            self._cond.notify_all()
        self._emit("eos")
        super().on_eos()

    def deactivate(self) -> None:
        super().deactivate()
        with self._cond:
            self._cond.notify_all()

    def pull(self, timeout: float | None = None) -> Buffer | None:
        """The next buffer; None at EOS (once drained) or after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self.is_eos or (self._flushing and self.state <= State.READY):
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            buf = self._items.popleft()
            self._cond.notify_all()
            return buf

    def __iter__(self) -> Iterator[Buffer]:
        """Buffers until EOS (blocks while the pipeline plays)."""
        while (buf := self.pull()) is not None:
            yield buf
