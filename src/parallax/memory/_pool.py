"""Slot pools: fixed-size slots loaned out of one segment.

Operations: `loan()`, the drop of a slot's last reference (its return), `Slot.view()`, and
`close()`. The first three run once per buffer, so they are measured: loan + return of a
slot ≈ 0.3 µs, `view()` ≈ 0.45 µs on the development machine (docs/memory.md).

Plan:
- The free list is a `collections.deque` of slot indices; `append`/`pop` are atomic under
  the GIL, so the fast path takes no lock. Only a `loan(timeout=...)` that finds the pool
  empty takes the Condition. No wakeup is lost: a returner appends *then* reads the waiter
  count; a waiter counts itself *then* pops, both under the GIL's ordering.
- A `Slot` holds its pool weakly. When its last reference drops, CPython runs `__del__`,
  which gives the index back through `SlotPool._release` -- the ONE place an index returns
  to the free list. A cross-process link that returns slots on behalf of a remote consumer
  calls `_release` too, so pool bookkeeping stays in one method.
- `Slot.view()` builds a uint8 ndarray subclass over the pool's `np.frombuffer(mmap)` at the
  slot's offset and stores the Slot in it, then exports it as a memoryview. Anything made
  from that view (slices, `np.asarray`, `np.frombuffer`) references the array, so the slot
  cannot return -- and be loaned again -- while any of it lives. The frombuffer base also
  holds a buffer export on the mmap, so the segment cannot be unmapped under a view.
- LIFO reuse: the most recently returned slot is loaned next, while its lines are warm.

Limits: relies on CPython's reference counting and GIL. A slot caught in a reference cycle
returns only when the cycle collector runs. A free-threaded build would need a lock around
the deque operations.
"""

from __future__ import annotations

import collections
import mmap
import operator
import threading
import time
import warnings
import weakref
from typing import NoReturn, Self, SupportsIndex

import numpy as np

from parallax._errors import ClosedError, PoolExhausted

from ._segment import MemfdSegment, Segment

_Bytes = np.ndarray[tuple[int], np.dtype[np.uint8]]


class _LoanArray(np.ndarray[tuple[int], np.dtype[np.uint8]]):
    """A uint8 array that keeps a loan's owner alive: the exporter behind `loan_view`."""

    __slots__ = ("owner",)

    owner: object


def loan_view(array: _Bytes, owner: object) -> memoryview:
    """A memoryview of `array`'s bytes that keeps `owner` referenced while it lives. No copy.

    Anything sliced or converted from the view (`np.asarray(view)`, `np.frombuffer(view)`)
    references the array behind it, so `owner` -- a `Slot`, or a link's loan -- is
    not dropped, and its memory not given back, while any of them lives. The one way
    Parallax ties a view's life to a loan (`Slot.view()`, the shared-memory link).
    """
    loan = array.view(_LoanArray)
    loan.owner = owner
    return loan.data


class Slot:
    """A loan of `size` bytes at `offset` in a pool's segment; made only by `SlotPool.loan()`.

    The slot returns to its pool when the last reference to it, and every view made by
    `view()` (and everything derived from those), is gone. Keep the Slot (or a view)
    for as long as you use the bytes; never keep raw addresses. The Slot holds its pool
    weakly: if the pool is gone, the return is a no-op.
    """

    __slots__ = ("__weakref__", "_index", "_offset", "_pool", "_size")  # weakref: see hold()

    _index: int
    _offset: int
    _pool: weakref.ReferenceType[SlotPool]
    _size: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Slot has no public constructor: loan one with SlotPool.loan()")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # A copy would be a second owner of the same loan, and return the index twice.
        raise TypeError(
            f"slot {self._index} cannot be copied or pickled: it is a loan of shared memory; "
            "pass the Slot (or its view) itself"
        )

    @property
    def index(self) -> int:
        """The slot's number in its pool, 0 to slots - 1."""
        return self._index

    @property
    def offset(self) -> int:
        """Byte offset of the slot in the pool's segment."""
        return self._offset

    @property
    def size(self) -> int:
        """The slot's size in bytes (the pool's slot_size)."""
        return self._size

    @property
    def pool(self) -> SlotPool | None:
        """The pool the slot came from, or None if that pool was garbage-collected."""
        return self._pool()

    def view(self) -> memoryview:
        """A writable memoryview of exactly the slot's bytes; no copy.

        The view, and anything sliced or converted from it (`np.asarray(view)`,
        `np.frombuffer(view)`), keeps this slot on loan, so its bytes are never handed to
        another borrower while they can still be read or written through it.

        Raises:
            ClosedError: the pool was garbage-collected.
        """
        pool = self._pool()
        if pool is None or pool._whole is None:
            raise ClosedError(f"slot {self._index}: its pool is gone, so its bytes are too")
        return loan_view(pool._whole[self._offset : self._offset + self._size], self)

    def readonly_view(self) -> memoryview:
        """Like `view()`, read-only; it keeps the slot on loan the same way.

        Raises:
            ClosedError: the pool was garbage-collected.
        """
        return self.view().toreadonly()

    def __del__(self) -> None:
        # Runs when the last reference goes (refcount), never does I/O, never raises.
        try:
            pool = self._pool()
        except AttributeError:  # the refused `Slot()`: never loaned, nothing to return
            return
        if pool is not None:
            pool._release(self._index)

    def __repr__(self) -> str:
        pool = self._pool()
        where = f"pool {pool._name!r}" if pool is not None else "a collected pool"
        return f"<Slot {self._index} of {where} offset={self._offset:,} size={self._size:,}>"


