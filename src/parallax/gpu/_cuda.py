"""CUDA through the driver API (`cuda.bindings.driver`): a context, device memory that
crosses process boundaries, interprocess events, pinned host staging memory.

Operations:

- `CudaContext(ordinal)`: retains the device's *primary* context (the one the runtime
  API, CuPy and torch use, so pointers pass between them) and releases it on `close()`.
- `CudaBuffer(ctx, size, sharing=...)`: device memory shared one of two ways:
  `Sharing.IPC`, legacy CUDA IPC (`cuMemAlloc` + `cuIpcGetMemHandle`: a 64-byte handle,
  opened in *another* process with `cuIpcOpenMemHandle`; the driver refuses the exporting
  process itself), or `Sharing.FD`, the virtual memory management API
  (`cuMemCreate` with `CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR`,
  `cuMemExportToShareableHandle` -> an fd that travels by SCM_RIGHTS,
  `cuMemImportFromShareableHandle` + `cuMemAddressReserve` + `cuMemMap` +
  `cuMemSetAccess` on import; sizes rounded up to `cuMemGetAllocationGranularity`).
- `CudaHandle`: what a peer needs, minus the fd; fixed-size bytes, sans-IO decoding.
- `CudaStream`, for asynchronous copies.
- In `_cuda_host.py`: `CudaEvent` (interprocess events) and `PinnedHostBuffer`
  (`cuMemHostAlloc`, portable) for staging copies.

Every CUresult is checked (`check`) and named in a `CudaError`; a failing import says
which field of the handle does not fit (`HandleError`) or that the exporter is gone
(`BrokenError`). Buffers expose `__cuda_array_interface__` (version 3), which
`cupy.asarray(buf)` and `torch.as_tensor(buf, device="cuda")` consume without a copy,
and `__dlpack__`/`__dlpack_device__` (kDLCUDA; capsules built in `_dlpack`), which JAX,
torch and CuPy `from_dlpack` consume without a copy.

`cuda.bindings` has no type stubs: it is imported lazily through importlib and used as
`Any`. This module holds the whole driver-API layer the interop module builds on; it is
over 400 lines because the two sharing paths share their owner, checks and handle.
"""

from __future__ import annotations

import ctypes
import enum
import importlib
import os
import struct
import weakref
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

import numpy as np

from parallax._errors import (
    BrokenError,
    ClosedError,
    MissingExtra,
    ParallaxError,
    PlatformNotSupported,
)

from . import _dlpack
from ._errors import HandleError

INSTALL: Final = "pip install 'parallax-dataflow[gpu]' (cuda-bindings)"
IPC_HANDLE_SIZE: Final = 64  # CU_IPC_HANDLE_SIZE
MAGIC: Final = b"PXCU"
VERSION: Final = 1
# magic | u8 version | u8 kind | u16 reserved | u32 exporter pid | u64 size |
# u64 allocation size | 16s device UUID | 64s IPC handle (zeros for an fd handle)
_WIRE: Final = struct.Struct("<4sBBHIQQ16s64s")


class CudaError(ParallaxError, RuntimeError):
    """A CUDA driver call failed; `function` names it and `result` the CUresult name."""

    def __init__(self, message: str, *, function: str = "", result: str = "") -> None:
        super().__init__(message)
        self.function, self.result = function, result


def driver() -> Any:
    """The `cuda.bindings.driver` module; `MissingExtra` with the install line if absent."""
    try:
        return importlib.import_module("cuda.bindings.driver")
    except ImportError as e:
        raise MissingExtra(f"CUDA support needs cuda-bindings: {INSTALL}: {e}") from e


def check(function: str, ret: Any) -> Any:
    """Check the CUresult a `cuda.bindings` call returned first; return the rest:
    None, the single value, or a tuple of values."""
    err, rest = (ret[0], ret[1:]) if isinstance(ret, tuple) else (ret, ())
    if int(err) != 0:
        raise CudaError(
            f"{function} failed: {error_name(err)}", function=function, result=error_name(err)
        )
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def error_name(err: Any) -> str:
    """'CUDA_ERROR_INVALID_VALUE (invalid argument)' for a CUresult."""
    drv = driver()
    name = getattr(err, "name", str(err))
    e2, text = drv.cuGetErrorString(err)
    if int(e2) == 0 and text:
        return f"{name} ({text.decode() if isinstance(text, bytes) else text})"
    return str(name)


class _Owned(Protocol):
    def close(self) -> None: ...


