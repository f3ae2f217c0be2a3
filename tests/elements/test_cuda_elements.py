"""cudaupload / cudadownload and GPU-resident buffers (`CudaMemory` owners).

The first tests run anywhere: they put a fake device allocation under a Buffer to check
the host-access error, the `__cuda_array_interface__` window and the caps rewrite. The
`gpu` tests need an NVIDIA GPU, cuda-bindings and CuPy (torch where present).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import time
import weakref
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import parallax
from parallax._errors import MissingExtra, PlatformNotSupported
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.elements import CudaMemory, CudaMemoryError, cuda_memory
from parallax.elements._app import AppSink, AppSrc
from parallax.elements._cuda import CudaDownload, CudaUpload
from parallax.elements._cuda_caps import cuda_caps, host_caps, is_cuda_caps
from parallax.elements._cuda_staging import Copier
from parallax.elements._tee import Tee
from parallax.gpu import _dlpack
from parallax.pipeline import MessageType, registry

for _cls in (AppSrc, AppSink, Tee, CudaUpload, CudaDownload):
    registry.register(_cls)

ERROR = r"buffer lives on cuda:0; use cudadownload or cupy\.asarray\(buf\)"


def _fake_memory(size: int, ptr: int = 0x7F0000000000) -> Any:
    """What CudaMemory reads from a DeviceMemory: ptr, size, context.ordinal."""
    return SimpleNamespace(ptr=ptr, size=size, context=SimpleNamespace(ordinal=0))


def test_host_access_to_gpu_memory_raises_a_precise_error() -> None:
    buf = Buffer(CudaMemory(_fake_memory(64)), caps=Caps.from_string("video/raw,memory=cuda"))
    assert buf.size == 64
    with pytest.raises(CudaMemoryError, match=ERROR):
        np.asarray(buf)
    with pytest.raises(CudaMemoryError, match=ERROR):
        _ = buf.view
    with pytest.raises(CudaMemoryError, match=ERROR):
        bytes(buf)
    with pytest.raises(CudaMemoryError, match=ERROR):
        buf.copy()
    assert isinstance(CudaMemoryError("x"), BufferError)


def test_cuda_array_interface_follows_the_buffer_window() -> None:
    ptr = 0x7F0000001000
    buf = Buffer(CudaMemory(_fake_memory(100, ptr), size=80))
    cai = buf.__cuda_array_interface__
    assert cai["data"] == (ptr, False) and cai["shape"] == (80,) and cai["version"] == 3
    sub = buf.sub(16, 32)
    sub.make_readonly()
    cai = sub.__cuda_array_interface__
    # torch refuses read-only CAI: reported writable even on a pushed buffer.
    assert cai["data"] == (ptr + 16, False) and cai["shape"] == (32,)
    assert cuda_memory(sub) is cuda_memory(buf)


def test_host_buffers_have_no_cuda_array_interface() -> None:
    buf = Buffer(b"abc")
    assert not hasattr(buf, "__cuda_array_interface__")
    assert cuda_memory(buf) is None


# -- DLPack capsules (no GPU: a fake pointer, or host memory read back by NumPy) -------


def _capsule_pointer(capsule: Any, name: bytes) -> int:
    api = ctypes.pythonapi
    api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_IsValid.restype = ctypes.c_int
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    assert api.PyCapsule_IsValid(capsule, name), f"not a {name!r} capsule: {capsule!r}"
    return int(api.PyCapsule_GetPointer(capsule, name))


def test_dlpack_structures_have_the_dlpack_h_layout() -> None:
    assert ctypes.sizeof(_dlpack.DLTensor) == 48
    assert ctypes.sizeof(_dlpack.DLManagedTensor) == 64
    assert _dlpack.DLManagedTensor.deleter.offset == 56
    assert ctypes.sizeof(_dlpack.DLManagedTensorVersioned) == 80
    assert _dlpack.DLManagedTensorVersioned.flags.offset == 24
    assert _dlpack.DLManagedTensorVersioned.dl_tensor.offset == 32


def test_gpu_buffer_dlpack_capsule_with_a_fake_pointer() -> None:
    ptr = 0x7F0000001000
    buf = Buffer(CudaMemory(_fake_memory(100, ptr), size=80)).sub(16, 32)
    assert buf.__dlpack_device__() == (2, 0)
    before = _dlpack.live_exports()
    capsule = buf.__dlpack__(stream=-1)
    assert "dltensor" in repr(capsule) and "versioned" not in repr(capsule)
    managed = _dlpack.DLManagedTensor.from_address(_capsule_pointer(capsule, b"dltensor"))
    tensor = managed.dl_tensor
    assert tensor.data == ptr + 16 and tensor.byte_offset == 0
    assert (tensor.device.device_type, tensor.device.device_id) == (2, 0)
    assert (tensor.dtype.code, tensor.dtype.bits, tensor.dtype.lanes) == (1, 8, 1)
    assert tensor.ndim == 1 and tensor.shape[0] == 32 and not tensor.strides
    assert managed.deleter
    assert _dlpack.live_exports() == before + 1
    del tensor, managed, capsule  # dropped unconsumed: the destructor runs the deleter
    assert _dlpack.live_exports() == before
    versioned = buf.__dlpack__(max_version=(1, 0), stream=-1)
    managed_v = _dlpack.DLManagedTensorVersioned.from_address(
        _capsule_pointer(versioned, b"dltensor_versioned")
    )
    assert (managed_v.version.major, managed_v.version.minor) == (1, 0)
    assert managed_v.flags == 0 and managed_v.dl_tensor.data == ptr + 16
    del managed_v, versioned
    assert _dlpack.live_exports() == before
    with pytest.raises(BufferError, match="device"):
        buf.__dlpack__(dl_device=(1, 0))
    with pytest.raises(BufferError, match="copy"):
        buf.__dlpack__(copy=True)
    with pytest.raises(ValueError, match="stream"):
        buf.__dlpack__(stream=0)
    with pytest.raises(ValueError, match="outside"):
        CudaMemory(_fake_memory(8)).dlpack_window(4, 8)


def test_a_consumed_capsule_is_released_by_the_consumers_deleter_call() -> None:
    class Owner:
        pass

    owner = Owner()
    ref = weakref.ref(owner)
    capsule = _dlpack.to_capsule(0x1000, 8, (2, 0), owner)
    del owner
    address = _capsule_pointer(capsule, b"dltensor")
    # What a consumer does: rename the capsule, keep the tensor, call the deleter later.
    ctypes.pythonapi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert ctypes.pythonapi.PyCapsule_SetName(capsule, b"used_dltensor") == 0
    del capsule  # renamed: its destructor leaves the tensor alone
    assert ref() is not None
    managed = _dlpack.DLManagedTensor.from_address(address)
    deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(managed.deleter)
    del managed
    deleter(address)
    assert ref() is None


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_dlpack_capsules_are_read_by_numpy(max_version: tuple[int, int] | None) -> None:
    host = np.arange(64, dtype=np.uint8)

    class Exporter:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

        def __dlpack__(self, **kwargs: Any) -> Any:
            versioned = _dlpack.wants_versioned(max_version)
            return _dlpack.to_capsule(
                host.ctypes.data, host.nbytes, (1, 0), self, versioned=versioned
            )

    exporter = Exporter()
    ref = weakref.ref(exporter)
    arr = np.from_dlpack(exporter)
    del exporter
    assert arr.ctypes.data == host.ctypes.data and arr.dtype == np.uint8
    assert arr.tolist() == list(range(64))
    assert ref() is not None  # the consumer holds the owner
    del arr
    gc.collect()
    assert ref() is None


def test_read_only_exports_need_a_versioned_capsule() -> None:
    host = np.zeros(8, dtype=np.uint8)
    with pytest.raises(BufferError, match="read-only"):
        _dlpack.to_capsule(host.ctypes.data, 8, (1, 0), None, readonly=True)
    capsule = _dlpack.to_capsule(host.ctypes.data, 8, (1, 0), None, versioned=True, readonly=True)
    address = _capsule_pointer(capsule, b"dltensor_versioned")
    assert _dlpack.DLManagedTensorVersioned.from_address(address).flags == 1


def test_staging_copier_splits_large_copies_exactly() -> None:
    copier = Copier(4)
    try:
        for n in (0, 10, (1 << 20) - 1, 1 << 20, (3 << 20) + 5, (8 << 20) + 12345):
            src = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
            dst = np.zeros(n + 64, dtype=np.uint8)
            copier.memmove(dst.ctypes.data, src.ctypes.data, n)
            assert dst[:n].tobytes() == src.tobytes() and not dst[n:].any()
    finally:
        copier.close()


def test_caps_gain_and_lose_the_memory_field() -> None:
    caps = Caps.from_string("video/raw,width=4,height=2")
    gpu = cuda_caps(caps)
    assert gpu == Caps.from_string("video/raw,width=4,height=2,memory=cuda")
    assert is_cuda_caps(gpu) and not is_cuda_caps(caps) and not is_cuda_caps(None)
    assert host_caps(gpu) == caps
    assert cuda_caps(None) == Caps.from_string("bytes,memory=cuda")
    assert host_caps(None) is None


def test_elements_are_registered_with_their_properties() -> None:
    up = registry.get("cudaupload")
    assert up is CudaUpload
    names = [p.name for p in up.properties()]
    assert {"device", "pool-slots", "staging-slots", "sync", "copy-threads"} <= set(names)
    assert registry.get("cudadownload") is CudaDownload


# -- on a GPU ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cupy() -> Iterator[Any]:
    """CuPy, with CUDA warmed up for the module (a context held throughout, CuPy, torch,
    device, pinned and IPC memory used once) so that the driver's lazily opened fds exist
    before the leak check's first look; skips without a GPU."""
    try:
        from parallax.gpu import CudaBuffer, CudaContext, CudaEvent, CudaStream, PinnedHostBuffer

        ctx = CudaContext(0)
    except (MissingExtra, PlatformNotSupported) as e:
        pytest.skip(f"needs an NVIDIA GPU with cuda-bindings: {e}")
    try:
        module = importlib.import_module("cupy")
    except ImportError as e:
        ctx.close()
        pytest.skip(f"the GPU tests read memory with CuPy: {e}")
    with ctx:
        module.zeros(1, dtype=module.uint8).get()
        try:
            torch = importlib.import_module("torch")
            torch.zeros(1, device="cuda").cpu()
        except ImportError:
            pass
        with (
            CudaBuffer(ctx, 1 << 20) as mem,
            CudaEvent(ctx) as event,
            CudaStream(ctx) as stream,
            PinnedHostBuffer(ctx, 1 << 16) as pinned,
        ):
            mem.export()
            event.export()
            mem.upload(pinned, stream=stream)
            event.record(stream)
            event.synchronize()
        yield module


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    sizes = [1000, 1000, 4096, 10, 0, 70_000, 333]
    return [rng.integers(0, 256, sizes[i % len(sizes)], dtype=np.uint8).tobytes() for i in range(n)]


