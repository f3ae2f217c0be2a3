"""The publisher end of the shared-memory link: `Publisher` and its loans, `Sample`.

Operations: `loan()`, `send()`, `send_eos()` (the caller's thread), accept and disconnect
(the I/O thread). `_shm.py` has the plan of the whole link; docs/links.md the picture.

Per buffer, `send()` writes one descriptor into each subscriber's ring, and `loan()`
drains each subscriber's release ring: no syscall, no thread hop, unless a subscriber
sleeps (then one eventfd write wakes it) or the pool is empty (then `loan()` spins, then
sleeps on the publisher's wake eventfd, which a releasing subscriber writes when it
sees the publisher's sleeping flag). Slot bookkeeping (who holds which slot) changes
under one lock, taken once per `loan()` and once per `send()`; the I/O thread takes it
to add a subscriber or to give back everything a dead one held.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import selectors
import socket
import struct
import threading
import time
import weakref
from sys import getrefcount
from typing import Final, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError
from parallax.caps import Caps
from parallax.memory import MemfdSegment, Slot, SlotPool

from ._hello import HELLO, MAGIC, MAX_SLOTS, UCRED, VERSION, Kind, address
from ._ring import (
    EOS_SLOT,
    MAX_CAPS,
    NO_CAPS,
    PUB_SLEEPING,
    SUB_SLEEPING,
    ControlBlock,
    DescriptorWriter,
    ReleaseReader,
    fence,
)

log = logging.getLogger("parallax.link._shm")

# iceoryx2's subscribers poll; ours spin this long before sleeping. A buffer that comes
# within it costs no wake-up: on our 2-vCPU VM an eventfd wake-up takes 20-50 us from
# write to running, and once both sides of a stream sleep they wait that long for each
# other, round after round (benches/ipc.py at 4 KiB with a flat 50 us spin: 98k-360k
# buffers/s from run to run; with this policy 360k-370k). The first HOT_SPIN seconds
# poll flat out, so a reply within microseconds, as in a ping-pong, is seen at once; after
# that each poll yields the CPU and the GIL (sched_yield, 0.2 us), so a spinner that
# shares its CPU with its peer (or with anything else) lets it run.
DEFAULT_SPIN: Final = 200e-6
HOT_SPIN: Final = 20e-6
_NAP: Final = 0.05  # s: a sleeping loan() re-checks the pool at least this often
_EFD_FLAGS: Final = os.EFD_CLOEXEC | os.EFD_NONBLOCK


class _SampleArray(np.ndarray[tuple[int], np.dtype[np.uint8]]):
    """The exporter behind `Sample.view`: keeps the sample's Slot (its loan) alive."""

    __slots__ = ("_slot",)

    _slot: Slot


class Sample:
    """A writable slot loaned by `Publisher.loan()`; fill `view`, then `Publisher.send()`.

    Made only by `Publisher.loan()`. Dropping a Sample without sending it returns its slot.
    """

    __slots__ = ("_slices", "_slot", "_view")

    _slices: tuple[np.ndarray[tuple[int], np.dtype[np.uint8]], ...]
    _slot: Slot | None
    _view: memoryview | None

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Sample has no public constructor: loan one with Publisher.loan()")

    @property
    def view(self) -> memoryview:
        """The slot's bytes, writable (`np.asarray(sample.view)` is a view). No copy.

        As `Slot.view()`, the view (and anything made from it) keeps the slot on loan,
        so a view kept past send() never sees its slot loaned again.
        """
        view = self._view
        if view is None:
            slot = self._slot
            if slot is None:
                raise ClosedError("this sample was sent: loan a new one")
            # Slot.view(), from an array per slot made once: 0.2 us, not 0.55.
            array = self._slices[slot.index].view(_SampleArray)
            array._slot = slot
            view = self._view = array.data
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


_new_sample = Sample.__new__


