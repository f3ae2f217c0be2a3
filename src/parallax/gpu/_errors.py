"""The GPU layer's errors, all under `parallax.ParallaxError` (the whole tree is drawn in
`parallax._errors`).

    ParallaxError
    ├── DescriptorError(ValueError)   a texture descriptor is invalid (field, value)
    ├── HandleError(ValueError)       an exported handle is malformed or does not fit (field)
    ├── VulkanError(RuntimeError)     a Vulkan call failed (function, result name)
    ├── CudaError(RuntimeError)       a CUDA driver call failed (function, result name)
    └── CudaMemoryError(BufferError)  host access to memory that lives on a GPU (device)

`PlatformNotSupported`, `MissingExtra`, `ClosedError` and `BrokenError` come from
`parallax._errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parallax._errors import ParallaxError

if TYPE_CHECKING:
    from parallax._wire import HeaderFault


class DescriptorError(ParallaxError, ValueError):
    """A texture descriptor field is out of range or an unsupported combination."""

    def __init__(self, message: str, *, field: str = "", value: object = None) -> None:
        super().__init__(message)
        self.field, self.value = field, value


class HandleError(ParallaxError, ValueError):
    """An exported handle is malformed, or does not match what it is imported as/into."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def header_error(fault: HeaderFault) -> HandleError:
    """The `HandleError` for a handle's header that fails its checks (`parallax._wire`):
    the helper's message, and the field (`magic`, `version` or `length`)."""
    return HandleError(fault.message, field=fault.field)


class VulkanError(ParallaxError, RuntimeError):
    """A Vulkan call failed; `function` names it and `result` the VkResult error class."""

    def __init__(self, message: str, *, function: str = "", result: str = "") -> None:
        super().__init__(message)
        self.function, self.result = function, result


class CudaError(ParallaxError, RuntimeError):
    """A CUDA driver call failed; `function` names it and `result` the CUresult name."""

    def __init__(self, message: str, *, function: str = "", result: str = "") -> None:
        super().__init__(message)
        self.function, self.result = function, result


class CudaMemoryError(ParallaxError, BufferError):
    """Host access (a memoryview, a NumPy array, bytes) to a buffer in GPU memory;
    `device` is the CUDA ordinal it lives on."""

    def __init__(self, message: str, *, device: int = 0) -> None:
        super().__init__(message)
        self.device = device