def _run(launch: str, frames: list[bytes], caps: str | None = None) -> parallax.Pipeline:
    p = parallax.parse_launch(launch)
    src = p.get_by_name("src")
    if caps is not None:
        src.set_property("caps", caps)
    for i, frame in enumerate(frames):
        src.push_buffer(Buffer(frame, sequence=i, pts=i * 1000))  # type: ignore[attr-defined]
    src.end_of_stream()  # type: ignore[attr-defined]
    p.play()
    message = p.wait(30)
    assert message is not None, "no EOS within 30 s"
    assert message.type is MessageType.EOS, message.data
    return p


def _drain(p: parallax.Pipeline, name: str) -> list[Buffer]:
    sink = p.get_by_name(name)
    assert isinstance(sink, AppSink)
    out = []
    while (buf := sink.pull(timeout=1)) is not None:
        out.append(buf)
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("sync", [True, False])
def test_upload_download_round_trip(cupy: Any, sync: bool) -> None:
    frames = _frames(21)
    p = _run(
        f"appsrc name=src max-buffers=0 ! cudaupload pool-slots=4 sync={str(sync).lower()} "
        "! cudadownload ! appsink name=out max-buffers=0",
        frames,
        caps="video/raw,width=4",
    )
    try:
        got = _drain(p, "out")
        assert [bytes(b.view) for b in got] == frames
        assert [b.sequence for b in got] == list(range(21))
        assert [b.pts for b in got] == [i * 1000 for i in range(21)]
        assert got[0].caps == Caps.from_string("video/raw,width=4")
        assert all(cuda_memory(b) is None for b in got)
    finally:
        p.stop()


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [1, 3])
def test_large_buffers_round_trip_through_threaded_staging_copies(cupy: Any, threads: int) -> None:
    rng = np.random.default_rng(threads)
    sizes = [(8 << 20) + 12345, 3 << 20, (1 << 20) - 1, 5]
    frames = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    p = _run(
        f"appsrc name=src max-buffers=0 ! cudaupload copy-threads={threads} sync=false "
        f"! cudadownload copy-threads={threads} ! appsink name=out max-buffers=0",
        frames,
    )
    try:
        got = _drain(p, "out")
        assert [zlib.crc32(b.view) for b in got] == [zlib.crc32(f) for f in frames]
    finally:
        p.stop()


