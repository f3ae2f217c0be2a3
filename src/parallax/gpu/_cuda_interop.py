"""Vulkan -> CUDA: a Vulkan allocation and a Vulkan semaphore seen by CUDA.

- `import_vulkan_buffer(ctx, handle, fd)`: the memory behind a `SharedBuffer.export()`
  (OPAQUE_FD of a dedicated allocation) imported with `cuImportExternalMemory`
  (`CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD`, `CUDA_EXTERNAL_MEMORY_DEDICATED`, the
  handle's allocation size) and mapped with `cuExternalMemoryGetMappedBuffer`. Released
  with `cuMemFree` (the mapped pointer) then `cuDestroyExternalMemory`.
- `import_vulkan_semaphore(ctx, fd, timeline=...)`: an exported VkSemaphore imported with
  `cuImportExternalSemaphore` (TIMELINE_SEMAPHORE_FD or OPAQUE_FD), signalled and waited
  on a stream with `cuSignalExternalSemaphoresAsync` / `cuWaitExternalSemaphoresAsync`.

On success CUDA owns an imported fd (the CUDA driver API reference of
`cuImportExternalMemory`/`cuImportExternalSemaphore`; PLATFORM.md saw it closed): we hand
it a duplicate, so the caller always keeps and closes its own fd. On failure the
duplicate is still ours and is closed here.

The condition for OPAQUE_FD is the same device: the Vulkan device UUID
(`VkPhysicalDeviceIDProperties`) equals `cuDeviceGetUuid` (verified on the H100).
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Self

from parallax._errors import ClosedError

from ._cuda_context import CudaContext, CudaStream
from ._cuda_driver import check, release, stream_ptr
from ._cuda_memory import DeviceMemory
from ._errors import HandleError
from ._handle import BufferHandle, HandleType


class ExternalCudaBuffer(DeviceMemory):
    """A Vulkan buffer's memory mapped into CUDA (from `import_vulkan_buffer`): `ptr`,
    `size`, `__cuda_array_interface__`, `upload`/`download`/`read`, `close()`.

    Owned: `close()` unmaps it here; the Vulkan side keeps its memory. Order the two
    APIs' work yourself (finish Vulkan's writes before CUDA reads, e.g. with a semaphore
    from `import_vulkan_semaphore`, or a host wait on both sides).
    """

    _kind = "imported Vulkan buffer"


def _check_fd(fd: int) -> None:
    try:
        os.fstat(fd)
    except (OSError, TypeError) as e:
        raise HandleError(f"fd: {fd!r} is not an open file descriptor ({e})", field="fd") from e


def import_vulkan_buffer(ctx: CudaContext, handle: BufferHandle, fd: int) -> ExternalCudaBuffer:
    """Map the Vulkan memory behind `fd` (from `SharedBuffer.export()`) into CUDA.

    The caller keeps owning `fd` (a duplicate goes to CUDA): close it when done.

    Raises:
        HandleError: not an opaque-fd buffer handle, another device than `ctx`'s, or a
            closed fd.
        CudaError: the driver refused the import or the mapping.
    """
    if not isinstance(handle, BufferHandle):
        raise HandleError(f"expected a BufferHandle, got {type(handle).__name__}")
    if handle.handle_type is not HandleType.OPAQUE_FD:
        raise HandleError(
            f"handle_type: CUDA imports opaque-fd Vulkan memory, got {handle.handle_type.value}",
            field="handle_type",
        )
    if handle.device_uuid != ctx.uuid:
        raise HandleError(
            f"device_uuid: the Vulkan memory lives on device {handle.device_uuid.hex()}, "
            f"this CUDA context is {ctx.name!r} {ctx.uuid.hex()}",
            field="device_uuid",
        )
    _check_fd(fd)
    ctx.activate()
    drv = ctx._drv
    desc = drv.CUDA_EXTERNAL_MEMORY_HANDLE_DESC()
    desc.type = drv.CUexternalMemoryHandleType.CU_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD
    desc.size = handle.allocation_size
    desc.flags = drv.CUDA_EXTERNAL_MEMORY_DEDICATED  # SharedBuffer allocations are dedicated
    dup = os.dup(fd)
    desc.handle.fd = dup
    try:
        ext = check("cuImportExternalMemory", drv.cuImportExternalMemory(desc))
    except BaseException:
        os.close(dup)  # the import failed: the fd is still ours
        raise
    try:
        bdesc = drv.CUDA_EXTERNAL_MEMORY_BUFFER_DESC()
        bdesc.offset = 0
        bdesc.size = handle.size
        bdesc.flags = 0
        dptr = check(
            "cuExternalMemoryGetMappedBuffer", drv.cuExternalMemoryGetMappedBuffer(ext, bdesc)
        )
    except BaseException:
        drv.cuDestroyExternalMemory(ext)
        raise
    buf = ExternalCudaBuffer(ctx)
    buf.size, buf._ptr = handle.size, int(dptr)
    # The mapped pointer is freed with cuMemFree, before the external memory is destroyed.
    buf._arm([("cuMemFree", dptr), ("cuDestroyExternalMemory", ext)])
    return buf


class ExternalSemaphore:
    """A Vulkan semaphore imported into CUDA (from `import_vulkan_semaphore`).

    `signal(value, stream)` and `wait(value, stream)` enqueue on a CUDA stream; `value`
    is the timeline value (ignored for a binary semaphore). Owned: `close()`.
    """

    def __init__(self, ctx: CudaContext, sem: Any, timeline: bool) -> None:
        self.context, self.timeline, self._sem = ctx, timeline, sem
        self._finalizer = weakref.finalize(
            self, release, ctx._drv, ctx._ctx, [("cuDestroyExternalSemaphore", sem)]
        )
        ctx.adopt(self)

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or its context closed)."""
        return not self._finalizer.alive

    def _live(self) -> Any:
        if self.closed:
            raise ClosedError("imported semaphore is closed")
        self.context.activate()
        return self.context._drv

    def _value(self, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
            raise ValueError(f"value: expected 0..2**64-1, got {value!r}")
        return value

    def signal(self, value: int = 0, stream: CudaStream | int | None = None) -> None:
        """Signal the semaphore (to `value` on a timeline) once `stream`'s work is done."""
        drv = self._live()
        params = drv.CUDA_EXTERNAL_SEMAPHORE_SIGNAL_PARAMS()
        params.params.fence.value = self._value(value)
        params.flags = 0
        check(
            "cuSignalExternalSemaphoresAsync",
            drv.cuSignalExternalSemaphoresAsync([self._sem], [params], 1, stream_ptr(stream)),
        )

    def wait(self, value: int = 0, stream: CudaStream | int | None = None) -> None:
        """Make `stream` wait (on the GPU) until the semaphore reaches `value` (timeline)
        or is signalled (binary)."""
        drv = self._live()
        params = drv.CUDA_EXTERNAL_SEMAPHORE_WAIT_PARAMS()
        params.params.fence.value = self._value(value)
        params.flags = 0
        check(
            "cuWaitExternalSemaphoresAsync",
            drv.cuWaitExternalSemaphoresAsync([self._sem], [params], 1, stream_ptr(stream)),
        )

    def close(self) -> None:
        """Destroy CUDA's view of the semaphore (Vulkan's stays). Idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_vulkan_semaphore(ctx: CudaContext, fd: int, *, timeline: bool) -> ExternalSemaphore:
    """Import an exported Vulkan semaphore (OPAQUE_FD) into CUDA.

    Args:
        ctx: the CUDA context (on the semaphore's device).
        fd: from `vkGetSemaphoreFdKHR`; the caller keeps owning it (a duplicate goes to CUDA).
        timeline: a timeline semaphore (`CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_FD`)
            or a binary one (`..._OPAQUE_FD`).

    Raises:
        HandleError: `fd` is not open.
        CudaError: the driver refused the import.
    """
    _check_fd(fd)
    ctx.activate()
    drv = ctx._drv
    kinds = drv.CUexternalSemaphoreHandleType
    desc = drv.CUDA_EXTERNAL_SEMAPHORE_HANDLE_DESC()
    desc.type = (
        kinds.CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_FD
        if timeline
        else kinds.CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD
    )
    desc.flags = 0
    dup = os.dup(fd)
    desc.handle.fd = dup
    try:
        sem = check("cuImportExternalSemaphore", drv.cuImportExternalSemaphore(desc))
    except BaseException:
        os.close(dup)
        raise
    return ExternalSemaphore(ctx, sem, bool(timeline))
