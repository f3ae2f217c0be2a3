"""`CudaBuffer`: device memory that another process can open, shared one of two ways.

- `Sharing.IPC`, legacy CUDA IPC (`cuMemAlloc` + `cuIpcGetMemHandle`: a 64-byte handle,
  opened in *another* process with `cuIpcOpenMemHandle`; the driver refuses the exporting
  process itself);
- `Sharing.FD`, the virtual memory management API (`cuMemCreate` with
  `CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR`, `cuMemExportToShareableHandle` -> an fd that
  travels by SCM_RIGHTS, `cuMemImportFromShareableHandle` + `cuMemAddressReserve` +
  `cuMemMap` + `cuMemSetAccess` on import; sizes rounded up to
  `cuMemGetAllocationGranularity`).

`export()` makes the `CudaHandle` (`_cuda_handle.py`); `open_ipc` / `import_fd` /
`import_cuda_buffer` open one. A failing import says which field of the handle does not
fit (`HandleError`) or that the exporter is gone (`BrokenError`).
"""

from __future__ import annotations

import ctypes
import enum
import os
from typing import Any

from parallax._errors import BrokenError, PlatformNotSupported

from ._cuda_context import CudaContext
from ._cuda_driver import check, process_alive
from ._cuda_handle import IPC_HANDLE_SIZE, CudaHandle, HandleKind
from ._cuda_memory import DeviceMemory
from ._errors import CudaError, HandleError


class Sharing(enum.Enum):
    """How a `CudaBuffer` crosses a process boundary."""

    IPC = "ipc"  # legacy CUDA IPC: a 64-byte handle, no fd
    FD = "fd"  # VMM: a POSIX fd sent by SCM_RIGHTS


