"""`SyncObject`: what `SharedSemaphore` and `SharedFence` share: the Vulkan object's
ownership (destroyed by a finalizer, closed with its device), choosing the handle type to
export as, getting the exported fd, and the value and timeout checks.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Final, Self

from parallax._errors import ClosedError

from ._errors import HandleError
from ._sync_handle import SyncHandleType
from ._vulkan import VulkanDevice, check

U64: Final = 1 << 64
FOREVER: Final = U64 - 1  # UINT64_MAX: wait without a timeout


def timeout_ns(timeout: float | None) -> int:
    if timeout is None:
        return FOREVER
    if timeout < 0:
        raise ValueError(f"timeout: expected seconds >= 0 or None, got {timeout!r}")
    return min(int(timeout * 1e9), FOREVER)


def check_value(value: object, name: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < U64:
        raise ValueError(f"{name}: expected an int in 0..2**64-1, got {value!r}")
    return value


def _destroy(vk: Any, device: Any, destroy: str, obj: Any) -> None:
    getattr(vk, destroy)(device, obj, None)


class SyncObject:
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