_new_slot = Slot.__new__


def _close_owned(segment: Segment | None) -> None:
    """Finalizer body: release the pool's own segment (tolerating live views)."""
    if segment is not None:
        segment.release()


class SlotPool:
    """Fixed-size slots carved from one segment, loaned out and returned by refcount.

    With `segment=None` the pool creates and owns a `MemfdSegment` (shareable by fd); a
    given segment stays the caller's, is not closed by the pool, and cannot be closed
    while the pool uses it. `close()` the pool, or use `with`; a forgotten pool releases
    its own segment when garbage-collected. Loans and returns are thread-safe.
    """

    def __init__(
        self,
        slot_size: int,
        slots: int,
        *,
        segment: Segment | None = None,
        name: str = "pool",
        align: int = 64,
    ) -> None:
        """Carve `slots` slots of `slot_size` bytes, each starting on an `align` boundary.

        Raises:
            ValueError: `slot_size` or `slots` is not positive, `align` is not a power of
                two, or `segment` is read-only or too small (the message gives the sizes).
            ClosedError: `segment` is closed.
            OSError: creating the pool's own memfd segment failed.
        """
        slot_size, slots, align = (
            operator.index(slot_size),
            operator.index(slots),
            operator.index(align),
        )
        if slot_size <= 0:
            raise ValueError(f"SlotPool {name!r}: slot_size must be positive, got {slot_size}")
        if slots <= 0:
            raise ValueError(f"SlotPool {name!r}: slots must be positive, got {slots}")
        if align <= 0 or align & (align - 1):
            raise ValueError(f"SlotPool {name!r}: align must be a power of two, got {align}")
        stride = (slot_size + align - 1) & -align
        owned = segment is None
        if segment is None:
            # Extra `align` bytes only when align exceeds the page alignment mmap gives.
            extra = align if align > mmap.PAGESIZE else 0
            segment = MemfdSegment(stride * slots + extra, name=name)
        try:
            mm = segment.mmap
            if segment.readonly:
                raise ValueError(
                    f"SlotPool {name!r}: segment {segment.name!r} is read-only; slots must be "
                    "writable"
                )
            base = -segment._address() & (align - 1)
            required = base + stride * (slots - 1) + slot_size
            if required > segment.size:
                raise ValueError(
                    f"SlotPool {name!r}: segment {segment.name!r} holds {segment.size:,} bytes, "
                    f"but {slots} slots of {slot_size:,} bytes at a stride of {stride:,} "
                    f"(align {align}) need {required:,}"
                )
            whole: _Bytes | None = np.frombuffer(mm, np.uint8)
        except BaseException:
            if owned:
                segment.close()  # a failed constructor leaks nothing
            raise
        self._name = name
        self._slot_size = slot_size
        self._slots = slots
        self._stride = stride
        self._segment = segment
        self._owned = owned
        self._offsets = [base + i * stride for i in range(slots)]
        # Reversed so that the first loans of a fresh pool go 0, 1, 2, ... (LIFO pop).
        self._free = collections.deque(range(slots - 1, -1, -1))
        self._whole = whole
        self._cond = threading.Condition()  # an RLock: a return may run inside a waiter
        self._waiters = 0
        self._closed = False
        self._ref = weakref.ref(self)
        self._finalizer = weakref.finalize(self, _close_owned, segment if owned else None)

    # -- the hot path -------------------------------------------------------------------

    def loan(self, timeout: float | None = None) -> Slot:
        """Loan a free slot; O(1), lock-free unless it has to wait.

        Ownership: the caller holds the slot; it returns when the Slot and every view of
        it are dropped. With `timeout=None` an exhausted pool fails at once; with a
        timeout (seconds) the call waits that long for a slot to come back.

        Raises:
            PoolExhausted: no free slot (after `timeout` seconds, if given).
            ClosedError: the pool is closed (also while waiting).
            ValueError: `timeout` is negative (checked only when the pool is empty).
        """
        if self._closed:
            raise self._closed_error()
        try:
            index = self._free.pop()
        except IndexError:
            index = self._wait(timeout)
        slot = _new_slot(Slot)
        slot._pool = self._ref
        slot._index = index
        slot._offset = self._offsets[index]
        slot._size = self._slot_size
        return slot

    def try_loan(self) -> Slot | None:
        """Loan a free slot, or return None if every slot is on loan; never waits.

        Raises:
            ClosedError: the pool is closed.
        """
        if self._closed:
            raise self._closed_error()
        try:
            index = self._free.pop()
        except IndexError:
            return None
        slot = _new_slot(Slot)
        slot._pool = self._ref
        slot._index = index
        slot._offset = self._offsets[index]
        slot._size = self._slot_size
        return slot

    def _release(self, index: int) -> None:
        """Return slot `index` to the free list; the one place where an index comes back.

        `Slot.__del__` calls it when a slot's last reference drops; a cross-process link
        calls it for a slot its remote consumer has finished with. The caller guarantees
        that `index` is on loan and is returned once: this hot path does not check. It
        never raises and does no I/O, except that the last return to a closed pool
        releases the pool's own segment (munmap and close of its fd).
        """
        self._free.append(index)
        if self._waiters:
            with self._cond:
                self._cond.notify()
        if self._closed and len(self._free) == self._slots:
            self._finish_close()

    def _wait(self, timeout: float | None) -> int:
        if timeout is None:
            raise self._exhausted("")
        if timeout < 0:
            raise ValueError(f"pool {self._name!r}: loan timeout must be >= 0, got {timeout}")
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            try:
                while True:
                    if self._closed:
                        raise self._closed_error()
                    try:
                        return self._free.pop()
                    except IndexError:
                        pass
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._exhausted(f" after waiting {timeout:g} s")
                    self._cond.wait(remaining)
            finally:
                self._waiters -= 1

    def _exhausted(self, waited: str) -> PoolExhausted:
        return PoolExhausted(
            f"pool {self._name!r} is exhausted{waited}: all {self._slots} slots of "
            f"{self._slot_size:,} bytes are on loan; make the pool bigger, drop slots (and "
            "their views) sooner, or wait with loan(timeout=...)",
            pool=self._name,
            slots=self._slots,
        )

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"cannot loan from closed pool {self._name!r}")

    # -- state --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The pool's name, used in messages (and as its memfd's name when it owns one)."""
        return self._name

    @property
    def slot_size(self) -> int:
        """Usable bytes per slot."""
        return self._slot_size

    @property
    def slots(self) -> int:
        """Number of slots."""
        return self._slots

    @property
    def stride(self) -> int:
        """Distance in bytes between consecutive slots (slot_size rounded up to align)."""
        return self._stride

    @property
    def offsets(self) -> tuple[int, ...]:
        """Byte offset of each slot in the segment, by index (what a peer that maps the
        segment needs to find the slots)."""
        return tuple(self._offsets)

    @property
    def available(self) -> int:
        """Slots free right now (a snapshot; other threads may loan or return meanwhile)."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """Slots on loan right now (a snapshot)."""
        return self._slots - len(self._free)

    @property
    def segment(self) -> Segment:
        """The segment the slots live in; the pool's own unless one was passed in."""
        return self._segment

    @property
    def closed(self) -> bool:
        """True once `close()` was called (loaned slots may still be in use)."""
        return self._closed

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new loans and release the pool's own segment. Idempotent.

        Slots still on loan stay valid: a ResourceWarning names them, and the segment is
        unmapped when the last of them returns. Waiting `loan()` calls raise ClosedError.
        A segment passed in is not closed (close it after the pool).
        """
        if self._closed:
            return
        self._closed = True
        if self._waiters:
            with self._cond:
                self._cond.notify_all()
        free = list(self._free)
        if len(free) < self._slots:
            on_loan = sorted(set(range(self._slots)).difference(free))
            warnings.warn(
                f"pool {self._name!r} closed with {len(on_loan)} of {self._slots} slots on "
                f"loan (indices {on_loan}); its memory stays mapped until they are returned",
                ResourceWarning,
                stacklevel=2,
            )
        if len(self._free) == self._slots:  # re-read: the last loans may have come back
            self._finish_close()

    def _finish_close(self) -> None:
        # Drop our own export of the mapping first, so that unmapping can succeed.
        self._whole = None
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.in_use}/{self._slots} on loan"
        return (
            f"<SlotPool {self._name!r} {self._slots} x {self._slot_size:,} bytes "
            f"stride={self._stride:,} {state}>"
        )
