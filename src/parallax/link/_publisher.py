"""`Publisher`: the producing end of the shared-memory link.

Operations: `loan()`, `send()`, `send_eos()` (the caller's thread); accept and disconnect
(the I/O thread, `_serve.py`). `_shm.py` has the plan of the whole link; docs/links.md the
picture.

Per buffer, `send()` writes one descriptor into each subscriber's ring, and `loan()`
drains each subscriber's release ring: no syscall, no thread hop, unless a subscriber
sleeps (then one eventfd write wakes it) or the pool is empty (then `loan()` spins, then
sleeps on the publisher's wake eventfd, which a releasing subscriber writes when it
sees the publisher's sleeping flag). Slot bookkeeping (who holds which slot) changes
under one lock, taken once per `loan()` and once per `send()`; the I/O thread takes it
to add a subscriber or to give back everything a dead one held.

Leaky (`leaky=True`): send() waits up to `grace` for a subscriber that holds half the
pool, then skips it until it catches up; `_leaky.py` has the exact rule and its reasons.
"""

from __future__ import annotations

import collections
import math
import os
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from sys import getrefcount
from typing import Final, Self, TypeVar

from parallax._errors import BrokenError, ClosedError, PoolExhausted
from parallax.caps import Caps
from parallax.memory import MemfdSegment, Slot, SlotPool

from ._hello import MAX_SLOTS, Hello, encode_hello
from ._leaky import LEAKY_GRACE, Share
from ._loan import Loan, SlotArray, new_loan, slot_arrays
from ._peer import EFD_FLAGS, Peer
from ._peer_table import PeerTable
from ._ring import EOS_SLOT, MAX_CAPS, NO_CAPS, PUB_SLEEPING, SUB_SLEEPING, fence
from ._serve import IoThread
from ._service import Trust, address, bind
from ._wake import DEFAULT_SPIN, drain, spin, wake_if_sleeping

T = TypeVar("T")

_NAP: Final = 0.05  # s: a sleeping wait re-checks at least this often


def _close_publisher(io: IoThread, wake: int, peers: dict[int, Peer]) -> None:
    """Finalizer net for a forgotten Publisher (and the end of close())."""
    io.close()
    for peer in list(peers.values()):
        peer.close()
    peers.clear()
    os.close(wake)


