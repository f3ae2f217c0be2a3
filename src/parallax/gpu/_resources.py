"""`SharedBuffer` and `SharedTexture`: Vulkan objects bound to a dedicated, exportable
(OPAQUE_FD) allocation, and their import in another process.

Flow: create -> `export()` -> (handle bytes + fd by SCM_RIGHTS) -> `import_buffer` /
`import_texture` on a device with the same device and driver UUIDs (the Vulkan spec's
condition for OPAQUE_FD; vkAllocateMemory, VkImportMemoryFdInfoKHR). The importer
recreates the object with the same parameters, and allocates with the exporter's
allocation size and memory type index, which the spec requires to match.

Images stay in VK_IMAGE_LAYOUT_GENERAL with optimal tiling. Each host copy acquires the
image from VK_QUEUE_FAMILY_EXTERNAL and releases it back, so the other process's view
stays defined (the spec's external queue-family ownership transfer).
"""

from __future__ import annotations

import os
import stat
import weakref
from typing import Any, Final, Self

from parallax._errors import ClosedError

from ._errors import HandleError, VulkanError
from ._handle import ApiTextureHandle, BufferHandle, HandleType
from ._vulkan import VulkanDevice, check, close_unimported

_BUFFER_USAGE_NAMES: Final = ("TRANSFER_SRC", "TRANSFER_DST", "STORAGE_BUFFER", "UNIFORM_BUFFER")


def opaque_fd(vk: Any) -> int:
    return int(vk.VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT)


class MemoryObject:
    """Base: one VkBuffer or VkImage and its dedicated VkDeviceMemory."""

    _kind = "resource"

    def __init__(self, device: VulkanDevice) -> None:
        self.device = device
        self._vk = device.vk
        self._object: Any = None
        self._memory: Any = None
        self.allocation_size = 0
        self.memory_type_index = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _arm(self, destroy_name: str) -> None:
        self._finalizer = weakref.finalize(
            self,
            free,
            self._vk,
            self.device.handle,
            destroy_name,
            [self._object],
            [self._memory],
        )
        self.device.adopt(self)

    def _allocate(self, requirements: Any, import_fd: int | None, dedicated: Any) -> None:
        vk, dev = self._vk, self.device.handle
        if import_fd is None:
            chain = vk.VkExportMemoryAllocateInfo(pNext=dedicated, handleTypes=opaque_fd(vk))
        else:
            # On success Vulkan owns the fd; on failure we still do (VkImportMemoryFdInfoKHR).
            chain = vk.VkImportMemoryFdInfoKHR(
                pNext=dedicated, handleType=opaque_fd(vk), fd=import_fd
            )
        info = vk.VkMemoryAllocateInfo(
            pNext=chain,
            allocationSize=self.allocation_size,
            memoryTypeIndex=self.memory_type_index,
        )
        info.memoryTypeIndex = self.memory_type_index  # falsy kwargs are dropped: set it
        try:
            self._memory = check(
                vk, "vkAllocateMemory", lambda: vk.vkAllocateMemory(dev, info, None)
            )
        except VulkanError as e:
            if import_fd is None:
                raise
            # Drivers whose opaque fds have no size the kernel knows (NVIDIA) only find a
            # handle that claims more than was exported here, as a refused allocation.
            raise HandleError(
                f"allocation_size: the driver refused to import {self.allocation_size:,} "
                f"bytes of memory type {self.memory_type_index} from this fd ({e.result}): "
                "does the handle describe the memory that was exported?",
                field="allocation_size",
            ) from e

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or the device was closed)."""
        return self._finalizer is None or not self._finalizer.alive

    def _live(self) -> Any:
        if self.closed or self.device.closed:
            raise ClosedError(f"{self._kind} is closed")
        return self.device.handle

    def _export_fd(self) -> int:
        vk, dev = self._vk, self._live()
        info = vk.VkMemoryGetFdInfoKHR(memory=self._memory, handleType=opaque_fd(vk))
        fd = int(check(vk, "vkGetMemoryFdKHR", lambda: self.device.get_memory_fd(dev, info)))
        os.set_inheritable(fd, False)  # the driver's fd is not close-on-exec (PLATFORM.md)
        return fd

    def close(self) -> None:
        """Destroy the object and free its memory. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free(vk: Any, device: Any, destroy: str, obj: list[Any], memory: list[Any]) -> None:
    if obj[0] is not None:
        getattr(vk, destroy)(device, obj[0], None)
    if memory[0] is not None:
        vk.vkFreeMemory(device, memory[0], None)


