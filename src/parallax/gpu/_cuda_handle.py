"""`CudaHandle`: what a peer needs to open an exported CUDA buffer or event, minus the fd;
fixed-size bytes, sans-IO decoding.

Wire layout (little endian), version 1, 108 bytes::

    magic "PXCU" | u8 version | u8 kind (1 memory IPC, 2 memory fd, 3 event IPC)
    | u16 reserved | u32 exporter pid | u64 size | u64 allocation size
    | 16s device UUID | 64s IPC handle (zeros for an fd handle)

The magic is this record's alone: the GPU-buffer record of the shared-memory link
(`parallax.elements`' `PXCB`), the Vulkan handles (`PXGH`) and the sync handles (`PXGS`)
each have their own, and a decoder fed another record's bytes names the magic it got.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from parallax._wire import WireHeader

from ._errors import HandleError, header_error

if TYPE_CHECKING:
    from ._cuda_context import CudaContext

IPC_HANDLE_SIZE: Final = 64  # CU_IPC_HANDLE_SIZE
MAGIC: Final = b"PXCU"
VERSION: Final = 1
_WIRE: Final = WireHeader(
    "a CUDA handle", "<4sBBHIQQ16s64s", magic=MAGIC, version=VERSION, error=header_error
)


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
            int(self.kind),
            0,
            self.pid,
            self.size,
            self.allocation_size,
            self.device_uuid,
            self.ipc,
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, *, at: int = 0) -> CudaHandle:
        """Decode `to_bytes` output; `HandleError` on anything else (another record's
        bytes are named by their magic). `at`: where `data` starts in what the caller
        decodes (a `CudaBufferRecord`), for the byte offsets in messages."""
        kind, _reserved, pid, size, alloc, uuid, ipc = _WIRE.unpack(data, at=at)
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