class Publisher(PeerTable):
    """Publish buffers to subscribers in other processes (or this one) by shared memory.

    Owns a memfd SlotPool of `slots` x `slot_size` bytes, a listening socket, one I/O
    thread, and per subscriber a control block and a socket: `close()` it, or use
    `with`. A slot sent to subscribers returns to the pool when every subscriber that
    got it has released it, or has disconnected.

    Args:
        service: the name subscribers connect to (per uid; 1-64 characters).
        slot_size, slots: the pool geometry.
        leaky: never wait long for one subscriber: one that holds half the pool and
            releases nothing within `grace` seconds misses buffers (counted in `dropped`)
            until it catches up; see the module docstring for the exact rule.
        spin: seconds loan() polls for a returning slot, when the pool is empty, before
            it sleeps (0: sleep at once); after the first 20 us each poll yields the CPU
            (DEFAULT_SPIN says why).
        grace: with `leaky`, how long send() waits for a subscriber holding half the pool.
        allowed_uids: the uids whose subscribers are served (SO_PEERCRED); None: ours.

    Raises:
        ValueError: a bad service name, geometry, grace or uid.
        OSError: the service is already published (EADDRINUSE; the message names the
            process holding the name where /proc shows it), or another OS refusal.
    """

    def __init__(
        self,
        service: str,
        *,
        slot_size: int,
        slots: int = 16,
        leaky: bool = False,
        spin: float = DEFAULT_SPIN,
        grace: float = LEAKY_GRACE,
        allowed_uids: Iterable[int] | None = None,
    ) -> None:
        address(service)  # checks the name before anything is made
        if not 0 < slots <= MAX_SLOTS:
            raise ValueError(f"publisher {service!r}: slots must be 1 to {MAX_SLOTS}, got {slots}")
        if not (isinstance(grace, int | float) and math.isfinite(grace) and grace >= 0):
            raise ValueError(f"publisher {service!r}: grace must be seconds >= 0, got {grace!r}")
        self._trust = Trust.of(allowed_uids)
        self._service = service
        self._leaky = leaky
        self._share = Share(slots, leaky=leaky, unlimited=MAX_SLOTS + 1)
        self._grace = float(grace)
        self._spin = max(spin, 0.0)
        self._pool = pool = SlotPool(slot_size, slots, name=f"ipc:{service}")
        self._slot_size = pool.slot_size
        self._slices: tuple[SlotArray, ...] = ()
        io: IoThread | None = None
        wake = -1
        try:
            segment = pool.segment
            assert isinstance(segment, MemfdSegment)
            segment.seal(shrink=True, grow=True)
            self._fd = segment.fd
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            try:
                bind(lsock, service)
                lsock.listen(16)
                lsock.setblocking(False)
            except BaseException:
                lsock.close()
                raise
            io = IoThread(
                f"parallax:ipc:{service}",
                lsock,  # the IoThread owns it from here on
                accepted=self._accept,
                readable=self._read,
                failed=self._io_failed,
            )
            wake = os.eventfd(0, EFD_FLAGS)
            self._hello = encode_hello(Hello(slots, pool.slot_size, segment.size, pool.offsets))
            self._slices = slot_arrays(segment.mmap, pool.offsets, pool.slot_size)
            self._io, self._wake = io, wake
            self._wake_poll = select.poll()
            self._wake_poll.register(wake, select.POLLIN)
            self._lock = threading.Lock()  # peers and slot bookkeeping; never held across a wait
            self._changed = threading.Condition(self._lock)  # a subscriber came or went
            self._peers: dict[int, Peer] = {}  # by socket fd
            self._targets: tuple[Peer, ...] = ()  # the same peers, for the hot path
            self._sent: list[Slot | None] = [None] * slots  # the loan, while anyone holds it
            self._refs = [0] * slots  # holders of each sent slot
            # Slots back from every subscriber, kept as loans for the next loan(): a Slot
            # made and dropped per buffer (SlotPool.try_loan, Slot.__del__) costs 0.2 us more.
            self._spare: list[Slot] = []
            self._waiters = 0  # calls asleep on `wake` (loan(), a leaky send())
            self._caps_key: Caps | None = None  # send()'s cache of the last caps' text
            self._caps_text: str | None = None
            self._caps_raw = b""
            self._errors: collections.deque[BrokenError] = collections.deque(maxlen=64)
            self._closed = False
            self.dropped = 0
            io.start()
        except BaseException:
            # A failed constructor leaks nothing, at once (not when `self` is collected).
            if io is not None:
                io.close()
            if wake >= 0:
                os.close(wake)
            self._slices = ()  # our views of the pool, before it closes
            pool.close()
            raise
        self._finalizer = weakref.finalize(self, _close_publisher, io, wake, self._peers)

    # -- the hot path -------------------------------------------------------------------

    def loan(self, timeout: float | None = None) -> Loan:
        """Loan a writable slot; waits for one while all are held (`timeout` seconds, or
        forever with None).

        Raises:
            PoolExhausted: no slot came back within `timeout`.
            ClosedError: the publisher is (or gets) closed.
            ValueError: `timeout` is negative (checked only when the pool is empty).
        """
        if self._closed:
            raise ClosedError(f"cannot loan from closed publisher {self._service!r}")
        if self._targets:
            self._reclaim()
        spare = self._spare
        slot = spare.pop() if spare else self._pool.try_loan()  # LIFO: warm lines first
        if slot is None:
            slot = self._wait_for_slot(timeout)
        sample = new_loan(Loan)
        sample._slot, sample._view, sample._slices = slot, None, self._slices
        return sample

    def send(
        self,
        sample: Loan,
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
        With `leaky`, it may first wait up to `grace` for a subscriber holding half the pool.

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
        if self._leaky and self._targets:
            self._leak_check()
            if self._closed:
                raise ClosedError(f"publisher {self._service!r} closed while sending")
        text, raw = self._caps_text, self._caps_raw
        index = slot.index
        broken: list[tuple[Peer, BaseException]] | None = None
        reached = 0
        limit = self._share.limit
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
                fence()  # our stamps before the loads of their flags (_wake.py)
                for peer in targets:
                    if peer.words[SUB_SLEEPING]:  # per buffer: no call while all are awake
                        wake_if_sleeping(peer.words, SUB_SLEEPING, peer.wake)
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

    def _leak_check(self) -> None:
        """Leaky send()'s wait for a subscriber that holds its share (`_leaky.py`)."""
        share = self._share
        if share.must_wait(self._targets) and self._await_release(self._room, self._grace) is None:
            with self._lock:
                share.give_up(self._targets)

    def _room(self) -> bool | None:
        self._reclaim()
        return True if self._closed or self._share.has_room(self._targets) else None

    def _reclaim(self) -> None:
        """Take back every slot the subscribers released since the last call."""
        broken: list[tuple[Peer, BaseException]] | None = None
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
                            # it lives (a Loan.view kept past send()): then it goes
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

    def _take_slot(self) -> Slot | None:
        self._check_open()
        self._reclaim()
        return self._spare.pop() if self._spare else self._pool.try_loan()

    def _wait_for_slot(self, timeout: float | None) -> Slot:
        """loan()'s slow path: spin, then sleep until a subscriber releases a slot."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"publisher {self._service!r}: loan timeout must be >= 0")
        slot = self._await_release(self._take_slot, timeout)
        if slot is None:
            pool = self._pool
            raise PoolExhausted(
                f"publisher {self._service!r}: all {pool.slots} slots of {pool.slot_size:,} "
                f"bytes are held (by subscribers, or by samples and their views) after "
                f"waiting {timeout:g} s",
                pool=pool.name,
                slots=pool.slots,
            )
        return slot

    def _await_release(self, take: Callable[[], T | None], timeout: float | None) -> T | None:
        """Spin, then sleep on our wake eventfd, until `take()` (which reclaims first)
        returns something; None after `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        got = spin(take, self._spin if timeout is None else min(self._spin, timeout))
        if got is not None:
            return got
        with self._lock:
            self._waiters += 1
        try:
            while True:
                self._set_sleeping(1)
                fence()  # our flags before our loads of their stamps (see send())
                got = take()
                if got is not None:
                    return got
                nap = _NAP
                if deadline is not None:
                    nap = min(nap, deadline - time.monotonic())
                    if nap <= 0:
                        return None
                if self._wake_poll.poll(nap * 1000.0):
                    drain(self._wake)
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
        broken: list[tuple[Peer, BaseException]] = []
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
            fence()
            for peer in self._targets:
                wake_if_sleeping(peer.words, SUB_SLEEPING, peer.wake)
        for peer, error in broken:
            self._drop(peer, error if report else None)

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
        self._io.close()
        with self._changed:
            self._changed.notify_all()
            if self._waiters:  # wake waiting calls and let them leave before closing `wake`
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
