"""Shared-memory process link: `Publisher` and `Subscriber` (iceoryx2-style loans).

Operations: `Publisher.loan()` / `send()` / `send_eos()`, `Subscriber.receive()`, and the
drop of a received Buffer's last reference (its release). See docs/links.md.

Layout:
    _hello.py    the socket: service address, HELLO (fd passing), BYE
    _ring.py     the shared-memory rings of one subscriber and their memory ordering
    _shm_pub.py  `Publisher`, `Sample`
    _shm.py      this plan, `Subscriber`, and the memory owner of a received buffer

Plan:
- The publisher owns a memfd-backed `SlotPool`, sealed against shrink and grow, and listens
  on an ABSTRACT Unix socket "\\0parallax/<uid>/<service>" (nothing on disk to clean up after
  a kill -9). SOCK_SEQPACKET keeps message boundaries and lets fds ride with a message.
- On connect the publisher checks SO_PEERCRED (same uid only; socket(7)), makes that
  subscriber a control block (a small sealed memfd: a descriptor ring to it, a release
  ring back, two sleeping flags) and a wake eventfd, and sends HELLO with four fds by
  SCM_RIGHTS, once: the pool's memfd, the control block, the subscriber's wake eventfd
  and its own. From then on the socket carries nothing but a BYE at the end.
- Per buffer, `send()` writes a descriptor (slot, window, metadata, caps only when they
  changed for that subscriber) into the subscriber's ring; `receive()` takes it. When the
  last reference to a received buffer drops, its owner's `__del__` pushes the slot index
  into the release ring (any thread: a try-lock, and a local backlog when the lock is
  busy, flushed by whoever holds it next or by the next `receive()`); `loan()` drains
  the release rings. No syscall and no thread hop per buffer.
- Wake-ups only for a side that sleeps. `receive()` on an empty ring spins `spin` seconds
  (default 50 us), then sets its sleeping flag, fences, re-checks the ring, and sleeps
  in poll() on its wake eventfd and the socket; `send()` publishes, fences, and writes
  the eventfd only if the flag is set. `loan()` on an empty pool does the same against
  the release rings and the publisher's eventfd. (Dekker's handshake: _ring.py.)
- The publisher keeps each sent `Slot` with a count of the subscribers that hold it (plus
  one while `send()` runs); the Slot object, and so the loan, drops when the count reaches
  zero. `SlotPool._release` stays the one place an index comes back.
- Liveness is the socket. A subscriber whose socket closes (BYE, exit, kill -9) gives back
  every slot it held; one without BYE is reported (`Publisher.errors`, a logging warning).
  A subscriber whose publisher's socket closes takes the descriptors already in its ring,
  then gets BrokenError; a sleeping one is woken by POLLHUP at once.
- The publisher's I/O thread (selectors) only accepts and watches the sockets; close()
  joins it. The subscriber has no thread.

Limits: one host, one uid; x86-64 for the fast path (TSO; other CPUs go through libatomic,
see _ring.py). A subscriber that stops reading pins at most what it was sent; with
leaky=True send() skips a subscriber holding half the pool or more. A spinning receive()
burns CPU for up to `spin` seconds (default 200 us) per empty ring; it holds the GIL for
the first 20 us only (os.sched_yield releases it).
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.memory import MemfdSegment

from ._hello import HELLO, HELLO_FDS, MAGIC, MAX_SLOTS, VERSION, Kind, address
from ._ring import (
    EOS_SLOT,
    MAX_CAPS,
    NO_CAPS,
    PUB_SLEEPING,
    SUB_SLEEPING,
    ControlBlock,
    DescriptorReader,
    ReleaseWriter,
    fence,
)
from ._shm_pub import DEFAULT_SPIN, HOT_SPIN, Publisher, Sample

__all__ = [
    "DEFAULT_SPIN",
    "MAX_CAPS",
    "MAX_SLOTS",
    "Kind",
    "Publisher",
    "Sample",
    "Subscriber",
    "address",
]

_HUP: Final = select.POLLHUP | select.POLLERR | select.POLLRDHUP | select.POLLNVAL


class _LoanArray(np.ndarray[tuple[int], np.dtype[np.uint8]]):
    """The exporter behind a received buffer's view: keeps its `_Received` alive."""

    __slots__ = ("_loan",)

    _loan: _Received