def check_import(device: VulkanDevice, handle: BufferHandle | ApiTextureHandle, fd: int) -> None:
    if handle.handle_type is not HandleType.OPAQUE_FD:
        raise HandleError(
            f"handle_type: this backend imports opaque-fd, got {handle.handle_type.value}",
            field="handle_type",
        )
    if handle.device_uuid != device.device_uuid or handle.driver_uuid != device.driver_uuid:
        raise HandleError(
            f"device_uuid: the handle comes from device {handle.device_uuid.hex()} / driver "
            f"{handle.driver_uuid.hex()}, this is {device.name!r} "
            f"{device.device_uuid.hex()} / {device.driver_uuid.hex()} (opaque fds only "
            f"import on the same device and driver)",
            field="device_uuid",
        )
    if handle.memory_type_index >= device.memory_properties.memoryTypeCount:
        raise HandleError(
            f"memory_type_index: {handle.memory_type_index} does not exist on {device.name!r}",
            field="memory_type_index",
        )
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise HandleError(f"fd: {fd} is not an open file descriptor ({e})", field="fd") from e
    # Where the kernel knows the fd's size (a memfd, as lavapipe exports), it must hold the
    # allocation; driver fds (NVIDIA) report 0 and are checked by the driver.
    if stat.S_ISREG(st.st_mode) and 0 < st.st_size < handle.allocation_size:
        raise HandleError(
            f"allocation_size: the handle says {handle.allocation_size} bytes, fd {fd} "
            f"holds only {st.st_size}",
            field="allocation_size",
        )


def check_fits(handle: BufferHandle | ApiTextureHandle, requirements: Any, what: str) -> None:
    if requirements.size > handle.allocation_size:
        raise HandleError(
            f"allocation_size: {what} needs {requirements.size} bytes, the handle's "
            f"allocation has {handle.allocation_size}",
            field="allocation_size",
        )
    if not requirements.memoryTypeBits >> handle.memory_type_index & 1:
        raise HandleError(
            f"memory_type_index: {what} cannot live in memory type {handle.memory_type_index}",
            field="memory_type_index",
        )