class _Peer:
    """The publisher's side of one subscriber: socket, control block, wake eventfd.

    Owns all three (`close()`); the publisher changes its bookkeeping under its lock.
    """

    __slots__ = (
        "block",
        "caps",
        "eos",
        "held",
        "name",
        "pending",
        "releases",
        "ring",
        "sock",
        "wake",
        "words",
    )

    def __init__(self, sock: socket.socket, pid: int, slots: int, service: str) -> None:
        self.sock = sock
        self.name = f"subscriber pid {pid}"
        self.held = [0] * slots  # sent, not yet released, per slot (0 or 1)
        self.pending = 0  # sum(held)
        self.caps: str | None = None  # caps text of the last buffer sent to it
        self.eos = False  # EOS sent, and no buffer since
        self.wake = -1
        self.block = ControlBlock.create(slots, name=f"ipc-ctl:{service}")
        try:
            self.wake = os.eventfd(0, _EFD_FLAGS)
        except BaseException:
            self.block.close()
            raise
        self.words = self.block.words
        self.ring = DescriptorWriter(self.block)
        self.releases = ReleaseReader(self.block)

    def close(self) -> None:
        """Close the socket, unmap the control block, close the eventfd. Idempotent."""
        self.sock.close()
        self.block.close()
        wake, self.wake = self.wake, -1
        if wake >= 0:
            os.close(wake)


def _close_publisher(
    thread: threading.Thread,
    eventfds: tuple[int, int],
    sel: selectors.BaseSelector,
    lsock: socket.socket,
    peers: dict[int, _Peer],
) -> None:
    """Finalizer net for a forgotten Publisher: the thread stops when `stop` fires."""
    stop, wake = eventfds
    if thread.is_alive():
        os.eventfd_write(stop, 1)
        if thread is not threading.current_thread():
            thread.join()
    for peer in list(peers.values()):
        peer.close()
    peers.clear()
    sel.close()
    lsock.close()
    os.close(stop)
    os.close(wake)