class CudaBuffer(DeviceMemory):
    """`size` bytes of device memory that another process can open.

    Args:
        ctx: the context (closing it closes the buffer).
        size: bytes (> 0).
        sharing: `Sharing.IPC` (legacy CUDA IPC, `cuMemAlloc`) or `Sharing.FD` (VMM,
            `cuMemCreate`, rounded up to the allocation granularity).

    Owned: `close()` it, or use `with`. `export()` makes a `CudaHandle` (and, for FD
    sharing, a new fd); `open_ipc` / `import_fd` open one in another process; an opened
    buffer's `close()` unmaps it (the exporter's memory lives on).

    Raises:
        PlatformNotSupported: FD sharing on a device without POSIX fd handles.
        CudaError: the driver refused (e.g. out of memory).
    """

    def __init__(self, ctx: CudaContext, size: int, *, sharing: Sharing = Sharing.IPC) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        if not isinstance(sharing, Sharing):
            raise ValueError(f"sharing: expected a Sharing, got {sharing!r}")
        super().__init__(ctx)
        ctx.activate()
        self.size, self.sharing, self.imported = size, sharing, False
        drv = ctx._drv
        self._alloc_handle: Any = None
        if sharing is Sharing.IPC:
            dptr = check("cuMemAlloc", drv.cuMemAlloc(size))
            self._ptr = int(dptr)
            self.allocation_size = size
            self._arm([("cuMemFree", dptr)])
            return
        if not ctx.attribute("HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED"):
            raise PlatformNotSupported(
                f"CUDA device {ctx.name!r} cannot share memory as POSIX fds; use Sharing.IPC"
            )
        prop = _vmm_prop(ctx)
        self.allocation_size = _round_up(size, _granularity(ctx, prop))
        handle = check("cuMemCreate", drv.cuMemCreate(self.allocation_size, prop, 0))
        try:
            self._map(handle)
        except BaseException:
            drv.cuMemRelease(handle)
            raise
        self._alloc_handle = handle

    def _map(self, handle: Any) -> None:
        """Reserve an address range, map `handle` there, grant this device read-write;
        arms the finalizer (unmap, free the range, release the handle)."""
        ctx, drv, n = self.context, self.context._drv, self.allocation_size
        addr = check("cuMemAddressReserve", drv.cuMemAddressReserve(n, 0, 0, 0))
        try:
            check("cuMemMap", drv.cuMemMap(addr, n, 0, handle, 0))
            try:
                access = drv.CUmemAccessDesc()
                access.location.type = drv.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
                access.location.id = ctx.ordinal
                access.flags = drv.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                check("cuMemSetAccess", drv.cuMemSetAccess(addr, n, [access], 1))
            except BaseException:
                drv.cuMemUnmap(addr, n)
                raise
        except BaseException:
            drv.cuMemAddressFree(addr, n)
            raise
        self._ptr = int(addr)
        self._arm(
            [("cuMemUnmap", addr, n), ("cuMemAddressFree", addr, n), ("cuMemRelease", handle)]
        )

    def export(self) -> tuple[CudaHandle, int | None]:
        """A handle, and for FD sharing a new fd the caller owns (send it with
        `socket.send_fds`, then close it). The buffer stays valid and owned here.

        Raises:
            HandleError: the buffer was itself opened from another process's handle.
        """
        self._live()
        if self.imported:
            raise HandleError("an opened CUDA buffer cannot be re-exported; export the original")
        drv = self.context._drv
        if self.sharing is Sharing.IPC:
            ipc = check("cuIpcGetMemHandle", drv.cuIpcGetMemHandle(self._ptr))
            kind, raw, fd = HandleKind.MEMORY_IPC, ctypes.string_at(ipc.getPtr(), 64), None
        else:
            posix = drv.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
            got = check(
                "cuMemExportToShareableHandle",
                drv.cuMemExportToShareableHandle(self._alloc_handle, posix, 0),
            )
            kind, raw, fd = HandleKind.MEMORY_FD, bytes(IPC_HANDLE_SIZE), int(got)
            os.set_inheritable(fd, False)
        handle = CudaHandle(
            kind, self.context.uuid, os.getpid(), self.size, self.allocation_size, raw
        )
        return handle, fd

    @classmethod
    def open_ipc(cls, ctx: CudaContext, handle: CudaHandle) -> CudaBuffer:
        """Open a legacy-IPC buffer exported by *another* process (`cuIpcOpenMemHandle`).

        Raises:
            HandleError: not a memory IPC handle, another device, this very process (the
                driver refuses it), or the driver reports less memory than the handle says.
            BrokenError: the exporting process is gone (its memory with it).
            CudaError: the driver refused otherwise.
        """
        if not isinstance(handle, CudaHandle) or handle.kind is not HandleKind.MEMORY_IPC:
            raise HandleError(f"expected a memory IPC CudaHandle, got {handle!r}", field="kind")
        handle.check_device(ctx)
        if handle.pid == os.getpid():
            raise HandleError(
                "pid: CUDA IPC handles open only in another process than the exporter's; "
                "use the buffer itself here",
                field="pid",
            )
        ctx.activate()
        drv = ctx._drv
        ipc = drv.CUipcMemHandle()
        ctypes.memmove(ipc.getPtr(), handle.ipc, IPC_HANDLE_SIZE)
        lazy = int(drv.CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        try:
            dptr = check("cuIpcOpenMemHandle", drv.cuIpcOpenMemHandle(ipc, lazy))
        except CudaError as e:
            if not process_alive(handle.pid):
                raise BrokenError(
                    f"the process {handle.pid} that exported this CUDA buffer is gone: {e}"
                ) from e
            raise
        self = cls.__new__(cls)
        DeviceMemory.__init__(self, ctx)
        self.size, self.sharing, self.imported = handle.size, Sharing.IPC, True
        self.allocation_size, self._alloc_handle, self._ptr = (
            handle.allocation_size,
            None,
            int(dptr),
        )
        self._arm([("cuIpcCloseMemHandle", dptr)])
        try:
            _base, got = check("cuMemGetAddressRange", drv.cuMemGetAddressRange(dptr))
            if int(got) < handle.size:
                raise HandleError(
                    f"size: the handle says {handle.size} bytes, the driver maps {int(got)}",
                    field="size",
                )
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def import_fd(cls, ctx: CudaContext, handle: CudaHandle, fd: int) -> CudaBuffer:
        """Map a VMM buffer from its fd (`cuMemImportFromShareableHandle`, `cuMemMap`).
        The caller keeps owning `fd` (the driver does not take it): close it when done.

        Raises:
            HandleError: not a memory fd handle, another device, a bad fd, or a size the
                allocation does not have.
            CudaError: the driver refused otherwise.
        """
        if not isinstance(handle, CudaHandle) or handle.kind is not HandleKind.MEMORY_FD:
            raise HandleError(f"expected a memory fd CudaHandle, got {handle!r}", field="kind")
        handle.check_device(ctx)
        try:
            os.fstat(fd)
        except (OSError, TypeError) as e:
            raise HandleError(f"fd: {fd!r} is not an open file descriptor ({e})", field="fd") from e
        ctx.activate()
        drv = ctx._drv
        posix = drv.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
        try:
            alloc = check(
                "cuMemImportFromShareableHandle", drv.cuMemImportFromShareableHandle(fd, posix)
            )
        except CudaError as e:
            raise HandleError(
                f"fd: the driver does not take fd {fd} as CUDA memory: {e}", field="fd"
            ) from e
        self = cls.__new__(cls)
        DeviceMemory.__init__(self, ctx)
        self.size, self.sharing, self.imported = handle.size, Sharing.FD, True
        self.allocation_size, self._alloc_handle = handle.allocation_size, alloc
        try:
            self._map(alloc)
        except CudaError as e:
            drv.cuMemRelease(alloc)
            raise HandleError(
                f"allocation_size: mapping {handle.allocation_size} bytes of fd {fd} failed "
                f"(does the allocation have that size?): {e}",
                field="allocation_size",
            ) from e
        except BaseException:
            drv.cuMemRelease(alloc)
            raise
        return self


def _vmm_prop(ctx: CudaContext) -> Any:
    drv = ctx._drv
    prop = drv.CUmemAllocationProp()
    prop.type = drv.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    prop.requestedHandleTypes = (
        drv.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
    )
    prop.location.type = drv.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    prop.location.id = ctx.ordinal
    return prop


def _granularity(ctx: CudaContext, prop: Any) -> int:
    drv = ctx._drv
    flag = drv.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM
    return int(
        check("cuMemGetAllocationGranularity", drv.cuMemGetAllocationGranularity(prop, flag))
    )


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def import_cuda_buffer(ctx: CudaContext, handle: CudaHandle, fd: int | None = None) -> CudaBuffer:
    """Open an exported `CudaBuffer` of either kind: IPC (no fd) or FD (the caller keeps
    owning `fd`). See `CudaBuffer.open_ipc` and `CudaBuffer.import_fd` for the errors."""
    if isinstance(handle, CudaHandle) and handle.kind is HandleKind.MEMORY_FD:
        if fd is None:
            raise HandleError("fd: an fd handle needs its fd (sent by SCM_RIGHTS)", field="fd")
        return CudaBuffer.import_fd(ctx, handle, fd)
    return CudaBuffer.open_ipc(ctx, handle)
