"""CUDA device memory across processes (legacy IPC and VMM fds), interprocess events,
pinned staging memory, DLPack export to JAX, torch and CuPy, Vulkan -> CUDA import
(memory and a timeline semaphore), and the errors bad input gets.

Needs an NVIDIA GPU, cuda-bindings and CuPy (torch and JAX are used where present); the
Vulkan tests also need the `vulkan` package and the NVIDIA Vulkan driver.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib
import json
import os
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parallax._errors import ClosedError, MissingExtra, PlatformNotSupported
from parallax.gpu import (
    CudaBuffer,
    CudaContext,
    CudaEvent,
    CudaHandle,
    CudaStream,
    HandleError,
    HandleKind,
    PinnedHostBuffer,
    Sharing,
    _dlpack,
    import_vulkan_buffer,
    import_vulkan_semaphore,
)

# JAX would otherwise take 75% of the GPU's memory when it first starts.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

pytestmark = pytest.mark.gpu
CHILD = Path(__file__).with_name("_cuda_child.py")


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.fixture(scope="module")
def ctx() -> Iterator[CudaContext]:
    """One context for the module, warmed up so that the driver's own lazily opened fds
    (device nodes, the IPC and VMM machinery) exist before the leak check's first look."""
    try:
        context = CudaContext(0)
    except MissingExtra as e:
        pytest.skip(f"{e}")
    except PlatformNotSupported as e:
        pytest.skip(f"no CUDA device: {e}")
    cupy = _module("cupy")
    if cupy is None:
        context.close()
        pytest.skip("the CUDA tests read memory with CuPy: pip install cupy-cuda13x")
    with context:
        cupy.zeros(1, dtype=cupy.uint8).get()
        torch = _module("torch")
        if torch is not None and torch.cuda.is_available():
            torch.zeros(1, device="cuda").cpu()
        with (
            CudaBuffer(context, 1 << 20) as a,
            CudaBuffer(context, 1 << 20, sharing=Sharing.FD) as b,
        ):
            a.export()
            handle, fd = b.export()
            assert fd is not None
            try:
                CudaBuffer.import_fd(context, handle, fd).close()
            finally:
                os.close(fd)
        with CudaEvent(context) as ev:
            ev.export()
        with PinnedHostBuffer(context, 4096):
            pass
        yield context


def _pattern(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(256)) * (n // 256) + bytes(n % 256)


def _fill(buf: CudaBuffer, data: bytes) -> None:
    import cupy

    arr = cupy.asarray(buf)
    assert arr.data.ptr == buf.ptr  # a view, not a copy
    arr.set(__import__("numpy").frombuffer(data, dtype="uint8"))
    cupy.cuda.get_current_stream().synchronize()


def _child(message: dict[str, Any], fd: int | None) -> tuple[list[dict[str, Any]], int]:
    """Run the child with one message (and fd); its JSON replies and exit status."""
    parent, child = socket.socketpair()
    with parent, child:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(child.fileno())],
            pass_fds=[child.fileno()],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        child.close()
        try:
            socket.send_fds(parent, [json.dumps(message).encode()], [] if fd is None else [fd])
            got = b""
            while chunk := parent.recv(65536):  # the child's end closes when it exits
                got += chunk
        finally:
            rc = proc.wait(timeout=60)
    replies = [json.loads(line) for line in got.splitlines() if line.startswith(b"{")]
    return replies, rc


@pytest.mark.parametrize("sharing", [Sharing.IPC, Sharing.FD])
def test_cross_process_round_trip(ctx: CudaContext, sharing: Sharing) -> None:
    import cupy

    n = 3 << 20
    data = _pattern(n)
    with CudaBuffer(ctx, n, sharing=sharing) as buf:
        _fill(buf, data)
        handle, fd = buf.export()
        assert (fd is None) == (sharing is Sharing.IPC)
        try:
            replies, rc = _child({"mem": handle.to_bytes().hex()}, fd)
        finally:
            if fd is not None:
                os.close(fd)
        assert rc == 0
        assert replies[0]["ok"], replies
        assert replies[0]["sha256"] == hashlib.sha256(data).hexdigest()
        got = cupy.asarray(buf).get().tobytes()
        assert got == bytes(255 - b for b in data)
        assert buf.read(4, offset=1) == got[1:5]