class _Link:
    """What received buffers share with their Subscriber: the data mapping, the release
    ring and the publisher's wake eventfd.

    `close()` (the Subscriber's) ends the releases and closes the ring and the eventfd;
    the data mapping stays while any buffer lives.
    """

    __slots__ = (
        "backlog",
        "block",
        "closed",
        "lock",
        "releases",
        "slices",
        "wake",
        "words",
    )

    def __init__(self, block: ControlBlock, wake: int, slices: tuple[Any, ...]) -> None:
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
        _write: Callable[[int, int], None] = os.eventfd_write,
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
                    self._flush(_fence, _write, _flag)
                else:
                    _fence()  # our stamp store before the load of the publisher's flag
                    if self.words[_flag]:
                        try:
                            _write(self.wake, 1)
                        except OSError:
                            pass  # an eventfd write fails only if the counter is full
            finally:
                lock.release()
        else:
            self.backlog.append(index)
        # Every holder re-checks the backlog after letting go, so an index appended
        # while the lock was held is never stranded.
        backlog = self.backlog
        while backlog and lock.acquire(False):
            try:
                moved = self._flush(_fence, _write, _flag)
            finally:
                lock.release()
            if not moved:
                return  # the ring is full (a broken publisher): receive() retries

    def flush(self) -> None:
        """Push the backlog (receive()'s thread; may wait for the lock briefly)."""
        with self.lock:
            self._flush(fence, os.eventfd_write, PUB_SLEEPING)

    def _flush(
        self, fence: Callable[[], None], write: Callable[[int, int], None], flag: int
    ) -> int:
        # Under self.lock.
        backlog = self.backlog
        if self.closed:
            backlog.clear()  # the publisher reclaims everything when our socket closes
            return 0
        moved = self.releases.push_all(backlog)
        if moved:
            fence()  # our stamp stores before the load of the publisher's flag (_ring.py)
            if self.words[flag]:
                try:
                    write(self.wake, 1)
                except OSError:
                    pass  # an eventfd write fails only if the counter is full
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


class _Received:
    """The memory owner of a received Buffer: slot `index`, read-only, on loan."""

    __slots__ = ("_index", "_link", "size")

    _index: int
    _link: _Link
    size: int

    def view(self) -> memoryview:
        array = self._link.slices[self._index].view(_LoanArray)
        array._loan = self
        return array.data  # type: ignore[no-any-return]

    def __del__(self) -> None:
        # The cross-process twin of Slot.__del__: the last reference (and view) is gone,
        # so give the slot back. `_Link.release` never blocks and never raises.
        self._link.release(self._index)


_new_received = _Received.__new__
_new_buffer = Buffer.__new__


def _close_subscriber(link: _Link, sock: socket.socket, wake: int, segment: MemfdSegment) -> None:
    link.close()
    # Blocking, briefly: BYE tells the publisher this close is no crash.
    with contextlib.suppress(OSError):
        sock.settimeout(0.5)
        sock.send(bytes([Kind.BYE]))
    sock.close()
    os.close(wake)
    segment._discard()  # live buffers keep the mapping until the last of them goes


