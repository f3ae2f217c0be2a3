"""GPU memory shared across processes ("Geyser", issue 5): textures and buffers in
Vulkan external memory, exported as file descriptors.

Layout (each module one concept; import from here):

- ``_descriptor.py`` -- ``TextureFormat`` (the seed's 21), ``TextureUsage``,
  ``TextureDescriptor``; pure, no GPU.
- ``_handle.py``     -- ``HandleType``, ``ApiTextureHandle``, ``BufferHandle``: serializable
  handles without the fd (fds travel by SCM_RIGHTS).
- ``_errors.py``     -- ``DescriptorError``, ``HandleError``, ``VulkanError``,
  ``CudaError``, ``CudaMemoryError``.
- ``_vulkan.py``     -- ``VulkanDevice`` (needs the ``vulkan`` extra, imported lazily).
- ``_resources.py``  -- ``SharedBuffer``, ``import_buffer``.
- ``_texture.py``    -- ``SharedTexture``, ``import_texture``.
- ``_share.py``      -- ``ShareManager``: create -> export -> import, as in the seed.
- ``_cuda_driver.py`` -- ``driver()``, ``check()``: the CUDA driver API binding and
  its status checks (needs ``cuda-bindings``, imported lazily).
- ``_cuda_context.py`` -- ``CudaContext`` (a device's primary context), ``CudaStream``.
- ``_cuda_handle.py`` -- ``CudaHandle``, ``HandleKind``: an exported CUDA buffer or
  event, as bytes (magic ``PXCU``).
- ``_cuda_memory.py`` -- ``DeviceMemory``: the base of the device-memory owners.
- ``_cuda_buffer.py`` -- ``CudaBuffer``, ``Sharing``, ``import_cuda_buffer``: device
  memory another process opens (legacy IPC or VMM fds).
- ``_cuda_host.py``  -- ``CudaEvent`` (interprocess), ``PinnedHostBuffer``,
  ``HostRegistration``: host-side CUDA objects.
- ``_cuda_interop.py`` -- ``import_vulkan_buffer``, ``import_vulkan_semaphore``: Vulkan
  memory and semaphores seen by CUDA.
- ``_dlpack.py``     -- DLPack capsules for CUDA memory (kDLCUDA), built with ctypes.
- ``_cuda_owner.py`` -- ``CudaMemory``: the memory owner of a GPU ``Buffer``.
- ``_cuda_pool.py``  -- ``CudaPool``: a bounded pool of device slots with their events.
- ``_cuda_record.py`` -- ``CudaBufferRecord``: a GPU buffer on the shared-memory link,
  as bytes (magic ``PXCB``).
- ``_sync_handle.py`` -- ``SemaphoreHandle``, ``FenceHandle``, ``SyncHandleType``,
  ``decode_sync_handle``: exported sync objects, as bytes (magic ``PXGS``).
- ``_sync_caps.py``  -- which handle types the driver exports and imports.
- ``_sync_object.py`` -- the ownership a semaphore and a fence share.
- ``_semaphore.py``  -- ``SharedSemaphore``, ``import_semaphore``.
- ``_fence.py``      -- ``SharedFence``, ``import_fence``.

This layer imports nothing from Parallax but ``parallax._errors`` and ``parallax._wire``
(the one wire-header helper).
"""

from ._cuda_buffer import CudaBuffer as CudaBuffer
from ._cuda_buffer import Sharing as Sharing
from ._cuda_buffer import import_cuda_buffer as import_cuda_buffer
from ._cuda_context import CudaContext as CudaContext
from ._cuda_context import CudaStream as CudaStream
from ._cuda_handle import CudaHandle as CudaHandle
from ._cuda_handle import HandleKind as HandleKind
from ._cuda_host import CudaEvent as CudaEvent
from ._cuda_host import HostRegistration as HostRegistration
from ._cuda_host import PinnedHostBuffer as PinnedHostBuffer
from ._cuda_interop import ExternalCudaBuffer as ExternalCudaBuffer
from ._cuda_interop import ExternalSemaphore as ExternalSemaphore
from ._cuda_interop import import_vulkan_buffer as import_vulkan_buffer
from ._cuda_interop import import_vulkan_semaphore as import_vulkan_semaphore
from ._cuda_memory import DeviceMemory as DeviceMemory
from ._cuda_owner import CudaMemory as CudaMemory
from ._cuda_pool import CudaPool as CudaPool
from ._cuda_record import CudaBufferRecord as CudaBufferRecord
from ._descriptor import MAX_TEXTURE_DIMENSION as MAX_TEXTURE_DIMENSION
from ._descriptor import TextureDescriptor as TextureDescriptor
from ._descriptor import TextureFormat as TextureFormat
from ._descriptor import TextureUsage as TextureUsage
from ._errors import CudaError as CudaError
from ._errors import CudaMemoryError as CudaMemoryError
from ._errors import DescriptorError as DescriptorError
from ._errors import HandleError as HandleError
from ._errors import VulkanError as VulkanError
from ._fence import SharedFence as SharedFence
from ._fence import import_fence as import_fence
from ._handle import ApiTextureHandle as ApiTextureHandle
from ._handle import BufferHandle as BufferHandle
from ._handle import HandleType as HandleType
from ._handle import decode_handle as decode_handle
from ._resources import SharedBuffer as SharedBuffer
from ._resources import import_buffer as import_buffer
from ._semaphore import SharedSemaphore as SharedSemaphore
from ._semaphore import import_semaphore as import_semaphore
from ._share import ShareManager as ShareManager
from ._sync_handle import FenceHandle as FenceHandle
from ._sync_handle import SemaphoreHandle as SemaphoreHandle
from ._sync_handle import SyncHandleType as SyncHandleType
from ._sync_handle import decode_sync_handle as decode_sync_handle
from ._texture import SharedTexture as SharedTexture
from ._texture import import_texture as import_texture
from ._vulkan import VulkanDevice as VulkanDevice

__all__ = [
    "MAX_TEXTURE_DIMENSION",
    "ApiTextureHandle",
    "BufferHandle",
    "CudaBuffer",
    "CudaBufferRecord",
    "CudaContext",
    "CudaError",
    "CudaEvent",
    "CudaHandle",
    "CudaMemory",
    "CudaMemoryError",
    "CudaPool",
    "CudaStream",
    "DescriptorError",
    "DeviceMemory",
    "ExternalCudaBuffer",
    "ExternalSemaphore",
    "FenceHandle",
    "HandleError",
    "HandleKind",
    "HandleType",
    "HostRegistration",
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
