"""GPU memory shared across processes ("Geyser", issue 5): textures and buffers in
Vulkan external memory, exported as file descriptors.

Layout (each module one concept; import from here):

- ``_descriptor.py`` -- ``TextureFormat`` (the seed's 21), ``TextureUsage``,
  ``TextureDescriptor``; pure, no GPU.
- ``_handle.py``     -- ``HandleType``, ``ApiTextureHandle``, ``BufferHandle``: serializable
  handles without the fd (fds travel by SCM_RIGHTS).
- ``_errors.py``     -- ``DescriptorError``, ``HandleError``, ``VulkanError``.
- ``_vulkan.py``     -- ``VulkanDevice`` (needs the ``vulkan`` extra, imported lazily).
- ``_resources.py``  -- ``SharedBuffer``, ``import_buffer``.
- ``_texture.py``    -- ``SharedTexture``, ``import_texture``.
- ``_share.py``      -- ``ShareManager``: create -> export -> import, as in the seed.

This layer imports nothing from Parallax but ``parallax._errors``.
"""

from ._descriptor import MAX_TEXTURE_DIMENSION as MAX_TEXTURE_DIMENSION
from ._descriptor import TextureDescriptor as TextureDescriptor
from ._descriptor import TextureFormat as TextureFormat
from ._descriptor import TextureUsage as TextureUsage
from ._errors import DescriptorError as DescriptorError
from ._errors import HandleError as HandleError
from ._errors import VulkanError as VulkanError
from ._handle import ApiTextureHandle as ApiTextureHandle
from ._handle import BufferHandle as BufferHandle
from ._handle import HandleType as HandleType
from ._handle import decode_handle as decode_handle
from ._resources import SharedBuffer as SharedBuffer
from ._resources import import_buffer as import_buffer
from ._share import ShareManager as ShareManager
from ._texture import SharedTexture as SharedTexture
from ._texture import import_texture as import_texture
from ._vulkan import VulkanDevice as VulkanDevice

__all__ = [
    "MAX_TEXTURE_DIMENSION",
    "ApiTextureHandle",
    "BufferHandle",
    "DescriptorError",
    "HandleError",
    "HandleType",
    "ShareManager",
    "SharedBuffer",
    "SharedTexture",
    "TextureDescriptor",
    "TextureFormat",
    "TextureUsage",
    "VulkanDevice",
    "VulkanError",
    "decode_handle",
    "import_buffer",
    "import_texture",
]

# Tracebacks and reprs name the public module, not the private one that defines it.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and not isinstance(_obj, int):
        _obj.__module__ = __name__
del _name, _obj
