"""`SharedFence`: a Vulkan fence that can be exported to another process as a file
descriptor, and `import_fence` on the other side. Handles: `_sync_handle.py`; which
handle types the driver allows: `_sync_caps.py`.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from ._errors import HandleError
from ._sync_caps import check_import, check_importable, export_types, handle_bit, handle_mask
from ._sync_handle import FenceHandle, SyncHandleType
from ._sync_object import SyncObject, timeout_ns
from ._vulkan import EXTERNAL_FENCE_FD, VulkanDevice, check, close_unimported


class SharedFence(SyncObject):
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
                self.export_types = export_types(device, "fence", False, export)
            chain = None
            if self.export_types:
                chain = vk.VkExportFenceCreateInfo(
                    handleTypes=handle_mask(vk, "fence", self.export_types)
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
            handleType=handle_bit(vk, "fence", handle.handle_type),
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
        info = vk.VkFenceGetFdInfoKHR(
            fence=self.handle, handleType=handle_bit(vk, "fence", handle_type)
        )
        fd = self._get_fd("vkGetFenceFdKHR", info)
        return FenceHandle(handle_type, self.device.device_uuid, self.device.driver_uuid), fd

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the fence is signalled: True, or False after `timeout` seconds
        (None: no limit)."""
        ns = timeout_ns(timeout)
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
    check_import(device, handle, fd, "fence")
    device.require_extension(EXTERNAL_FENCE_FD, "importing a fence")
    check_importable(device, "fence", handle.handle_type, False)
    dup = os.dup(fd) if fd >= 0 else -1
    return SharedFence(device, export=False, _import=(handle, dup))