@pytest.mark.gpu
def test_gpu_buffers_carry_caps_and_refuse_host_views(cupy: Any) -> None:
    frames = _frames(3)
    p = _run(
        "appsrc name=src max-buffers=0 ! cudaupload ! appsink name=out max-buffers=0",
        frames,
        caps="video/raw,width=4",
    )
    try:
        got = _drain(p, "out")
        assert len(got) == 3
        for buf, frame in zip(got, frames, strict=True):
            assert buf.caps == Caps.from_string("video/raw,width=4,memory=cuda")
            assert cuda_memory(buf) is not None
            with pytest.raises(CudaMemoryError, match=ERROR):
                np.asarray(buf)
            assert cupy.asarray(buf).get().tobytes() == frame
    finally:
        p.stop()


@pytest.mark.gpu
def test_tee_passes_the_same_device_pointer_to_both_branches(cupy: Any) -> None:
    frames = _frames(5)
    p = _run(
        "appsrc name=src max-buffers=0 ! cudaupload ! tee name=t "
        "t. ! appsink name=a max-buffers=0  t. ! appsink name=b max-buffers=0",
        frames,
    )
    try:
        a, b = _drain(p, "a"), _drain(p, "b")
        assert len(a) == len(b) == 5
        for x, y, frame in zip(a, b, frames, strict=True):
            assert x is y  # the same Buffer object: nothing copied
            px = x.__cuda_array_interface__["data"][0]
            assert px == y.__cuda_array_interface__["data"][0]
            assert cupy.asarray(y).get().tobytes() == frame
    finally:
        p.stop()


