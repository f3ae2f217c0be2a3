"""The shared-memory rings of the process link: one control block per subscriber.

Operations: `DescriptorWriter.put()` (publisher) and `DescriptorReader.get()` (subscriber),
once per buffer sent; `ReleaseWriter.push()` (subscriber) and `ReleaseReader.drain()`
(publisher), once per buffer released. Nothing here blocks, sleeps or makes a syscall:
the link decides when to spin, sleep or wake (`_wake.py`, `_shm.py`, `_publisher.py`).

Plan:
- The publisher makes one small memfd per subscriber (`ControlBlock.create`), sealed
  against shrink and grow, and passes it with HELLO (SCM_RIGHTS); both map it read-write.
  It holds two single-producer single-consumer rings and two "sleeping" flags:
  descriptors publisher -> subscriber (slot, size, metadata, caps marker: one 64-byte
  cache line each, plus a 4 KiB caps area per entry, touched only when caps change), and
  slot indices subscriber -> publisher (the release ring, 16 bytes an entry).
- Positions count entries since the start (u64); entry `n` lives at `n % capacity`, the
  capacity a power of two. Each entry ends with a u64 stamp, `n + 1`, stored after the
  rest of the entry: the consumer at position `n` takes the entry when its stamp reads
  `n + 1` (an older lap's stamp, or the zero of a fresh block, never does). So a buffer
  costs the consumer one cache line fetched from the other core, not a line for a head
  counter and another for the entry (about 0.1-0.2 us each on our VM).
- The consumer publishes its position (the tail) for the producer, which reads it only
  when its own idea of the tail says the ring is full. Sizes bound both rings, so neither
  fills up with a correct peer: a subscriber holds at most `slots` buffers (each one
  descriptor, one release), plus one EOS descriptor; the capacities are `slots + 2` and
  `slots`, rounded up to powers of two. A full ring, or a tail that is impossible, means
  a broken peer (`ValueError`; the link drops that peer).
- Counters and flags each have a cache line of their own, so the two processes do not
  fight over lines they do not share.

Memory ordering (the one platform assumption): on x86-64 an aligned 8-byte store or load
is atomic, and TSO keeps stores in order with stores and loads in order with loads, so
"entry, then stamp" is seen in that order by the other core, and a consumer that read an
entry before storing its tail has finished with it. CPython's memoryview moves a native 'Q'
item with a fixed-size 8-byte memcpy (one `mov`), so `words[i] = v` is such a store.
What TSO does not order is a store followed by a load of another line (StoreLoad): the
"set my sleeping flag, then re-check the ring" / "publish, then check the peer's
sleeping flag" handshake (Dekker's) needs a full barrier between the two, `fence()`.
The entry's other fields are written with one `struct.pack_into` (a memcpy, in any order
inside it); only the stamp, stored after it, must be a single 8-byte store.
Elsewhere (`platform.machine()` not x86-64) every counter and flag goes through
libatomic's sequentially consistent `__atomic_load_8` / `__atomic_store_8` (ctypes,
about 0.3 us each, `AtomicWords`), which orders everything; `fence()` is then a no-op.

Limits: both ends must run on the same host (one cache-coherent memory). The counters are
u64 and never wrap in practice (2^64 entries at 10^7 a second is 58,000 years).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import platform
import struct
import threading
from collections import deque
from typing import Any, Final, Protocol, Self

from parallax._errors import PlatformNotSupported
from parallax.memory import MemfdSegment

# -- layout ---------------------------------------------------------------------------------

MAGIC: Final = int.from_bytes(b"PLXRING3", "little")  # u64 word 0: format and version
LINE: Final = 8  # u64 words per 64-byte cache line
# u64 word indices; each counter and flag on its own cache line.
W_MAGIC, W_DESC_CAP, W_REL_CAP = 0, 1, 2
DESC_TAIL: Final = 1 * LINE  # written by the subscriber: descriptors taken
SUB_SLEEPING: Final = 2 * LINE  # 1 while the subscriber may block on its wake eventfd
REL_TAIL: Final = 3 * LINE  # written by the publisher: releases taken
PUB_SLEEPING: Final = 4 * LINE  # 1 while the publisher may block on its wake eventfd
REL_BASE: Final = 8 * LINE  # the release ring: (stamp, slot index) u64 pairs

DESCRIPTOR: Final = struct.Struct("<QHHIqqqqq")
# ^ size, slot (EOS_SLOT: an EOS, no buffer), caps (0: same caps as this subscriber's
#   previous buffer; NO_CAPS: none; else the length of the caps text in this entry's caps
#   area), flags, sequence, pts, dts, duration, offset. 56 bytes, then the u64 stamp.
STRIDE: Final = 64  # bytes per descriptor: one cache line
STAMP: Final = 7  # the stamp's u64 word within a descriptor
MAX_CAPS: Final = 4096  # bytes of caps text per entry; a caps string is far shorter
NO_CAPS: Final = 0xFFFF
EOS_SLOT: Final = 0xFFFF  # above MAX_SLOTS (4096)


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


def _align(n: int, to: int) -> int:
    return (n + to - 1) & -to


class Geometry:
    """Capacities and byte offsets of a control block for a pool of `slots` slots."""

    __slots__ = ("caps_base", "desc_base", "desc_cap", "rel_cap", "size")

    def __init__(self, desc_cap: int, rel_cap: int) -> None:
        if desc_cap < 2 or desc_cap & (desc_cap - 1) or rel_cap < 2 or rel_cap & (rel_cap - 1):
            raise ValueError(f"ring capacities must be powers of two, got {desc_cap}, {rel_cap}")
        self.desc_cap = desc_cap
        self.rel_cap = rel_cap
        self.desc_base = _align(REL_BASE * 8 + 16 * rel_cap, 64)
        self.caps_base = _align(self.desc_base + STRIDE * desc_cap, mmap.PAGESIZE)
        self.size = self.caps_base + MAX_CAPS * desc_cap

    @classmethod
    def for_slots(cls, slots: int) -> Geometry:
        """Room for every buffer a subscriber can hold, plus an EOS (see the module)."""
        return cls(_pow2(slots + 2), _pow2(slots))


# -- memory ordering ----------------------------------------------------------------------


class Words(Protocol):
    """u64 words of a control block: `words[i]` loads, `words[i] = v` stores, atomically."""

    def __getitem__(self, index: int, /) -> int: ...

    def __setitem__(self, index: int, value: int, /) -> None: ...


TSO: Final = platform.machine().lower() in {"x86_64", "amd64"}


def _fence_tso() -> None:
    # Acquiring a free lock is a locked read-modify-write on x86-64 (CPython 3.11:
    # sem_trywait's `lock cmpxchg`; 3.13+: PyMutex's `lock cmpxchg`), and loads and
    # stores are not reordered with locked instructions (Intel SDM vol. 3A, "Memory
    # Ordering in P6 and More Recent Processor Families"). A fresh lock each time
    # (freed, still held, at once): it is never contended, so the fence never waits for
    # another thread, and one reached again in the same thread (a finalizer run inside
    # it) cannot deadlock. About 0.1 us: the cheapest full fence pure Python can issue.
    threading.Lock().acquire()


def _no_fence() -> None:
    """Every access of `AtomicWords` is sequentially consistent already."""


fence = _fence_tso if TSO else _no_fence
"""A full memory barrier between this thread's earlier stores and later loads."""


