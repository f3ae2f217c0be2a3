"""Exported handles: what a peer needs to import shared GPU memory, minus the fd.

A handle is small and serializable (`to_bytes`/`from_bytes`, `to_dict`/`from_dict`);
the file descriptor never goes inside it: send it beside the bytes with SCM_RIGHTS
(`socket.send_fds`). Decoding is sans-IO and bounded: any input decodes or raises
`HandleError` (or `PlatformNotSupported` for a macOS/Windows handle type).

Wire layout (little endian), version 1::

    magic "PXGH" | u8 version | u8 kind | u8 handle type | u8 reserved (0)
    u64 allocation size | u32 memory type index | 16s device UUID | 16s driver UUID
    kind texture: u32 width | u32 height | u8 format code | u8 usage | u16 label length | label
    kind buffer:  u64 size
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from parallax._errors import PlatformNotSupported
from parallax._wire import WireHeader

from ._descriptor import TextureDescriptor, TextureFormat, TextureUsage
from ._errors import DescriptorError, HandleError, header_error

MAGIC: Final = b"PXGH"
VERSION: Final = 1
_HEAD: Final = WireHeader(
    "a Vulkan handle", "<4sBBBBQI16s16s", magic=MAGIC, version=VERSION, error=header_error
)
_TEXTURE: Final = struct.Struct("<IIBBH")
_BUFFER: Final = struct.Struct("<Q")
_KIND_TEXTURE: Final = 1
_KIND_BUFFER: Final = 2


class HandleType(enum.Enum):
    """How the memory crosses the process boundary (Vulkan's external memory types)."""

    OPAQUE_FD = "opaque-fd"
    DMA_BUF = "dma-buf"
    OPAQUE_WIN32 = "opaque-win32"
    OPAQUE_WIN32_KMT = "opaque-win32-kmt"
    IOSURFACE = "iosurface"
    METAL_SHARED_EVENT = "metal-shared-event"

    @property
    def code(self) -> int:
        """A stable small integer for the wire format."""
        return _TYPE_CODES[self]

    @property
    def platform(self) -> str:
        """The `sys.platform` this handle type exists on."""
        return _PLATFORM[self]

    def check_platform(self) -> None:
        """Raise `PlatformNotSupported` unless this handle type exists on this OS."""
        if self.platform != sys.platform:
            raise PlatformNotSupported(
                f"handle type {self.value} is not supported on Linux (it is a "
                f"{self.platform} handle); on Linux use opaque-fd or dma-buf"
            )


_TYPE_CODES: Final = {t: i for i, t in enumerate(HandleType, start=1)}
_TYPE_BY_CODE: Final = {i: t for t, i in _TYPE_CODES.items()}
_PLATFORM: Final = {
    HandleType.OPAQUE_FD: "linux",
    HandleType.DMA_BUF: "linux",
    HandleType.OPAQUE_WIN32: "win32",
    HandleType.OPAQUE_WIN32_KMT: "win32",
    HandleType.IOSURFACE: "darwin",
    HandleType.METAL_SHARED_EVENT: "darwin",
}


_H = TypeVar("_H")


def decoded_as(handle: object, cls: type[_H], kind: str) -> _H:
    """`handle` (just decoded) if it is a `cls`, else `HandleError` naming the kinds."""
    if not isinstance(handle, cls):
        raise HandleError(
            f"kind: expected a {kind} handle, got {type(handle).__name__}", field="kind"
        )
    return handle


def rebuilt(data: dict[str, Any], kind: str, build: Callable[[], _H]) -> _H:
    """`build()` from a `to_dict` dict of `kind`; any missing or bad field is a
    `HandleError` (a KeyError, TypeError, ValueError or AttributeError while building)."""
    try:
        if data["kind"] != kind:
            raise HandleError(f"kind: expected {kind!r}, got {data['kind']!r}", field="kind")
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, HandleError):
            raise
        raise HandleError(f"bad {kind} handle dict: {e!r}") from e