class Subscriber:
    """Receive buffers from the `Publisher` of `service`, as read-only views of its memory.

    Owns a socket, a wake eventfd, the control block and a read-only mapping of the pool:
    `close()` it, or use `with`. No thread. Received buffers stay valid after close();
    each returns its slot to the publisher when its last reference (and every view of
    it) is dropped. One thread at a time may call receive().

    Args:
        service: the publisher's service name.
        timeout: seconds to wait for the publisher to appear (None: it must exist now).
        spin: seconds receive() polls an empty ring before it sleeps (0: sleep at once);
            after the first 20 us each poll yields the CPU (DEFAULT_SPIN says why).

    Raises:
        BrokenError: no publisher (within `timeout`), or it refused us (another uid).
    """

    def __init__(
        self, service: str, *, timeout: float | None = None, spin: float = DEFAULT_SPIN
    ) -> None:
        name = address(service)
        self._service = service
        self._spin = max(spin, 0.0)
        deadline = time.monotonic() + (timeout or 0.0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        fds: list[int] = []
        segment = block = None
        try:
            while True:
                try:
                    sock.connect(name)
                    break
                except (ConnectionRefusedError, FileNotFoundError) as e:
                    if time.monotonic() >= deadline:
                        raise BrokenError(f"no publisher for service {service!r}") from e
                    time.sleep(0.01)
            sock.settimeout(5.0)  # HELLO follows accept at once; 5 s is generous
            try:
                data, fds, _, _ = socket.recv_fds(sock, HELLO.size + 8 * MAX_SLOTS, HELLO_FDS)
            except OSError as e:
                raise BrokenError(f"publisher {service!r} hung up during HELLO") from e
            sock.settimeout(None)
            if len(data) < HELLO.size or len(fds) != HELLO_FDS:
                raise BrokenError(
                    f"publisher {service!r} refused the connection (another uid?) or exited"
                )
            kind, magic, version, _, slots, slot_size, size = HELLO.unpack_from(data)
            if kind != Kind.HELLO or magic != MAGIC or version != VERSION:
                raise BrokenError(f"publisher {service!r} speaks {magic!r} v{version}, not ours")
            if len(data) != HELLO.size + 8 * slots:
                raise BrokenError(f"publisher {service!r} sent a HELLO of {len(data)} bytes")
            offsets = struct.unpack_from(f"<{slots}Q", data, HELLO.size)
            data_fd, ctl_fd, wake, pub_wake = fds
            fds = [ctl_fd, wake, pub_wake]  # from_fd owns data_fd from here on
            segment = MemfdSegment.from_fd(data_fd, size=size, readonly=True)
            fds = [wake, pub_wake]  # and attach() ctl_fd
            try:
                block = ControlBlock.attach(ctl_fd)
            except ValueError as e:
                raise BrokenError(f"publisher {service!r} sent a bad control block") from e
        except BaseException:
            for fd in fds:
                os.close(fd)
            for res in (block, segment, sock):
                if res is not None:
                    res.close()
            raise
        self._slots = int(slots)
        self._slot_size = int(slot_size)
        whole = np.frombuffer(segment.mmap, np.uint8)
        slices = tuple(whole[o : o + slot_size] for o in offsets)
        self._link = link = _Link(block, pub_wake, slices)
        self._words = link.words
        self._ring = DescriptorReader(block)
        self._wake = wake
        self._poll = select.poll()
        self._poll.register(wake, select.POLLIN)
        self._poll.register(sock, select.POLLRDHUP)  # POLLHUP always: the publisher is gone
        self._caps: Caps | None = None
        self._ended = False
        self._open = True
        self._finalizer = weakref.finalize(self, _close_subscriber, link, sock, wake, segment)

    def receive(self, timeout: float | None = None) -> Buffer | None:
        """The next buffer, read-only and zero-copy; None after `timeout` s or at EOS
        (then `ended` is True).

        Raises:
            BrokenError: the publisher died (its socket closed without EOS), or sent a
                descriptor that makes no sense.
            ClosedError: this subscriber is closed.
        """
        if not self._open:
            raise ClosedError(f"cannot receive on closed subscriber {self._service!r}")
        if self._ended:
            return None
        link = self._link
        if link.backlog:
            link.flush()
        try:
            entry = self._ring.get()
            if entry is None:
                entry = self._wait(timeout)
                if entry is None:
                    return None
        except ValueError as e:
            raise BrokenError(f"publisher {self._service!r} broke the ring: {e}") from e
        size, index, caps, flags, sequence, pts, dts, duration, offset = entry
        if index == EOS_SLOT:
            self._ended = True
            return None
        if caps:
            self._caps = None if caps == NO_CAPS else Caps.from_string(caps)
        if index >= self._slots:
            raise BrokenError(f"publisher {self._service!r} sent slot {index} of {self._slots}")
        # The owner first: from here on, dropping it gives the slot back.
        owner = _new_received(_Received)
        owner._link, owner._index, owner.size = link, index, self._slot_size
        if size > self._slot_size:
            raise BrokenError(
                f"publisher {self._service!r} sent {size:,} bytes in a slot of {self._slot_size:,}"
            )
        # Buffer's fields, set once (Buffer._wrap's fast path, with all of them known).
        buf = _new_buffer(Buffer)
        buf._owner, buf._mem, buf._start, buf._size, buf._readonly = owner, None, 0, size, True
        buf.caps, buf.sequence, buf.pts, buf.dts = self._caps, sequence, pts, dts
        buf.duration, buf.offset, buf.flags = duration, offset, flags
        return buf

    def _wait(self, timeout: float | None) -> tuple[Any, ...] | None:
        """receive()'s slow path: spin, then sleep until a descriptor comes."""
        ring = self._ring
        ready = ring.ready
        spin = self._spin if timeout is None else min(self._spin, timeout)
        if spin > 0:  # see DEFAULT_SPIN
            clock, now = time.perf_counter, time.perf_counter()
            end, hot = now + spin, now + min(spin, HOT_SPIN)
            while now < end:
                if ready():
                    return ring.get()
                now = clock()
                if now > hot:
                    os.sched_yield()
        deadline = None if timeout is None else time.monotonic() + timeout
        words = self._words
        try:
            while True:
                words[SUB_SLEEPING] = 1
                fence()  # our flag before our load of the stamp (see Publisher.send)
                if ready():
                    return ring.get()
                wait = -1.0
                if deadline is not None:
                    wait = (deadline - time.monotonic()) * 1000.0
                    if wait <= 0:
                        return None
                for fd, events in self._poll.poll(wait):
                    if fd == self._wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(fd)
                    elif events & _HUP:
                        if ready():  # what it sent before it went comes first
                            return ring.get()
                        raise BrokenError(f"publisher {self._service!r} went away (no EOS)")
        finally:
            words[SUB_SLEEPING] = 0

    @property
    def ended(self) -> bool:
        """True once the publisher sent EOS."""
        return self._ended

    @property
    def slot_size(self) -> int:
        """The publisher's slot size in bytes."""
        return self._slot_size

    def close(self) -> None:
        """Say BYE and close the socket. Idempotent; received buffers stay readable."""
        self._open = False
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<Subscriber {self._service!r} {state}>"