def test_vmm_import_in_process_is_the_same_memory(ctx: CudaContext) -> None:
    import cupy

    with CudaBuffer(ctx, 5000, sharing=Sharing.FD) as buf:
        assert buf.allocation_size >= 5000 and buf.allocation_size % 4096 == 0
        _fill(buf, _pattern(5000))
        handle, fd = buf.export()
        assert fd is not None
        try:
            other = CudaBuffer.import_fd(ctx, handle, fd)
        finally:
            os.close(fd)
        with other:
            assert other.size == 5000 and other.ptr != buf.ptr
            view = cupy.asarray(other)
            assert view.data.ptr == other.ptr
            assert view.get().tobytes() == _pattern(5000)
            view[:10] = 1
            cupy.cuda.get_current_stream().synchronize()
            del view
        assert buf.read(10) == bytes([1] * 10)


def test_zero_copy_views(ctx: CudaContext) -> None:
    import cupy

    with CudaBuffer(ctx, 4096) as buf:
        iface = buf.__cuda_array_interface__
        assert iface["version"] == 3 and iface["typestr"] == "|u1" and iface["shape"] == (4096,)
        assert iface["data"] == (buf.ptr, False)
        arr = cupy.asarray(buf)
        assert arr.data.ptr == buf.ptr and arr.nbytes == 4096
        del arr
        torch = _module("torch")
        if torch is not None and torch.cuda.is_available():
            t = torch.as_tensor(buf, device="cuda")
            assert t.data_ptr() == buf.ptr and t.numel() == 4096
            t.fill_(9)
            torch.cuda.synchronize()
            del t
            assert buf.read(3) == b"\t\t\t"


def test_event_orders_work_across_processes(ctx: CudaContext) -> None:
    import cupy

    n = 64 << 20
    with CudaBuffer(ctx, n) as buf, CudaStream(ctx) as stream, CudaEvent(ctx) as event:
        arr = cupy.asarray(buf)
        with cupy.cuda.ExternalStream(stream.ptr):
            for value in range(1, 21):  # enough queued work that the child would overtake it
                arr.fill(value)
        del arr
        event.record(stream)
        handle, _ = buf.export()
        replies, rc = _child(
            {"mem": handle.to_bytes().hex(), "event": event.export().to_bytes().hex()}, None
        )
        assert rc == 0 and replies[0]["ok"], replies
        assert replies[0]["first"] == 20
        stream.synchronize()
        assert buf.read(1) == bytes([255 - 20])


def test_event_query_and_synchronize(ctx: CudaContext) -> None:
    with CudaEvent(ctx) as event:
        event.record()
        event.synchronize()
        assert event.query()
    with pytest.raises(ClosedError):
        event.record()


def test_pinned_upload_and_download(ctx: CudaContext) -> None:
    n = 1 << 20
    with PinnedHostBuffer(ctx, n) as pinned, CudaBuffer(ctx, n) as buf, CudaStream(ctx) as stream:
        pinned.array()[:] = 7
        buf.upload(pinned, stream=stream)
        stream.synchronize()
        assert buf.read(4, offset=n - 4) == b"\x07" * 4
        pinned.view[0] = 0  # a temporary view: released at once
        buf.download(pinned)
        assert pinned.array()[0] == 7
        view = pinned.view
        with pytest.raises(BufferError, match="view"):
            pinned.close()
        view.release()
    assert pinned.closed


