"""`appsrc` and `appsink`: where Python code feeds or drains a pipeline.

    src = pipeline.get_by_name("src");  src.push_buffer(b"..."); src.end_of_stream()
    for buf in pipeline.pull("sink"): ...

Both are bounded (max-buffers): a producer that outruns the pipeline blocks (or, with
block=false, gets an error), and an appsink that nobody drains holds the stream back
(or, with drop=true, keeps only the newest buffers).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from parallax._errors import FlowError, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import Media, Pad, Property, Sink, Source, State

_EOS = object()


class AppSrc(Source[Media], factory="appsrc"):
    """Push buffers (or bytes) from Python into a pipeline."""

    movable = False  # its buffers come from / go to this process's code

    description = "Feed buffers from Python"

    caps = Property(Caps.any(), doc="caps of the pushed data", parse=Caps.from_string)
    max_buffers = Property(
        16, doc="buffers queued before push_buffer blocks (0: unbounded)", minimum=0
    )
    block = Property(True, doc="block push_buffer when full (else raise)")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._ended = False

    def output_caps(self) -> Caps:
        return self.caps

    def push_buffer(
        self, data: Buffer | bytes | bytearray | memoryview, timeout: float | None = None
    ) -> None:
        """Queue one buffer for the pipeline. Safe from any thread.

        Raises:
            StateError: after end_of_stream().
            FlowError: full and block=false, or still full after `timeout` seconds, or
                the pipeline is stopping.
        """
        buf = data if isinstance(data, Buffer) else Buffer(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._ended:
                raise StateError(f"{self.name}: push_buffer after end_of_stream")
            while self.max_buffers and len(self._items) >= self.max_buffers:
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
            self._cond.notify_all()

    def end_of_stream(self) -> None:
        """No more buffers: the pipeline gets EOS after those already queued."""
        with self._cond:
            self._ended = True
            self._items.append(_EOS)
            self._cond.notify_all()

    def create(self) -> Buffer | None:
        with self._cond:
            while not self._items:
                if not self._running:
                    return None
                self._cond.wait(0.05)
            item = self._items.popleft()
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


class AppSink(Sink[Media], factory="appsink"):
    """Hand buffers to Python: `pull()`, iterate, or `pipeline.pull(name)`."""

    movable = False  # its buffers come from / go to this process's code

    description = "Deliver buffers to Python"

    caps = Property(Caps.any(), doc="caps accepted", parse=Caps.from_string)
    max_buffers = Property(16, doc="buffers held before the stream waits (0: unbounded)", minimum=0)
    drop = Property(False, doc="when full, drop the oldest instead of waiting")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Buffer] = deque()
        self._cond = threading.Condition()
        self.is_eos = False
        self.dropped = 0

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

    def on_eos(self) -> None:
        with self._cond:
            self.is_eos = True
            self._cond.notify_all()
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
