"""A received buffer's memory owner, and the way its slot goes back to the publisher.

Operations: `Received.view()` (a buffer's first look at its bytes), `Received.__del__`
(the drop of its last reference and view: the release), `Releaser.flush()` (the next
`receive()`), `Releaser.close()` (the subscriber's).

Plan: a received Buffer sits on a `Received`, which names its slot; its view is cut from
the per-slot array of the subscriber's read-only mapping and keeps the `Received` alive
(`loan_view`), so the slot cannot go back while anything made from the buffer lives.
When the last of them drops, `__del__` hands the index to `Releaser.release`, in whatever
thread that happens: under a try-lock that never blocks or raises it pushes the index
into the release ring and wakes the publisher if it sleeps; when another thread holds
the lock, the index waits in a local backlog, flushed by the holder or by the next
`receive()`.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable

from parallax.memory import loan_view

from ._loan import SlotArray
from ._ring import PUB_SLEEPING, ControlBlock, ReleaseWriter, Words, fence
from ._wake import wake_if_sleeping


class Releaser:
    """What received buffers share with their Subscriber: the per-slot arrays of the data
    mapping, the release ring and the publisher's wake eventfd.

    `close()` (the Subscriber's) ends the releases and closes the ring and the eventfd;
    the data mapping stays while any buffer lives.
    """

    __slots__ = ("backlog", "block", "closed", "lock", "releases", "slices", "wake", "words")

    words: Words
    wake: int

    def __init__(self, block: ControlBlock, wake: int, slices: tuple[SlotArray, ...]) -> None:
        self.block = block
        self.words = block.words
        self.releases = ReleaseWriter(block)
        self.wake = wake  # the publisher's wake eventfd
        self.slices = slices  # per slot, a read-only uint8 array of the pool's mapping
        self.backlog: collections.deque[int] = collections.deque()
        self.lock = threading.Lock()  # the release ring's producer side, and close()
        self.closed = False

    def release(
        self,
        index: int,
        _fence: Callable[[], None] = fence,
        _wake: Callable[[Words, int, int], None] = wake_if_sleeping,
        _flag: int = PUB_SLEEPING,
    ) -> None:
        """Give slot `index` back. Called from finalizers, in any thread: never blocks,
        never raises. A busy lock leaves the index in the backlog for its holder.

        (The defaults bind what it needs, so that it still works while the interpreter
        exits and module globals are being cleared.)
        """
        lock = self.lock
        if lock.acquire(False):
            try:
                if self.backlog or self.closed or not self.releases.push(index):
                    self.backlog.append(index)
                    self._flush(_fence, _wake, _flag)
                else:
                    _fence()  # our stamp store before the load of the publisher's flag
                    _wake(self.words, _flag, self.wake)
            finally:
                lock.release()
        else:
            self.backlog.append(index)
        # Every holder re-checks the backlog after letting go, so an index appended
        # while the lock was held is never stranded.
        backlog = self.backlog
        while backlog and lock.acquire(False):
            try:
                moved = self._flush(_fence, _wake, _flag)
            finally:
                lock.release()
            if not moved:
                return  # the ring is full (a broken publisher): receive() retries

    def flush(self) -> None:
        """Push the backlog (receive()'s thread; may wait for the lock briefly)."""
        with self.lock:
            self._flush(fence, wake_if_sleeping, PUB_SLEEPING)

    def _flush(
        self, fence: Callable[[], None], wake: Callable[[Words, int, int], None], flag: int
    ) -> int:
        # Under self.lock.
        backlog = self.backlog
        if self.closed:
            backlog.clear()  # the publisher reclaims everything when our socket closes
            return 0
        moved = self.releases.push_all(backlog)
        if moved:
            fence()  # our stamp stores before the load of the publisher's flag
            wake(self.words, flag, self.wake)
        return moved

    def close(self) -> None:
        """End the releases, unmap the control block, close the eventfd. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.backlog.clear()
            self.block.close()
            os.close(self.wake)


class Received:
    """The memory owner of a received Buffer: slot `index`, read-only, on loan.

    Made by `Subscriber.receive()` only (`new_received`), its fields set there.
    """

    __slots__ = ("index", "releaser", "size")

    index: int
    releaser: Releaser
    size: int

    def view(self) -> memoryview:
        """The slot's bytes (read-only); the view keeps this owner, and so the slot."""
        return loan_view(self.releaser.slices[self.index], self)

    def __del__(self) -> None:
        # The cross-process twin of Slot.__del__: the last reference (and view) is gone,
        # so give the slot back. `Releaser.release` never blocks and never raises.
        self.releaser.release(self.index)


new_received = Received.__new__