class AtomicWords:
    """Sequentially consistent u64 words through libatomic (any architecture; slower).

    Holds a ctypes export of `mm` while open: `release()` it before closing the mapping.
    """

    __slots__ = ("_base", "_buf", "_load", "_store")

    SEQ_CST: Final = 5  # __ATOMIC_SEQ_CST

    def __init__(self, mm: mmap.mmap) -> None:
        path = ctypes.util.find_library("atomic")
        if path is None:
            raise PlatformNotSupported(
                f"the shared-memory link needs libatomic on {platform.machine()} "
                "(apt-get install libatomic1)"
            )
        lib = ctypes.CDLL(path)
        self._load = lib["__atomic_load_8"]
        self._load.restype = ctypes.c_uint64
        self._load.argtypes = (ctypes.c_void_p, ctypes.c_int)
        self._store = lib["__atomic_store_8"]
        self._store.restype = None
        self._store.argtypes = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int)
        self._buf: Any = ctypes.c_char.from_buffer(mm)
        self._base = ctypes.addressof(self._buf)

    def __getitem__(self, index: int) -> int:
        if self._buf is None:  # as a released memoryview: an error, never a wild load
            raise ValueError("operation forbidden on released control block words")
        return int(self._load(self._base + 8 * index, self.SEQ_CST))

    def __setitem__(self, index: int, value: int) -> None:
        if self._buf is None:
            raise ValueError("operation forbidden on released control block words")
        self._store(self._base + 8 * index, value, self.SEQ_CST)

    def release(self) -> None:
        """Drop the export of the mapping. Idempotent."""
        self._buf = None


# -- the block ------------------------------------------------------------------------------