class Publisher:
    """Publish buffers to subscribers in other processes (or this one) by shared memory.

    Owns a memfd SlotPool of `slots` x `slot_size` bytes, a listening socket, one I/O
    thread, and per subscriber a control block and a socket: `close()` it, or use
    `with`. A slot sent to subscribers returns to the pool when every subscriber that
    got it has released it, or has disconnected.

    Args:
        service: the name subscribers connect to (per uid; 1-64 characters).
        slot_size, slots: the pool geometry.
        leaky: send() skips a subscriber that holds half the pool or more, instead of
            letting it pin every slot; skipped buffers are counted in `dropped`.
        spin: seconds loan() polls for a returning slot, when the pool is empty, before
            it sleeps (0: sleep at once); after the first 20 us each poll yields the CPU
            (DEFAULT_SPIN says why).

    Raises:
        ValueError: a bad service name or geometry.
        OSError: the service is already published (EADDRINUSE), or another OS refusal.
    """

    def __init__(
        self,
        service: str,
        *,
        slot_size: int,
        slots: int = 16,
        leaky: bool = False,
        spin: float = DEFAULT_SPIN,
    ) -> None:
        name = address(service)
        if not 0 < slots <= MAX_SLOTS:
            raise ValueError(f"publisher {service!r}: slots must be 1 to {MAX_SLOTS}, got {slots}")
        self._service = service
        # send() skips a subscriber holding `_limit` slots: half the pool when leaky.
        self._limit = max(1, slots // 2) if leaky else MAX_SLOTS + 1
        self._spin = max(spin, 0.0)
        self._pool = SlotPool(slot_size, slots, name=f"ipc:{service}")
        self._slot_size = self._pool.slot_size
        lsock = sel = None
        stop = wake = -1
        try:
            segment = self._pool.segment
            assert isinstance(segment, MemfdSegment)
            segment.seal(shrink=True, grow=True)
            self._fd = segment.fd
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            lsock.bind(name)
            lsock.listen(16)
            lsock.setblocking(False)
            stop = os.eventfd(0, _EFD_FLAGS)
            wake = os.eventfd(0, _EFD_FLAGS)
            sel = selectors.DefaultSelector()
            sel.register(lsock, selectors.EVENT_READ, None)
            sel.register(stop, selectors.EVENT_READ, None)
        except BaseException:
            for res in (sel, lsock):
                if res is not None:
                    res.close()
            for fd in (stop, wake):
                if fd >= 0:
                    os.close(fd)
            self._pool.close()
            raise
        self._lsock, self._stop, self._wake, self._sel = lsock, stop, wake, sel
        whole = np.frombuffer(segment.mmap, np.uint8)
        self._slices = tuple(whole[o : o + slot_size] for o in self._pool._offsets)
        self._wake_poll = select.poll()
        self._wake_poll.register(wake, select.POLLIN)
        self._lock = threading.Lock()  # peers and slot bookkeeping; never held across a wait
        self._changed = threading.Condition(self._lock)  # a subscriber came or went
        self._peers: dict[int, _Peer] = {}  # by socket fd
        self._targets: tuple[_Peer, ...] = ()  # the same peers, for the hot path
        self._sent: list[Slot | None] = [None] * slots  # the loan, while anyone holds it
        self._refs = [0] * slots  # holders of each sent slot
        # Slots back from every subscriber, kept as loans for the next loan(): a Slot made
        # and dropped per buffer (SlotPool.try_loan, Slot.__del__) costs 0.2 us more.
        self._spare: list[Slot] = []
        self._waiters = 0  # loan() calls asleep on `wake`
        self._caps_key: Caps | None = None  # send()'s cache of the last caps' text
        self._caps_text: str | None = None
        self._caps_raw = b""
        self._errors: collections.deque[BrokenError] = collections.deque(maxlen=64)
        self._closed = False
        self.dropped = 0
        # A daemon, so that a forgotten publisher cannot hold up interpreter exit; the
        # finalizer (run at exit at the latest) still wakes and joins it.
        self._thread = threading.Thread(
            target=self._serve, name=f"parallax:ipc:{service}", daemon=True
        )
        self._finalizer = weakref.finalize(
            self, _close_publisher, self._thread, (stop, wake), sel, lsock, self._peers
        )
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
        if self._targets:
            self._reclaim()
        spare = self._spare
        slot = spare.pop() if spare else self._pool.try_loan()  # LIFO: warm lines first
        if slot is None:
            slot = self._wait_for_slot(timeout)
        sample = _new_sample(Sample)
        sample._slot, sample._view, sample._slices = slot, None, self._slices
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
            ValueError: `size` exceeds the slot, the caps text exceeds MAX_CAPS bytes, or
                a metadata field is out of range (the sample is not consumed then).
            ClosedError: the publisher is closed.
        """
        slot = sample._slot
        if slot is None:
            raise ClosedError("this sample was sent: loan a new one")
        capacity = self._slot_size
        if size is None:
            size = capacity
        elif not 0 <= size <= capacity:
            raise ValueError(f"send size {size:,} is outside slot {slot.index} of {capacity:,}")
        if self._closed:
            raise ClosedError(f"cannot send on closed publisher {self._service!r}")
        if caps is not self._caps_key:
            self._set_caps(caps)
        text, raw = self._caps_text, self._caps_raw
        index = slot.index
        broken: list[tuple[_Peer, BaseException]] | None = None
        reached = 0
        limit = self._limit
        lock = self._lock
        lock.acquire()
        try:
            targets = self._targets
            for peer in targets:
                if peer.pending >= limit:
                    self.dropped += 1
                    continue
                try:
                    if peer.caps == text:
                        put = peer.ring.put(
                            index, size, 0, flags, sequence, pts, dts, duration, offset
                        )
                    else:
                        ncaps = NO_CAPS if text is None else len(raw)
                        put = peer.ring.put(
                            index, size, ncaps, flags, sequence, pts, dts, duration, offset, raw
                        )
                        peer.caps = text
                    if not put:
                        raise ValueError("its descriptor ring is full")
                except ValueError as e:
                    broken = broken or []
                    broken.append((peer, e))
                    continue
                peer.held[index] += 1
                peer.pending += 1
                peer.eos = False
                reached += 1
            if reached:
                # The slot was free, so nobody else counts it; with no taker, it goes
                # back to the pool when `slot` drops, on return.
                self._sent[index] = slot
                self._refs[index] = reached
                # After publishing: the fence orders our stamp stores before the loads of
                # the flags. A subscriber sets its flag, fences, then re-reads the stamp
                # before it sleeps, so one of us sees the other (Dekker; _ring.py).
                fence()
                for peer in targets:
                    if peer.words[SUB_SLEEPING]:
                        os.eventfd_write(peer.wake, 1)
        except struct.error as e:
            # The first put() packs first, so nothing was published: the sample is intact.
            raise ValueError(f"send: a metadata field is out of range: {e}") from e
        finally:
            lock.release()
        sample._slot = sample._view = None  # consumed
        if broken:
            for peer, error in broken:
                self._drop(peer, error)
        return reached

    def _set_caps(self, caps: Caps | None) -> None:
        text = None if caps is None else str(caps)
        raw = b"" if text is None else text.encode()
        if len(raw) > MAX_CAPS:
            raise ValueError(f"caps text is {len(raw):,} bytes; the link carries {MAX_CAPS:,}")
        self._caps_key, self._caps_text, self._caps_raw = caps, text, raw

    def _wake_sleepers(self) -> None:
        # Under self._lock, after publishing (see send()).
        fence()
        for peer in self._targets:
            if peer.words[SUB_SLEEPING]:
                os.eventfd_write(peer.wake, 1)

    def _reclaim(self) -> None:
        """Take back every slot the subscribers released since the last call."""
        broken: list[tuple[_Peer, BaseException]] | None = None
        lock = self._lock
        lock.acquire()
        try:
            for peer in self._targets:
                try:
                    released = peer.releases.drain()
                    if not released:
                        continue
                    held, refs, sent, spare = peer.held, self._refs, self._sent, self._spare
                    for index in released:
                        if index >= len(held) or not held[index]:
                            raise ValueError(f"release of slot {index}, which it does not hold")
                        held[index] -= 1
                        peer.pending -= 1
                        refs[index] -= 1  # _unref(), inline: this runs once per buffer
                        if not refs[index]:
                            # The loan is ours again. Kept as a spare unless a view of
                            # it lives (a Sample.view kept past send()): then it goes
                            # back to the pool when that view does.
                            slot = sent[index]
                            sent[index] = None
                            # 2: `slot` and getrefcount's argument, nobody else.
                            if slot is not None and getrefcount(slot) == 2:
                                spare.append(slot)
                            del slot
                except ValueError as e:
                    broken = broken or []
                    broken.append((peer, e))
        finally:
            lock.release()
        if broken:
            for peer, error in broken:
                self._drop(peer, error)

    def _unref(self, index: int) -> None:
        # Under self._lock. The Slot drops here, and its index returns to the pool.
        self._refs[index] -= 1
        if self._refs[index] == 0:
            self._sent[index] = None

    def _wait_for_slot(self, timeout: float | None) -> Slot:
        """loan()'s slow path: spin, then sleep until a subscriber releases a slot."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"publisher {self._service!r}: loan timeout must be >= 0")
        pool = self._pool
        spin = self._spin if timeout is None else min(self._spin, timeout)
        clock, now = time.perf_counter, time.perf_counter()
        end, hot = now + spin, now + min(spin, HOT_SPIN)
        while now < end:
            self._check_open()
            self._reclaim()
            slot = self._spare.pop() if self._spare else pool.try_loan()
            if slot is not None:
                return slot
            now = clock()
            if now > hot:
                os.sched_yield()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiters += 1
        try:
            while True:
                self._check_open()
                self._set_sleeping(1)
                fence()  # our flags before our loads of their stamps (see send())
                self._reclaim()
                slot = self._spare.pop() if self._spare else pool.try_loan()
                if slot is not None:
                    return slot
                nap = _NAP
                if deadline is not None:
                    nap = min(nap, deadline - time.monotonic())
                    if nap <= 0:
                        raise pool._exhausted(f" after waiting {timeout:g} s")
                if self._wake_poll.poll(nap * 1000.0):
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(self._wake)
        finally:
            self._set_sleeping(0)
            with self._lock:
                self._waiters -= 1
                self._changed.notify_all()

    def _set_sleeping(self, flag: int) -> None:
        with self._lock:
            for peer in self._targets:
                peer.words[PUB_SLEEPING] = flag

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"publisher {self._service!r} closed while loaning")

    def send_eos(self) -> None:
        """Tell every subscriber the stream ended (their receive() returns None, `ended`).

        A subscriber that got EOS and no buffer since is not sent a second one.
        """
        self._send_eos(report=True)

    def _send_eos(self, *, report: bool) -> None:
        broken: list[tuple[_Peer, BaseException]] = []
        with self._lock:
            for peer in self._targets:
                if peer.eos:
                    continue
                try:
                    if not peer.ring.put(EOS_SLOT, 0, 0, 0, 0, -1, -1, -1, -1):
                        raise ValueError("its descriptor ring is full")
                except ValueError as e:
                    broken.append((peer, e))
                    continue
                peer.eos = True
            self._wake_sleepers()
        for peer, error in broken:
            self._drop(peer, error if report else None)

    # -- the I/O thread -----------------------------------------------------------------

    def _serve(self) -> None:
        sel = self._sel
        while True:
            for key, _ in sel.select():
                if key.fd == self._stop:
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
        try:
            cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
        except OSError:
            conn.close()  # gone already: nothing to serve, nothing it held
            return
        pid, uid, _gid = UCRED.unpack(cred)
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
        try:
            peer = _Peer(conn, pid, pool.slots, self._service)
        except OSError as e:
            conn.close()
            self._report(BrokenError(f"publisher {self._service!r}: cannot serve pid {pid}"), e)
            return
        try:
            # Slot offsets travel in HELLO: `slots` u64s after the header.
            offsets = struct.pack(f"<{pool.slots}Q", *pool._offsets)
            size = pool.segment.size
            hello = HELLO.pack(Kind.HELLO, MAGIC, VERSION, 0, pool.slots, pool.slot_size, size)
            fds = [self._fd, peer.block.segment.fd, peer.wake, self._wake]
            socket.send_fds(conn, [hello + offsets], fds)
            conn.setblocking(False)
        except OSError as e:
            peer.close()
            self._report(BrokenError(f"publisher {self._service!r}: {peer.name} hung up"), e)
            return
        with self._lock:
            self._peers[conn.fileno()] = peer
            self._targets = tuple(self._peers.values())
            self._sel.register(conn, selectors.EVENT_READ, peer)
            self._changed.notify_all()

    def _read(self, peer: _Peer) -> None:
        # After HELLO a subscriber says one thing, BYE; anything else is a broken peer.
        try:
            data = peer.sock.recv(16)
        except BlockingIOError:
            return
        except OSError as e:
            self._drop(peer, e)
            return
        if data == bytes([Kind.BYE]):
            self._drop(peer, None)
        elif not data:
            self._drop(peer, ConnectionResetError("closed without BYE"))
        else:
            self._drop(peer, ValueError(f"unexpected message {data!r}"))

    def _drop(self, peer: _Peer, error: BaseException | None) -> None:
        """Forget `peer` and give back every slot it held; report it unless it said BYE."""
        with self._lock:
            fd = peer.sock.fileno()
            if fd < 0 or self._peers.get(fd) is not peer:
                return
            del self._peers[fd]
            self._targets = tuple(self._peers.values())
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(peer.sock)
            held = peer.pending
            for index, n in enumerate(peer.held):
                for _ in range(n):
                    self._unref(index)
            peer.held = [0] * len(peer.held)
            peer.pending = 0
            peer.close()
            if held and self._waiters:
                os.eventfd_write(self._wake, 1)  # a sleeping loan() can have these
            self._changed.notify_all()
        if error is not None:
            self._report(
                BrokenError(
                    f"publisher {self._service!r}: {peer.name} went away holding {held} "
                    f"slot(s); reclaimed them"
                ),
                error,
            )

    def _report(self, error: BrokenError, cause: BaseException | None = None) -> None:
        # The error outlives this call (in `errors`, in log records): its cause keeps no
        # traceback, whose frames would keep their callers' locals (buffers, mappings).
        error.__cause__ = None if cause is None else cause.with_traceback(None)
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
        """Slots free to loan right now (a snapshot; takes back released slots first)."""
        if not self._closed and self._targets:
            self._reclaim()
        return self._pool.available + len(self._spare)

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
        with self._changed:
            return self._changed.wait_for(lambda: len(self._peers) >= n or self._closed, timeout)

    def close(self) -> None:
        """Send EOS, disconnect every subscriber, stop the thread, close the pool. Idempotent.

        Buffers subscribers still hold stay readable (their mappings are their own).
        """
        if self._closed:
            return
        self._send_eos(report=False)  # a subscriber that already left is no error now
        self._closed = True
        os.eventfd_write(self._stop, 1)
        self._thread.join()
        with self._changed:
            self._changed.notify_all()
            if self._waiters:  # wake loan() calls and let them leave before closing `wake`
                os.eventfd_write(self._wake, 1)
                self._changed.wait_for(lambda: not self._waiters, 1.0)
        for peer in list(self._peers.values()):
            self._drop(peer, None)
        self._finalizer()
        self._spare.clear()
        self._slices = ()  # our views of the pool: the mapping may go with the last loan
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.subscribers} subscriber(s)"
        return f"<Publisher {self._service!r} {self.slots} x {self.slot_size:,} bytes {state}>"
