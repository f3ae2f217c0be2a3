"""`SharedSemaphore`: a binary or timeline Vulkan semaphore that can be exported to
another process as a file descriptor, and `import_semaphore` on the other side.

Timeline semaphores are `VK_KHR_timeline_semaphore` (core in Vulkan 1.2): a 64-bit
counter the host and queues signal and wait on. Handles: `_sync_handle.py`; which handle
types the driver allows: `_sync_caps.py`.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from ._errors import HandleError
from ._sync_caps import (
    check_import,
    check_importable,
    export_types,
    handle_bit,
    handle_mask,
)
from ._sync_handle import SemaphoreHandle, SyncHandleType
from ._sync_object import SyncObject, check_value, timeout_ns
from ._vulkan import EXTERNAL_SEMAPHORE_FD, FenceLike, VulkanDevice, check, close_unimported


class SharedSemaphore(SyncObject):
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
            initial_value = check_value(initial_value, "initial_value")
            self.timeline = bool(timeline)
            if self.timeline:
                device.require_timeline("a timeline semaphore")
            elif initial_value:
                raise ValueError("initial_value: a binary semaphore has none")
            if _import is None:
                self.export_types = export_types(device, "semaphore", self.timeline, export)
            chain = None
            if self.timeline:
                chain = vk.VkSemaphoreTypeCreateInfo(
                    semaphoreType=vk.VK_SEMAPHORE_TYPE_TIMELINE, initialValue=initial_value
                )
                chain.semaphoreType = vk.VK_SEMAPHORE_TYPE_TIMELINE
                chain.initialValue = initial_value  # falsy kwargs are dropped: set it
            if self.export_types:
                chain = vk.VkExportSemaphoreCreateInfo(
                    pNext=chain, handleTypes=handle_mask(vk, "semaphore", self.export_types)
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
            handleType=handle_bit(vk, "semaphore", handle.handle_type),
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
            semaphore=self.handle, handleType=handle_bit(vk, "semaphore", handle_type)
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
        value = check_value(value)
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
        value = check_value(value)
        ns = timeout_ns(timeout)
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
        value = check_value(value)
        if not self.timeline and value:
            raise ValueError("value: a binary semaphore has no value")
        return value

    def __repr__(self) -> str:
        kind = "timeline" if self.timeline else "binary"
        return f"<SharedSemaphore {kind}{' closed' if self.closed else ''}>"


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
    check_import(device, handle, fd, "semaphore")
    device.require_extension(EXTERNAL_SEMAPHORE_FD, "importing a semaphore")
    if handle.timeline:
        device.require_timeline("importing a timeline semaphore")
    check_importable(device, "semaphore", handle.handle_type, handle.timeline)
    dup = os.dup(fd) if fd >= 0 else -1  # non-inheritable; the constructor owns it
    return SharedSemaphore(device, timeline=handle.timeline, export=False, _import=(handle, dup))