def test_handle_bytes_round_trip_and_garbage(ctx: CudaContext) -> None:
    with CudaBuffer(ctx, 100) as buf:
        handle, _ = buf.export()
        assert CudaHandle.from_bytes(handle.to_bytes()) == handle
        assert handle.kind is HandleKind.MEMORY_IPC and handle.device_uuid == ctx.uuid
        raw = handle.to_bytes()
        with pytest.raises(HandleError, match="bytes, expected"):
            CudaHandle.from_bytes(raw[:-1])
        with pytest.raises(HandleError, match="magic"):
            CudaHandle.from_bytes(os.urandom(len(raw)))
        with pytest.raises(HandleError, match="size"):
            dataclasses.replace(handle, size=handle.allocation_size + 1)
        with pytest.raises(HandleError, match="another process"):
            CudaBuffer.open_ipc(ctx, handle)
        with pytest.raises(HandleError, match="device_uuid"):
            CudaBuffer.open_ipc(ctx, dataclasses.replace(handle, device_uuid=bytes(16)))


def test_wrong_size_ipc_handle_is_refused_in_the_child(ctx: CudaContext) -> None:
    with CudaBuffer(ctx, 1 << 20) as buf:
        handle, _ = buf.export()
        big = dataclasses.replace(handle, size=1 << 30, allocation_size=1 << 30)
        replies, rc = _child({"mem": big.to_bytes().hex()}, None)
    assert rc == 0
    assert replies[0] == {"ok": False, "error": "HandleError", "message": replies[0]["message"]}
    assert "size" in replies[0]["message"]


def test_garbage_ipc_bytes_are_refused_in_the_child(ctx: CudaContext) -> None:
    with CudaBuffer(ctx, 4096) as buf:
        handle, _ = buf.export()
    garbage = dataclasses.replace(handle, ipc=os.urandom(64))
    replies, rc = _child({"mem": garbage.to_bytes().hex()}, None)
    assert rc == 0
    assert not replies[0]["ok"]
    assert replies[0]["error"] in {"CudaError", "HandleError", "BrokenError"}


def test_wrong_size_fd_handle(ctx: CudaContext) -> None:
    with CudaBuffer(ctx, 4096, sharing=Sharing.FD) as buf:
        handle, fd = buf.export()
        assert fd is not None
        try:
            big = dataclasses.replace(handle, allocation_size=handle.allocation_size * 64)
            with pytest.raises(HandleError, match="allocation_size"):
                CudaBuffer.import_fd(ctx, big, fd)
            with pytest.raises(HandleError, match="fd"):
                CudaBuffer.import_fd(ctx, handle, 10_000)
        finally:
            os.close(fd)


def test_closed_context_and_buffer(ctx: CudaContext) -> None:
    other = CudaContext(0)
    buf = CudaBuffer(other, 4096)
    other.close()
    other.close()  # idempotent
    assert buf.closed
    with pytest.raises(ClosedError):
        _ = buf.ptr
    with pytest.raises(ClosedError):
        CudaBuffer(other, 4096)
    with pytest.raises(ValueError, match="size"):
        CudaBuffer(ctx, 0)


@pytest.fixture(scope="module")
def vulkan_device() -> Iterator[Any]:
    from parallax.gpu import VulkanDevice, VulkanError

    try:
        dev = VulkanDevice()
    except MissingExtra as e:
        pytest.skip(f"{e}")
    except VulkanError as e:
        pytest.skip(f"no Vulkan device with external memory fds: {e}")
    with dev:
        yield dev


@pytest.mark.vulkan
def test_vulkan_buffer_seen_by_cuda(ctx: CudaContext, vulkan_device: Any) -> None:
    import cupy

    from parallax.gpu import SharedBuffer

    if vulkan_device.device_uuid != ctx.uuid:
        pytest.skip(f"the Vulkan device {vulkan_device.name!r} is not this CUDA device (lavapipe?)")
    n = 1 << 20
    data = _pattern(n)
    with SharedBuffer(vulkan_device, n, host_visible=False) as vbuf:
        vbuf.write(data)
        handle, fd = vbuf.export()
        try:
            ext = import_vulkan_buffer(ctx, handle, fd)
        finally:
            os.close(fd)
        with ext:
            arr = cupy.asarray(ext)
            assert arr.data.ptr == ext.ptr
            assert arr.get().tobytes() == data
            arr[:16] = 42
            cupy.cuda.get_current_stream().synchronize()
            del arr
        assert vbuf.read(16) == bytes([42] * 16)
        handle2, fd2 = vbuf.export()
        os.close(fd2)
        with pytest.raises(HandleError, match="fd"):
            import_vulkan_buffer(ctx, handle2, fd2)
        with pytest.raises(HandleError, match="device_uuid"):
            import_vulkan_buffer(ctx, dataclasses.replace(handle2, device_uuid=bytes(16)), 0)


