"""`CudaMemory`: the memory owner of a GPU `parallax.buffer.Buffer`.

A GPU buffer is an ordinary `Buffer` whose owner is a `CudaMemory`: device memory (a
`CudaBuffer` slot of a `CudaPool`, an opened one, any `DeviceMemory`) plus the `CudaEvent`
recorded after the work that filled it. It has no host view: `view()` raises
`CudaMemoryError`, so `buf.view`, `np.asarray(buf)` and `bytes(buf)` say where the bytes
are instead of copying them by accident. It exports the memory without a copy through
`__cuda_array_interface__` and `__dlpack__` (windowed by the Buffer), the consumer's
stream waiting on the event.

Lifetime: the owner references its memory, so it stays allocated while any buffer (or a
CuPy array or torch tensor made from one) holds the owner; when the owner is collected a
pool slot goes back to its pool (`CudaPool.give_back`, which never blocks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _dlpack
from ._errors import CudaMemoryError

if TYPE_CHECKING:
    from ._cuda_context import CudaStream
    from ._cuda_host import CudaEvent
    from ._cuda_memory import DeviceMemory
    from ._cuda_pool import CudaPool


class CudaMemory(_dlpack.WholeExport):
    """The memory owner of a GPU `Buffer`: `size` bytes at `ptr` on device `device`.

    Args:
        memory: the device memory (a `CudaBuffer`, an opened one, or any `DeviceMemory`);
            referenced, so it stays allocated while this owner lives.
        size: bytes of `memory` this owner covers (default: all).
        event: recorded after the work that filled the memory (None: already complete).
        pool: the `CudaPool` the memory returns to when this owner is collected.

    `view()` raises `CudaMemoryError`: GPU memory has no host view. Wrap an owner in a
    Buffer with `Buffer(CudaMemory(mem), caps=...)`.
    """

    __slots__ = ("_pool", "device", "event", "memory", "ptr", "size")

    def __init__(
        self,
        memory: DeviceMemory,
        *,
        size: int | None = None,
        event: CudaEvent | None = None,
        pool: CudaPool | None = None,
    ) -> None:
        n = memory.size if size is None else size
        if not 0 <= n <= memory.size:
            raise ValueError(f"size: expected 0..{memory.size}, got {n}")
        self.memory = memory
        self.ptr: int = memory.ptr
        self.size: int = n
        self.device: int = memory.context.ordinal
        self.event = event
        self._pool = pool

    def view(self) -> memoryview:
        """Always raises: the bytes are on the GPU, and a host view would be a copy."""
        raise CudaMemoryError(
            f"buffer lives on cuda:{self.device}; use cudadownload or cupy.asarray(buf) "
            "(a host view of GPU memory would need a copy)",
            device=self.device,
        )

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """CUDA Array Interface v3: `size` bytes (`|u1`). The stream entry is None: wait
        on `event` first when the producer did not (cudaupload sync=false)."""
        return _dlpack.cuda_array_interface(self.ptr, self.size)

    def __dlpack_device__(self) -> tuple[int, int]:
        """DLPack device: (kDLCUDA, `device`)."""
        return (_dlpack.KDL_CUDA, self.device)

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
        """`__dlpack__` of `size` bytes from `start` (what a GPU `Buffer` delegates to).

        The consumer's `stream` (array API rules: None or 1 the legacy default stream,
        2 the per-thread one, a handle, -1 for none) is made to wait on `event`, so a
        `cudaupload sync=false` buffer is safe to read on it. The capsule keeps this
        owner, hence the device slot, out of the pool until the consumer frees its tensor.

        Raises:
            BufferError: `dl_device` is another device, or `copy=True`.
            ValueError: the window falls outside the memory, or `stream` is 0.
        """
        if start < 0 or size < 0 or start + size > self.size:
            raise ValueError(
                f"DLPack window [{start}, {start + size}) is outside the {self.size}-byte memory"
            )
        return _dlpack.export_cuda(
            self,
            self.ptr + start,
            size,
            self.device,
            stream=stream,
            max_version=max_version,
            dl_device=dl_device,
            copy=copy,
            wait=self.wait if self.event is not None else None,
        )

    def synchronize(self) -> None:
        """Block until the work that filled the memory is done."""
        if self.event is not None:
            self.event.synchronize()

    def wait(self, stream: CudaStream | int | None = None) -> None:
        """Make `stream` wait, on the GPU, for the work that filled the memory."""
        if self.event is not None:
            self.event.wait(stream)

    def __del__(self) -> None:
        pool = self._pool
        if pool is not None:
            self._pool = None
            pool.give_back(self.memory, self.event)

    def __repr__(self) -> str:
        return f"<CudaMemory {self.size} bytes at {self.ptr:#x} on cuda:{self.device}>"
