"""`SharedSemaphore` and `SharedFence`: Vulkan synchronisation objects that can be
exported to another process as a file descriptor, and their serializable handles.

Semaphores are binary or timeline (`VK_KHR_timeline_semaphore`, core in Vulkan 1.2);
export needs `VK_KHR_external_semaphore_fd`, fences `VK_KHR_external_fence_fd`.
A local (`export=False`) semaphore or fence needs neither.

Handle types (Vulkan spec, "External Semaphore Handle Types" / "Fences"):

- OPAQUE_FD: a reference to the object's payload. The import is permanent; it needs
  the same device and driver (`device_uuid`, `driver_uuid`, checked here).
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
import os
import struct
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Self

from parallax._errors import ClosedError

from ._errors import HandleError
from ._handle import decoded_as, rebuilt
from ._vulkan import (
    EXTERNAL_FENCE_FD,
    EXTERNAL_SEMAPHORE_FD,
    FenceLike,
    VulkanDevice,
    check,
    close_unimported,
)

MAGIC: Final = b"PXGS"
VERSION: Final = 1
_WIRE: Final = struct.Struct("<4sBBBB16s16s")
_KIND_SEMAPHORE: Final = 1
_KIND_FENCE: Final = 2
_FLAG_TIMELINE: Final = 1
_U64: Final = 1 << 64
_FOREVER: Final = _U64 - 1  # UINT64_MAX: wait without a timeout


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
            MAGIC,
            VERSION,
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
            MAGIC,
            VERSION,
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
    view = memoryview(data)
    if len(view) != _WIRE.size:
        raise HandleError(f"sync handle: {len(view)} bytes, expected {_WIRE.size}")
    magic, version, kind, type_code, flags, dev, drv = _WIRE.unpack(view)
    if magic != MAGIC:
        raise HandleError(f"magic: expected {MAGIC!r}, got {bytes(magic)!r}", field="magic")
    if version != VERSION:
        raise HandleError(f"version: expected {VERSION}, got {version}", field="version")
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


# -- Vulkan ------------------------------------------------------------------------------


def _bit(vk: Any, what: str, handle_type: SyncHandleType) -> int:
    kind = "SEMAPHORE" if what == "semaphore" else "FENCE"
    name = handle_type.name  # OPAQUE_FD or SYNC_FD
    return int(getattr(vk, f"VK_EXTERNAL_{kind}_HANDLE_TYPE_{name}_BIT"))


def _properties(
    device: VulkanDevice, what: str, handle_type: SyncHandleType, timeline: bool
) -> tuple[int, int]:
    """(features, compatible handle type bits) the driver reports for `handle_type`."""
    vk = device.vk
    bit = _bit(vk, what, handle_type)
    if what == "semaphore":
        chain = None
        if timeline:
            chain = vk.VkSemaphoreTypeCreateInfo(semaphoreType=vk.VK_SEMAPHORE_TYPE_TIMELINE)
            chain.initialValue = 0
        info = vk.VkPhysicalDeviceExternalSemaphoreInfo(pNext=chain, handleType=bit)
        props = vk.vkGetPhysicalDeviceExternalSemaphoreProperties(device.physical, info)
        return int(props.externalSemaphoreFeatures), int(props.compatibleHandleTypes)
    info = vk.VkPhysicalDeviceExternalFenceInfo(handleType=bit)
    props = vk.vkGetPhysicalDeviceExternalFenceProperties(device.physical, info)
    return int(props.externalFenceFeatures), int(props.compatibleHandleTypes)


def _feature_bit(vk: Any, what: str, feature: str) -> int:
    kind = "SEMAPHORE" if what == "semaphore" else "FENCE"
    return int(getattr(vk, f"VK_EXTERNAL_{kind}_FEATURE_{feature}_BIT"))


def _export_types(
    device: VulkanDevice,
    what: str,
    timeline: bool,
    export: bool | Collection[SyncHandleType],
) -> frozenset[SyncHandleType]:
    """The handle types to create the object exportable as (checked with the driver)."""
    if export is False:
        return frozenset()
    extension = EXTERNAL_SEMAPHORE_FD if what == "semaphore" else EXTERNAL_FENCE_FD
    device.require_extension(
        extension, f"an exportable {what} (pass export=False for a local {what})"
    )
    vk = device.vk
    exportable = _feature_bit(vk, what, "EXPORTABLE")
    candidates = [t for t in SyncHandleType if not (timeline and t is SyncHandleType.SYNC_FD)]
    props = {t: _properties(device, what, t, timeline) for t in candidates}
    if export is True:
        chosen: list[SyncHandleType] = []
        for t in candidates:  # OPAQUE_FD first, then SYNC_FD where compatible with it
            features, _compatible = props[t]
            if features & exportable and all(props[c][1] & _bit(vk, what, t) for c in chosen):
                chosen.append(t)
        if not chosen:
            raise HandleError(
                f"handle_type: {device.name!r} can export a {_describe(what, timeline)} "
                "neither as opaque-fd nor as sync-fd",
                field="handle_type",
            )
        return frozenset(chosen)
    wanted = frozenset(export)
    if not wanted:
        raise ValueError("export: name at least one SyncHandleType, or pass False")
    for t in wanted:
        if not isinstance(t, SyncHandleType):
            raise TypeError(f"export: expected SyncHandleType values, got {t!r}")
        if t not in props:
            raise HandleError(
                "handle_type: a timeline semaphore cannot be a sync-fd (binary only)",
                field="handle_type",
            )
        if not props[t][0] & exportable:
            raise HandleError(
                f"handle_type: {device.name!r} cannot export a {_describe(what, timeline)} "
                f"as {t.value}",
                field="handle_type",
            )
        for other in wanted:
            if not props[t][1] & _bit(vk, what, other):
                raise HandleError(
                    f"handle_type: {device.name!r} cannot export one {what} as both "
                    f"{t.value} and {other.value} (not compatible)",
                    field="handle_type",
                )
    return wanted


def _describe(what: str, timeline: bool) -> str:
    if what == "semaphore":
        return "timeline semaphore" if timeline else "binary semaphore"
    return what


def _mask(vk: Any, what: str, types: frozenset[SyncHandleType]) -> int:
    bits = 0
    for t in types:
        bits |= _bit(vk, what, t)
    return bits


def _timeout_ns(timeout: float | None) -> int:
    if timeout is None:
        return _FOREVER
    if timeout < 0:
        raise ValueError(f"timeout: expected seconds >= 0 or None, got {timeout!r}")
    return min(int(timeout * 1e9), _FOREVER)


def _check_value(value: object, name: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise ValueError(f"{name}: expected an int in 0..2**64-1, got {value!r}")
    return value


def _destroy(vk: Any, device: Any, destroy: str, obj: Any) -> None:
    getattr(vk, destroy)(device, obj, None)


class _SyncObject:
    _kind = "semaphore"
    _destroy_name = "vkDestroySemaphore"

    def __init__(self, device: VulkanDevice) -> None:
        self.device = device
        self._vk = device.vk
        self._object: Any = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.export_types: frozenset[SyncHandleType] = frozenset()
        self.imported: SyncHandleType | None = None

    def _arm(self) -> None:
        self._finalizer = weakref.finalize(
            self, _destroy, self._vk, self.device.handle, self._destroy_name, self._object
        )
        self.device.adopt(self)

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or the device was closed)."""
        return self._finalizer is None or not self._finalizer.alive

    def _live(self) -> Any:
        if self.closed or self.device.closed:
            raise ClosedError(f"{self._kind} is closed")
        return self.device.handle

    @property
    def handle(self) -> Any:
        """The Vulkan object (VkSemaphore or VkFence); `ClosedError` once closed."""
        self._live()
        return self._object

    def _pick_export(self, handle_type: SyncHandleType | None) -> SyncHandleType:
        if not self.export_types:
            raise ValueError(f"this {self._kind} was created with export=False")
        if handle_type is None:
            if SyncHandleType.OPAQUE_FD in self.export_types:
                return SyncHandleType.OPAQUE_FD
            return SyncHandleType.SYNC_FD
        if handle_type not in self.export_types:
            kinds = ", ".join(sorted(t.value for t in self.export_types))
            raise HandleError(
                f"handle_type: this {self._kind} is exportable as {kinds}, not {handle_type.value}",
                field="handle_type",
            )
        return handle_type

    def _get_fd(self, function: str, info: Any) -> int:
        vk, dev = self._vk, self._live()
        get_fd = self.device.get_proc(function)
        fd = int(check(vk, function, lambda: get_fd(dev, info)))
        if fd >= 0:
            os.set_inheritable(fd, False)  # the driver's fd is not close-on-exec
        return fd

    def close(self) -> None:
        """Destroy the Vulkan object. Idempotent. The GPU must be done with it (no
        pending queue wait or signal)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SharedSemaphore(_SyncObject):
    """A binary or timeline semaphore that can be exported to another process.

    Args:
        device: the device to create it on (it closes the semaphore when it closes).
        timeline: a timeline semaphore (a 64-bit counter the host and queues signal and
            wait on); needs `VK_KHR_timeline_semaphore` or Vulkan 1.2.
        initial_value: a timeline semaphore's first value (0 for a binary one).
        export: True: exportable as opaque-fd, and as sync-fd too for a binary one
            where the driver allows both; a collection of `SyncHandleType`: exactly
            those; False: a local semaphore. Export needs `VK_KHR_external_semaphore_fd`.

    Raises:
        VulkanError: the device lacks the extension (named) or a Vulkan call failed.
        HandleError: the driver cannot export this kind of semaphore as asked.

    Owns the VkSemaphore: `close()` it, or use `with`.
    """

    _kind = "semaphore"
    _destroy_name = "vkDestroySemaphore"

    def __init__(
        self,
        device: VulkanDevice,
        *,
        timeline: bool = False,
        initial_value: int = 0,
        export: bool | Collection[SyncHandleType] = True,
        _import: tuple[SemaphoreHandle, int] | None = None,
    ) -> None:
        super().__init__(device)
        vk = self._vk
        try:
            dev = device.handle
            initial_value = _check_value(initial_value, "initial_value")
            self.timeline = bool(timeline)
            if self.timeline:
                device.require_timeline("a timeline semaphore")
            elif initial_value:
                raise ValueError("initial_value: a binary semaphore has none")
            if _import is None:
                self.export_types = _export_types(device, "semaphore", self.timeline, export)
            chain = None
            if self.timeline:
                chain = vk.VkSemaphoreTypeCreateInfo(
                    semaphoreType=vk.VK_SEMAPHORE_TYPE_TIMELINE, initialValue=initial_value
                )
                chain.semaphoreType = vk.VK_SEMAPHORE_TYPE_TIMELINE
                chain.initialValue = initial_value  # falsy kwargs are dropped: set it
            if self.export_types:
                chain = vk.VkExportSemaphoreCreateInfo(
                    pNext=chain, handleTypes=_mask(vk, "semaphore", self.export_types)
                )
            info = vk.VkSemaphoreCreateInfo(pNext=chain)
            self._object = check(
                vk, "vkCreateSemaphore", lambda: vk.vkCreateSemaphore(dev, info, None)
            )
            if _import is not None:
                self._import(*_import)
        except BaseException:
            if self._object is not None:
                vk.vkDestroySemaphore(device.handle, self._object, None)
            if _import is not None and self.imported is None and _import[1] >= 0:
                close_unimported(_import[1])  # not yet the driver's: ours to close
            raise
        self._arm()

    def _import(self, handle: SemaphoreHandle, fd: int) -> None:
        vk, dev = self._vk, self.device.handle
        # OPAQUE_FD: permanent; SYNC_FD: temporary, the spec's only choice for it.
        temporary = handle.handle_type is SyncHandleType.SYNC_FD
        flags = vk.VK_SEMAPHORE_IMPORT_TEMPORARY_BIT if temporary else 0
        info = vk.VkImportSemaphoreFdInfoKHR(
            semaphore=self._object,
            flags=flags,
            handleType=_bit(vk, "semaphore", handle.handle_type),
            fd=fd,
        )
        info.flags = flags
        info.fd = fd  # falsy kwargs are dropped: set it
        import_fd = self.device.get_proc("vkImportSemaphoreFdKHR")
        check(vk, "vkImportSemaphoreFdKHR", lambda: import_fd(dev, info))
        self.imported = handle.handle_type  # on success Vulkan owns the fd

    def export(self, handle_type: SyncHandleType | None = None) -> tuple[SemaphoreHandle, int]:
        """A handle and a new fd (opaque-fd unless `handle_type` says otherwise). The
        caller owns the fd: send it (`socket.send_fds`) and close it.

        A sync-fd needs a pending or completed signal (e.g. `queue_signal()` first);
        exporting it unsignals the semaphore, and the fd is -1 if the signal has
        already completed."""
        handle_type = self._pick_export(handle_type)
        vk = self._vk
        info = vk.VkSemaphoreGetFdInfoKHR(
            semaphore=self.handle, handleType=_bit(vk, "semaphore", handle_type)
        )
        fd = self._get_fd("vkGetSemaphoreFdKHR", info)
        handle = SemaphoreHandle(
            handle_type, self.timeline, self.device.device_uuid, self.device.driver_uuid
        )
        return handle, fd

    def _need_timeline(self, what: str) -> None:
        if not self.timeline:
            raise ValueError(
                f"{what}: a binary semaphore is signalled and waited on by a queue "
                "(queue_signal/queue_wait), not by the host"
            )

    def signal(self, value: int) -> None:
        """Set a timeline semaphore's counter to `value` from the host (it must grow)."""
        self._need_timeline("signal")
        value = _check_value(value)
        vk, dev = self._vk, self._live()
        current = self.value
        if value <= current:
            raise ValueError(f"value: a timeline only grows: it is at {current}, not < {value}")
        info = vk.VkSemaphoreSignalInfo(semaphore=self._object, value=value)
        info.value = value
        fn = self.device.timeline_function("vkSignalSemaphore")
        check(vk, "vkSignalSemaphore", lambda: fn(dev, info))

    def wait(self, value: int, timeout: float | None = None) -> bool:
        """Block until a timeline semaphore's counter reaches `value`: True, or False
        after `timeout` seconds (None: no limit)."""
        self._need_timeline("wait")
        value = _check_value(value)
        ns = _timeout_ns(timeout)
        vk, dev = self._vk, self._live()
        info = vk.VkSemaphoreWaitInfo(semaphoreCount=1, pSemaphores=[self._object], pValues=[value])
        info.flags = 0
        fn = self.device.timeline_function("vkWaitSemaphores")
        try:
            check(vk, "vkWaitSemaphores", lambda: fn(dev, info, ns))
        except vk.VkTimeout:
            return False
        return True

    @property
    def value(self) -> int:
        """A timeline semaphore's current counter value."""
        self._need_timeline("value")
        vk, dev = self._vk, self._live()
        fn = self.device.timeline_function("vkGetSemaphoreCounterValue")
        return int(check(vk, "vkGetSemaphoreCounterValue", lambda: fn(dev, self._object)))

    def queue_signal(self, value: int = 0, *, fence: FenceLike | None = None) -> None:
        """Signal from the device's queue, after the work submitted before (a timeline
        semaphore to `value`); returns at once. `fence` is signalled too."""
        value = self._queue_value(value)
        self.device.queue_submit(signal=[(self, value)], fence=fence)

    def queue_wait(self, value: int = 0, *, fence: FenceLike | None = None) -> None:
        """Make the device's queue wait for the semaphore (a timeline one to reach
        `value`) before later work; returns at once. `fence` is signalled once the
        wait is over."""
        value = self._queue_value(value)
        self.device.queue_submit(wait=[(self, value)], fence=fence)

    def _queue_value(self, value: int) -> int:
        self._live()
        value = _check_value(value)
        if not self.timeline and value:
            raise ValueError("value: a binary semaphore has no value")
        return value

    def __repr__(self) -> str:
        kind = "timeline" if self.timeline else "binary"
        return f"<SharedSemaphore {kind}{' closed' if self.closed else ''}>"


