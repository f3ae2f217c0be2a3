"""`DeviceMemory`: the base of every owner of CUDA device memory in this package
(`CudaBuffer`, `ExternalCudaBuffer`): `ptr`, `size`, copies to and from the host,
`__cuda_array_interface__` (version 3, which `cupy.asarray(buf)` and
`torch.as_tensor(buf, device="cuda")` consume without a copy) and
`__dlpack__`/`__dlpack_device__` (kDLCUDA; capsules built in `_dlpack`, which JAX, torch
and CuPy `from_dlpack` consume without a copy).

A subclass allocates or maps the memory, then arms the finalizer (`_arm`) with the
driver calls that release it; `close()` runs them once.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from parallax._errors import ClosedError

from . import _dlpack
from ._cuda_driver import HasPtr, check, release, stream_ptr

if TYPE_CHECKING:
    from ._cuda_context import CudaContext


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
        self._finalizer = weakref.finalize(self, release, ctx._drv, ctx._ctx, calls)
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
        return _dlpack.cuda_array_interface(self.ptr, self.size)

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

    def upload(self, src: Any, *, offset: int = 0, stream: HasPtr | int | None = None) -> None:
        """Copy host bytes (`PinnedHostBuffer` or any buffer) to the buffer at `offset`.
        Without `stream`, synchronous; with one, asynchronous on it (`src` must then
        stay alive and unchanged until the stream is synchronized: pinned memory)."""
        addr, n = host_region(src)
        self._range(offset, n)
        drv = self.context._drv
        if stream is None:
            check("cuMemcpyHtoD", drv.cuMemcpyHtoD(self._ptr + offset, addr, n))
        else:
            check(
                "cuMemcpyHtoDAsync",
                drv.cuMemcpyHtoDAsync(self._ptr + offset, addr, n, stream_ptr(stream)),
            )

    def download(self, dst: Any, *, offset: int = 0, stream: HasPtr | int | None = None) -> None:
        """Copy from the buffer at `offset` into writable host memory `dst` (its whole
        length). Synchronous without `stream`; asynchronous on it otherwise."""
        addr, n = host_region(dst, writable=True)
        self._range(offset, n)
        drv = self.context._drv
        if stream is None:
            check("cuMemcpyDtoH", drv.cuMemcpyDtoH(addr, self._ptr + offset, n))
        else:
            check(
                "cuMemcpyDtoHAsync",
                drv.cuMemcpyDtoHAsync(addr, self._ptr + offset, n, stream_ptr(stream)),
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


def host_region(obj: Any, *, writable: bool = False) -> tuple[int, int]:
    """(address, length) of host memory; a `PinnedHostBuffer` or any contiguous buffer."""
    pinned = getattr(obj, "pinned_region", None)  # a PinnedHostBuffer (_cuda_host.py)
    if pinned is not None:
        return pinned()  # type: ignore[no-any-return]
    arr = np.frombuffer(obj, dtype=np.uint8) if not isinstance(obj, np.ndarray) else obj
    if not arr.flags.c_contiguous:
        raise ValueError("host memory must be C-contiguous")
    if writable and not arr.flags.writeable:
        raise ValueError("host memory to copy into must be writable")
    return int(arr.ctypes.data), int(arr.nbytes)
