"""`VulkanDevice`: one Vulkan instance, physical device and logical device able to
export and import memory as OPAQUE_FD (`VK_KHR_external_memory_fd`).

Also enabled where the driver has them: `VK_KHR_external_semaphore_fd`,
`VK_KHR_external_fence_fd` and timeline semaphores (core in Vulkan 1.2). lavapipe has
external memory fds and timeline semaphores but no semaphore/fence fds (PLATFORM.md).

The device owns a queue, a command pool, one command buffer and a fence, used for the
synchronous host<->GPU copies of `SharedBuffer.read/write` and `SharedTexture.read/write`.
Resources made on the device (`_resources.py`) are closed before it, by `close()`.

The `vulkan` PyPI binding is cffi and untyped: it is imported lazily through importlib
and used as `Any`. Its quirks (PLATFORM.md): struct constructors drop falsy keyword
arguments (every field we pass as 0 is 0 by zero-initialisation anyway), and a missing
extension function raises `ProcedureNotFoundError` from `vkGetDeviceProcAddr`.
"""

from __future__ import annotations

import errno
import importlib
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, Self

from parallax._errors import ClosedError, MissingExtra

from ._errors import VulkanError

EXTERNAL_MEMORY_FD: Final = "VK_KHR_external_memory_fd"
EXTERNAL_SEMAPHORE_FD: Final = "VK_KHR_external_semaphore_fd"
EXTERNAL_FENCE_FD: Final = "VK_KHR_external_fence_fd"
TIMELINE_SEMAPHORE: Final = "VK_KHR_timeline_semaphore"
_OPTIONAL: Final = (EXTERNAL_SEMAPHORE_FD, EXTERNAL_FENCE_FD)
# A host copy waits at most this long for the GPU (ns): a lost device must not hang us.
_WAIT_NS: Final = 30 * 1_000_000_000


def load_vulkan() -> Any:
    """The `vulkan` binding module; `MissingExtra` with the install line if absent."""
    try:
        return importlib.import_module("vulkan")
    except (ImportError, OSError) as e:  # OSError: the binding is there, libvulkan is not
        raise MissingExtra(
            "Vulkan sharing needs the 'vulkan' package and a Vulkan loader: "
            "pip install 'parallax-dataflow[vulkan]' (and apt-get install libvulkan1 "
            f"mesa-vulkan-drivers for a CPU driver): {e}"
        ) from e


def close_unimported(fd: int) -> None:
    """Close the dup of an fd whose import failed. The spec leaves it ours, but NVIDIA's
    driver closes it itself on some refusals (seen on an H100): EBADF then is not an error."""
    try:
        os.close(fd)
    except OSError as e:
        if e.errno != errno.EBADF:
            raise


def check(vk: Any, function: str, call: Callable[[], Any]) -> Any:
    """Run one Vulkan call; a failing VkResult becomes `VulkanError` naming the call."""
    try:
        return call()
    except vk.VkError as e:
        name = type(e).__name__
        raise VulkanError(f"{function} failed: {name}", function=function, result=name) from e


class _Closable(Protocol):
    def close(self) -> None: ...


class SemaphoreLike(Protocol):
    """What a queue submission needs of a semaphore (`SharedSemaphore` is one)."""

    @property
    def handle(self) -> Any: ...  # the VkSemaphore

    @property
    def timeline(self) -> bool: ...


class FenceLike(Protocol):
    """What a queue submission needs of a fence (`SharedFence` is one)."""

    @property
    def handle(self) -> Any: ...  # the VkFence


# A semaphore and the value to wait for or signal (ignored for a binary semaphore).
SyncPoint = tuple[SemaphoreLike, int]


