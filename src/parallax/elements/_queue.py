"""`queue`: a thread boundary with a bounded buffer between the two sides.

The upstream thread appends; the queue's own thread pops and pushes downstream. The
deque's append/popleft are atomic and each counter has a single writer, so the busy path
takes no lock; a side takes the Condition only to sleep (empty / full) or to wake the
other, so a busy queue moves buffers without a wake-up per buffer. Events (EOS)
travel in the same deque, in order with the buffers.

`min-threshold-*` hold the data back until that much is queued (GStreamer's
gst_queue_is_empty: not while the newest item is an event, so EOS always gets through,
nor while the queue is full). `flush-on-eos` drops the queued buffers, not the events,
when EOS arrives. Both make the consumer pop under the lock, as `leaky=downstream` does,
since then the producer also removes items.

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
    min_threshold_buffers = Property(
        0, doc="buffers queued before any is pushed on (0: no threshold)", minimum=0
    )
    min_threshold_bytes = Property(
        0, doc="bytes queued before any buffer is pushed on (0: no threshold)", minimum=0
    )
    min_threshold_time = Property(
        0, doc="nanoseconds queued, by duration, before any is pushed on (0: none)", minimum=0
    )
    leaky = Property(
        Leaky.NO, doc="when full: block (no), drop new (upstream) or drop old (downstream)"
    )
    flush_on_eos = Property(False, doc="drop the queued buffers when EOS arrives")
    current_level_buffers = Property(
        0, doc="buffers queued now (read-only)", getter=lambda q: q.level_buffers
    )
    current_level_bytes = Property(
        0, doc="bytes queued now (read-only)", getter=lambda q: q.level_bytes
    )
    current_level_time = Property(
        0, doc="nanoseconds queued now, by duration (read-only)", getter=lambda q: q.level_time
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._items: deque[Buffer | Event] = deque()
        self._cond = threading.Condition(threading.Lock())
        # Single producer, single consumer: each counter has one writer, so no lock is
        # needed to read the level (in - out - dropped_old). Events do not count.
        self._in = self._in_bytes = self._in_time = 0
        self._out = self._out_bytes = self._out_time = 0
        # Buffers the producer removed: leaky=downstream drops and flush-on-eos.
        self._drop_old = self._drop_bytes = self._drop_time = 0
        self._consumer_waiting = False
        self._producer_waiting = False
        self._downstream_eos = False
        self.dropped = 0
        self.max_level = 0
        self._lim_buffers: float = 16
        self._lim_bytes: float = float("inf")
        self._lim_time: float = float("inf")
        self._min_buffers = self._min_bytes = self._min_time = 0
        self._held = False  # some min-threshold is set

    @property
    def level_buffers(self) -> int:
        """Buffers queued now."""
        return self._in - self._out - self._drop_old

    @property
    def level_bytes(self) -> int:
        """Bytes queued now."""
        return self._in_bytes - self._out_bytes - self._drop_bytes

    @property
    def level_time(self) -> int:
        """Nanoseconds of data queued now, by buffer durations."""
        return self._in_time - self._out_time - self._drop_time

    def _below_threshold(self) -> bool:
        """Whether the consumer must hold back: a min-threshold is unmet, the newest item
        is a buffer and the queue is not full (GStreamer's gst_queue_is_empty)."""
        items = self._items
        if not items:
            return True
        if not isinstance(items[-1], Buffer) or self._full():
            return False
        return (
            self.level_buffers < self._min_buffers
            or self.level_bytes < self._min_bytes
            or self.level_time < self._min_time
        )

    def _full(self) -> bool:
        # Limits are copied to plain attributes at activate(): a Property read is a
        # descriptor call, and this runs once per buffer. 0 means "no limit": use inf.
        return (
            self._in - self._out - self._drop_old >= self._lim_buffers
            or self._in_bytes - self._out_bytes - self._drop_bytes >= self._lim_bytes
            or self._in_time - self._out_time - self._drop_time >= self._lim_time
        )

    def chain(self, buf: Buffer) -> None:
        if self._downstream_eos:
            raise EndOfStream
        if (
            self._in - self._out - self._drop_old >= self._lim_buffers
            or self._in_bytes - self._out_bytes - self._drop_bytes >= self._lim_bytes
            or self._in_time - self._out_time - self._drop_time >= self._lim_time
        ) and not self._make_room():
            return
        self._items.append(buf)
        # Buffer's field, not .size, on both per-buffer sides (as Pad.push does: the
        # property call is 35 ns a buffer); the rare drop paths use .size.
        self._in_bytes += buf._size
        if buf.duration > 0:
            self._in_time += buf.duration
        self._in += 1
        level = self._in - self._out - self._drop_old
        self.max_level = max(self.max_level, level)
        if self._consumer_waiting:
            self._wake_consumer()

    def _wake_consumer(self) -> None:
        # Clear the flag under the lock before notifying: left set until the sleeper runs,
        # it would make every following buffer take the lock and notify again.
        with self._cond:
            if self._consumer_waiting:
                self._consumer_waiting = False
                self._cond.notify()

    def _make_room(self) -> bool:
        """The slow path: the queue is full. Returns False if `buf` is to be dropped."""
        if self.leaky is Leaky.UPSTREAM:
            self.dropped += 1
            return False
        if self.leaky is Leaky.DOWNSTREAM:
            # Drop the oldest *buffer* (events are never dropped). In this mode the
            # consumer pops under the lock too, so the index stays valid.
            with self._cond:
                for i, old in enumerate(self._items):
                    if isinstance(old, Buffer):
                        del self._items[i]
                        self._count_removed(old)
                        self.dropped += 1
                        break
            return True
        with self._cond:
            while self._full() and not self._flushing:
                self._producer_waiting = True
                self._cond.wait(0.1)
            self._producer_waiting = False
        return not self._flushing

    def handle_event(self, pad: Pad, event: Event) -> None:
        if event.type is EventType.CAPS:
            pad.caps = event.caps
        if event.type is EventType.EOS and self.flush_on_eos:
            self._flush_buffers()
        if self._downstream_eos:
            # Our thread has left (downstream said EOS); pass the EOS on directly, as
            # GStreamer's queue does once its src pad returned GST_FLOW_EOS.
            self.handle_downstream_event(event)
            return
        self._items.append(event)
        if self._consumer_waiting:
            self._wake_consumer()

    def _count_removed(self, buf: Buffer) -> None:
        """Count a buffer the producer took out of the queue (under the lock): the
        producer's own counters, since `_out*` belong to the consumer."""
        self._drop_bytes += buf.size
        if buf.duration > 0:
            self._drop_time += buf.duration
        self._drop_old += 1

    def _flush_buffers(self) -> None:
        """Drop every queued buffer, keep the events (runs in the producer's thread)."""
        with self._cond:
            kept = []
            for item in self._items:
                if isinstance(item, Buffer):
                    self._count_removed(item)
                else:
                    kept.append(item)
            self._items.clear()
            self._items.extend(kept)
            if self._producer_waiting:
                self._cond.notify_all()

    def activate(self) -> None:
        super().activate()
        inf = float("inf")
        # A threshold of 0 is none: 0 never exceeds a level.
        self._min_buffers = self.min_threshold_buffers
        self._min_bytes = self.min_threshold_bytes
        self._min_time = self.min_threshold_time
        self._held = bool(self._min_buffers or self._min_bytes or self._min_time)
        self._lim_buffers = self.max_size_buffers or inf
        self._lim_bytes = self.max_size_bytes or inf
        self._lim_time = self.max_size_time or inf
        self._downstream_eos = False
        self.start_task(self._loop)

    def deactivate(self) -> None:
        super().deactivate()
        with self._cond:
            self._items.clear()
            self._out, self._out_bytes, self._out_time = self._in, self._in_bytes, self._in_time
            self._drop_old = self._drop_bytes = self._drop_time = 0
            self._cond.notify_all()

    def _loop(self) -> None:
        items, cond = self._items, self._cond
        push = self.srcpad.push
        # The producer removes items too (leaky=downstream, flush-on-eos): pop under the lock.
        locked = self.leaky is Leaky.DOWNSTREAM or self.flush_on_eos
        held = self._held
        while not self._flushing:
            if not items or (held and self._below_threshold()):
                with cond:
                    while (not items or (held and self._below_threshold())) and not self._flushing:
                        self._consumer_waiting = True
                        cond.wait(0.1)
                    self._consumer_waiting = False
                continue
            if locked:
                with cond:
                    if not items:
                        continue
                    item = items.popleft()
            else:
                item = items.popleft()
            if type(item) is Buffer or isinstance(item, Buffer):
                self._out_bytes += item._size
                if item.duration > 0:
                    self._out_time += item.duration
                self._out += 1
                if self._producer_waiting:
                    with cond:
                        if self._producer_waiting:
                            self._producer_waiting = False
                            cond.notify()
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
            "level_buffers": self.level_buffers,
            "level_bytes": self.level_bytes,
            "max_level_buffers": self.max_level,
            "dropped": self.dropped,
        }