@pytest.mark.gpu
def test_cupy_and_torch_views_are_zero_copy(cupy: Any) -> None:
    frames = [bytes(range(256)) * 16]
    p = _run("appsrc name=src max-buffers=0 ! cudaupload ! appsink name=out max-buffers=0", frames)
    try:
        (buf,) = _drain(p, "out")
        ptr = buf.__cuda_array_interface__["data"][0]
        owner = cuda_memory(buf)
        assert owner is not None and ptr == owner.ptr == owner.memory.ptr
        arr = cupy.asarray(buf)
        assert arr.data.ptr == ptr and arr.nbytes == len(frames[0])
        sub = buf.sub(256, 512)
        assert cupy.asarray(sub).data.ptr == ptr + 256
        assert cupy.asarray(sub).get().tobytes() == frames[0][256:768]
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            return
        t = torch.as_tensor(buf, device="cuda")
        assert t.data_ptr() == ptr and t.dtype == torch.uint8
        assert int(t.to(torch.int64).sum()) == sum(frames[0])
        t[0] = 99  # a view: the write shows through CuPy
        cupy.cuda.runtime.deviceSynchronize()
        assert int(arr[0]) == 99
    finally:
        p.stop()


@pytest.mark.gpu
def test_device_slots_are_reused_once_released(cupy: Any) -> None:
    frames = _frames(40)
    p = _run(
        "appsrc name=src max-buffers=0 ! cudaupload pool-slots=2 ! cudadownload "
        "! appsink name=out max-buffers=0",
        frames,
    )
    try:
        got = _drain(p, "out")
        crc = [zlib.crc32(b.view) for b in got]
        assert crc == [zlib.crc32(f) for f in frames]
    finally:
        p.stop()


# -- GPU buffers across processes: CUDA IPC handles over the shared-memory link --------------


def test_a_truncated_gpu_record_is_a_precise_error() -> None:
    from parallax._errors import FlowError
    from parallax.elements._ipc_cuda import GpuOpener
    from parallax.gpu._cuda_record import MAGIC

    slot = Buffer(MAGIC + b"\x00" * 8, caps=cuda_caps(None))
    opener = GpuOpener("src0")
    assert opener.wants(slot)
    assert not opener.wants(Buffer(MAGIC + b"rest", caps=Caps.bytes()))  # host caps
    assert not opener.wants(Buffer(b"not a record", caps=cuda_caps(None)))
    assert not opener.wants(Buffer(b"PXCU" + bytes(104), caps=cuda_caps(None)))  # a bare handle
    with pytest.raises(FlowError, match="src0: bad GPU record: a GPU buffer record: 12 bytes"):
        opener.open(slot)
    with pytest.raises(FlowError, match=r"src0: bad GPU record: magic: expected b'PXCB'"):
        opener.open(Buffer(b"PXCU" + bytes(104), caps=cuda_caps(None)))