class VulkanDevice:
    """A Vulkan device that can share memory with other processes by file descriptor.

    Args:
        index: which of the devices that support `VK_KHR_external_memory_fd` to use
            (in `vkEnumeratePhysicalDevices` order).

    Raises:
        MissingExtra: the `vulkan` package or the Vulkan loader is missing.
        VulkanError: no such device, or a Vulkan call failed.

    Owns every Vulkan object it creates: `close()` it (idempotent), or use `with`.
    Closing the device first closes the buffers, textures, semaphores and fences made
    on it. Not thread-safe: use one device per thread, or lock around it.
    """

    def __init__(self, index: int = 0) -> None:
        vk = self._vk = load_vulkan()
        self._children: weakref.WeakSet[_Closable] = weakref.WeakSet()
        self._instance: Any = None
        self._device: Any = None
        self._pool: Any = None
        self._fence: Any = None
        try:
            self._open(vk, index)
        except BaseException:
            self.close()  # a failed constructor leaks nothing
            raise

    def _open(self, vk: Any, index: int) -> None:
        app = vk.VkApplicationInfo(
            pApplicationName="parallax",
            pEngineName="parallax",
            apiVersion=vk.VK_MAKE_VERSION(1, 2, 0),  # the binding lacks VK_API_VERSION_1_2
        )
        info = vk.VkInstanceCreateInfo(pApplicationInfo=app)
        self._instance = check(vk, "vkCreateInstance", lambda: vk.vkCreateInstance(info, None))
        self._finalizer = weakref.finalize(self, _destroy, vk, [self._instance], [None])
        candidates = []
        for pd in check(
            vk, "vkEnumeratePhysicalDevices", lambda: vk.vkEnumeratePhysicalDevices(self._instance)
        ):
            props = vk.vkEnumerateDeviceExtensionProperties(pd, None)
            names = frozenset(p.extensionName for p in props)
            api = vk.vkGetPhysicalDeviceProperties(pd).apiVersion
            if EXTERNAL_MEMORY_FD in names and api >= vk.VK_MAKE_VERSION(1, 1, 0):
                candidates.append((pd, names))
        if not 0 <= index < len(candidates):
            raise VulkanError(
                f"no Vulkan device #{index} with {EXTERNAL_MEMORY_FD} and Vulkan >= 1.1 "
                f"({len(candidates)} found)",
                function="vkEnumeratePhysicalDevices",
            )
        self._physical, self.available_extensions = candidates[index]
        ids = vk.VkPhysicalDeviceIDProperties()
        props2 = vk.vkGetPhysicalDeviceProperties2(
            self._physical, vk.VkPhysicalDeviceProperties2(pNext=ids)
        )
        self.name: str = vk.ffi.string(props2.properties.deviceName).decode()
        self.api_version: int = props2.properties.apiVersion
        self.max_dimension_2d: int = props2.properties.limits.maxImageDimension2D
        self.device_uuid: bytes = bytes(vk.ffi.buffer(ids.deviceUUID))
        self.driver_uuid: bytes = bytes(vk.ffi.buffer(ids.driverUUID))
        self.memory_properties: Any = vk.vkGetPhysicalDeviceMemoryProperties(self._physical)

        families = vk.vkGetPhysicalDeviceQueueFamilyProperties(self._physical)
        wanted = vk.VK_QUEUE_GRAPHICS_BIT | vk.VK_QUEUE_COMPUTE_BIT | vk.VK_QUEUE_TRANSFER_BIT
        self.queue_family = next(
            (i for i, f in enumerate(families) if f.queueFlags & wanted and f.queueCount), -1
        )
        if self.queue_family < 0:
            raise VulkanError(f"{self.name}: no queue family can transfer")

        timeline = vk.VkPhysicalDeviceTimelineSemaphoreFeatures()
        vk.vkGetPhysicalDeviceFeatures2(
            self._physical, vk.VkPhysicalDeviceFeatures2(pNext=timeline)
        )
        self.has_timeline_semaphore: bool = bool(timeline.timelineSemaphore) and (
            self.api_version >= vk.VK_MAKE_VERSION(1, 2, 0)
            or TIMELINE_SEMAPHORE in self.available_extensions
        )
        enabled = [EXTERNAL_MEMORY_FD, *(e for e in _OPTIONAL if e in self.available_extensions)]
        if self.has_timeline_semaphore and self.api_version < vk.VK_MAKE_VERSION(1, 2, 0):
            enabled.append(TIMELINE_SEMAPHORE)
        self.enabled_extensions: frozenset[str] = frozenset(enabled)
        queue_info = vk.VkDeviceQueueCreateInfo(
            queueFamilyIndex=self.queue_family, queueCount=1, pQueuePriorities=[1.0]
        )
        features = vk.VkPhysicalDeviceTimelineSemaphoreFeatures(
            timelineSemaphore=vk.VK_TRUE if self.has_timeline_semaphore else vk.VK_FALSE
        )
        device_info = vk.VkDeviceCreateInfo(
            pNext=features,
            queueCreateInfoCount=1,
            pQueueCreateInfos=[queue_info],
            enabledExtensionCount=len(enabled),
            ppEnabledExtensionNames=enabled,
        )
        self._device = check(
            vk, "vkCreateDevice", lambda: vk.vkCreateDevice(self._physical, device_info, None)
        )
        # Re-arm the net: destroy the device objects, then the device, then the instance.
        self._finalizer.detach()
        owned: list[Any] = [self._instance, self._device, None, None]
        self._owned = owned
        self._finalizer = weakref.finalize(self, _destroy, vk, owned, [None])
        self.queue: Any = vk.vkGetDeviceQueue(self._device, self.queue_family, 0)
        pool_info = vk.VkCommandPoolCreateInfo(
            flags=vk.VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
            queueFamilyIndex=self.queue_family,
        )
        self._pool = owned[2] = check(
            vk, "vkCreateCommandPool", lambda: vk.vkCreateCommandPool(self._device, pool_info, None)
        )
        alloc = vk.VkCommandBufferAllocateInfo(
            commandPool=self._pool, level=vk.VK_COMMAND_BUFFER_LEVEL_PRIMARY, commandBufferCount=1
        )
        self._cmd = check(
            vk,
            "vkAllocateCommandBuffers",
            lambda: vk.vkAllocateCommandBuffers(self._device, alloc)[0],
        )
        self._fence = owned[3] = check(
            vk,
            "vkCreateFence",
            lambda: vk.vkCreateFence(self._device, vk.VkFenceCreateInfo(), None),
        )
        self.get_proc: Callable[[str], Any] = self._proc
        self.get_memory_fd = self._proc("vkGetMemoryFdKHR")

    def _proc(self, name: str) -> Any:
        vk = self._vk
        try:
            return vk.vkGetDeviceProcAddr(self._device, name)
        except vk.ProcedureNotFoundError as e:
            raise VulkanError(f"{self.name}: {name} is not available", function=name) from e

    # -- what the device offers ------------------------------------------------------

    @property
    def has_external_semaphore_fd(self) -> bool:
        """True if semaphores can be exported/imported as fds on this device."""
        return EXTERNAL_SEMAPHORE_FD in self.enabled_extensions

    @property
    def has_external_fence_fd(self) -> bool:
        """True if fences can be exported/imported as fds on this device."""
        return EXTERNAL_FENCE_FD in self.enabled_extensions

    def require_extension(self, extension: str, what: str) -> None:
        """`VulkanError` naming `extension` unless it is enabled on this device."""
        if extension not in self.enabled_extensions:
            raise VulkanError(
                f"{what} needs {extension}, which {self.name!r} does not have "
                f"(enabled: {', '.join(sorted(self.enabled_extensions))})",
                function=extension,
                result="VK_ERROR_EXTENSION_NOT_PRESENT",
            )

    def require_timeline(self, what: str) -> None:
        """`VulkanError` naming `VK_KHR_timeline_semaphore` unless the device has it."""
        if not self.has_timeline_semaphore:
            raise VulkanError(
                f"{what} needs timeline semaphores ({TIMELINE_SEMAPHORE} or Vulkan 1.2), "
                f"which {self.name!r} does not have",
                function=TIMELINE_SEMAPHORE,
                result="VK_ERROR_FEATURE_NOT_PRESENT",
            )

    def timeline_function(self, name: str) -> Any:
        """A timeline-semaphore function (`vkSignalSemaphore`, `vkWaitSemaphores`,
        `vkGetSemaphoreCounterValue`): core from Vulkan 1.2, else its KHR alias."""
        if self.api_version >= self._vk.VK_MAKE_VERSION(1, 2, 0):
            return getattr(self._vk, name)
        return self._proc(name + "KHR")

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return not self._finalizer.alive

    @property
    def vk(self) -> Any:
        """The `vulkan` binding module."""
        return self._vk

    @property
    def handle(self) -> Any:
        """The VkDevice; `ClosedError` once closed."""
        if self.closed or self._device is None:
            raise ClosedError(f"Vulkan device {self.name!r} is closed")
        return self._device

    @property
    def physical(self) -> Any:
        """The VkPhysicalDevice."""
        return self._physical

    def adopt(self, child: _Closable) -> None:
        """Record a resource made on this device, so `close()` closes it first."""
        self._children.add(child)

    def memory_type(self, type_bits: int, required: int) -> int:
        """The first memory type allowed by `type_bits` with all `required` property
        flags; `VulkanError` if there is none."""
        props = self.memory_properties
        for i in range(props.memoryTypeCount):
            flags = props.memoryTypes[i].propertyFlags
            if type_bits >> i & 1 and flags & required == required:
                return i
        raise VulkanError(
            f"{self.name}: no memory type with property flags {required:#x} among "
            f"types {type_bits:#b}",
            function="vkAllocateMemory",
        )

    def memory_flags(self, index: int) -> int:
        """The property flags of memory type `index`."""
        return int(self.memory_properties.memoryTypes[index].propertyFlags)

    def _submit_info(
        self, commands: list[Any], wait: Sequence[SyncPoint], signal: Sequence[SyncPoint]
    ) -> Any:
        vk = self._vk
        chain = None
        if any(s.timeline for s, _ in (*wait, *signal)):
            # One value per semaphore, binary ones included (their value is ignored).
            chain = vk.VkTimelineSemaphoreSubmitInfo(
                waitSemaphoreValueCount=len(wait),
                pWaitSemaphoreValues=[v for _, v in wait] or None,
                signalSemaphoreValueCount=len(signal),
                pSignalSemaphoreValues=[v for _, v in signal] or None,
            )
            chain.waitSemaphoreValueCount = len(wait)  # falsy kwargs are dropped: set them
            chain.signalSemaphoreValueCount = len(signal)
        info = vk.VkSubmitInfo(
            pNext=chain,
            waitSemaphoreCount=len(wait),
            pWaitSemaphores=[s.handle for s, _ in wait] or None,
            pWaitDstStageMask=[vk.VK_PIPELINE_STAGE_ALL_COMMANDS_BIT] * len(wait) or None,
            commandBufferCount=len(commands),
            pCommandBuffers=commands or None,
            signalSemaphoreCount=len(signal),
            pSignalSemaphores=[s.handle for s, _ in signal] or None,
        )
        info.waitSemaphoreCount = len(wait)
        info.commandBufferCount = len(commands)
        info.signalSemaphoreCount = len(signal)
        return info

    def queue_submit(
        self,
        *,
        wait: Sequence[SyncPoint] = (),
        signal: Sequence[SyncPoint] = (),
        fence: FenceLike | None = None,
    ) -> None:
        """Submit a batch without commands to the device's queue and return at once:
        it waits for the `wait` semaphores (each `(semaphore, value)`; the value counts
        for timeline semaphores only), then signals `signal` and `fence`. Later
        submissions to the queue are ordered after it."""
        vk = self._vk
        self.handle  # noqa: B018 -- ClosedError once closed
        info = self._submit_info([], wait, signal)
        vk_fence = None if fence is None else fence.handle
        check(vk, "vkQueueSubmit", lambda: vk.vkQueueSubmit(self.queue, 1, [info], vk_fence))

    def submit(
        self,
        record: Callable[[Any], None],
        *,
        wait: Sequence[SyncPoint] = (),
        signal: Sequence[SyncPoint] = (),
    ) -> None:
        """Record commands with `record(command_buffer)`, submit them, and wait.

        The commands run after the `wait` semaphores are signalled (each `(semaphore,
        value)`), and the `signal` semaphores are signalled when they are done."""
        vk, dev, cmd = self._vk, self.handle, self._cmd
        check(vk, "vkResetCommandBuffer", lambda: vk.vkResetCommandBuffer(cmd, 0))
        begin = vk.VkCommandBufferBeginInfo(flags=vk.VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT)
        check(vk, "vkBeginCommandBuffer", lambda: vk.vkBeginCommandBuffer(cmd, begin))
        record(cmd)
        check(vk, "vkEndCommandBuffer", lambda: vk.vkEndCommandBuffer(cmd))
        info = self._submit_info([cmd], wait, signal)
        check(vk, "vkQueueSubmit", lambda: vk.vkQueueSubmit(self.queue, 1, [info], self._fence))
        try:
            check(
                vk,
                "vkWaitForFences",
                lambda: vk.vkWaitForFences(dev, 1, [self._fence], vk.VK_TRUE, _WAIT_NS),
            )
        finally:
            check(vk, "vkResetFences", lambda: vk.vkResetFences(dev, 1, [self._fence]))

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Close every resource made on the device, then destroy the device and the
        instance. Idempotent."""
        for child in list(self._children):
            child.close()
        self._children.clear()
        if self._device is not None:
            self._vk.vkDeviceWaitIdle(self._device)
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        self._device = self._pool = self._fence = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<VulkanDevice {getattr(self, 'name', '?')!r} {state}>"


def _destroy(vk: Any, owned: list[Any], _unused: list[Any]) -> None:
    # owned = [instance, device, command pool, fence]; destroy in reverse order of creation.
    instance, device, pool, fence = [*owned, None, None, None][:4]
    if device is not None:
        if fence is not None:
            vk.vkDestroyFence(device, fence, None)
        if pool is not None:
            vk.vkDestroyCommandPool(device, pool, None)  # frees its command buffer
        vk.vkDestroyDevice(device, None)
    if instance is not None:
        vk.vkDestroyInstance(instance, None)