class SharedBuffer(MemoryObject):
    """A Vulkan buffer of `size` bytes in a dedicated allocation that can be exported.

    Args:
        device: the device to create it on (it closes the buffer when it closes).
        size: bytes.
        host_visible: put it in host-visible, coherent memory (reads and writes map it);
            otherwise device-local memory (reads and writes go through a staging copy).

    Owns the VkBuffer and VkDeviceMemory: `close()` it, or use `with`. Usage is
    TRANSFER_SRC | TRANSFER_DST | STORAGE_BUFFER | UNIFORM_BUFFER.
    """

    _kind = "shared buffer"

    def __init__(
        self,
        device: VulkanDevice,
        size: int,
        *,
        host_visible: bool = True,
        _import: tuple[BufferHandle, int] | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        super().__init__(device)
        vk, dev = self._vk, device.handle
        self.size = size
        usage = 0
        for name in _BUFFER_USAGE_NAMES:
            usage |= getattr(vk, f"VK_BUFFER_USAGE_{name}_BIT")
        ext = vk.VkExternalMemoryBufferCreateInfo(handleTypes=opaque_fd(vk))
        info = vk.VkBufferCreateInfo(
            pNext=ext, size=size, usage=usage, sharingMode=vk.VK_SHARING_MODE_EXCLUSIVE
        )
        try:
            self._object = check(vk, "vkCreateBuffer", lambda: vk.vkCreateBuffer(dev, info, None))
            req = vk.vkGetBufferMemoryRequirements(dev, self._object)
            if _import is None:
                wanted = (
                    vk.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | vk.VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                    if host_visible
                    else vk.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
                )
                self.memory_type_index = device.memory_type(req.memoryTypeBits, wanted)
                self.allocation_size = int(req.size)
                fd = None
            else:
                handle, fd = _import
                check_fits(handle, req, f"a {size}-byte buffer")
                self.memory_type_index = handle.memory_type_index
                self.allocation_size = handle.allocation_size
            dedicated = vk.VkMemoryDedicatedAllocateInfo(buffer=self._object)
            self._allocate(req, fd, dedicated)
            check(
                vk,
                "vkBindBufferMemory",
                lambda: vk.vkBindBufferMemory(dev, self._object, self._memory, 0),
            )
        except BaseException:
            free(vk, dev, "vkDestroyBuffer", [self._object], [self._memory])
            if _import is not None and self._memory is None:
                close_unimported(_import[1])  # not yet the driver's: ours to close
            raise
        self._arm("vkDestroyBuffer")

    @property
    def host_visible(self) -> bool:
        """True if the memory can be mapped (reads and writes need no staging copy)."""
        flags = self.device.memory_flags(self.memory_type_index)
        return bool(flags & self._vk.VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)

    def export(self) -> tuple[BufferHandle, int]:
        """A handle and a new fd for the memory. The caller owns the fd: send it
        (`socket.send_fds`) and close it. The buffer stays valid and owned here."""
        fd = self._export_fd()
        handle = BufferHandle(
            handle_type=HandleType.OPAQUE_FD,
            allocation_size=self.allocation_size,
            memory_type_index=self.memory_type_index,
            device_uuid=self.device.device_uuid,
            driver_uuid=self.device.driver_uuid,
            size=self.size,
        )
        return handle, fd

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Copy `data` into the buffer at `offset` (and wait until it is there)."""
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise ValueError(
                f"write of {len(view)} bytes at offset {offset} exceeds the {self.size}-byte buffer"
            )
        _host_copy(self, view, offset, None)

    def read(self, size: int | None = None, offset: int = 0) -> bytes:
        """Copy `size` bytes (default: to the end) from `offset` out of the buffer."""
        n = self.size - offset if size is None else size
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ValueError(f"read of {n} bytes at offset {offset} exceeds {self.size} bytes")
        out = bytearray(n)
        _host_copy(self, None, offset, memoryview(out))
        return bytes(out)

    def __repr__(self) -> str:
        return f"<SharedBuffer {self.size} bytes{' closed' if self.closed else ''}>"


def _host_copy(
    buf: SharedBuffer, src: memoryview | None, offset: int, dst: memoryview | None
) -> None:
    vk, dev = buf._vk, buf._live()
    n = len(src if src is not None else dst)  # type: ignore[arg-type]
    if n == 0:
        return
    if buf.host_visible:
        mapped = check(vk, "vkMapMemory", lambda: vk.vkMapMemory(dev, buf._memory, offset, n, 0))
        try:
            if src is not None:
                mapped[0:n] = src
            else:
                dst[0:n] = mapped[0:n]  # type: ignore[index]
        finally:
            vk.vkUnmapMemory(dev, buf._memory)
        return
    with SharedBuffer(buf.device, n, host_visible=True) as staging:
        region = vk.VkBufferCopy(srcOffset=0, dstOffset=offset, size=n)
        if src is not None:
            staging.write(src)
            buf.device.submit(
                lambda cmd: vk.vkCmdCopyBuffer(cmd, staging._object, buf._object, 1, [region])
            )
        else:
            region = vk.VkBufferCopy(srcOffset=offset, dstOffset=0, size=n)
            buf.device.submit(
                lambda cmd: vk.vkCmdCopyBuffer(cmd, buf._object, staging._object, 1, [region])
            )
            dst[0:n] = staging.read()  # type: ignore[index]


def import_buffer(device: VulkanDevice, handle: BufferHandle, fd: int) -> SharedBuffer:
    """A `SharedBuffer` on `device` bound to the memory behind `fd` (exported by
    `SharedBuffer.export`, here or in another process).

    The caller keeps owning `fd` (it is duplicated for Vulkan): close it when done.

    Raises:
        HandleError: the handle does not fit this device, the fd, or a buffer of its size.
        VulkanError: the driver refused the import.
    """
    if not isinstance(handle, BufferHandle):
        raise HandleError(f"expected a BufferHandle, got {type(handle).__name__}")
    check_import(device, handle, fd)
    # The constructor owns the duplicate: the driver takes it, or it is closed on failure.
    return SharedBuffer(device, handle.size, _import=(handle, os.dup(fd)))
