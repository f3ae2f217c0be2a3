"""Shared-memory process link: `Publisher` and `Subscriber` (iceoryx2-style loans).

Operations: `Publisher.loan()` / `send()` / `send_eos()`, `Subscriber.receive()`, and the
drop of a received Buffer's last reference (its release). See docs/links.md.

Plan:
- The publisher owns a memfd-backed `SlotPool`, sealed against shrink and grow, and listens
  on an ABSTRACT Unix socket "\\0parallax/<uid>/<service>" (nothing on disk to clean up after
  a kill -9). SOCK_SEQPACKET keeps message boundaries and lets the fd ride with a message.
- On connect the publisher checks SO_PEERCRED (same uid only; socket(7)), then sends HELLO
  with the memfd by SCM_RIGHTS, once. Afterwards a buffer is one small BUFFER message (slot,
  window, metadata, caps only when they changed for that subscriber); the subscriber answers
  RELEASE slot N when its last reference to that buffer drops, BYE when it closes.
- The publisher keeps each sent `Slot` in a dict with a per-slot count of subscribers that
  hold it (plus one while `send()` runs); the Slot object, and so the loan, drops when the
  count reaches zero. `SlotPool._release` stays the one place an index comes back.
- A subscriber whose socket closes (BYE, exit, kill -9) gives back every slot it held; a
  disconnect without BYE is reported (`Publisher.errors`, a logging warning).
- The publisher's I/O (accept, RELEASE/BYE) runs in ONE thread (selectors), joined by
  close(). The subscriber has no thread: receive() reads the socket; releases are sent from
  the owner's `__del__` with MSG_DONTWAIT and never raise (a full socket queues them, and
  the next receive() flushes the queue).

Limits: one host, one uid. A subscriber that stops reading pins at most what it was sent;
with leaky=True send() skips a subscriber holding half the pool or more.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import select
import selectors
import socket
import struct
import threading
import time
import weakref
from typing import Any, Final, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError, PoolExhausted
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.memory import MemfdSegment, Slot, SlotPool

log = logging.getLogger(__name__)

# Wire format (little-endian). Every message starts with a u8 kind.
MAGIC: Final = b"PLXS"
VERSION: Final = 1
HELLO: Final = struct.Struct("<B3x4sHHIQQ")  # kind, magic, version, 0, slots, slot_size, size
BUFFER: Final = struct.Struct("<B3xIQQqqqqqII")
# ^ kind, slot, start (in the slot), length, sequence, pts, dts, duration, offset, flags,
#   caps length (0: same caps as this subscriber's last buffer; 0xFFFFFFFF: caps are None)
RELEASE: Final = struct.Struct("<B3xI")  # kind, slot
_UCRED: Final = struct.Struct("<3i")  # struct ucred: pid, uid, gid

# HELLO carries one u64 offset per slot and must fit one SEQPACKET message (< wmem_default,
# 208 KiB); 4096 slots (32 KiB) is far more than a pool of loans needs.
MAX_SLOTS: Final = 4096
MAX_CAPS: Final = 4096  # bytes of caps text per message; a caps string is far shorter
_NO_CAPS: Final = 0xFFFFFFFF
_RX_SIZE: Final = BUFFER.size + MAX_CAPS


class Kind(enum.IntEnum):
    """The first byte of every link message."""

    HELLO = 1
    BUFFER = 2
    EOS = 3
    RELEASE = 4
    BYE = 5


def address(service: str) -> str:
    """The abstract socket name of `service` for this uid (no file is created)."""
    if not service or "\0" in service or len(service) > 64:
        raise ValueError(f"service name must be 1-64 characters without NUL, got {service!r}")
    return f"\0parallax/{os.getuid()}/{service}"


class Sample:
    """A writable slot loaned by `Publisher.loan()`; fill `view`, then `Publisher.send()`.

    Made only by `Publisher.loan()`. Dropping a Sample without sending it returns its slot.
    """

    __slots__ = ("_slot", "_view")

    _slot: Slot | None
    _view: memoryview | None

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Sample has no public constructor: loan one with Publisher.loan()")

    @property
    def view(self) -> memoryview:
        """The slot's bytes, writable (`np.asarray(sample.view)` is a view). No copy."""
        view = self._view
        if view is None:
            view = self._view = self._taken().view()
        return view

    def _taken(self) -> Slot:
        if self._slot is None:
            raise ClosedError("this sample was sent: loan a new one")
        return self._slot

    @property
    def index(self) -> int:
        """The slot's number in the publisher's pool."""
        return self._taken().index

    @property
    def size(self) -> int:
        """Capacity in bytes (the publisher's slot_size)."""
        return self._taken().size

    def __repr__(self) -> str:
        slot = self._slot
        return (
            "<Sample (sent)>" if slot is None else f"<Sample slot={slot.index} size={slot.size:,}>"
        )