@pytest.mark.gpu
def test_procqueue_carries_gpu_buffers_as_ipc_handles(cupy: Any, tmp_path: Any) -> None:
    from parallax.elements import FileSink, FileSrc, ProcQueue

    for cls in (FileSrc, FileSink, ProcQueue):
        registry.register(cls)
    data = np.random.default_rng(9).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    (tmp_path / "in").write_bytes(data)
    # 1 MiB GPU buffers through 4 KiB slots: only the handles cross, never the bytes.
    p = parallax.parse_launch(
        f"filesrc location={tmp_path}/in blocksize=1M ! cudaupload pool-slots=4 ! "
        f"procqueue slot-size=4k slots=4 ! cudadownload name=down ! "
        f"filesink location={tmp_path}/out"
    )
    p.run(timeout=60)
    assert (tmp_path / "out").read_bytes() == data
    assert p.metrics()["down"]["buffers_in"] == 3


# -- DLPack from pipeline buffers ----------------------------------------------------------


@pytest.mark.gpu
def test_gpu_buffers_export_dlpack_windows_without_a_copy(cupy: Any) -> None:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        pytest.skip("needs torch")
    frames = [bytes(range(256)) * 64]
    # sync=false: the consumer's stream must wait on the buffer's event (from __dlpack__).
    p = _run(
        "appsrc name=src max-buffers=0 ! cudaupload sync=false ! appsink name=out max-buffers=0",
        frames,
    )
    try:
        (buf,) = _drain(p, "out")
        assert buf.__dlpack_device__() == (2, 0)
        owner = cuda_memory(buf)
        assert owner is not None
        memory = weakref.ref(owner.memory)
        ptr = owner.ptr
        del owner
        t = torch.from_dlpack(buf)
        assert t.data_ptr() == ptr and t.numel() == len(frames[0])
        assert t.cpu().numpy().tobytes() == frames[0]
        sub = torch.from_dlpack(buf.sub(256, 512))
        assert sub.data_ptr() == ptr + 256
        assert cupy.from_dlpack(buf.sub(1024, 16)).data.ptr == ptr + 1024
        del buf
    finally:
        p.stop()
    del p
    gc.collect()
    live = memory()
    assert live is not None and not live.closed, "the pool slot was freed under a tensor"
    del live
    assert sub.cpu().numpy().tobytes() == frames[0][256:768]
    assert t.cpu().numpy().tobytes() == frames[0]
    del t, sub
    gc.collect()
    assert memory() is None  # the stopped pool's slot is freed with its last tensor


@pytest.mark.gpu
def test_jax_reads_a_gpu_buffer_through_dlpack(cupy: Any) -> None:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        jax = importlib.import_module("jax")
        jax.devices("gpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"needs jax with its CUDA plugin: {e}")
    frames = [bytes(range(256)) * 16]
    p = _run("appsrc name=src max-buffers=0 ! cudaupload ! appsink name=out max-buffers=0", frames)
    try:
        (buf,) = _drain(p, "out")
        ptr = buf.__cuda_array_interface__["data"][0]
        x = jax.dlpack.from_dlpack(buf)
        assert x.unsafe_buffer_pointer() == ptr
        assert np.asarray(x).tobytes() == frames[0]
        assert int(x.astype("int32").sum()) == sum(frames[0])
        before = _dlpack.live_exports()
        del x, buf
        deadline = time.monotonic() + 10
        while _dlpack.live_exports() >= before and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.01)
        assert _dlpack.live_exports() == before - 1, "JAX never called the DLPack deleter"
    finally:
        p.stop()


@pytest.mark.gpu
@pytest.mark.parametrize(("register", "sync"), [(True, True), (True, False), (False, True)])
def test_pool_buffers_upload_from_the_page_locked_pool(
    cupy: Any, tmp_path: Any, register: bool, sync: bool
) -> None:
    from parallax.elements import FileSink, FileSrc

    for cls in (FileSrc, FileSink):
        registry.register(cls)
    data = np.random.default_rng(3).integers(0, 256, (5 << 20) + 123, dtype=np.uint8).tobytes()
    (tmp_path / "in").write_bytes(data)
    p = parallax.parse_launch(
        f"filesrc location={tmp_path}/in blocksize=1M ! "
        f"cudaupload name=up register={str(register).lower()} sync={str(sync).lower()} "
        "pool-slots=4 ! cudadownload ! "
        f"filesink location={tmp_path}/out"
    )
    p.run(timeout=60)
    assert (tmp_path / "out").read_bytes() == data
