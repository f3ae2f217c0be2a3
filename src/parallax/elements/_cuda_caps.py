"""GPU caps and the GPU owner of a buffer: what tells a stream in CUDA memory from one in
host memory.

The caps parser refuses GStreamer caps features (`video/raw(memory:CUDAMemory)`), so GPU
caps carry a field instead: `cudaupload` adds `memory=cuda` to each structure
(`cuda_caps`) and `cudadownload` removes it (`host_caps`). `cuda_memory(buf)` is the
`parallax.gpu.CudaMemory` under a buffer, or None for host memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from parallax.buffer import Buffer
from parallax.caps import Caps, Structure
from parallax.gpu import CudaMemory

MEMORY_FIELD: Final = "memory"
CUDA_MEMORY: Final = "cuda"


def cuda_memory(buf: Buffer) -> CudaMemory | None:
    """The `CudaMemory` under `buf`, or None for a buffer in host memory."""
    owner = buf.owner
    return owner if isinstance(owner, CudaMemory) else None


def is_cuda_caps(caps: Caps | None) -> bool:
    """True if `caps` say `memory=cuda` (every structure)."""
    if caps is None or caps.is_any or caps.is_empty:
        return False
    return all(s.get(MEMORY_FIELD) == CUDA_MEMORY for s in caps)


def cuda_caps(caps: Caps | None) -> Caps:
    """`caps` with `memory=cuda` in each structure (untyped bytes for None or ANY)."""
    structures: Iterable[Structure] = Caps.bytes() if caps is None or caps.is_any else caps
    return Caps(*(Structure(s.name, {**s, MEMORY_FIELD: CUDA_MEMORY}) for s in structures))


def host_caps(caps: Caps | None) -> Caps | None:
    """`caps` without the `memory` field."""
    if caps is None or caps.is_any:
        return caps
    return Caps(
        *(Structure(s.name, {k: v for k, v in s.items() if k != MEMORY_FIELD}) for s in caps)
    )
