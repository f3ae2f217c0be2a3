"""`queue`: a thread boundary with a bounded buffer between the two sides.

The upstream thread appends; the queue's own thread pops and pushes downstream. Both
sides sleep on one Condition only when they must (empty / full), so a busy queue moves
buffers in batches without a wake-up per buffer. Events (EOS) travel in the same deque,
in order with the buffers.

Default depth 16 (DESIGN.md), not GStreamer's 200: a queue here holds pool slots, and
200 in-flight 8 MiB slots would pin over 1.5 GiB of shared memory per queue.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from typing import Any

from parallax.buffer import Buffer
from parallax.pipeline import EndOfStream, Event, EventType, Filter, Pad, Property


class Leaky(enum.Enum):
    """What a full queue does (GStreamer's GstQueueLeaky)."""

    NO = 0
    UPSTREAM = 1
    DOWNSTREAM = 2


class Queue(Filter, factory="queue"):
    """Decouple upstream and downstream threads through a bounded queue."""

    description = "Hand buffers to a thread of its own, through a bounded queue"

    max_size_buffers = Property(16, doc="most buffers queued (0: no limit)", minimum=0)
    max_size_bytes = Property(0, doc="most bytes queued (0: no limit)", minimum=0)
    max_size_time = Property(
        0, doc="most nanoseconds of data queued, by pts/duration (0: no limit)", minimum=0
    )
    leaky = Property(
        Leaky.NO, doc="when full: block (no), drop new (upstream) or drop old (downstream)"
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Buffer | Event] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._bytes = 0
        self._time = 0
        self._nbuffers = 0  # events in the deque do not count toward the limits
        self._consumer_waiting = False
        self._producer_waiting = False
        self._downstream_eos = False
        self.dropped = 0
        self.max_level = 0

    def _full(self) -> bool:
        mb, mby, mt = self.max_size_buffers, self.max_size_bytes, self.max_size_time
        return (
            (mb > 0 and self._nbuffers >= mb)
            or (mby > 0 and self._bytes >= mby)
            or (mt > 0 and self._time >= mt)
        )

    def chain(self, buf: Buffer) -> None:
        if self._downstream_eos:
            raise EndOfStream
        with self._cond:
            while self._full():
                if self.leaky is Leaky.UPSTREAM:
                    self.dropped += 1
                    return
                if self.leaky is Leaky.DOWNSTREAM:
                    self._drop_oldest()
                    continue
                if self._flushing:
                    return
                self._producer_waiting = True
                self._cond.wait(0.1)
                self._producer_waiting = False
            self._items.append(buf)
            self._nbuffers += 1
            self._bytes += buf._size
            if buf.duration > 0:
                self._time += buf.duration
            self.max_level = max(self.max_level, self._nbuffers)
            if self._consumer_waiting:
                self._cond.notify()

    def _drop_oldest(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, Buffer):
                del self._items[i]
                self._account_out(item)
                self.dropped += 1
                return

    def _account_out(self, buf: Buffer) -> None:
        self._nbuffers -= 1
        self._bytes -= buf._size
        if buf.duration > 0:
            self._time -= buf.duration

    def handle_event(self, pad: Pad, event: Event) -> None:
        if event.type is EventType.CAPS:
            pad.caps = event.caps
        if self._downstream_eos:
            # Our thread has left (downstream said EOS); pass the EOS on directly, as
            # GStreamer's queue does once its src pad returned GST_FLOW_EOS.
            self.handle_downstream_event(event)
            return
        with self._cond:
            self._items.append(event)
            if self._consumer_waiting:
                self._cond.notify()

    def activate(self) -> None:
        super().activate()
        self._downstream_eos = False
        self.start_task(self._loop)

    def deactivate(self) -> None:
        super().deactivate()
        with self._cond:
            self._items.clear()
            self._bytes = self._time = self._nbuffers = 0
            self._cond.notify_all()

    def _loop(self) -> None:
        items, cond = self._items, self._cond
        push = self.srcpad.push
        while True:
            with cond:
                while not items:
                    if self._flushing:
                        return
                    self._consumer_waiting = True
                    cond.wait(0.1)
                    self._consumer_waiting = False
                if self._flushing:
                    return
                item = items.popleft()
                if isinstance(item, Buffer):
                    self._account_out(item)
                if self._producer_waiting:
                    cond.notify()
            if isinstance(item, Buffer):
                try:
                    push(item)
                except EndOfStream:
                    self._downstream_eos = True
                    return
            else:
                self.handle_downstream_event(item)
                if item.type is EventType.EOS:
                    return

    def handle_downstream_event(self, event: Event) -> None:
        """Forward an event that reached the head of the queue."""
        if event.type is EventType.EOS:
            self.sinkpad.eos = True
            self.on_eos()
        self.forward_event(event)

    def metrics_extra(self) -> dict[str, Any]:
        """Fill level for `pipeline.metrics()`."""
        return {
            "level_buffers": self._nbuffers,
            "level_bytes": self._bytes,
            "max_level_buffers": self.max_level,
            "dropped": self.dropped,
        }