class ControlBlock:
    """One subscriber's control memfd, mapped read-write: both rings and both flags.

    Owns a `MemfdSegment` and the word views on it: `close()` it, or use `with`. The
    publisher makes it (`create`) and passes `segment.fd`; the subscriber maps that fd
    (`attach`). The ring ends (`DescriptorWriter` ...) borrow the block and must not be
    used after `close()` (they raise ValueError: released memoryview).
    """

    __slots__ = ("_atomic", "_view", "geometry", "mm", "segment", "words")

    def __init__(self, segment: MemfdSegment, geometry: Geometry, *, atomic: bool) -> None:
        self.segment = segment
        self.geometry = geometry
        self.mm = segment.mmap
        self._view: memoryview | None = None
        self._atomic: AtomicWords | None = None
        try:
            if atomic:
                self._atomic = AtomicWords(self.mm)
                self.words: Words = self._atomic
            else:
                self._view = memoryview(self.mm).cast("Q")
                self.words = self._view
        except BaseException:
            segment.close()
            raise

    @classmethod
    def create(cls, slots: int, *, name: str = "parallax-ctl", atomic: bool = not TSO) -> Self:
        """A fresh, zeroed block for a pool of `slots` slots, sealed against resizing.

        Raises:
            OSError: memfd_create, ftruncate, mmap or sealing failed (nothing leaks).
        """
        geometry = Geometry.for_slots(slots)
        segment = MemfdSegment(geometry.size, name=name)
        try:
            segment.seal(shrink=True, grow=True)
        except BaseException:
            segment.close()
            raise
        block = cls(segment, geometry, atomic=atomic)
        words = block.words
        words[W_DESC_CAP] = geometry.desc_cap
        words[W_REL_CAP] = geometry.rel_cap
        words[W_MAGIC] = MAGIC
        return block

    @classmethod
    def attach(cls, fd: int, *, atomic: bool = not TSO) -> Self:
        """Map a block received from the publisher; takes ownership of `fd`.

        Raises:
            ValueError: not a control block of this version, or a size that does not
                match its capacities.
            OSError: fstat or mmap failed.
        """
        segment = MemfdSegment.from_fd(fd, readonly=False)
        try:
            mm = segment.mmap
            magic, desc_cap, rel_cap = struct.unpack_from("<3Q", mm)
            if magic != MAGIC:
                raise ValueError(f"not a control block of this version (magic {magic:#x})")
            geometry = Geometry(desc_cap, rel_cap)
            if geometry.size != segment.size:
                raise ValueError(
                    f"control block of {segment.size:,} bytes; its capacities need "
                    f"{geometry.size:,}"
                )
        except BaseException:
            segment.close()
            raise
        return cls(segment, geometry, atomic=atomic)

    def close(self) -> None:
        """Release the word views and unmap; idempotent. Ring ends then raise ValueError."""
        view, self._view = self._view, None
        if view is not None:
            view.release()
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            atomic.release()
        self.segment.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the descriptor ring: publisher -> subscriber ---------------------------------------------


class DescriptorWriter:
    """The publisher's end of the descriptor ring (one thread at a time)."""

    __slots__ = ("_base", "_cap", "_caps_base", "_head", "_mask", "_mm", "_tail", "_words")

    def __init__(self, block: ControlBlock) -> None:
        g = block.geometry
        self._words, self._mm = block.words, block.mm
        self._cap, self._mask = g.desc_cap, g.desc_cap - 1
        self._base, self._caps_base = g.desc_base, g.caps_base
        self._head = self._tail = self._words[DESC_TAIL]

    def put(  # noqa: PLR0917 (once per buffer: positional arguments are the cheapest)
        self,
        slot: int,
        size: int,
        caps: int,
        flags: int,
        sequence: int,
        pts: int,
        dts: int,
        duration: int,
        offset: int,
        text: bytes = b"",
    ) -> bool:
        """Publish one descriptor, DESCRIPTOR's fields in order; with `caps` a length,
        `text` is the caps text (at most MAX_CAPS bytes). False if the ring is full.

        Raises:
            ValueError: the subscriber's tail is impossible (it is broken).
            struct.error: a field does not fit its type (nothing is published).
        """
        head = self._head
        if head - self._tail >= self._cap:
            tail = self._words[DESC_TAIL]
            if not 0 <= head - tail <= self._cap:
                raise ValueError(f"descriptor ring tail {tail} is not within a ring of {head}")
            self._tail = tail
            if head - tail == self._cap:
                return False
        at = self._base + (head & self._mask) * STRIDE
        DESCRIPTOR.pack_into(
            self._mm, at, size, slot, caps, flags, sequence, pts, dts, duration, offset
        )
        if text:
            start = self._caps_base + (head & self._mask) * MAX_CAPS
            self._mm[start : start + len(text)] = text
        self._head = head = head + 1
        self._words[(at >> 3) + STAMP] = head  # last: the subscriber may take it now
        return True

    @property
    def pending(self) -> int:
        """Descriptors the subscriber has not taken yet (reads its tail)."""
        self._tail = self._words[DESC_TAIL]
        return self._head - self._tail


