"""`ShareManager`: the seed's texture share manager for the Vulkan backend.

Flow (seed 001, "Sharing Workflow"): `create_shared_texture(desc)` -> `export_texture(tex)`
-> (handle bytes and fd to another process) -> `import_shared_texture(handle, fd)`.
"""

from __future__ import annotations

from typing import Self

from ._descriptor import TextureDescriptor
from ._handle import ApiTextureHandle, BufferHandle
from ._resources import SharedBuffer, import_buffer
from ._texture import SharedTexture, import_texture
from ._vulkan import VulkanDevice


class ShareManager:
    """Creates, exports and imports shared textures and buffers on one Vulkan device.

    Args:
        device: a `VulkanDevice` to use (the manager does not own it), or None to open
            device #0 (the manager owns it and closes it in `close()`).

    Use `with`, or `close()`: closing an owned device closes everything made on it.
    """

    def __init__(self, device: VulkanDevice | None = None) -> None:
        self._owns = device is None
        self.device = VulkanDevice() if device is None else device

    def create_shared_texture(self, descriptor: TextureDescriptor) -> SharedTexture:
        """A new exportable texture (owned by the caller; the device closes it last)."""
        return SharedTexture(self.device, descriptor)

    def export_texture(self, texture: SharedTexture) -> tuple[ApiTextureHandle, int]:
        """The texture's handle and a new fd the caller owns (send it, then close it)."""
        return texture.export()

    def import_shared_texture(
        self, handle: ApiTextureHandle, fd: int, *, expected: TextureDescriptor | None = None
    ) -> SharedTexture:
        """A texture bound to another process's memory; the caller keeps owning `fd`."""
        return import_texture(self.device, handle, fd, expected=expected)

    def create_shared_buffer(self, size: int, *, host_visible: bool = True) -> SharedBuffer:
        """A new exportable buffer of `size` bytes."""
        return SharedBuffer(self.device, size, host_visible=host_visible)

    def export_buffer(self, buffer: SharedBuffer) -> tuple[BufferHandle, int]:
        """The buffer's handle and a new fd the caller owns."""
        return buffer.export()

    def import_shared_buffer(self, handle: BufferHandle, fd: int) -> SharedBuffer:
        """A buffer bound to another process's memory; the caller keeps owning `fd`."""
        return import_buffer(self.device, handle, fd)

    def close(self) -> None:
        """Close the device if the manager opened it. Idempotent."""
        if self._owns:
            self.device.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