# -- DLPack ------------------------------------------------------------------------------


def _torch() -> Any:
    torch = _module("torch")
    if torch is None or not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA")
    return torch


def _jax() -> Any:
    jax = _module("jax")
    if jax is None:
        pytest.skip("needs jax with its CUDA plugin")
    try:
        jax.devices("gpu")
    except RuntimeError as e:
        pytest.skip(f"jax has no GPU backend: {e}")
    return jax


def _released(ref: weakref.ref[Any], seconds: float = 10.0) -> bool:
    """True once `ref` is dead (a consumer may free its tensor from another thread)."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _dlpack_keeps_the_owner(
    ctx: CudaContext, consume: Callable[[CudaBuffer], tuple[Any, int]], read: Callable[[Any], bytes]
) -> None:
    """`consume(buf)` -> (tensor, its data pointer): the pointer is `buf.ptr`; the buffer
    outlives its last Python name while the tensor lives, and goes once it is freed."""
    n = 1 << 16
    data = _pattern(n)
    buf = CudaBuffer(ctx, n)  # no `with`: only the capsule may keep it alive
    _fill(buf, data)
    assert buf.__dlpack_device__() == (2, ctx.ordinal)
    ptr, ref = buf.ptr, weakref.ref(buf)
    before = _dlpack.live_exports()
    tensor, got = consume(buf)
    assert got == ptr  # zero copy
    del buf
    gc.collect()
    alive = ref()
    assert alive is not None and not alive.closed, "the consumer's tensor lost its memory"
    del alive
    assert read(tensor) == data
    del tensor
    assert _released(ref), "the consumer never called the DLPack deleter"
    assert _dlpack.live_exports() == before


def test_dlpack_to_torch_is_zero_copy_and_keeps_the_buffer(ctx: CudaContext) -> None:
    torch = _torch()

    def consume(buf: CudaBuffer) -> tuple[Any, int]:
        t = torch.from_dlpack(buf)  # torch asks for a versioned capsule (max_version)
        assert t.dtype == torch.uint8 and t.device.type == "cuda" and t.shape == (buf.size,)
        return t, int(t.data_ptr())

    _dlpack_keeps_the_owner(ctx, consume, lambda t: t.cpu().numpy().tobytes())


def test_dlpack_legacy_capsule_to_torch(ctx: CudaContext) -> None:
    _torch()
    from torch.utils.dlpack import from_dlpack

    def consume(buf: CudaBuffer) -> tuple[Any, int]:
        capsule = buf.__dlpack__()  # no max_version: the unversioned "dltensor"
        assert "dltensor" in repr(capsule) and "versioned" not in repr(capsule)
        t = from_dlpack(capsule)
        return t, int(t.data_ptr())

    _dlpack_keeps_the_owner(ctx, consume, lambda t: t.cpu().numpy().tobytes())


def test_dlpack_to_cupy_is_zero_copy_and_keeps_the_buffer(ctx: CudaContext) -> None:
    import cupy

    def consume(buf: CudaBuffer) -> tuple[Any, int]:
        arr = cupy.from_dlpack(buf)
        assert arr.dtype == cupy.uint8 and arr.shape == (buf.size,)
        return arr, int(arr.data.ptr)

    _dlpack_keeps_the_owner(ctx, consume, lambda a: a.get().tobytes())


def test_dlpack_to_jax_is_zero_copy_and_keeps_the_buffer(ctx: CudaContext) -> None:
    jax = _jax()
    import numpy as np

    def consume(buf: CudaBuffer) -> tuple[Any, int]:
        x = jax.dlpack.from_dlpack(buf)  # JAX reads no __cuda_array_interface__
        assert x.dtype == np.uint8 and x.shape == (buf.size,)
        return x, int(x.unsafe_buffer_pointer())

    _dlpack_keeps_the_owner(ctx, consume, lambda x: np.asarray(x).tobytes())


def test_dlpack_arguments_are_checked(ctx: CudaContext) -> None:
    with CudaBuffer(ctx, 4096) as buf:
        before = _dlpack.live_exports()
        for form in (None, 1, 2, -1):  # accepted; each capsule is dropped unconsumed
            buf.__dlpack__(stream=form)
        with CudaStream(ctx) as stream:
            buf.__dlpack__(stream=stream.ptr)
        assert "versioned" in repr(buf.__dlpack__(max_version=(1, 1)))
        assert _dlpack.live_exports() == before  # unconsumed capsules ran their deleter
        with pytest.raises(ValueError, match="stream"):
            buf.__dlpack__(stream=0)
        with pytest.raises(BufferError, match="device"):
            buf.__dlpack__(dl_device=(2, ctx.ordinal + 1))
        with pytest.raises(BufferError, match="copy"):
            buf.__dlpack__(copy=True)
        assert buf.__dlpack__(dl_device=(2, ctx.ordinal), copy=False) is not None
    with pytest.raises(ClosedError):
        buf.__dlpack__()


# -- Vulkan timeline semaphore in CUDA -----------------------------------------------------


@pytest.mark.vulkan
@pytest.mark.parametrize("host_visible", [True, False])
def test_vulkan_timeline_semaphore_signalled_by_cuda(
    ctx: CudaContext, vulkan_device: Any, host_visible: bool
) -> None:
    """CUDA writes into a Vulkan buffer and signals value 1 of a Vulkan timeline
    semaphore on its stream; Vulkan waits for 1 on the host and reads the bytes. Then the
    reverse: CUDA's stream waits for 2, which the Vulkan host signals."""
    import cupy

    from parallax.gpu import SharedBuffer, SharedSemaphore

    if vulkan_device.device_uuid != ctx.uuid:
        pytest.skip(f"the Vulkan device {vulkan_device.name!r} is not this CUDA device")
    if not (vulkan_device.has_external_semaphore_fd and vulkan_device.has_timeline_semaphore):
        pytest.skip("the Vulkan device cannot export timeline semaphores as fds")
    n = 4 << 20
    with (
        SharedBuffer(vulkan_device, n, host_visible=host_visible) as vbuf,
        SharedSemaphore(vulkan_device, timeline=True) as sem,
    ):
        vbuf.write(bytes(n))
        handle, fd = vbuf.export()
        try:
            ext = import_vulkan_buffer(ctx, handle, fd)
        finally:
            os.close(fd)
        sem_handle, sfd = sem.export()
        assert sem_handle.timeline
        try:
            csem = import_vulkan_semaphore(ctx, sfd, timeline=True)
        finally:
            os.close(sfd)
        with ext, csem, CudaStream(ctx) as stream:
            assert csem.timeline and sem.value == 0
            arr = cupy.asarray(ext)
            with cupy.cuda.ExternalStream(stream.ptr):
                for value in range(1, 21):  # enough queued work to be overtaken unordered
                    arr.fill(value)
                arr[:16] = 42
            csem.signal(1, stream)
            assert sem.wait(1, timeout=10), "CUDA never signalled the timeline to 1"
            assert sem.value >= 1
            assert vbuf.read(16) == bytes([42] * 16)
            assert vbuf.read(16, offset=n - 16) == bytes([20] * 16)
            csem.wait(2, stream)  # the stream stalls until Vulkan's host signal
            with cupy.cuda.ExternalStream(stream.ptr):
                arr[:4] = 7
            sem.signal(2)
            stream.synchronize()
            assert vbuf.read(4) == b"\x07" * 4
            del arr
        assert csem.closed
        with pytest.raises(ClosedError):
            csem.signal(3)
