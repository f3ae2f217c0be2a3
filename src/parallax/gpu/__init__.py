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
- ``_cuda.py``       -- ``CudaContext``, ``CudaBuffer`` (legacy IPC or VMM fd sharing),
  ``CudaHandle``, ``CudaStream``, ``CudaError`` (needs ``cuda-bindings``, imported lazily).
- ``_cuda_host.py``  -- ``CudaEvent`` (interprocess), ``PinnedHostBuffer``.
- ``_cuda_interop.py`` -- ``import_vulkan_buffer``, ``import_vulkan_semaphore``: Vulkan
  memory and semaphores seen by CUDA.
- ``_sync.py``       -- ``SharedSemaphore``, ``SharedFence``, their handles and imports.

This layer imports nothing from Parallax but ``parallax._errors``.
"""

from ._cuda import CudaBuffer as CudaBuffer
from ._cuda import CudaContext as CudaContext
from ._cuda import CudaError as CudaError
from ._cuda import CudaHandle as CudaHandle
from ._cuda import CudaStream as CudaStream
from ._cuda import DeviceMemory as DeviceMemory
from ._cuda import HandleKind as HandleKind
from ._cuda import Sharing as Sharing
from ._cuda import import_cuda_buffer as import_cuda_buffer
from ._cuda_host import CudaEvent as CudaEvent
from ._cuda_host import PinnedHostBuffer as PinnedHostBuffer
from ._cuda_interop import ExternalCudaBuffer as ExternalCudaBuffer
from ._cuda_interop import ExternalSemaphore as ExternalSemaphore
from ._cuda_interop import import_vulkan_buffer as import_vulkan_buffer
from ._cuda_interop import import_vulkan_semaphore as import_vulkan_semaphore
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
from ._sync import FenceHandle as FenceHandle
from ._sync import SemaphoreHandle as SemaphoreHandle
from ._sync import SharedFence as SharedFence
from ._sync import SharedSemaphore as SharedSemaphore
from ._sync import SyncHandleType as SyncHandleType
from ._sync import decode_sync_handle as decode_sync_handle
from ._sync import import_fence as import_fence
from ._sync import import_semaphore as import_semaphore
from ._texture import SharedTexture as SharedTexture
from ._texture import import_texture as import_texture
from ._vulkan import VulkanDevice as VulkanDevice

__all__ = [
    "MAX_TEXTURE_DIMENSION",
    "ApiTextureHandle",
    "BufferHandle",
    "CudaBuffer",
    "CudaContext",
    "CudaError",
    "CudaEvent",
    "CudaHandle",
    "CudaStream",
    "DescriptorError",
    "DeviceMemory",
    "ExternalCudaBuffer",
    "ExternalSemaphore",
    "FenceHandle",
    "HandleError",
    "HandleKind",
    "HandleType",
    "PinnedHostBuffer",
    "SemaphoreHandle",
    "ShareManager",
    "SharedBuffer",
    "SharedFence",
    "SharedSemaphore",
    "SharedTexture",
    "Sharing",
    "SyncHandleType",
    "TextureDescriptor",
    "TextureFormat",
    "TextureUsage",
    "VulkanDevice",
    "VulkanError",
    "decode_handle",
    "decode_sync_handle",
    "import_buffer",
    "import_cuda_buffer",
    "import_fence",
    "import_semaphore",
    "import_texture",
    "import_vulkan_buffer",
    "import_vulkan_semaphore",
]

# Tracebacks and reprs name the public module, not the private one that defines it.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and not isinstance(_obj, int):
        _obj.__module__ = __name__
del _name, _obj
