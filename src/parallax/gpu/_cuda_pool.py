"""`CudaPool`: a bounded pool of device slots, each a `CudaBuffer` with its `CudaEvent`.

Operations: `loan()` hands out a free slot: a returned one, else a new allocation while
fewer than `slots` exist, else it waits for a return (polling `flushing()`, so a stopping
pipeline is not stuck here). `give_back()` returns a slot from any thread without
blocking (a `CudaMemory` owner calls it when collected). `close()` frees the free slots;
slots on loan are freed by their finalizers when their last reference goes.

A failed allocation leaves the pool as it was: the slot is counted only once both its
memory and its event exist, so a transient out-of-memory is raised to the caller and the
next `loan()` tries again (it does not wait for a slot that was never made).
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from parallax._errors import FlowError

from ._cuda_buffer import CudaBuffer
from ._cuda_context import CudaContext
from ._cuda_host import CudaEvent
from ._cuda_memory import DeviceMemory


class CudaPool:
    """Up to `slots` device buffers of `slot_size` bytes (legacy-IPC shareable), each with
    the event recorded after the work that last filled it.

    Args:
        ctx: the context to allocate on.
        slot_size: bytes per slot (> 0).
        slots: the bound (> 0).

    Owned: `close()` it (idempotent); loaned slots outlive it and are freed when their
    owner goes. `loan()` raises what the allocation raised (`CudaError` when the device
    is out of memory) and leaves the pool able to allocate that slot later.
    """

    def __init__(self, ctx: CudaContext, slot_size: int, slots: int) -> None:
        for name, value in (("slot_size", slot_size), ("slots", slots)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.ctx, self.slot_size, self.slots = ctx, slot_size, slots
        self._free: queue.SimpleQueue[tuple[CudaBuffer, CudaEvent]] = queue.SimpleQueue()
        self._made = 0
        self.closed = False

    @property
    def allocated(self) -> int:
        """Slots allocated so far (free and on loan), at most `slots`."""
        return self._made

    def loan(
        self, name: str, flushing: Callable[[], bool], *, poll: float = 0.05
    ) -> tuple[CudaBuffer, CudaEvent]:
        """A free slot: a returned one, a new one while fewer than `slots` exist, or one
        returned while waiting.

        Args:
            name: the element asking, for the error message.
            flushing: polled while waiting; once it returns True the wait ends.
            poll: seconds between looks at `flushing` (elements pass the pipeline's
                `FLUSH_POLL`; this layer sits below the pipeline and cannot import it).

        Raises:
            FlowError: `flushing()` turned true while waiting for a return.
            CudaError: the allocation failed (the pool is unchanged).
        """
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._made < self.slots:
            memory = CudaBuffer(self.ctx, self.slot_size)
            try:
                event = CudaEvent(self.ctx)
            except BaseException:
                memory.close()
                raise
            self._made += 1  # counted once it exists: a failure above shrinks nothing
            return memory, event
        while not flushing():
            try:
                return self._free.get(timeout=poll)
            except queue.Empty:
                continue
        raise FlowError(f"{name}: stopped while waiting for a free GPU buffer", element=name)

    def give_back(self, memory: DeviceMemory, event: CudaEvent | None) -> None:
        """Return a loaned slot (from any thread; never blocks). After `close()`, or for
        memory that is not a slot, nothing is kept: the finalizers free it."""
        if self.closed or not isinstance(memory, CudaBuffer) or event is None:
            return
        self._free.put((memory, event))

    def close(self) -> None:
        """Free the free slots; later returns are freed by their finalizers. Idempotent."""
        self.closed = True
        while True:
            try:
                memory, event = self._free.get_nowait()
            except queue.Empty:
                return
            memory.close()
            event.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<CudaPool {self._made}/{self.slots} x {self.slot_size} bytes{state}>"
