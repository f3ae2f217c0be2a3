"""Host-side CUDA objects: interprocess events and page-locked host memory.

- `CudaEvent`: `CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING`, exported with
  `cuIpcGetEventHandle`, opened elsewhere with `cuIpcOpenEventHandle`; `record`, `wait`
  (on a stream, on the GPU), `synchronize`, `query`.
- `PinnedHostBuffer`: `cuMemHostAlloc` (portable) page-locked memory for staging copies.
- `HostRegistration`: host memory someone else owns (a shared-memory segment), page-locked
  in place with `cuMemHostRegister` so copies from it run at the pinned rate.
"""

from __future__ import annotations

import ctypes
import os
import sys
import weakref
from typing import Any, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError

from ._cuda_context import CudaContext, CudaStream
from ._cuda_driver import check, process_alive, release, stream_ptr
from ._cuda_handle import IPC_HANDLE_SIZE, CudaHandle, HandleKind
from ._errors import CudaError, HandleError


class CudaEvent:
    """An event for ordering work across processes (`CU_EVENT_INTERPROCESS |
    CU_EVENT_DISABLE_TIMING`): `record` on a stream here, `export()` the handle, and in
    another process `CudaEvent.open_ipc(ctx, handle)` then `wait(stream)` or
    `synchronize()`. Owned: `close()` (an opened event closes only this process's view)."""

    def __init__(self, ctx: CudaContext, *, _opened: Any = None, _pid: int = 0) -> None:
        ctx.activate()
        drv = ctx._drv
        self.context = ctx
        if _opened is None:
            flags = int(drv.CUevent_flags.CU_EVENT_INTERPROCESS) | int(
                drv.CUevent_flags.CU_EVENT_DISABLE_TIMING
            )
            self._event = check("cuEventCreate", drv.cuEventCreate(flags))
        else:
            self._event = _opened
        self.imported = _opened is not None
        self._finalizer = weakref.finalize(
            self, release, drv, ctx._ctx, [("cuEventDestroy", self._event)]
        )
        ctx.adopt(self)

    def _live(self) -> Any:
        if not self._finalizer.alive:
            raise ClosedError("CUDA event is closed")
        self.context.activate()
        return self.context._drv

    def record(self, stream: CudaStream | int | None = None) -> None:
        """Record the event on `stream` (default: the legacy default stream)."""
        drv = self._live()
        check("cuEventRecord", drv.cuEventRecord(self._event, stream_ptr(stream)))

    def wait(self, stream: CudaStream | int | None = None) -> None:
        """Make `stream` wait (on the GPU) for the last recorded work (`cuStreamWaitEvent`)."""
        drv = self._live()
        check("cuStreamWaitEvent", drv.cuStreamWaitEvent(stream_ptr(stream), self._event, 0))

    def synchronize(self) -> None:
        """Block this thread until the recorded work is done."""
        drv = self._live()
        check("cuEventSynchronize", drv.cuEventSynchronize(self._event))

    def query(self) -> bool:
        """True if the recorded work is done (`cuEventQuery`), False if not yet."""
        drv = self._live()
        err = drv.cuEventQuery(self._event)[0]
        if int(err) == int(drv.CUresult.CUDA_ERROR_NOT_READY):
            return False
        check("cuEventQuery", (err,))
        return True

    def export(self) -> CudaHandle:
        """The event's IPC handle (`cuIpcGetEventHandle`); no fd."""
        drv = self._live()
        ipc = check("cuIpcGetEventHandle", drv.cuIpcGetEventHandle(self._event))
        raw = ctypes.string_at(ipc.getPtr(), IPC_HANDLE_SIZE)
        return CudaHandle(HandleKind.EVENT_IPC, self.context.uuid, os.getpid(), 0, 0, raw)

    @classmethod
    def open_ipc(cls, ctx: CudaContext, handle: CudaHandle) -> CudaEvent:
        """Open an event exported by another process (`cuIpcOpenEventHandle`).

        Raises:
            HandleError: not an event handle, another device, or this very process.
            BrokenError: the exporting process is gone.
        """
        if not isinstance(handle, CudaHandle) or handle.kind is not HandleKind.EVENT_IPC:
            raise HandleError(f"expected an event CudaHandle, got {handle!r}", field="kind")
        handle.check_device(ctx)
        if handle.pid == os.getpid():
            raise HandleError(
                "pid: CUDA IPC event handles open only in another process", field="pid"
            )
        ctx.activate()
        drv = ctx._drv
        ipc = drv.CUipcEventHandle()
        ctypes.memmove(ipc.getPtr(), handle.ipc, IPC_HANDLE_SIZE)
        try:
            event = check("cuIpcOpenEventHandle", drv.cuIpcOpenEventHandle(ipc))
        except CudaError as e:
            if not process_alive(handle.pid):
                raise BrokenError(
                    f"the process {handle.pid} that exported this event is gone: {e}"
                ) from e
            raise
        return cls(ctx, _opened=event)

    def close(self) -> None:
        """Destroy the event (or this process's view of it). Idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PinnedHostBuffer:
    """`size` bytes of page-locked host memory (`cuMemHostAlloc`, portable: usable by
    every context), for fast staging copies; `view` (memoryview) and `array()` (NumPy)
    are views, not copies.

    Owned: `close()` frees it, and raises `BufferError` while a view is alive (as
    `mmap.close()` does), so no view outlives the memory.
    """

    def __init__(self, ctx: CudaContext, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        ctx.activate()
        drv = ctx._drv
        ptr = int(check("cuMemHostAlloc", drv.cuMemHostAlloc(size, drv.CU_MEMHOSTALLOC_PORTABLE)))
        self.context, self.size, self._ptr = ctx, size, ptr
        self._array: Any = (ctypes.c_ubyte * size).from_address(ptr)
        self._finalizer = weakref.finalize(self, release, drv, ctx._ctx, [("cuMemFreeHost", ptr)])
        ctx.adopt(self)

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return not self._finalizer.alive

    def pinned_region(self) -> tuple[int, int]:
        """(address, size): how the copy helpers recognise pinned memory without a type
        check (they live in `_cuda_memory.py`, which cannot import this module)."""
        return self.ptr, self.size

    @property
    def ptr(self) -> int:
        """The host address."""
        if self.closed:
            raise ClosedError("pinned host buffer is closed")
        return self._ptr

    @property
    def view(self) -> memoryview:
        """A writable byte view (no copy); release it before `close()`."""
        if self.closed:
            raise ClosedError("pinned host buffer is closed")
        return memoryview(self._array).cast("B")

    def array(self, dtype: Any = np.uint8) -> np.ndarray[Any, Any]:
        """A NumPy view (no copy) of the whole buffer as `dtype`."""
        return np.frombuffer(self.view, dtype=dtype)

    def close(self) -> None:
        """Free the memory. Idempotent; `BufferError` while a view is alive."""
        if self.closed:
            return
        # References: self._array and getrefcount's argument; a live view adds one.
        views = sys.getrefcount(self._array) - 2
        if views > 0:
            raise BufferError(
                f"cannot close a {self.size}-byte pinned host buffer: {views} view(s) alive"
            )
        self._array = None
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HostRegistration:
    """Host memory page-locked in place for the GPU (`cuMemHostRegister`, portable; read
    only if `memory` is): copies from it then run at the pinned rate, with no staging
    memmove. `memory` is any contiguous buffer (a shared-memory segment's view): a NumPy
    export of it is held, so the mapping cannot go away before `close()` unregisters it.

    Owned: `close()` it once the streams that copy from it are idle. `base` is the address
    of the first byte.

    Raises:
        CudaError: the driver refused (memory that cannot be page-locked).
        ValueError: `memory` is not a contiguous byte buffer.
    """

    def __init__(self, ctx: CudaContext, memory: Any) -> None:
        holder = np.frombuffer(memory, np.uint8)
        self.context = ctx
        self.base = int(holder.ctypes.data)
        self.size = int(holder.nbytes)
        drv = ctx._drv
        flags = drv.CU_MEMHOSTREGISTER_PORTABLE
        if not holder.flags.writeable:
            flags |= drv.CU_MEMHOSTREGISTER_READ_ONLY
        ctx.activate()
        check("cuMemHostRegister", drv.cuMemHostRegister(self.base, self.size, flags))
        self._holder: np.ndarray[Any, Any] | None = holder

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._holder is None

    def close(self) -> None:
        """Unregister (copies from the memory must be done) and let the mapping go.
        Idempotent."""
        if self._holder is None:
            return
        self._holder = None
        self.context.activate()
        check("cuMemHostUnregister", self.context._drv.cuMemHostUnregister(self.base))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
