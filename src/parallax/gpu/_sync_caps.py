"""What the Vulkan driver can do with exported semaphores and fences: the handle types an
object is created exportable as (`export_types`, checked against
`vkGetPhysicalDeviceExternalSemaphoreProperties` / `...FenceProperties`), and the checks
an import passes before the driver sees the fd (`check_import`, `check_importable`).

Export needs `VK_KHR_external_semaphore_fd` / `VK_KHR_external_fence_fd`; a local
(`export=False`) semaphore or fence needs neither.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from ._errors import HandleError
from ._sync_handle import FenceHandle, SemaphoreHandle, SyncHandleType
from ._vulkan import EXTERNAL_FENCE_FD, EXTERNAL_SEMAPHORE_FD, VulkanDevice


def handle_bit(vk: Any, what: str, handle_type: SyncHandleType) -> int:
    kind = "SEMAPHORE" if what == "semaphore" else "FENCE"
    name = handle_type.name  # OPAQUE_FD or SYNC_FD
    return int(getattr(vk, f"VK_EXTERNAL_{kind}_HANDLE_TYPE_{name}_BIT"))


def properties(
    device: VulkanDevice, what: str, handle_type: SyncHandleType, timeline: bool
) -> tuple[int, int]:
    """(features, compatible handle type bits) the driver reports for `handle_type`."""
    vk = device.vk
    bit = handle_bit(vk, what, handle_type)
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


def feature_bit(vk: Any, what: str, feature: str) -> int:
    kind = "SEMAPHORE" if what == "semaphore" else "FENCE"
    return int(getattr(vk, f"VK_EXTERNAL_{kind}_FEATURE_{feature}_BIT"))


def export_types(
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
    exportable = feature_bit(vk, what, "EXPORTABLE")
    candidates = [t for t in SyncHandleType if not (timeline and t is SyncHandleType.SYNC_FD)]
    props = {t: properties(device, what, t, timeline) for t in candidates}
    if export is True:
        chosen: list[SyncHandleType] = []
        for t in candidates:  # OPAQUE_FD first, then SYNC_FD where compatible with it
            features, _compatible = props[t]
            if features & exportable and all(props[c][1] & handle_bit(vk, what, t) for c in chosen):
                chosen.append(t)
        if not chosen:
            raise HandleError(
                f"handle_type: {device.name!r} can export a {describe(what, timeline)} "
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
                f"handle_type: {device.name!r} cannot export a {describe(what, timeline)} "
                f"as {t.value}",
                field="handle_type",
            )
        for other in wanted:
            if not props[t][1] & handle_bit(vk, what, other):
                raise HandleError(
                    f"handle_type: {device.name!r} cannot export one {what} as both "
                    f"{t.value} and {other.value} (not compatible)",
                    field="handle_type",
                )
    return wanted


def describe(what: str, timeline: bool) -> str:
    if what == "semaphore":
        return "timeline semaphore" if timeline else "binary semaphore"
    return what


def handle_mask(vk: Any, what: str, types: frozenset[SyncHandleType]) -> int:
    bits = 0
    for t in types:
        bits |= handle_bit(vk, what, t)
    return bits


def check_import(
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


def check_importable(
    device: VulkanDevice, what: str, handle_type: SyncHandleType, timeline: bool
) -> None:
    features, _ = properties(device, what, handle_type, timeline)
    if not features & feature_bit(device.vk, what, "IMPORTABLE"):
        raise HandleError(
            f"handle_type: {device.name!r} cannot import a {describe(what, timeline)} "
            f"as {handle_type.value}",
            field="handle_type",
        )
