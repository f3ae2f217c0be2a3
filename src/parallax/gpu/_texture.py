"""`SharedTexture`: a 2D VkImage with a `TextureDescriptor`'s format and usage, in a
dedicated exportable (OPAQUE_FD) allocation; `import_texture` binds one to memory
exported by another process. See `_resources.py` for the shared flow and rules.
"""

from __future__ import annotations

import os
from typing import Any, Final

from ._descriptor import TextureDescriptor, TextureUsage
from ._errors import DescriptorError, HandleError
from ._handle import ApiTextureHandle, HandleType
from ._resources import MemoryObject, SharedBuffer, check_fits, check_import, free, opaque_fd
from ._vulkan import VulkanDevice, check, close_unimported

_USAGE_BITS: Final = {
    TextureUsage.COPY_SRC: "VK_IMAGE_USAGE_TRANSFER_SRC_BIT",
    TextureUsage.COPY_DST: "VK_IMAGE_USAGE_TRANSFER_DST_BIT",
    TextureUsage.TEXTURE_BINDING: "VK_IMAGE_USAGE_SAMPLED_BIT",
    TextureUsage.STORAGE_BINDING: "VK_IMAGE_USAGE_STORAGE_BIT",
}


def vk_usage(vk: Any, desc: TextureDescriptor) -> int:
    """The VkImageUsageFlags for a descriptor's usage."""
    bits = 0
    for flag, name in _USAGE_BITS.items():
        if desc.usage & flag:
            bits |= getattr(vk, name)
    if desc.usage & TextureUsage.RENDER_ATTACHMENT:
        bits |= (
            vk.VK_IMAGE_USAGE_DEPTH_STENCIL_ATTACHMENT_BIT
            if desc.format.is_depth
            else vk.VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT
        )
    return int(bits)


def choose_format(device: VulkanDevice, desc: TextureDescriptor, *, importing: bool) -> int:
    """The first of the format's VkFormats this device can create with the usage and
    share as OPAQUE_FD at the size; `DescriptorError` (field format) if none can."""
    vk, pd = device.vk, device.physical
    feature = (
        vk.VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT
        if importing
        else vk.VK_EXTERNAL_MEMORY_FEATURE_EXPORTABLE_BIT
    )
    reasons = []
    for fmt in desc.format.vk_formats:
        external = vk.VkPhysicalDeviceExternalImageFormatInfo(handleType=opaque_fd(vk))
        info = vk.VkPhysicalDeviceImageFormatInfo2(
            pNext=external,
            format=fmt,
            type=vk.VK_IMAGE_TYPE_2D,
            tiling=vk.VK_IMAGE_TILING_OPTIMAL,
            usage=vk_usage(vk, desc),
        )
        out_ext = vk.VkExternalImageFormatProperties()
        out = vk.VkImageFormatProperties2(pNext=out_ext)
        try:
            vk.vkGetPhysicalDeviceImageFormatProperties2(pd, info, out)
        except vk.VkError as e:
            reasons.append(f"VkFormat {fmt}: {type(e).__name__}")
            continue
        features = out_ext.externalMemoryProperties.externalMemoryFeatures
        extent = out.imageFormatProperties.maxExtent
        if not features & feature:
            reasons.append(f"VkFormat {fmt}: not {'importable' if importing else 'exportable'}")
        elif desc.width > extent.width or desc.height > extent.height:
            reasons.append(f"VkFormat {fmt}: at most {extent.width}x{extent.height}")
        else:
            return fmt
    raise DescriptorError(
        f"format: {desc.format.value} with usage {desc.usage!r} cannot be shared as "
        f"opaque-fd on {device.name!r} ({'; '.join(reasons)})",
        field="format",
        value=desc.format,
    )