class CudaContext:
    """The primary context of one CUDA device, retained until `close()`.

    Args:
        ordinal: the device number (as in `CUDA_VISIBLE_DEVICES` order).

    Raises:
        MissingExtra: cuda-bindings is not installed.
        PlatformNotSupported: no CUDA driver, or no device with that ordinal.

    Owns one retain of the primary context: `close()` it, or use `with`. Closing closes
    every buffer, event and stream made on it first.
    """

    def __init__(self, ordinal: int = 0) -> None:
        drv = driver()
        try:
            err = drv.cuInit(0)[0]
        except RuntimeError as e:  # cuda.pathfinder: libcuda.so.1 is not there
            raise PlatformNotSupported(f"no CUDA driver (libcuda) on this machine: {e}") from e
        if int(err) != 0:
            raise PlatformNotSupported(f"no CUDA device: cuInit failed: {error_name(err)}")
        count = check("cuDeviceGetCount", drv.cuDeviceGetCount())
        if isinstance(ordinal, bool) or not isinstance(ordinal, int) or not 0 <= ordinal < count:
            raise PlatformNotSupported(
                f"no CUDA device {ordinal!r}: this machine has {count} (0..{count - 1})"
            )
        self._drv = drv
        self.ordinal = ordinal
        self._device = check("cuDeviceGet", drv.cuDeviceGet(ordinal))
        self.uuid: bytes = bytes(check("cuDeviceGetUuid", drv.cuDeviceGetUuid(self._device)).bytes)
        raw = check("cuDeviceGetName", drv.cuDeviceGetName(256, self._device))
        self.name: str = raw.split(b"\0", 1)[0].decode() if isinstance(raw, bytes) else str(raw)
        self._ctx = check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(self._device))
        self._children: weakref.WeakSet[_Owned] = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _release_primary, drv, self._device)

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return not self._finalizer.alive

    @property
    def handle(self) -> Any:
        """The CUcontext."""
        self.activate()
        return self._ctx

    def activate(self) -> None:
        """Make the context current on this thread (every method here does it first)."""
        if self.closed:
            raise ClosedError(f"CUDA context of device {self.ordinal} is closed")
        check("cuCtxSetCurrent", self._drv.cuCtxSetCurrent(self._ctx))

    def attribute(self, name: str) -> int:
        """A device attribute by its CUdevice_attribute suffix (`CU_DEVICE_ATTRIBUTE_`
        left out), e.g. 'HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED'."""
        attr = getattr(self._drv.CUdevice_attribute, f"CU_DEVICE_ATTRIBUTE_{name}")
        return int(
            check("cuDeviceGetAttribute", self._drv.cuDeviceGetAttribute(attr, self._device))
        )

    def synchronize(self) -> None:
        """Wait for all work on the context (`cuCtxSynchronize`)."""
        self.activate()
        check("cuCtxSynchronize", self._drv.cuCtxSynchronize())

    def adopt(self, child: _Owned) -> None:
        """Close `child` when this context closes (buffers, events, streams made on it)."""
        self._children.add(child)

    def close(self) -> None:
        """Close everything made on the context, then release it. Idempotent."""
        for child in list(self._children):
            child.close()
        self._children.clear()
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<CudaContext {self.ordinal} {self.name!r} {self.uuid.hex()}{state}>"


def _release_primary(drv: Any, device: Any) -> None:
    # At interpreter exit the driver may already be gone (CUDA_ERROR_DEINITIALIZED): a
    # finalizer has nobody to report to then, so that one result is dropped.
    err = drv.cuDevicePrimaryCtxRelease(device)[0]
    if int(err) not in (0, int(drv.CUresult.CUDA_ERROR_DEINITIALIZED)):
        raise CudaError(f"cuDevicePrimaryCtxRelease failed: {error_name(err)}")


def _stream(stream: CudaStream | int | None) -> int:
    if stream is None:
        return 0
    if isinstance(stream, CudaStream):
        return stream.ptr
    return int(stream)