class _Peer:
    """The publisher's side of one subscriber connection."""

    __slots__ = ("caps", "held", "name", "pending", "sock")

    def __init__(self, sock: socket.socket, pid: int, slots: int) -> None:
        self.sock = sock
        self.name = f"subscriber pid {pid}"
        self.held = [0] * slots  # sent, not yet released, per slot
        self.pending = 0  # sum(held)
        self.caps: str | None = None  # caps text of the last buffer sent to it


def _close_publisher(
    thread: threading.Thread, wake: int, sel: selectors.BaseSelector, lsock: socket.socket
) -> None:
    """Finalizer net for a forgotten Publisher: the thread stops when `wake` fires."""
    if thread.is_alive():
        os.eventfd_write(wake, 1)
        if thread is not threading.current_thread():
            thread.join()
    sel.close()
    lsock.close()
    os.close(wake)


class Publisher:
    """Publish buffers to subscribers in other processes (or this one) by shared memory.

    Owns a memfd SlotPool of `slots` x `slot_size` bytes, a listening socket and one I/O
    thread: `close()` it, or use `with`. A slot sent to subscribers returns to the pool when
    every subscriber that got it has released it, or has disconnected.

    Args:
        service: the name subscribers connect to (per uid; 1-64 characters).
        slot_size, slots: the pool geometry.
        leaky: send() skips a subscriber that holds half the pool or more, instead of
            letting it pin every slot; skipped buffers are counted in `dropped`.

    Raises:
        ValueError: a bad service name or geometry.
        OSError: the service is already published (EADDRINUSE), or another OS refusal.
    """

    def __init__(self, service: str, *, slot_size: int, slots: int = 16, leaky: bool = False):
        name = address(service)
        if not 0 < slots <= MAX_SLOTS:
            raise ValueError(f"publisher {service!r}: slots must be 1 to {MAX_SLOTS}, got {slots}")
        self._service = service
        self._leaky = leaky
        self._limit = max(1, slots // 2)
        self._pool = SlotPool(slot_size, slots, name=f"ipc:{service}")
        lsock = sel = None
        wake = -1
        try:
            segment = self._pool.segment
            assert isinstance(segment, MemfdSegment)
            segment.seal(shrink=True, grow=True)
            self._fd = segment.fd
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            lsock.bind(name)
            lsock.listen(16)
            lsock.setblocking(False)
            wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            sel = selectors.DefaultSelector()
            sel.register(lsock, selectors.EVENT_READ, None)
            sel.register(wake, selectors.EVENT_READ, None)
        except BaseException:
            for res in (sel, lsock):
                if res is not None:
                    res.close()
            if wake >= 0:
                os.close(wake)
            self._pool.close()
            raise
        self._lsock, self._wake, self._sel = lsock, wake, sel
        self._lock = threading.Condition()
        self._peers: dict[int, _Peer] = {}  # by socket fd
        self._sent: dict[int, Slot] = {}  # slot index -> the loan, while anyone holds it
        self._refs = [0] * slots
        self._errors: collections.deque[BrokenError] = collections.deque(maxlen=64)
        self._closed = False
        self.dropped = 0
        # A daemon, so that a forgotten publisher cannot hold up interpreter exit; the
        # finalizer (run at exit at the latest) still wakes and joins it.
        self._thread = threading.Thread(
            target=self._serve, name=f"parallax:ipc:{service}", daemon=True
        )
        self._finalizer = weakref.finalize(self, _close_publisher, self._thread, wake, sel, lsock)
        self._thread.start()

    # -- the hot path -------------------------------------------------------------------

    def loan(self, timeout: float | None = None) -> Sample:
        """Loan a writable slot; waits for one while all are held (`timeout` seconds, or
        forever with None).

        Raises:
            PoolExhausted: no slot came back within `timeout`.
            ClosedError: the publisher is (or gets) closed.
        """
        if self._closed:
            raise ClosedError(f"cannot loan from closed publisher {self._service!r}")
        slot = self._pool.try_loan()
        if slot is None:
            if timeout is not None:
                slot = self._pool.loan(timeout)
            else:
                while slot is None:
                    with contextlib.suppress(PoolExhausted):
                        slot = self._pool.loan(1.0)
        sample = Sample.__new__(Sample)
        sample._slot, sample._view = slot, None
        return sample

    def send(
        self,
        sample: Sample,
        size: int | None = None,
        *,
        caps: Caps | None = None,
        sequence: int = 0,
        pts: int = -1,
        dts: int = -1,
        duration: int = -1,
        offset: int = -1,
        flags: int = 0,
    ) -> int:
        """Send the first `size` bytes (default: all) of `sample` to every subscriber.

        The sample is consumed: do not use it or its view afterwards. Returns the number of
        subscribers it reached (0: nobody listens, and the slot is free again at once).

        Raises:
            ValueError: `size` exceeds the slot, or the caps text exceeds MAX_CAPS bytes.
            ClosedError: the publisher is closed.
        """
        slot = sample._taken()
        size = slot.size if size is None else size
        if not 0 <= size <= slot.size:
            raise ValueError(f"send size {size:,} is outside slot {slot.index} of {slot.size:,}")
        if self._closed:
            raise ClosedError(f"cannot send on closed publisher {self._service!r}")
        text = None if caps is None else str(caps)
        raw = b"" if text is None else text.encode()
        if len(raw) > MAX_CAPS:
            raise ValueError(f"caps text is {len(raw):,} bytes; the link carries {MAX_CAPS:,}")
        index = slot.index
        head = (Kind.BUFFER, index, 0, size, sequence, pts, dts, duration, offset, flags)
        same = BUFFER.pack(*head, 0)
        changed = BUFFER.pack(*head, _NO_CAPS if text is None else len(raw)) + raw
        sample._slot = sample._view = None  # consumed
        with self._lock:
            self._sent[index] = slot
            self._refs[index] += 1  # ours, while sending
            targets = list(self._peers.values())
        del slot
        reached = 0
        for peer in targets:
            if self._leaky and peer.pending >= self._limit:
                self.dropped += 1
                continue
            with self._lock:
                if peer.sock.fileno() < 0:
                    continue
                self._refs[index] += 1
                peer.held[index] += 1
                peer.pending += 1
            try:
                self._push(peer, same if peer.caps == text else changed)
            except OSError as e:
                self._drop(peer, e)  # gives back what it held, this slot included
                continue
            peer.caps = text
            reached += 1
        with self._lock:
            self._unref(index)
        return reached

    def _push(self, peer: _Peer, message: bytes) -> None:
        # Non-blocking; a full socket (the subscriber is not reading) waits for room,
        # in short polls so that close() is never held up.
        while True:
            try:
                peer.sock.send(message, socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                if self._closed:
                    raise ClosedError(f"publisher {self._service!r} closed while sending") from None
                select.select([], [peer.sock], [], 0.1)

    def _unref(self, index: int) -> None:
        # Under self._lock. The Slot drops here, and its index returns to the pool.
        self._refs[index] -= 1
        if self._refs[index] == 0:
            del self._sent[index]

    def send_eos(self) -> None:
        """Tell every subscriber the stream ended (their receive() returns None, `ended`)."""
        self._send_eos(report=True)

    def _send_eos(self, *, report: bool) -> None:
        message = bytes([Kind.EOS])
        with self._lock:
            targets = list(self._peers.values())
        for peer in targets:
            try:
                self._push(peer, message)
            except OSError as e:
                self._drop(peer, e if report else None)

    # -- the I/O thread -----------------------------------------------------------------

    def _serve(self) -> None:
        sel = self._sel
        while True:
            for key, _ in sel.select():
                if key.fd == self._wake:
                    return
                if key.fileobj is self._lsock:
                    self._accept()
                else:
                    self._read(key.data)

    def _accept(self) -> None:
        try:
            conn, _ = self._lsock.accept()
        except BlockingIOError:
            return
        pid, uid, _gid = _UCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        if uid != os.getuid():
            conn.close()
            self._report(
                BrokenError(
                    f"publisher {self._service!r} refused pid {pid}: uid {uid} is not "
                    f"uid {os.getuid()} (SO_PEERCRED)"
                )
            )
            return
        pool = self._pool
        peer = _Peer(conn, pid, pool.slots)
        try:
            # Slot offsets travel in HELLO: `slots` u64s after the header.
            offsets = struct.pack(f"<{pool.slots}Q", *pool._offsets)
            size = pool.segment.size
            hello = HELLO.pack(Kind.HELLO, MAGIC, VERSION, 0, pool.slots, pool.slot_size, size)
            socket.send_fds(conn, [hello + offsets], [self._fd])
            conn.setblocking(False)
        except OSError as e:
            conn.close()
            self._report(BrokenError(f"publisher {self._service!r}: {peer.name} hung up"), e)
            return
        with self._lock:
            self._peers[conn.fileno()] = peer
            self._sel.register(conn, selectors.EVENT_READ, peer)
            self._lock.notify_all()

    def _read(self, peer: _Peer) -> None:
        sock = peer.sock
        while True:
            try:
                data = sock.recv(64)
            except BlockingIOError:
                return
            except OSError as e:
                self._drop(peer, e)
                return
            if not data or data[0] == Kind.BYE:
                self._drop(peer, None if data else ConnectionResetError("no BYE"))
                return
            if data[0] != Kind.RELEASE or len(data) != RELEASE.size:
                self._drop(peer, ValueError(f"bad message {data[:16]!r}"))
                return
            index = RELEASE.unpack(data)[1]
            with self._lock:
                if index >= len(peer.held) or not peer.held[index]:
                    bad = ValueError(f"release of slot {index}, which it does not hold")
                else:
                    bad = None
                    peer.held[index] -= 1
                    peer.pending -= 1
                    self._unref(index)
            if bad is not None:
                self._drop(peer, bad)
                return

    def _drop(self, peer: _Peer, error: BaseException | None) -> None:
        """Forget `peer` and give back every slot it held; report it unless it said BYE."""
        with self._lock:
            fd = peer.sock.fileno()
            if fd < 0 or self._peers.get(fd) is not peer:
                return
            del self._peers[fd]
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(peer.sock)
            peer.sock.close()
            held = peer.pending
            for index, n in enumerate(peer.held):
                for _ in range(n):
                    self._unref(index)
            peer.held = [0] * len(peer.held)
            peer.pending = 0
        if error is not None:
            self._report(
                BrokenError(
                    f"publisher {self._service!r}: {peer.name} went away holding {held} "
                    f"slot(s); reclaimed them"
                ),
                error,
            )

    def _report(self, error: BrokenError, cause: BaseException | None = None) -> None:
        error.__cause__ = cause
        self._errors.append(error)
        log.warning("%s", error)

    # -- state --------------------------------------------------------------------------

    @property
    def service(self) -> str:
        """The service name."""
        return self._service

    @property
    def slot_size(self) -> int:
        """Bytes per slot."""
        return self._pool.slot_size

    @property
    def slots(self) -> int:
        """Number of slots in the pool."""
        return self._pool.slots

    @property
    def available(self) -> int:
        """Slots free to loan right now (a snapshot)."""
        return self._pool.available

    @property
    def subscribers(self) -> int:
        """Connected subscribers right now."""
        return len(self._peers)

    @property
    def errors(self) -> list[BrokenError]:
        """Subscribers that went away without BYE or were refused (the latest 64)."""
        return list(self._errors)

    def wait_for_subscribers(self, n: int = 1, timeout: float | None = None) -> bool:
        """Wait until at least `n` subscribers are connected; False after `timeout` s."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._peers) >= n or self._closed, timeout)

    def close(self) -> None:
        """Send EOS, disconnect every subscriber, stop the thread, close the pool. Idempotent.

        Buffers subscribers still hold stay readable (their mappings are their own).
        """
        if self._closed:
            return
        self._send_eos(report=False)  # a subscriber that already left is no error now
        self._closed = True
        with self._lock:
            self._lock.notify_all()
        os.eventfd_write(self._wake, 1)
        self._thread.join()
        for peer in list(self._peers.values()):
            self._drop(peer, None)
        self._finalizer()
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.subscribers} subscriber(s)"
        return f"<Publisher {self._service!r} {self.slots} x {self.slot_size:,} bytes {state}>"


# -- the subscriber -----------------------------------------------------------------------


class _LoanArray(np.ndarray[tuple[int], np.dtype[np.uint8]]):
    """The exporter behind a received buffer's view: keeps its `_Received` alive."""

    _loan: _Received


class _Link:
    """What received buffers share: the socket and the mapping, outliving the Subscriber."""

    __slots__ = ("backlog", "closed", "offsets", "sock", "whole")

    def __init__(self, sock: socket.socket, whole: Any, offsets: tuple[int, ...]) -> None:
        self.sock = sock
        self.whole = whole
        self.offsets = offsets
        self.backlog: collections.deque[bytes] = collections.deque()
        self.closed = False

    def release(self, message: bytes) -> None:
        # Called from finalizers, in any thread: non-blocking, never raises.
        if self.closed:
            return  # the publisher reclaims everything when our socket closes
        try:
            while self.backlog:
                self.sock.send(self.backlog[0], socket.MSG_DONTWAIT)
                self.backlog.popleft()
            self.sock.send(message, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self.backlog.append(message)  # sent by the next release or receive()
        except OSError:
            # The publisher is gone: nothing to return the slot to. Not an error here;
            # receive() reports the broken link.
            self.closed = True


class _Received:
    """The memory owner of a received Buffer: slot `index`, read-only, on loan."""

    __slots__ = ("_index", "_link", "size")

    def __init__(self, link: _Link, index: int, size: int) -> None:
        self._link, self._index, self.size = link, index, size

    def view(self) -> memoryview:
        start = self._link.offsets[self._index]
        array = self._link.whole[start : start + self.size].view(_LoanArray)
        array._loan = self
        return array.data  # type: ignore[no-any-return]

    def __del__(self) -> None:
        # The cross-process twin of Slot.__del__: the last reference (and view) is gone,
        # so tell the publisher. `_Link.release` never blocks and never raises.
        self._link.release(RELEASE.pack(Kind.RELEASE, self._index))


def _close_link(link: _Link, segment: MemfdSegment) -> None:
    if not link.closed:
        link.closed = True
        # Blocking, briefly: a socket full of RELEASEs would drop a non-blocking BYE and
        # make a clean close look like a crash to the publisher.
        with contextlib.suppress(OSError):
            link.sock.settimeout(0.5)
            link.sock.send(bytes([Kind.BYE]))
    link.sock.close()
    segment._discard()  # live buffers keep the mapping until the last of them goes


class Subscriber:
    """Receive buffers from the `Publisher` of `service`, as read-only views of its memory.

    Owns a socket and a read-only mapping: `close()` it, or use `with`. No thread.
    Received buffers stay valid after close(); each returns its slot to the publisher when
    its last reference (and every view of it) is dropped.

    Args:
        service: the publisher's service name.
        timeout: seconds to wait for the publisher to appear (None: it must exist now).

    Raises:
        BrokenError: no publisher (within `timeout`), or it refused us (another uid).
    """

    def __init__(self, service: str, *, timeout: float | None = None) -> None:
        name = address(service)
        self._service = service
        deadline = time.monotonic() + (timeout or 0.0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
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
                data, fds, _, _ = socket.recv_fds(sock, HELLO.size + 8 * MAX_SLOTS, 1)
            except OSError as e:
                raise BrokenError(f"publisher {service!r} hung up during HELLO") from e
            sock.settimeout(None)
            for extra in fds[1:]:
                os.close(extra)
            if not data or not fds:
                for fd in fds[:1]:
                    os.close(fd)
                raise BrokenError(
                    f"publisher {service!r} refused the connection (another uid?) or exited"
                )
            kind, magic, version, _, slots, slot_size, size = HELLO.unpack_from(data)
            if kind != Kind.HELLO or magic != MAGIC or version != VERSION:
                os.close(fds[0])
                raise BrokenError(f"publisher {service!r} speaks {magic!r} v{version}, not ours")
            offsets = struct.unpack_from(f"<{slots}Q", data, HELLO.size)
            segment = MemfdSegment.from_fd(fds[0], size=size, readonly=True)
        except BaseException:
            sock.close()
            raise
        self._segment = segment
        self._slot_size = int(slot_size)
        self._link = _Link(sock, np.frombuffer(segment.mmap, np.uint8), offsets)
        self._rx = bytearray(_RX_SIZE)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._caps: Caps | None = None
        self._ended = False
        self._finalizer = weakref.finalize(self, _close_link, self._link, segment)

    def receive(self, timeout: float | None = None) -> Buffer | None:
        """The next buffer, read-only and zero-copy; None after `timeout` s or at EOS
        (then `ended` is True).

        Raises:
            BrokenError: the publisher died (its socket closed without EOS).
            ClosedError: this subscriber is closed.
        """
        link = self._link
        if not self._finalizer.alive:
            raise ClosedError(f"cannot receive on closed subscriber {self._service!r}")
        if self._ended:
            return None
        if link.backlog:
            with contextlib.suppress(BlockingIOError):
                while link.backlog:
                    link.sock.send(link.backlog[0], socket.MSG_DONTWAIT)
                    link.backlog.popleft()
        rx = self._rx
        try:
            # The socket stays blocking: a timeout on it would make the finalizers'
            # MSG_DONTWAIT sends wait for room (CPython's sock_call retries after select).
            if timeout is not None and not self._poll.poll(max(timeout, 0.0) * 1000.0):
                return None
            n = link.sock.recv_into(rx)
        except OSError as e:
            link.closed = True
            raise BrokenError(f"publisher {self._service!r} went away") from e
        if n == 0:
            link.closed = True
            raise BrokenError(f"publisher {self._service!r} went away (no EOS)")
        if rx[0] == Kind.EOS:
            self._ended = True
            return None
        _, index, start, size, seq, pts, dts, duration, offset, flags, ncaps = BUFFER.unpack_from(
            rx
        )
        if ncaps == _NO_CAPS:
            self._caps = None
        elif ncaps:
            self._caps = Caps.from_string(rx[BUFFER.size : BUFFER.size + ncaps].decode())
        return Buffer(
            _Received(link, index, self._slot_size),
            start=start,
            size=size,
            caps=self._caps,
            sequence=seq,
            pts=pts,
            dts=dts,
            duration=duration,
            offset=offset,
            flags=flags,
            readonly=True,
        )

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
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if not self._finalizer.alive else "open"
        return f"<Subscriber {self._service!r} {state}>"
