"""A CUDA device's primary context and the streams made on it.

- `CudaContext(ordinal)`: retains the device's *primary* context (the one the runtime
  API, CuPy and torch use, so pointers pass between them) and releases it on `close()`;
  closing it closes every buffer, event and stream made on it first.
- `CudaStream(ctx)`: a non-blocking stream (`cuStreamCreate`), for asynchronous copies;
  `copy_to_device` / `copy_to_host` queue `cuMemcpyHtoDAsync` / `cuMemcpyDtoHAsync`
  between raw addresses (what elements that manage their own staging use).
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol, Self

from parallax._errors import ClosedError, PlatformNotSupported

from ._cuda_driver import check, driver, error_name, release
from ._errors import CudaError


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
            self, release, drv, ctx._ctx, [("cuStreamDestroy", self._handle)]
        )
        ctx.adopt(self)

    def synchronize(self) -> None:
        """Wait for the work queued on the stream."""
        self.context.activate()
        check("cuStreamSynchronize", self.context._drv.cuStreamSynchronize(self._handle))

    def copy_to_device(self, dst: int, src: int, size: int) -> None:
        """Queue a copy of `size` bytes from host address `src` to device address `dst`
        (`cuMemcpyHtoDAsync`). The host memory must stay alive and unchanged until the
        stream is synchronized; from page-locked memory the copy is truly asynchronous."""
        self.context.activate()
        drv = self.context._drv
        check("cuMemcpyHtoDAsync", drv.cuMemcpyHtoDAsync(dst, src, size, self.ptr))

    def copy_to_host(self, dst: int, src: int, size: int) -> None:
        """Queue a copy of `size` bytes from device address `src` to host address `dst`
        (`cuMemcpyDtoHAsync`); the bytes are there once the stream is synchronized."""
        self.context.activate()
        drv = self.context._drv
        check("cuMemcpyDtoHAsync", drv.cuMemcpyDtoHAsync(dst, src, size, self.ptr))

    def close(self) -> None:
        """Destroy the stream. Idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