class SharedTexture(MemoryObject):
    """A 2D texture (one mip level, one layer, optimal tiling) in a dedicated allocation
    that can be exported. Made by `ShareManager.create_shared_texture` or directly.

    Args:
        device: the device to create it on (it closes the texture when it closes).
        descriptor: size, format, usage, label.

    Owns the VkImage and VkDeviceMemory: `close()` it, or use `with`. The image is kept
    in VK_IMAGE_LAYOUT_GENERAL, owned by VK_QUEUE_FAMILY_EXTERNAL between uses.
    """

    _kind = "shared texture"

    def __init__(
        self,
        device: VulkanDevice,
        descriptor: TextureDescriptor,
        *,
        _import: tuple[ApiTextureHandle, int] | None = None,
    ) -> None:
        if not isinstance(descriptor, TextureDescriptor):
            raise TypeError(f"expected a TextureDescriptor, got {type(descriptor).__name__}")
        super().__init__(device)
        vk, dev = self._vk, device.handle
        self.descriptor = descriptor
        try:
            if max(descriptor.width, descriptor.height) > device.max_dimension_2d:
                raise DescriptorError(
                    f"width/height: {descriptor.width}x{descriptor.height} exceeds "
                    f"{device.name!r}'s maxImageDimension2D {device.max_dimension_2d}",
                    field="width",
                )
            self.vk_format = choose_format(device, descriptor, importing=_import is not None)
            ext = vk.VkExternalMemoryImageCreateInfo(handleTypes=opaque_fd(vk))
            info = vk.VkImageCreateInfo(
                pNext=ext,
                imageType=vk.VK_IMAGE_TYPE_2D,
                format=self.vk_format,
                extent=vk.VkExtent3D(width=descriptor.width, height=descriptor.height, depth=1),
                mipLevels=1,
                arrayLayers=1,
                samples=vk.VK_SAMPLE_COUNT_1_BIT,
                tiling=vk.VK_IMAGE_TILING_OPTIMAL,
                usage=vk_usage(vk, descriptor),
                sharingMode=vk.VK_SHARING_MODE_EXCLUSIVE,
                initialLayout=vk.VK_IMAGE_LAYOUT_UNDEFINED,
            )
            self._object = check(vk, "vkCreateImage", lambda: vk.vkCreateImage(dev, info, None))
            req = vk.vkGetImageMemoryRequirements(dev, self._object)
            what = f"a {descriptor.width}x{descriptor.height} {descriptor.format.value} texture"
            if _import is None:
                flags = vk.VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT
                self.memory_type_index = device.memory_type(req.memoryTypeBits, flags)
                self.allocation_size = int(req.size)
                fd = None
            else:
                handle, fd = _import
                check_fits(handle, req, what)
                self.memory_type_index = handle.memory_type_index
                self.allocation_size = handle.allocation_size
            self._allocate(req, fd, vk.VkMemoryDedicatedAllocateInfo(image=self._object))
            check(
                vk,
                "vkBindImageMemory",
                lambda: vk.vkBindImageMemory(dev, self._object, self._memory, 0),
            )
        except BaseException:
            free(vk, dev, "vkDestroyImage", [self._object], [self._memory])
            if _import is not None and self._memory is None:
                close_unimported(_import[1])  # not yet the driver's: ours to close
            raise
        self._arm("vkDestroyImage")
        if _import is None:
            # UNDEFINED -> GENERAL, released to the external queue family for importers.
            self.device.submit(
                lambda cmd: self._barrier(
                    cmd, vk.VK_IMAGE_LAYOUT_UNDEFINED, acquire=False, access=0
                )
            )

    def _aspect(self) -> int:
        vk = self._vk
        return int(
            vk.VK_IMAGE_ASPECT_DEPTH_BIT
            if self.descriptor.format.is_depth
            else vk.VK_IMAGE_ASPECT_COLOR_BIT
        )

    def _barrier(self, cmd: Any, old_layout: int, *, acquire: bool, access: int) -> None:
        vk, family = self._vk, self.device.queue_family
        external = vk.VK_QUEUE_FAMILY_EXTERNAL
        barrier = vk.VkImageMemoryBarrier(
            srcAccessMask=0 if acquire else access,
            dstAccessMask=access if acquire else 0,
            oldLayout=old_layout,
            newLayout=vk.VK_IMAGE_LAYOUT_GENERAL,
            srcQueueFamilyIndex=external if acquire else family,
            dstQueueFamilyIndex=family if acquire else external,
            image=self._object,
            subresourceRange=vk.VkImageSubresourceRange(
                aspectMask=self._aspect(),
                baseMipLevel=0,
                levelCount=1,
                baseArrayLayer=0,
                layerCount=1,
            ),
        )
        # Falsy kwargs are dropped by the binding; queue family 0 must be set explicitly.
        barrier.srcQueueFamilyIndex = external if acquire else family
        barrier.dstQueueFamilyIndex = family if acquire else external
        top, transfer = vk.VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, vk.VK_PIPELINE_STAGE_TRANSFER_BIT
        bottom = vk.VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT
        src, dst = (top, transfer) if acquire else (transfer, bottom)
        vk.vkCmdPipelineBarrier(cmd, src, dst, 0, 0, None, 0, None, 1, [barrier])

    def _copy(self, staging: SharedBuffer, *, upload: bool) -> None:
        vk, d = self._vk, self.descriptor
        region = vk.VkBufferImageCopy(
            bufferOffset=0,
            imageSubresource=vk.VkImageSubresourceLayers(
                aspectMask=self._aspect(), mipLevel=0, baseArrayLayer=0, layerCount=1
            ),
            imageOffset=vk.VkOffset3D(x=0, y=0, z=0),
            imageExtent=vk.VkExtent3D(width=d.width, height=d.height, depth=1),
        )
        general = vk.VK_IMAGE_LAYOUT_GENERAL
        access = vk.VK_ACCESS_TRANSFER_WRITE_BIT if upload else vk.VK_ACCESS_TRANSFER_READ_BIT

        def record(cmd: Any) -> None:
            self._barrier(cmd, general, acquire=True, access=access)
            if upload:
                vk.vkCmdCopyBufferToImage(cmd, staging._object, self._object, general, 1, [region])
            else:
                vk.vkCmdCopyImageToBuffer(cmd, self._object, general, staging._object, 1, [region])
            self._barrier(cmd, general, acquire=False, access=access)

        self.device.submit(record)

    def _host_copy_check(self, needed: TextureUsage, verb: str) -> None:
        self._live()
        d = self.descriptor
        if not d.usage & needed:
            raise ValueError(f"cannot {verb} texture {d.label!r}: its usage lacks {needed.name}")
        if not d.format.host_copyable:
            raise ValueError(
                f"cannot {verb} a {d.format.value} texture from the host: its depth layout "
                f"is the driver's choice (use depth32float)"
            )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Upload tightly packed texels (exactly `descriptor.nbytes` bytes); needs COPY_DST."""
        self._host_copy_check(TextureUsage.COPY_DST, "write")
        view = memoryview(data).cast("B")
        if len(view) != self.descriptor.nbytes:
            raise ValueError(
                f"write: expected {self.descriptor.nbytes} bytes "
                f"({self.descriptor.width}x{self.descriptor.height} "
                f"{self.descriptor.format.value}), got {len(view)}"
            )
        with SharedBuffer(self.device, len(view)) as staging:
            staging.write(view)
            self._copy(staging, upload=True)

    def read(self) -> bytes:
        """Download the texels, tightly packed (`descriptor.nbytes` bytes); needs COPY_SRC."""
        self._host_copy_check(TextureUsage.COPY_SRC, "read")
        with SharedBuffer(self.device, self.descriptor.nbytes) as staging:
            self._copy(staging, upload=False)
            return staging.read()

    def export(self) -> tuple[ApiTextureHandle, int]:
        """A handle and a new fd for the texture's memory. The caller owns the fd: send it
        (`socket.send_fds`) and close it. The texture stays valid and owned here."""
        fd = self._export_fd()
        handle = ApiTextureHandle(
            handle_type=HandleType.OPAQUE_FD,
            allocation_size=self.allocation_size,
            memory_type_index=self.memory_type_index,
            device_uuid=self.device.device_uuid,
            driver_uuid=self.device.driver_uuid,
            descriptor=self.descriptor,
        )
        return handle, fd

    def __repr__(self) -> str:
        d = self.descriptor
        closed = " closed" if self.closed else ""
        return f"<SharedTexture {d.label!r} {d.width}x{d.height} {d.format.value}{closed}>"


def import_texture(
    device: VulkanDevice,
    handle: ApiTextureHandle,
    fd: int,
    *,
    expected: TextureDescriptor | None = None,
) -> SharedTexture:
    """A `SharedTexture` on `device` bound to the memory behind `fd` (exported by
    `SharedTexture.export`, here or in another process).

    The caller keeps owning `fd` (it is duplicated for Vulkan): close it when done.

    Raises:
        HandleError: the handle differs from `expected`, or does not fit this device,
            the fd, or a texture of its descriptor.
        VulkanError: the driver refused the import.
    """
    if not isinstance(handle, ApiTextureHandle):
        raise HandleError(f"expected an ApiTextureHandle, got {type(handle).__name__}")
    if expected is not None and expected != handle.descriptor:
        diffs = [
            f"{name} {getattr(handle.descriptor, name)!r} != expected {getattr(expected, name)!r}"
            for name in ("width", "height", "format", "usage", "label")
            if getattr(handle.descriptor, name) != getattr(expected, name)
        ]
        raise HandleError(f"descriptor: {'; '.join(diffs)}", field="descriptor")
    check_import(device, handle, fd)
    # The constructor owns the duplicate: the driver takes it, or it is closed on failure.
    return SharedTexture(device, handle.descriptor, _import=(handle, os.dup(fd)))
