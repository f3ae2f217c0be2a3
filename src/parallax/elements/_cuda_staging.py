"""Host-side staging for the CUDA elements: a ring of pinned (page-locked) slots, and a
copier that splits large host memmoves across threads.

- `Staging`: pinned host slots, each with the event recorded after its last copy; a slot is
  reused only once that copy is done, and grows to the largest buffer it has carried.
- `Copier`: pageable <-> pinned copies split across `threads` threads for large buffers:
  one thread's `memmove` stays well below the host's memory bandwidth and far below
  PCIe's (`ctypes.memmove` releases the GIL).
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np

from parallax.buffer import Buffer
from parallax.gpu import CudaContext, CudaEvent, PinnedHostBuffer


class Staging:
    """A ring of pinned host slots, each with the event recorded after its last copy:
    a slot is reused only once that copy is done. Slots grow to the largest buffer."""

    def __init__(self, ctx: CudaContext, slots: int) -> None:
        self.ctx = ctx
        self._slots: list[tuple[PinnedHostBuffer | None, CudaEvent]] = [
            (None, CudaEvent(ctx)) for _ in range(slots)
        ]
        self._next = 0
        self._used = [False] * slots

    def take(self, size: int) -> tuple[PinnedHostBuffer, CudaEvent]:
        i = self._next
        self._next = (i + 1) % len(self._slots)
        pinned, event = self._slots[i]
        if self._used[i]:
            event.synchronize()
        if pinned is None or pinned.size < size:
            if pinned is not None:
                pinned.close()
            pinned = PinnedHostBuffer(self.ctx, max(size, 1))
            self._slots[i] = (pinned, event)
        self._used[i] = True
        return pinned, event

    def close(self) -> None:
        for i, (pinned, event) in enumerate(self._slots):
            if self._used[i]:
                event.synchronize()
            if pinned is not None:
                pinned.close()
            event.close()
        self._slots = []


CHUNK: Final = 1 << 20  # the smallest piece a staging copy is split into across threads


class Copier:
    """Host copies between pageable and pinned memory, split across `threads` threads
    for large buffers: one thread's `memmove` stays well below the host's memory
    bandwidth and far below PCIe's (`ctypes.memmove` releases the GIL)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, "cuda-staging") if threads > 1 else None

    def memmove(self, dst: int, src: int, n: int) -> None:
        parts = min(self.threads, n // CHUNK)
        if self._pool is None or parts <= 1:
            if n:
                ctypes.memmove(dst, src, n)
            return
        step = -(-n // parts) + 63 & ~63  # cache-line multiples
        pieces = [(off, min(step, n - off)) for off in range(0, n, step)]
        futures = [
            self._pool.submit(ctypes.memmove, dst + off, src + off, size)
            for off, size in pieces[1:]
        ]
        off, size = pieces[0]
        ctypes.memmove(dst + off, src + off, size)
        for future in futures:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def host_address(src: Buffer | memoryview) -> tuple[np.ndarray[Any, Any], int]:
    """A uint8 array on the bytes of `src` (keep it while copying) and their address."""
    mem = src.view if isinstance(src, Buffer) else src
    arr = np.frombuffer(mem, dtype=np.uint8)
    return arr, int(arr.ctypes.data)