class SharedFence(_SyncObject):
    """A fence that can be exported to another process.

    Args:
        device: the device to create it on (it closes the fence when it closes).
        signaled: create it signalled.
        export: True: exportable as opaque-fd, and as sync-fd too where the driver
            allows both; a collection of `SyncHandleType`: exactly those; False: a
            local fence. Export needs `VK_KHR_external_fence_fd`.

    Raises:
        VulkanError: the device lacks the extension (named) or a Vulkan call failed.
        HandleError: the driver cannot export a fence as asked.

    Owns the VkFence: `close()` it, or use `with`. A queue signals it
    (`VulkanDevice.queue_submit(fence=...)`, `SharedSemaphore.queue_signal(fence=...)`).
    """

    _kind = "fence"
    _destroy_name = "vkDestroyFence"

    def __init__(
        self,
        device: VulkanDevice,
        *,
        signaled: bool = False,
        export: bool | Collection[SyncHandleType] = True,
        _import: tuple[FenceHandle, int] | None = None,
    ) -> None:
        super().__init__(device)
        vk = self._vk
        try:
            dev = device.handle
            if _import is None:
                self.export_types = _export_types(device, "fence", False, export)
            chain = None
            if self.export_types:
                chain = vk.VkExportFenceCreateInfo(
                    handleTypes=_mask(vk, "fence", self.export_types)
                )
            flags = vk.VK_FENCE_CREATE_SIGNALED_BIT if signaled else 0
            info = vk.VkFenceCreateInfo(pNext=chain, flags=flags)
            info.flags = flags
            self._object = check(vk, "vkCreateFence", lambda: vk.vkCreateFence(dev, info, None))
            if _import is not None:
                self._import(*_import)
        except BaseException:
            if self._object is not None:
                vk.vkDestroyFence(device.handle, self._object, None)
            if _import is not None and self.imported is None and _import[1] >= 0:
                close_unimported(_import[1])
            raise
        self._arm()

    def _import(self, handle: FenceHandle, fd: int) -> None:
        vk, dev = self._vk, self.device.handle
        temporary = handle.handle_type is SyncHandleType.SYNC_FD
        flags = vk.VK_FENCE_IMPORT_TEMPORARY_BIT if temporary else 0
        info = vk.VkImportFenceFdInfoKHR(
            fence=self._object,
            flags=flags,
            handleType=_bit(vk, "fence", handle.handle_type),
            fd=fd,
        )
        info.flags = flags
        info.fd = fd
        import_fd = self.device.get_proc("vkImportFenceFdKHR")
        check(vk, "vkImportFenceFdKHR", lambda: import_fd(dev, info))
        self.imported = handle.handle_type

    def export(self, handle_type: SyncHandleType | None = None) -> tuple[FenceHandle, int]:
        """A handle and a new fd (opaque-fd unless `handle_type` says otherwise). The
        caller owns the fd. A sync-fd needs a pending or completed signal; exporting
        it resets the fence, and the fd is -1 if the signal has already completed."""
        handle_type = self._pick_export(handle_type)
        vk = self._vk
        info = vk.VkFenceGetFdInfoKHR(fence=self.handle, handleType=_bit(vk, "fence", handle_type))
        fd = self._get_fd("vkGetFenceFdKHR", info)
        return FenceHandle(handle_type, self.device.device_uuid, self.device.driver_uuid), fd

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the fence is signalled: True, or False after `timeout` seconds
        (None: no limit)."""
        ns = _timeout_ns(timeout)
        vk, dev = self._vk, self._live()
        try:
            check(
                vk,
                "vkWaitForFences",
                lambda: vk.vkWaitForFences(dev, 1, [self._object], vk.VK_TRUE, ns),
            )
        except vk.VkTimeout:
            return False
        return True

    def reset(self) -> None:
        """Unsignal the fence (and drop a temporary import)."""
        vk, dev = self._vk, self._live()
        check(vk, "vkResetFences", lambda: vk.vkResetFences(dev, 1, [self._object]))

    @property
    def signaled(self) -> bool:
        """True if the fence is signalled now."""
        vk, dev = self._vk, self._live()
        try:
            check(vk, "vkGetFenceStatus", lambda: vk.vkGetFenceStatus(dev, self._object))
        except vk.VkNotReady:
            return False
        return True

    def __repr__(self) -> str:
        return f"<SharedFence{' closed' if self.closed else ''}>"


def _check_import(
    device: VulkanDevice, handle: SemaphoreHandle | FenceHandle, fd: int, what: str
) -> None:
    if handle.handle_type is SyncHandleType.OPAQUE_FD and (
        handle.device_uuid != device.device_uuid or handle.driver_uuid != device.driver_uuid
    ):
        raise HandleError(
            f"device_uuid: the {what} comes from device {handle.device_uuid.hex()} / driver "
            f"{handle.driver_uuid.hex()}, this is {device.name!r} "
            f"{device.device_uuid.hex()} / {device.driver_uuid.hex()} (opaque fds only "
            f"import on the same device and driver)",
            field="device_uuid",
        )
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise HandleError(f"fd: expected an int, got {fd!r}", field="fd")
    if fd == -1 and handle.handle_type is SyncHandleType.SYNC_FD:
        return  # a sync-fd of -1 stands for an already-signalled payload
    try:
        os.fstat(fd)
    except OSError as e:
        raise HandleError(f"fd: {fd} is not an open file descriptor ({e})", field="fd") from e


def _check_importable(
    device: VulkanDevice, what: str, handle_type: SyncHandleType, timeline: bool
) -> None:
    features, _ = _properties(device, what, handle_type, timeline)
    if not features & _feature_bit(device.vk, what, "IMPORTABLE"):
        raise HandleError(
            f"handle_type: {device.name!r} cannot import a {_describe(what, timeline)} "
            f"as {handle_type.value}",
            field="handle_type",
        )


def import_semaphore(device: VulkanDevice, handle: SemaphoreHandle, fd: int) -> SharedSemaphore:
    """A `SharedSemaphore` on `device` sharing the payload behind `fd` (exported by
    `SharedSemaphore.export`, here or in another process): permanently for opaque-fd,
    until the next wait for sync-fd (`-1` is an already-signalled sync-fd).

    The caller keeps owning `fd` (it is duplicated for Vulkan): close it when done.

    Raises:
        HandleError: not a semaphore handle, another device's opaque-fd, an fd that is
            not open, or a handle type the driver cannot import.
        VulkanError: the device lacks `VK_KHR_external_semaphore_fd` (or timeline
            semaphores), or the driver refused the import.
    """
    if not isinstance(handle, SemaphoreHandle):
        raise HandleError(
            f"kind: expected a SemaphoreHandle, got {type(handle).__name__}", field="kind"
        )
    _check_import(device, handle, fd, "semaphore")
    device.require_extension(EXTERNAL_SEMAPHORE_FD, "importing a semaphore")
    if handle.timeline:
        device.require_timeline("importing a timeline semaphore")
    _check_importable(device, "semaphore", handle.handle_type, handle.timeline)
    dup = os.dup(fd) if fd >= 0 else -1  # non-inheritable; the constructor owns it
    return SharedSemaphore(device, timeline=handle.timeline, export=False, _import=(handle, dup))


def import_fence(device: VulkanDevice, handle: FenceHandle, fd: int) -> SharedFence:
    """A `SharedFence` on `device` sharing the payload behind `fd` (exported by
    `SharedFence.export`): permanently for opaque-fd, until the next `reset()` for
    sync-fd (`-1` is an already-signalled sync-fd).

    The caller keeps owning `fd` (it is duplicated for Vulkan): close it when done.

    Raises:
        HandleError: not a fence handle, another device's opaque-fd, an fd that is not
            open, or a handle type the driver cannot import.
        VulkanError: the device lacks `VK_KHR_external_fence_fd`, or the driver refused.
    """
    if not isinstance(handle, FenceHandle):
        raise HandleError(
            f"kind: expected a FenceHandle, got {type(handle).__name__}", field="kind"
        )
    _check_import(device, handle, fd, "fence")
    device.require_extension(EXTERNAL_FENCE_FD, "importing a fence")
    _check_importable(device, "fence", handle.handle_type, False)
    dup = os.dup(fd) if fd >= 0 else -1
    return SharedFence(device, export=False, _import=(handle, dup))
