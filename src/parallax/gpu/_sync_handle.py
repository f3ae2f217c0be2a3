"""`SemaphoreHandle` and `FenceHandle`: what a peer needs to import an exported Vulkan
semaphore or fence, minus the fd (it travels by SCM_RIGHTS); pure, no GPU.

Handle types (Vulkan spec, "External Semaphore Handle Types" / "Fences"):

- OPAQUE_FD: a reference to the object's payload. The import is permanent; it needs
  the same device and driver (`device_uuid`, `driver_uuid`, checked on import).
- SYNC_FD: a Linux sync file: a snapshot of one pending signal. Binary semaphores and
  fences only; the import is temporary (the next wait consumes it); no device
  restriction. Exporting one resets the object, and `-1` may come back for an
  already-signalled payload (import it as `-1` too).

Wire layout (little endian), version 1::

    magic "PXGS" | u8 version | u8 kind (1 semaphore, 2 fence) | u8 handle type
    | u8 flags (bit 0: timeline) | 16s device UUID | 16s driver UUID
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from parallax._wire import WireHeader

from ._errors import HandleError, header_error
from ._handle import decoded_as, rebuilt

MAGIC: Final = b"PXGS"
VERSION: Final = 1
_WIRE: Final = WireHeader(
    "a sync handle", "<4sBBBB16s16s", magic=MAGIC, version=VERSION, error=header_error
)
_KIND_SEMAPHORE: Final = 1
_KIND_FENCE: Final = 2
_FLAG_TIMELINE: Final = 1


class SyncHandleType(enum.Enum):
    """How a semaphore or fence crosses the process boundary."""

    OPAQUE_FD = "opaque-fd"
    SYNC_FD = "sync-fd"

    @property
    def code(self) -> int:
        """A stable small integer for the wire format."""
        return 1 if self is SyncHandleType.OPAQUE_FD else 2

    @classmethod
    def from_code(cls, code: int) -> SyncHandleType:
        """The handle type of a wire `code`; `HandleError` if unknown."""
        for t in cls:
            if t.code == code:
                return t
        raise HandleError(f"handle_type: unknown code {code}", field="handle_type")


def _check_fields(handle_type: object, device_uuid: object, driver_uuid: object) -> None:
    if not isinstance(handle_type, SyncHandleType):
        raise HandleError(
            f"handle_type: expected a SyncHandleType, got {handle_type!r}", field="handle_type"
        )
    for name, value in (("device_uuid", device_uuid), ("driver_uuid", driver_uuid)):
        if not isinstance(value, bytes) or len(value) != 16:
            raise HandleError(f"{name}: expected 16 bytes, got {value!r}", field=name)


def _uuids(data: dict[str, Any]) -> tuple[bytes, bytes]:
    return bytes.fromhex(data["device_uuid"]), bytes.fromhex(data["driver_uuid"])


@dataclass(frozen=True, slots=True)
class SemaphoreHandle:
    """An exported semaphore (no fd): how it was exported, whether it is a timeline
    semaphore, and the device and driver it comes from."""

    handle_type: SyncHandleType
    timeline: bool
    device_uuid: bytes
    driver_uuid: bytes

    def __post_init__(self) -> None:
        _check_fields(self.handle_type, self.device_uuid, self.driver_uuid)
        if not isinstance(self.timeline, bool):
            raise HandleError(f"timeline: expected a bool, got {self.timeline!r}", field="timeline")
        if self.timeline and self.handle_type is SyncHandleType.SYNC_FD:
            raise HandleError(
                "handle_type: a timeline semaphore cannot be a sync-fd (binary only)",
                field="handle_type",
            )

    def to_bytes(self) -> bytes:
        """Serialize (the fd travels separately, by SCM_RIGHTS)."""
        flags = _FLAG_TIMELINE if self.timeline else 0
        return _WIRE.pack(
            _KIND_SEMAPHORE,
            self.handle_type.code,
            flags,
            self.device_uuid,
            self.driver_uuid,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (UUIDs as hex)."""
        return {
            "kind": "semaphore",
            "handle_type": self.handle_type.value,
            "timeline": self.timeline,
            "device_uuid": self.device_uuid.hex(),
            "driver_uuid": self.driver_uuid.hex(),
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> SemaphoreHandle:
        """Decode `to_bytes` output; `HandleError` on anything else."""
        return decoded_as(decode_sync_handle(data), SemaphoreHandle, "semaphore")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SemaphoreHandle:
        """Rebuild from `to_dict` output; `HandleError` on a missing or bad field."""
        return rebuilt(
            data,
            "semaphore",
            lambda: cls(SyncHandleType(data["handle_type"]), data["timeline"], *_uuids(data)),
        )


@dataclass(frozen=True, slots=True)
class FenceHandle:
    """An exported fence (no fd): how it was exported and the device and driver it
    comes from."""

    handle_type: SyncHandleType
    device_uuid: bytes
    driver_uuid: bytes

    def __post_init__(self) -> None:
        _check_fields(self.handle_type, self.device_uuid, self.driver_uuid)

    def to_bytes(self) -> bytes:
        """Serialize (the fd travels separately, by SCM_RIGHTS)."""
        return _WIRE.pack(
            _KIND_FENCE,
            self.handle_type.code,
            0,
            self.device_uuid,
            self.driver_uuid,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (UUIDs as hex)."""
        return {
            "kind": "fence",
            "handle_type": self.handle_type.value,
            "device_uuid": self.device_uuid.hex(),
            "driver_uuid": self.driver_uuid.hex(),
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> FenceHandle:
        """Decode `to_bytes` output; `HandleError` on anything else."""
        return decoded_as(decode_sync_handle(data), FenceHandle, "fence")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FenceHandle:
        """Rebuild from `to_dict` output; `HandleError` on a missing or bad field."""
        return rebuilt(
            data, "fence", lambda: cls(SyncHandleType(data["handle_type"]), *_uuids(data))
        )


def decode_sync_handle(data: bytes) -> SemaphoreHandle | FenceHandle:
    """Decode a semaphore or fence handle from bytes; `HandleError` on malformed input."""
    kind, type_code, flags, dev, drv = _WIRE.unpack(data)
    handle_type = SyncHandleType.from_code(type_code)
    if kind == _KIND_SEMAPHORE:
        if flags & ~_FLAG_TIMELINE:
            raise HandleError(f"flags: unknown bits {flags & ~_FLAG_TIMELINE:#x}", field="flags")
        return SemaphoreHandle(handle_type, bool(flags & _FLAG_TIMELINE), dev, drv)
    if kind == _KIND_FENCE:
        if flags:
            raise HandleError(f"flags: a fence has no flags, got {flags:#x}", field="flags")
        return FenceHandle(handle_type, dev, drv)
    raise HandleError(f"kind: unknown kind {kind}", field="kind")
