"""`BufferAllocator`: where sources get their buffers — loans from shared-memory pools.

A source asks for one buffer at a time; the allocator loans a slot from its newest pool
that has one free. Buffers held downstream (an appsink's queue, a user's list) keep
their slots, so a fixed pool could starve the source: the allocator then adds a pool
twice the size of the last, up to `max_bytes` (default 256 MiB), and only past that
waits for a slot to come back — GStreamer's buffer pools grow to a maximum the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from parallax._errors import FlowError, PoolExhausted
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.memory import Slot, SlotPool

from ._poll import wait_or_flush

DEFAULT_MAX_BYTES = 256 << 20
"""Shared memory one source may pin before it waits (DESIGN.md: bounded everywhere)."""


class BufferAllocator:
    """Loans pool slots as buffers. Owns its pools: `close()` it (or use `with`).

    Args:
        slot_size: bytes per buffer (the largest buffer this allocator returns).
        slots: slots in the first pool.
        max_bytes: total pool memory before `buffer()` waits for a return.
        name: used for pool names and errors.
        flushing: returns True when the owner is stopping (a waiting `buffer()` gives up).
    """

    def __init__(
        self,
        slot_size: int,
        *,
        slots: int = 32,
        max_bytes: int = DEFAULT_MAX_BYTES,
        name: str = "alloc",
        flushing: Callable[[], bool] = lambda: False,
    ) -> None:
        if slot_size <= 0:
            raise ValueError(f"{name}: buffer size must be positive, got {slot_size}")
        self.slot_size = slot_size
        self.name = name
        self._max_slots = max(max_bytes // slot_size, 1)
        self._flushing = flushing
        first = min(slots, self._max_slots)
        self._pools: list[SlotPool] = [SlotPool(slot_size, first, name=f"{name}.pool0")]
        self._current = self._pools[0]
        self._total = first

    @property
    def pools(self) -> list[SlotPool]:
        """The pools made so far (oldest first)."""
        return list(self._pools)

    def slot(self) -> Slot:
        """A free slot; grows or waits as the module docstring says.

        Raises:
            FlowError: the owner started flushing while we waited.
        """
        slot = self._current.try_loan()
        if slot is None:
            slot = self._any_free()
        if slot is not None:
            return slot
        if self._total < self._max_slots:
            more = min(self._total, self._max_slots - self._total)
            pool = SlotPool(self.slot_size, more, name=f"{self.name}.pool{len(self._pools)}")
            self._pools.append(pool)
            self._total += more
            self._current = pool
            return self.slot()
        slot = wait_or_flush(self._returned, self._flushing)
        if slot is None:
            raise FlowError(
                f"{self.name}: stopped while waiting for a free buffer", element=self.name
            )
        return slot

    def _any_free(self) -> Slot | None:
        """A free slot of any pool (the one it came from becomes the current pool)."""
        for pool in self._pools:
            slot = pool.try_loan()
            if slot is not None:
                self._current = pool
                return slot
        return None

    def _returned(self, timeout: float) -> Slot | None:
        """A slot returned within `timeout` s: to the current pool, else to any other."""
        try:
            return self._current.loan(timeout=timeout)
        except PoolExhausted:
            return self._any_free()

    def buffer(
        self, size: int | None = None, caps: Caps | None = None, sequence: int = 0
    ) -> Buffer:
        """A writable buffer of `size` bytes (default: `slot_size`) on a fresh loan."""
        return Buffer.from_owner(
            self.slot(), self.slot_size if size is None else size, caps, sequence
        )

    def close(self) -> None:
        """Close every pool. Slots still on loan keep their memory until returned."""
        pools, self._pools = self._pools, []
        for pool in pools:
            pool.close()

    def __enter__(self) -> BufferAllocator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