@dataclass(frozen=True, slots=True)
class _Memory:
    handle_type: HandleType
    allocation_size: int
    memory_type_index: int
    device_uuid: bytes
    driver_uuid: bytes

    def _check(self) -> None:
        if not isinstance(self.handle_type, HandleType):
            raise HandleError(f"handle_type: expected a HandleType, got {self.handle_type!r}")
        self.handle_type.check_platform()
        if not 0 < self.allocation_size < 1 << 64:
            raise HandleError(
                f"allocation_size: expected 1..2**64-1 bytes, got {self.allocation_size}",
                field="allocation_size",
            )
        if not 0 <= self.memory_type_index < 32:  # VK_MAX_MEMORY_TYPES
            raise HandleError(
                f"memory_type_index: expected 0..31, got {self.memory_type_index}",
                field="memory_type_index",
            )
        for name in ("device_uuid", "driver_uuid"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 16:
                raise HandleError(f"{name}: expected 16 bytes, got {value!r}", field=name)

    def _head(self, kind: int) -> bytes:
        return _HEAD.pack(
            kind,
            self.handle_type.code,
            0,
            self.allocation_size,
            self.memory_type_index,
            self.device_uuid,
            self.driver_uuid,
        )

    def _dict(self) -> dict[str, Any]:
        return {
            "handle_type": self.handle_type.value,
            "allocation_size": self.allocation_size,
            "memory_type_index": self.memory_type_index,
            "device_uuid": self.device_uuid.hex(),
            "driver_uuid": self.driver_uuid.hex(),
        }


@dataclass(frozen=True, slots=True)
class ApiTextureHandle(_Memory):
    """An exported texture: its descriptor and the memory it lives in (no fd)."""

    descriptor: TextureDescriptor

    def __post_init__(self) -> None:
        self._check()
        if not isinstance(self.descriptor, TextureDescriptor):
            raise HandleError(f"descriptor: expected a TextureDescriptor, got {self.descriptor!r}")

    def to_bytes(self) -> bytes:
        """Serialize (the fd travels separately, by SCM_RIGHTS)."""
        d = self.descriptor
        label = d.label.encode("utf-8", "surrogatepass")
        body = _TEXTURE.pack(d.width, d.height, d.format.code, int(d.usage), len(label))
        return self._head(_KIND_TEXTURE) + body + label

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (UUIDs as hex)."""
        d = self.descriptor
        out = self._dict()
        out.update(kind="texture", width=d.width, height=d.height, format=d.format.value)
        out.update(usage=int(d.usage), label=d.label)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> ApiTextureHandle:
        """Decode `to_bytes` output; `HandleError` on anything else."""
        return decoded_as(decode_handle(data), ApiTextureHandle, "texture")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiTextureHandle:
        """Rebuild from `to_dict` output; `HandleError` on a missing or bad field."""

        def build() -> ApiTextureHandle:
            desc = TextureDescriptor(
                data["width"],
                data["height"],
                TextureFormat(data["format"]),
                data["usage"],
                data["label"],
            )
            return cls(**_memory_fields(data), descriptor=desc)

        return rebuilt(data, "texture", build)


@dataclass(frozen=True, slots=True)
class BufferHandle(_Memory):
    """An exported buffer of `size` bytes and the memory it lives in (no fd)."""

    size: int

    def __post_init__(self) -> None:
        self._check()
        if not 0 < self.size <= self.allocation_size:
            raise HandleError(
                f"size: expected 1..{self.allocation_size} (the allocation size), got {self.size}",
                field="size",
            )

    def to_bytes(self) -> bytes:
        """Serialize (the fd travels separately, by SCM_RIGHTS)."""
        return self._head(_KIND_BUFFER) + _BUFFER.pack(self.size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (UUIDs as hex)."""
        out = self._dict()
        out.update(kind="buffer", size=self.size)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> BufferHandle:
        """Decode `to_bytes` output; `HandleError` on anything else."""
        return decoded_as(decode_handle(data), BufferHandle, "buffer")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BufferHandle:
        """Rebuild from `to_dict` output; `HandleError` on a missing or bad field."""
        return rebuilt(data, "buffer", lambda: cls(**_memory_fields(data), size=data["size"]))


def _memory_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "handle_type": HandleType(data["handle_type"]),
        "allocation_size": int(data["allocation_size"]),
        "memory_type_index": int(data["memory_type_index"]),
        "device_uuid": bytes.fromhex(data["device_uuid"]),
        "driver_uuid": bytes.fromhex(data["driver_uuid"]),
    }


def decode_handle(data: bytes) -> ApiTextureHandle | BufferHandle:
    """Decode either kind of handle from bytes; `HandleError` on malformed input."""
    view = memoryview(data)
    kind, type_code, _reserved, alloc, mem_index, dev, drv = _HEAD.unpack_from(view)
    if type_code not in _TYPE_BY_CODE:
        raise HandleError(f"handle_type: unknown code {type_code}", field="handle_type")
    fields: dict[str, Any] = {
        "handle_type": _TYPE_BY_CODE[type_code],
        "allocation_size": alloc,
        "memory_type_index": mem_index,
        "device_uuid": dev,
        "driver_uuid": drv,
    }
    rest = view[_HEAD.size :]
    if kind == _KIND_BUFFER:
        if len(rest) != _BUFFER.size:
            raise HandleError(f"buffer handle: {len(view)} bytes, expected {_HEAD.size + 8}")
        return BufferHandle(**fields, size=_BUFFER.unpack(rest)[0])
    if kind != _KIND_TEXTURE:
        raise HandleError(f"kind: unknown kind {kind}", field="kind")
    if len(rest) < _TEXTURE.size:
        raise HandleError(f"texture handle: truncated at {len(view)} bytes")
    width, height, fmt, usage, label_len = _TEXTURE.unpack_from(rest)
    label = bytes(rest[_TEXTURE.size :])
    if len(label) != label_len:
        raise HandleError(
            f"label: header says {label_len} bytes, {len(label)} follow", field="label"
        )
    try:
        desc = TextureDescriptor(
            width,
            height,
            TextureFormat.from_code(fmt),
            TextureUsage(usage),
            label.decode("utf-8", "surrogatepass"),
        )
    except (DescriptorError, UnicodeDecodeError, ValueError) as e:
        raise HandleError(f"descriptor: {e}", field="descriptor") from e
    return ApiTextureHandle(**fields, descriptor=desc)
