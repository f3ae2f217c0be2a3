"""The public surface, pinned: every public package, the exact `__all__` of each, and for
every exported class and function a docstring and a public `__module__` (so tracebacks
read `parallax.memory.SlotPool`, as trio's `test_exports.py` checks).

A change to the API changes a list here, on purpose. Per-package files (tests/caps,
tests/memory) add what only that package promises (method docstrings, its layer).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import parallax


def _names(text: str) -> set[str]:
    return set(text.split())


PINNED: dict[str, set[str]] = {
    "parallax": _names(
        "BrokenError BudgetExceeded Buffer Caps Clock ClosedError FlowError "
        "HugePagesUnavailable LinkError MissingExtra ParallaxError ParseError Pipeline "
        "PlatformNotSupported PoolExhausted PropertyError StaleReference State StateError "
        "__version__ parse_launch sink source transform "
    ),
    "parallax.buffer": _names("Buffer BufferFlags MemoryOwner Metadata "),
    "parallax.caps": _names(
        "Caps FloatRange FractionRange IntRange Structure Value ValueArray ValueList "
    ),
    "parallax.cli": _names("main "),
    "parallax.elements": _names(
        "AppSink AppSrc CapsFilter ConsoleSink CudaDownload CudaMemory CudaMemoryError "
        "CudaUpload FakeSink FakeSrc FdSink FdSrc FileSink FileSrc FillType Identity IpcSink "
        "IpcSrc Leaky ProcQueue Queue SizeType TcpClientSink TcpClientSrc TcpServerSink "
        "TcpServerSrc Tee cuda_memory "
    ),
    "parallax.gpu": _names(
        "ApiTextureHandle BufferHandle CudaBuffer CudaBufferRecord CudaContext CudaError "
        "CudaEvent CudaHandle CudaMemory CudaMemoryError CudaPool CudaStream DescriptorError "
        "DeviceMemory ExternalCudaBuffer ExternalSemaphore FenceHandle HandleError HandleKind "
        "HandleType HostRegistration MAX_TEXTURE_DIMENSION PinnedHostBuffer SemaphoreHandle "
        "ShareManager SharedBuffer SharedFence SharedSemaphore SharedTexture Sharing "
        "SyncHandleType TextureDescriptor TextureFormat TextureUsage VulkanDevice VulkanError "
        "decode_handle decode_sync_handle import_buffer import_cuda_buffer import_fence "
        "import_semaphore import_texture import_vulkan_buffer import_vulkan_semaphore "
    ),
    "parallax.link": _names(
        "CLOSED DEFAULT_MAX_CAPS DEFAULT_MAX_LENGTH DeferredCrc FAST_CRC FLAG_EOS "
        "FrameDecoder FrameEnd FrameError FrameHeader FrameStart HEADER LinkState MAGIC "
        "MAX_CAPS META NEED_DATA PREFIX Loan PayloadData Publisher RayLink Sample Subscriber "
        "VERSION crc32 encode_eos encode_frame encode_head parse_header parse_uids "
    ),
    "parallax.memory": _names(
        "ArenaBlock FileSegment FrameArena HeapSegment HugePageSegment MemfdSegment "
        "MemoryType RegionKind RegionSpec RegionStats Segment Slot SlotPool loan_view "
    ),
    "parallax.pipeline": _names(
        "AsyncSource Boundary BufferAllocator Bus Bytes Chain Clock Element EndOfStream Event "
        "EventType Filter Media Message MessageType MetricsServer Pad PadDirection "
        "PadPresence PadTemplate Pipeline Property REPORT_INTERVAL Report Sink Source Stage "
        "State Tensor Text Timeline Transform UnknownElement Video WebServer parse_launch "
        "registry run_stage sink source transform FLUSH_POLL wait_or_flush "
    ),
}


def _public_packages() -> list[str]:
    """`parallax` and every subpackage whose name does not start with `_`."""
    found = ["parallax"]
    for info in pkgutil.iter_modules(parallax.__path__, "parallax."):
        if info.ispkg and not info.name.rsplit(".", 1)[1].startswith("_"):
            found.append(info.name)
    return found


def _is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split("."))


def test_every_public_package_is_pinned() -> None:
    assert sorted(_public_packages()) == sorted(PINNED), "pin the new package's __all__ here"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    assert set(exported) == PINNED[package], (
        f"{package}.__all__ changed: added {sorted(set(exported) - PINNED[package])}, "
        f"removed {sorted(PINNED[package] - set(exported))}"
    )
    assert module.__doc__, f"{package} has no docstring"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_the_public_namespace_is_all(package: str) -> None:
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    stray = public - set(module.__all__)
    assert not stray, f"{package} has public names outside __all__: {sorted(stray)}"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_exported_names_have_docstrings_and_a_public_module(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, ModuleType):
            assert obj.__doc__, f"{package}.{name} has no docstring"
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and type aliases carry no docstring of their own
        assert inspect.getdoc(obj), f"{package}.{name} has no docstring"
        home = obj.__module__
        assert not _is_private(home), f"{package}.{name} reports the private {home}"
        if home != package:  # a re-export: it must be public where it comes from
            origin = importlib.import_module(home)
            assert name in origin.__all__, f"{package}.{name} comes from {home}, not exported there"


def test_builtin_elements_come_from_entry_points() -> None:
    from parallax.pipeline import registry

    names = set(registry.names())
    assert {
        "filesrc",
        "filesink",
        "fakesrc",
        "fakesink",
        "identity",
        "tee",
        "queue",
        "capsfilter",
        "consolesink",
        "appsrc",
        "appsink",
        "cudaupload",
        "cudadownload",
    } <= names
    assert "raysrc" not in names  # internal to the Ray link: only its actor feeds one
