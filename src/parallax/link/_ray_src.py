"""`raysrc`: the source at the head of a Ray stage, and its inbox. Internal to the Ray link.

A `StageActor` (`_ray_actor.py`) makes one and hands it to the stage's `build` callable;
the actor's push threads `deliver()` the buffers a `RayLink` sends. It is not registered
as an element factory: nothing outside an actor would feed it, so a launch string cannot
name it (its factory name, `raysrc`, shows in metrics and reports only).

- `_Inbox`: the bounded queue between the push threads and the streaming thread. Pushes
  are admitted in index order (threads do not keep Ray's submission order); `close()`
  drops what is queued and makes every waiting and later put return False.
- `_Received`: the memory of one received buffer, the array (a read-only view of the
  object store, or of the call that carried it) and the ObjectRef that pins it in Ray.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Final

import numpy as np

from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import Media, Property, Source, wait_or_flush

Meta = tuple[str | None, int, int, int, int, int, int]
# ^ caps text (None: no caps), sequence, pts, dts, duration, offset, flags


class _Received:
    """The memory of one received buffer: the array (a read-only view of the object store,
    or of the call that carried it) and the ObjectRef that pins the object in Ray."""

    __slots__ = ("array", "ref", "view")

    def __init__(self, array: np.ndarray[Any, Any], ref: Any) -> None:
        self.array = array
        self.ref = ref
        self.view = array.data  # a memoryview that references the array, and so the store


_EOS: Final = object()


class _Inbox:
    """The bounded queue between the actor's push threads and the RaySrc's streaming
    thread. Pushes are admitted in index order; `close()` drops what is queued and makes
    every waiting and later put return False."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[object] = deque()
        self._cond = threading.Condition()
        self._next = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, index: int, item: object) -> bool:
        """Queue `item` once every lower index is queued and there is room; False if the
        inbox closed first (the item is dropped)."""
        with self._cond:
            while not self._closed and (index != self._next or len(self._items) >= self.capacity):
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._next += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> object | None:
        """The oldest item, or None after `timeout` seconds or a wake()."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def wake(self) -> None:
        """Wake a waiting get() so a stopping source can leave."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()  # drops the arrays, and so the object-store pins
            self._cond.notify_all()


class RaySrc(Source[Media], factory="raysrc"):
    """Push the buffers a `RayLink` sends, read-only and without copying them.

    Internal: made by `StageActor` only and handed to the stage's `build` callable;
    buffers arrive by `deliver()` from the actor's threads (not registered, so launch
    strings cannot name it). Each pushed Buffer views the object-store array
    it came in and keeps it (and its ObjectRef) alive for as long as the Buffer lives.
    """

    klass = "Source/Network"
    description = "Receive buffers sent by a RayLink through Ray's object store"

    caps = Property(
        Caps.any(),
        doc="caps of the stream (each buffer also carries its own)",
        parse=Caps.from_string,
    )
    max_buffers = Property(8, doc="buffers queued before the link's pushes wait", minimum=1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._inbox = _Inbox(self.max_buffers)
        # (caps text, parsed caps), swapped as one object: push threads share it
        self._caps_cache: tuple[str | None, Caps | None] = (None, None)

    def output_caps(self) -> Caps:
        return self.caps

    def start(self) -> None:
        self._inbox.capacity = self.max_buffers  # build() may have changed it

    def metrics_extra(self) -> dict[str, Any]:
        """Buffers waiting in the inbox, for `Pipeline.metrics()`."""
        return {"queued": len(self._inbox)}

    def deliver(self, index: int, array: np.ndarray[Any, Any], ref: Any, meta: Meta) -> bool:
        """Queue one received buffer (the `index`-th of the link). Blocks while the inbox is
        full; returns False if the stage ended first (the buffer is dropped)."""
        caps_text, sequence, pts, dts, duration, offset, flags = meta
        cache = self._caps_cache
        if cache[0] != caps_text:
            cache = (caps_text, None if caps_text is None else Caps.from_string(caps_text))
            self._caps_cache = cache
        buf = Buffer(
            _Received(array, ref),
            caps=cache[1],
            sequence=sequence,
            pts=pts,
            dts=dts,
            duration=duration,
            offset=offset,
            flags=flags,
            readonly=True,
        )
        return self._inbox.put(index, buf)

    def deliver_eos(self, index: int) -> bool:
        """Queue the end of the stream after every buffer before `index`."""
        return self._inbox.put(index, _EOS)

    def close_inbox(self) -> None:
        """The stage ended: drop what is queued, refuse what comes."""
        self._inbox.close()

    def create(self) -> Buffer | None:
        item = wait_or_flush(self._inbox.get, lambda: not self._running)
        if isinstance(item, Buffer):  # else the end of the stream, or the stage stops
            if item.caps is None:
                item.caps = self.srcpad.caps
            return item
        return None

    def deactivate(self) -> None:
        super().deactivate()
        self._inbox.wake()