class CudaStream:
    """A non-blocking CUDA stream (`cuStreamCreate`). `ptr` is the CUstream as an int,
    the form CuPy (`cupy.cuda.ExternalStream(ptr)`) and torch take. Owned: `close()`."""

    def __init__(self, ctx: CudaContext) -> None:
        ctx.activate()
        drv = ctx._drv
        flags = int(drv.CUstream_flags.CU_STREAM_NON_BLOCKING)
        self._handle = check("cuStreamCreate", drv.cuStreamCreate(flags))
        self.ptr: int = int(self._handle)
        self.context = ctx
        self._finalizer = weakref.finalize(
            self, _free, drv, ctx._ctx, [("cuStreamDestroy", self._handle)]
        )
        ctx.adopt(self)

    def synchronize(self) -> None:
        """Wait for the work queued on the stream."""
        self.context.activate()
        check("cuStreamSynchronize", self.context._drv.cuStreamSynchronize(self._handle))

    def close(self) -> None:
        """Destroy the stream. Idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free(drv: Any, ctx: Any, calls: list[tuple[Any, ...]]) -> None:
    """Run release calls in order with `ctx` current; the first failure is raised after
    the rest ran (a finalizer at interpreter exit drops CUDA_ERROR_DEINITIALIZED)."""
    failed: CudaError | None = None
    deinit = int(drv.CUresult.CUDA_ERROR_DEINITIALIZED)
    err = drv.cuCtxSetCurrent(ctx)[0]
    if int(err) == deinit:
        return
    for name, *args in calls:
        err = getattr(drv, name)(*args)[0]
        if int(err) not in (0, deinit) and failed is None:
            failed = CudaError(f"{name} failed: {error_name(err)}", function=name)
    if failed is not None:
        raise failed


class Sharing(enum.Enum):
    """How a `CudaBuffer` crosses a process boundary."""

    IPC = "ipc"  # legacy CUDA IPC: a 64-byte handle, no fd
    FD = "fd"  # VMM: a POSIX fd sent by SCM_RIGHTS


class HandleKind(enum.IntEnum):
    """What a `CudaHandle` refers to (its wire code)."""

    MEMORY_IPC = 1
    MEMORY_FD = 2
    EVENT_IPC = 3


@dataclass(frozen=True, slots=True)
class CudaHandle:
    """An exported CUDA buffer or event: everything a peer needs but the fd.

    `size` is the usable size, `allocation_size` what the driver allocated (>= size),
    `pid` the exporting process (legacy IPC is refused in it), `ipc` the driver's
    64-byte IPC handle (zeros for an fd handle).
    """

    kind: HandleKind
    device_uuid: bytes
    pid: int
    size: int
    allocation_size: int
    ipc: bytes = bytes(IPC_HANDLE_SIZE)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, HandleKind):
            raise HandleError(f"kind: expected a HandleKind, got {self.kind!r}", field="kind")
        if not isinstance(self.device_uuid, bytes) or len(self.device_uuid) != 16:
            raise HandleError(
                f"device_uuid: expected 16 bytes, got {self.device_uuid!r}", field="device_uuid"
            )
        if not isinstance(self.ipc, bytes) or len(self.ipc) != IPC_HANDLE_SIZE:
            raise HandleError(f"ipc: expected {IPC_HANDLE_SIZE} bytes", field="ipc")
        if not 0 < self.pid < 1 << 32:
            raise HandleError(f"pid: expected 1..2**32-1, got {self.pid}", field="pid")
        if self.kind is HandleKind.EVENT_IPC:
            if self.size or self.allocation_size:
                raise HandleError("size: an event handle has no size", field="size")
            return
        if not 0 < self.allocation_size < 1 << 64:
            raise HandleError(
                f"allocation_size: expected 1..2**64-1, got {self.allocation_size}",
                field="allocation_size",
            )
        if not 0 < self.size <= self.allocation_size:
            raise HandleError(
                f"size: expected 1..{self.allocation_size} (the allocation size), got {self.size}",
                field="size",
            )

    def to_bytes(self) -> bytes:
        """Serialize (an fd travels separately, by SCM_RIGHTS)."""
        return _WIRE.pack(
            MAGIC,
            VERSION,
            int(self.kind),
            0,
            self.pid,
            self.size,
            self.allocation_size,
            self.device_uuid,
            self.ipc,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CudaHandle:
        """Decode `to_bytes` output; `HandleError` on anything else."""
        if len(data) != _WIRE.size:
            raise HandleError(f"CUDA handle: {len(data)} bytes, expected {_WIRE.size}")
        magic, version, kind, _reserved, pid, size, alloc, uuid, ipc = _WIRE.unpack(data)
        if magic != MAGIC:
            raise HandleError(f"magic: expected {MAGIC!r}, got {magic!r}", field="magic")
        if version != VERSION:
            raise HandleError(f"version: expected {VERSION}, got {version}", field="version")
        try:
            hkind = HandleKind(kind)
        except ValueError as e:
            raise HandleError(f"kind: unknown kind {kind}", field="kind") from e
        return cls(hkind, uuid, pid, size, alloc, ipc)

    def check_device(self, ctx: CudaContext) -> None:
        """`HandleError` unless the handle comes from `ctx`'s device (by UUID)."""
        if self.device_uuid != ctx.uuid:
            raise HandleError(
                f"device_uuid: the handle comes from device {self.device_uuid.hex()}, this "
                f"context is {ctx.name!r} {ctx.uuid.hex()}",
                field="device_uuid",
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeviceMemory(_dlpack.WholeExport):
    """Base of the device-memory owners: `ptr`, `size`, `__cuda_array_interface__`,
    `close()`. Subclasses arm `_finalizer` with the calls that release their memory."""

    _kind = "CUDA buffer"

    def __init__(self, ctx: CudaContext) -> None:
        self.context = ctx
        self._ptr = 0
        self.size = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _arm(self, calls: list[tuple[Any, ...]]) -> None:
        ctx = self.context
        self._finalizer = weakref.finalize(self, _free, ctx._drv, ctx._ctx, calls)
        ctx.adopt(self)

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or its context closed)."""
        return self._finalizer is None or not self._finalizer.alive

    @property
    def ptr(self) -> int:
        """The device address (an int, as CuPy and torch take it)."""
        self._live()
        return self._ptr

    def _live(self) -> None:
        if self.closed:
            raise ClosedError(f"{self._kind} is closed")
        self.context.activate()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Version 3 of Numba's CUDA Array Interface: `size` bytes, read-write, no
        stream to synchronize with (the producer synchronizes before handing over)."""
        return {
            "version": 3,
            "typestr": "|u1",
            "shape": (self.size,),
            "strides": None,
            "data": (self.ptr, False),
            "stream": None,
        }

    def __dlpack_device__(self) -> tuple[int, int]:
        """DLPack device: (kDLCUDA, the context's ordinal)."""
        return (_dlpack.KDL_CUDA, self.context.ordinal)

    def dlpack_window(
        self,
        start: int,
        size: int,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """`__dlpack__` of `size` bytes from `start` (what a windowed `Buffer` exports).

        The capsule keeps this object alive until the consumer is done with the tensor,
        but `close()` (or closing the context) frees the memory all the same: close it
        only once the consumer's tensor is gone. There is no pending work to order:
        `stream` is checked and otherwise unused, since writes through
        `upload(stream=...)` are the caller's to synchronize.

        Raises:
            BufferError: `dl_device` is another device, or `copy=True`.
            ClosedError: the buffer is closed.
        """
        self._range(start, size)
        return _dlpack.export_cuda(
            self,
            self._ptr + start,
            size,
            self.context.ordinal,
            stream=stream,
            max_version=max_version,
            dl_device=dl_device,
            copy=copy,
        )

    def upload(self, src: Any, *, offset: int = 0, stream: CudaStream | int | None = None) -> None:
        """Copy host bytes (`PinnedHostBuffer` or any buffer) to the buffer at `offset`.
        Without `stream`, synchronous; with one, asynchronous on it (`src` must then
        stay alive and unchanged until the stream is synchronized: pinned memory)."""
        addr, n = _host(src)
        self._range(offset, n)
        drv = self.context._drv
        if stream is None:
            check("cuMemcpyHtoD", drv.cuMemcpyHtoD(self._ptr + offset, addr, n))
        else:
            check(
                "cuMemcpyHtoDAsync",
                drv.cuMemcpyHtoDAsync(self._ptr + offset, addr, n, _stream(stream)),
            )

    def download(
        self, dst: Any, *, offset: int = 0, stream: CudaStream | int | None = None
    ) -> None:
        """Copy from the buffer at `offset` into writable host memory `dst` (its whole
        length). Synchronous without `stream`; asynchronous on it otherwise."""
        addr, n = _host(dst, writable=True)
        self._range(offset, n)
        drv = self.context._drv
        if stream is None:
            check("cuMemcpyDtoH", drv.cuMemcpyDtoH(addr, self._ptr + offset, n))
        else:
            check(
                "cuMemcpyDtoHAsync",
                drv.cuMemcpyDtoHAsync(addr, self._ptr + offset, n, _stream(stream)),
            )

    def read(self, size: int | None = None, offset: int = 0) -> bytes:
        """Copy `size` bytes (default: to the end) from `offset` to the host (a copy)."""
        n = self.size - offset if size is None else size
        out = bytearray(n)
        if n:
            self.download(out, offset=offset)
        return bytes(out)

    def _range(self, offset: int, n: int) -> None:
        self._live()
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ValueError(
                f"{n} bytes at offset {offset} exceed the {self.size}-byte {self._kind}"
            )

    def close(self) -> None:
        """Release the memory (or the mapping of another process's memory). Idempotent.
        Views made from it (CuPy, torch) must be gone: their pointer dangles after."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else f" at {self._ptr:#x}"
        return f"<{type(self).__name__} {self.size} bytes{state}>"


def _host(obj: Any, *, writable: bool = False) -> tuple[int, int]:
    """(address, length) of host memory; a `PinnedHostBuffer` or any contiguous buffer."""
    pinned = getattr(obj, "pinned_region", None)  # a PinnedHostBuffer (in _cuda_host.py)
    if pinned is not None:
        return pinned()  # type: ignore[no-any-return]
    arr = np.frombuffer(obj, dtype=np.uint8) if not isinstance(obj, np.ndarray) else obj
    if not arr.flags.c_contiguous:
        raise ValueError("host memory must be C-contiguous")
    if writable and not arr.flags.writeable:
        raise ValueError("host memory to copy into must be writable")
    return int(arr.ctypes.data), int(arr.nbytes)


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
            if not _alive(handle.pid):
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
