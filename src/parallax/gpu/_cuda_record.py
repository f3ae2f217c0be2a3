"""`CudaBufferRecord`: the record that stands for a GPU buffer on the shared-memory link;
sans-IO.

`ipcsink` (and `procqueue`) write it into a slot instead of the buffer's bytes when the
buffer lives in CUDA memory; `ipcsrc` decodes it and opens the handle. It names a window
of an exported allocation.

Wire layout (little endian), 24 bytes then the allocation's `CudaHandle` (108 bytes)::

    magic "PXCB" | u32 device ordinal | u64 start | u64 size | CudaHandle.to_bytes()

The magic is distinct from the handle's own (`PXCU`): a record fed to the handle decoder,
or a handle to this one, is refused naming the magic it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from parallax._wire import WireHeader

from ._cuda_handle import CudaHandle
from ._errors import HandleError, header_error

MAGIC: Final = b"PXCB"
# magic, device ordinal, start, size (no version: the handle after it has one)
_HEAD: Final = WireHeader("a GPU buffer record", "<4sIQQ", magic=MAGIC, error=header_error)
_U32: Final = 1 << 32
_U64: Final = 1 << 64


@dataclass(frozen=True, slots=True)
class CudaBufferRecord:
    """`size` bytes from `start` of the allocation `handle` names, on device `device`.

    Raises:
        HandleError: a field out of range (`field` names it), or a window that does not
            fit in the allocation.
    """

    device: int
    start: int
    size: int
    handle: CudaHandle

    def __post_init__(self) -> None:
        for name, value, bound in (
            ("device", self.device, _U32),
            ("start", self.start, _U64),
            ("size", self.size, _U64),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
                raise HandleError(f"{name}: expected 0..{bound - 1}, got {value!r}", field=name)
        if not isinstance(self.handle, CudaHandle):
            raise HandleError(f"handle: expected a CudaHandle, got {self.handle!r}", field="handle")
        if self.start + self.size > self.handle.size:
            raise HandleError(
                f"size: the record names bytes {self.start}..{self.start + self.size} of a "
                f"{self.handle.size}-byte allocation",
                field="size",
            )

    @property
    def key(self) -> bytes:
        """The allocation's handle bytes: what names the same allocation across records."""
        return self.handle.to_bytes()

    def to_bytes(self) -> bytes:
        """Serialize: the head, then the handle."""
        return _HEAD.pack(self.device, self.start, self.size) + self.handle.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> CudaBufferRecord:
        """Decode `to_bytes` output; `HandleError` on anything else (a wrong magic is
        named, and the handle's own errors name its field)."""
        view = memoryview(data)
        device, start, size = _HEAD.unpack_from(view)
        return cls(device, start, size, CudaHandle.from_bytes(view[_HEAD.size :], at=_HEAD.size))

    @staticmethod
    def is_record(data: bytes | memoryview) -> bool:
        """True if `data` starts with this record's magic (a cheap test, no decoding)."""
        return _HEAD.matches(data)