class DescriptorReader:
    """The subscriber's end of the descriptor ring (one thread at a time)."""

    __slots__ = ("_at", "_base", "_caps_base", "_mask", "_mm", "_stamp", "_want", "_words")

    def __init__(self, block: ControlBlock) -> None:
        g = block.geometry
        self._words, self._mm = block.words, block.mm
        self._mask = g.desc_cap - 1
        self._base, self._caps_base = g.desc_base, g.caps_base
        self._seek(self._words[DESC_TAIL])

    def _seek(self, tail: int) -> None:
        self._want = tail + 1  # the stamp of the entry at `tail`, once it is written
        self._at = self._base + (tail & self._mask) * STRIDE
        self._stamp = (self._at >> 3) + STAMP

    def ready(self) -> bool:
        """True when a descriptor is waiting."""
        return self._words[self._stamp] == self._want

    def get(self) -> tuple[Any, ...] | None:
        """Take the next descriptor, or None if the ring is empty.

        Returns DESCRIPTOR's nine fields; when the entry carries caps text, the caps
        field is that text (`str`) instead of its length.

        Raises:
            ValueError: the caps text is too long or not UTF-8 (a broken publisher).
        """
        tail = self._want
        if self._words[self._stamp] != tail:
            return None
        at = self._at
        entry: tuple[Any, ...] = DESCRIPTOR.unpack_from(self._mm, at)
        n = entry[2]
        if n and n != NO_CAPS:
            if n > MAX_CAPS:
                raise ValueError(f"caps text of {n:,} bytes; at most {MAX_CAPS:,} fit")
            start = self._caps_base + ((tail - 1) & self._mask) * MAX_CAPS
            entry = (*entry[:2], self._mm[start : start + n].decode(), *entry[3:])
        # `tail` is now the position after this entry.
        self._want = tail + 1
        self._at = at = self._base + (tail & self._mask) * STRIDE
        self._stamp = (at >> 3) + STAMP
        self._words[DESC_TAIL] = tail  # after reading: the publisher may reuse the entry
        return entry


# -- the release ring: subscriber -> publisher ----------------------------------------------


class ReleaseWriter:
    """The subscriber's end of the release ring. Not thread-safe: serialize `push` and
    `push_all` (the subscriber does, with a lock)."""

    __slots__ = ("_cap", "_head", "_mask", "_tail", "_words")

    def __init__(self, block: ControlBlock) -> None:
        self._words = block.words
        self._cap = block.geometry.rel_cap
        self._mask = self._cap - 1
        self._head = self._tail = self._words[REL_TAIL]

    def push(self, index: int) -> bool:
        """Publish one released slot index; False if the ring is full."""
        head = self._head
        if head - self._tail >= self._cap:
            self._tail = self._words[REL_TAIL]
            if head - self._tail >= self._cap:
                return False
        words = self._words
        at = REL_BASE + 2 * (head & self._mask)
        words[at + 1] = index
        self._head = head = head + 1
        words[at] = head  # the stamp, last
        return True

    def push_all(self, backlog: deque[int]) -> int:
        """Move indices from the left of `backlog` while there is room; returns how many."""
        moved = 0
        while backlog:
            if not self.push(backlog[0]):
                break
            backlog.popleft()
            moved += 1
        return moved


class ReleaseReader:
    """The publisher's end of the release ring (one thread at a time)."""

    __slots__ = ("_mask", "_tail", "_words")

    def __init__(self, block: ControlBlock) -> None:
        self._words = block.words
        self._mask = block.geometry.rel_cap - 1
        self._tail = self._words[REL_TAIL]

    def drain(self) -> list[int]:
        """Every slot index released since the last call (often none), oldest first."""
        words = self._words
        tail = self._tail
        at = REL_BASE + 2 * (tail & self._mask)
        if words[at] != tail + 1:
            return []
        mask = self._mask
        out = []
        while words[at] == tail + 1:  # at most a lap: older stamps never match
            out.append(words[at + 1])
            tail += 1
            at = REL_BASE + 2 * (tail & mask)
        self._tail = tail
        words[REL_TAIL] = tail  # after reading: the subscriber may reuse the entries
        return out
