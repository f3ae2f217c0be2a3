"""GPU handoffs: a device buffer to another process, pinned uploads, the cudaupload
element, Vulkan -> CUDA import.

Scenarios (each a rate, so `ratio` = ours / peer and above 1 is better):
- `cuda-handoff-<size>`: hand a device buffer to a child process: export its legacy CUDA
  IPC handle, send it over a socket, the child opens it (`cuIpcOpenMemHandle`), reads one
  byte (`cuMemcpyDtoH`), closes it and acknowledges. Timed in this process from export to
  the acknowledgement; the first handoff (the child's context and first open) is the
  warm-up. Peer: the same bytes through host shared memory: `cuMemcpyDtoH` into a memfd
  mapping, a message, and `cuMemcpyHtoD` from it into the child's own device buffer.
  Reported as GB/s of buffer handed over (goal: >= 100x).
- `pinned-upload-<size>`: `CudaBuffer.upload(PinnedHostBuffer, stream=...)`
  (`cuMemcpyHtoDAsync`) + stream sync, against CuPy's own pinned memory
  (`cupyx.empty_pinned` + `ndarray.set(..., stream)`) or, without CuPy, a bare
  `cuMemAllocHost` + `cuMemcpyHtoD` (goal: >= 0.8x).
- `cudaupload-<size>[-async]`: the `cudaupload` element in
  `fakesrc sizetype=fixed sizemax=<size> num-buffers=N pool-slots=4 ! cudaupload ! fakesink`
  (timed around `Pipeline.run()`, parse excluded), GB/s of buffers uploaded, against the
  plain pinned H2D bandwidth of the same buffers measured in the same run (N
  `cuMemcpyHtoDAsync` of `size` bytes from a `PinnedHostBuffer`, one stream sync; goal:
  >= 0.8x). fakesrc's buffers are slots of a shared-memory pool: cudaupload page-locks
  that pool once (`cuMemHostRegister`, `register=true`, the default) and copies each
  buffer to the device straight from it. `-async` is `sync=false pool-slots=16
  staging-slots=4`; `-staged` is `register=false`: each buffer is first copied into a
  pinned staging slot (`ctypes.memmove` over `copy-threads=4` threads), the path for
  memory that cannot be page-locked. The notes print what bounds the staged path: the
  host pageable -> pinned copy rate, and `cuMemcpyHtoD` straight from pageable memory.
- `vulkan-import-<size>`: `import_vulkan_buffer` + `close()` of a device-local Vulkan
  buffer's memory, imports/s, against Vulkan's own import of the same fd into a second
  device (`import_buffer`), where the `vulkan` package and an NVIDIA Vulkan driver exist.

Without a CUDA device it prints why and exits 0.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import Result, args, median_time, medians, report

MiB = 1 << 20
GiB = 1 << 30


def _send(sock: socket.socket, msg: dict[str, object]) -> None:
    sock.sendall(json.dumps(msg).encode() + b"\n")


def _recv(f: object) -> dict[str, object]:
    line = f.readline()  # type: ignore[attr-defined]
    if not line:
        raise RuntimeError("the child process hung up")
    return json.loads(line)  # type: ignore[no-any-return]


def child(sock_fd: int, memfd: int, size: int) -> None:
    """The far process: opens handles it is sent, or copies from the memfd to its GPU."""
    from parallax.gpu import CudaBuffer, CudaContext, CudaHandle

    sock = socket.socket(fileno=sock_fd)
    with sock, sock.makefile("rb") as f, CudaContext(0) as ctx:
        shm = mmap.mmap(memfd, size)
        own = CudaBuffer(ctx, size)
        one = bytearray(1)
        while True:
            msg = _recv(f)
            if msg["op"] == "open":
                handle = CudaHandle.from_bytes(bytes.fromhex(str(msg["handle"])))
                with CudaBuffer.open_ipc(ctx, handle) as buf:
                    buf.download(one)
            elif msg["op"] == "copy":
                own.upload(memoryview(shm))  # cuMemcpyHtoD from the shared pages
                own.download(one)
            else:
                break
            _send(sock, {"ok": True, "byte": one[0]})
        own.close()
        shm.close()


def handoff(ctx: object, size: int, repeats: int) -> Result:
    from parallax.gpu import CudaBuffer

    memfd = os.memfd_create("gpu-ipc-bench")
    os.ftruncate(memfd, size)
    shm = mmap.mmap(memfd, size)
    parent, far = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(far.fileno()), str(memfd), str(size)],
        pass_fds=[far.fileno(), memfd],
    )
    far.close()
    try:
        with parent, parent.makefile("rb") as f, CudaBuffer(ctx, size) as buf:  # type: ignore[arg-type]
            buf.upload(b"\x01" * MiB)  # the byte the child reads

            def ours() -> float:
                t0 = time.perf_counter()
                handle, _ = buf.export()
                _send(parent, {"op": "open", "handle": handle.to_bytes().hex()})
                _recv(f)
                return time.perf_counter() - t0

            def host() -> float:
                t0 = time.perf_counter()
                buf.download(shm)  # cuMemcpyDtoH into the shared pages
                _send(parent, {"op": "copy"})
                _recv(f)
                return time.perf_counter() - t0

            meds = medians({"ours": ours, "host": host}, repeats, warmup=1)
            _send(parent, {"op": "stop"})
    finally:
        proc.wait(timeout=120)
        shm.close()
        os.close(memfd)
    return Result(
        f"cuda-handoff-{size // MiB}MiB",
        size / meds["ours"] / 1e9,
        size / meds["host"] / 1e9,
        "host shared memory (cuMemcpyDtoH + cuMemcpyHtoD)",
        "GB/s",
        repeats,
    )


def upload(ctx: object, size: int, repeats: int) -> Result:
    from parallax.gpu import CudaBuffer, CudaStream, PinnedHostBuffer

    with (
        PinnedHostBuffer(ctx, size) as pinned,
        CudaBuffer(ctx, size) as buf,
        CudaStream(ctx) as stream,
    ):  # type: ignore[arg-type]
        pinned.array()[:] = 3

        def ours() -> float:
            t0 = time.perf_counter()
            buf.upload(pinned, stream=stream)
            stream.synchronize()
            return time.perf_counter() - t0

        try:
            import cupy
            import cupyx

            src = cupyx.empty_pinned((size,), dtype="uint8")
            src[:] = 3
            dst = cupy.empty(size, dtype="uint8")
            cstream = cupy.cuda.Stream(non_blocking=True)
            name = f"cupy {cupy.__version__} pinned ndarray.set"

            def peer() -> float:
                t0 = time.perf_counter()
                dst.set(src, stream=cstream)
                cstream.synchronize()
                return time.perf_counter() - t0

            meds = medians({"ours": ours, "peer": peer}, repeats, warmup=2)
        except ImportError:
            from parallax.gpu._cuda_driver import check, driver

            drv = driver()
            host = int(check("cuMemAllocHost", drv.cuMemAllocHost(size)))
            name = "cuMemAllocHost + cuMemcpyHtoD"

            def peer() -> float:
                t0 = time.perf_counter()
                check("cuMemcpyHtoD", drv.cuMemcpyHtoD(buf.ptr, host, size))
                return time.perf_counter() - t0

            try:
                meds = medians({"ours": ours, "peer": peer}, repeats, warmup=2)
            finally:
                check("cuMemFreeHost", drv.cuMemFreeHost(host))
    return Result(
        f"pinned-upload-{size // MiB}MiB",
        size / meds["ours"] / 1e9,
        size / meds["peer"] / 1e9,
        name,
        "GB/s",
        repeats,
    )


def _pinned_h2d(ctx: object, size: int, count: int, repeats: int) -> float:
    """Seconds for `count` pinned H2D copies of `size` bytes on one stream (median)."""
    from parallax.gpu import CudaBuffer, CudaStream, PinnedHostBuffer

    with (
        PinnedHostBuffer(ctx, size) as pinned,  # type: ignore[arg-type]
        CudaBuffer(ctx, size) as buf,  # type: ignore[arg-type]
        CudaStream(ctx) as stream,  # type: ignore[arg-type]
    ):
        pinned.array()[:] = 5

        def copies() -> float:
            t0 = time.perf_counter()
            for _ in range(count):
                buf.upload(pinned, stream=stream)
            stream.synchronize()
            return time.perf_counter() - t0

        return median_time(copies, repeats, warmup=1)


def _bounds(ctx: object, size: int, repeats: int) -> list[str]:
    """What limits the element: host pageable -> pinned copies, and pageable H2D."""
    import ctypes

    import numpy as np

    from parallax.elements._cuda_staging import Copier as _Copier
    from parallax.gpu import CudaBuffer, PinnedHostBuffer
    from parallax.gpu._cuda_driver import check

    src = np.full(size, 7, dtype=np.uint8)  # pageable, touched
    with PinnedHostBuffer(ctx, size) as pinned, CudaBuffer(ctx, size) as buf:  # type: ignore[arg-type]
        drv = buf.context._drv

        copier = _Copier(4)

        def memmove() -> None:
            ctypes.memmove(pinned.ptr, src.ctypes.data, size)

        def threaded() -> None:
            copier.memmove(pinned.ptr, src.ctypes.data, size)

        def pageable() -> None:
            check("cuMemcpyHtoD", drv.cuMemcpyHtoD(buf.ptr, src.ctypes.data, size))

        fns = {"memmove": memmove, "threaded": threaded, "pageable": pageable}
        meds = medians(fns, repeats, warmup=2)
        copier.close()
    rate = {key: size / seconds / 1e9 for key, seconds in meds.items()}
    return [
        f"# bound: pageable -> pinned memmove {rate['memmove']:.1f} GB/s on one thread, "
        f"{rate['threaded']:.1f} GB/s on 4 (cudaupload's copy-threads=4); cuMemcpyHtoD "
        f"straight from pageable memory {rate['pageable']:.1f} GB/s"
    ]


def element_upload(
    ctx: object, size: int, count: int, repeats: int
) -> tuple[list[Result], list[str]]:
    """cudaupload's throughput (sync and async) against plain pinned H2D copies."""
    import parallax
    from parallax.elements._cuda import CudaUpload
    from parallax.elements._fake import FakeSink, FakeSrc
    from parallax.pipeline import registry

    for cls in (FakeSrc, FakeSink, CudaUpload):
        registry.register(cls)
    src = f"fakesrc sizetype=fixed sizemax={size} num-buffers={count} pool-slots=4"
    launches = {
        "sync": f"{src} ! cudaupload ! fakesink",
        "async": f"{src} ! cudaupload sync=false pool-slots=16 staging-slots=4 ! fakesink",
        "staged": f"{src} ! cudaupload register=false ! fakesink",
    }

    def element(launch: str) -> float:
        pipeline = parallax.parse_launch(launch)
        t0 = time.perf_counter()
        pipeline.run(timeout=120)
        took = time.perf_counter() - t0
        down = pipeline.metrics()
        sink = next(m for name, m in down.items() if name.startswith("fakesink"))
        if sink["buffers_in"] != count:
            raise RuntimeError(f"fakesink saw {sink['buffers_in']} buffers, not {count}")
        return took

    meds = medians(
        {key: (lambda launch=launch: element(launch)) for key, launch in launches.items()},
        repeats,
        warmup=1,
    )
    peer = size * count / _pinned_h2d(ctx, size, count, repeats) / 1e9
    name = f"{count} pinned cuMemcpyHtoDAsync of {size // MiB} MiB, same run"
    results = [
        Result(
            f"cudaupload-{size // MiB}MiB{'' if key == 'sync' else '-' + key}",
            size * count / seconds / 1e9,
            peer,
            name,
            "GB/s",
            repeats,
        )
        for key, seconds in meds.items()
    ]
    return results, _bounds(ctx, size, repeats)


def vulkan_import(ctx: object, size: int, repeats: int) -> Result | str:
    from parallax._errors import MissingExtra
    from parallax.gpu import (
        SharedBuffer,
        VulkanDevice,
        VulkanError,
        import_buffer,
        import_vulkan_buffer,
    )

    try:
        dev, other = VulkanDevice(), VulkanDevice()
    except (MissingExtra, VulkanError) as e:
        return f"vulkan-import skipped: {e}"
    with dev, other, SharedBuffer(dev, size, host_visible=False) as vbuf:
        if dev.device_uuid != ctx.uuid:  # type: ignore[attr-defined]
            return f"vulkan-import skipped: Vulkan device {dev.name!r} is not the CUDA device"
        handle, fd = vbuf.export()
        try:

            def ours() -> float:
                t0 = time.perf_counter()
                import_vulkan_buffer(ctx, handle, fd).close()  # type: ignore[arg-type]
                return time.perf_counter() - t0

            def peer() -> float:
                t0 = time.perf_counter()
                import_buffer(other, handle, fd).close()
                return time.perf_counter() - t0

            meds = medians({"ours": ours, "peer": peer}, repeats, warmup=1)
        finally:
            os.close(fd)
    return Result(
        f"vulkan-import-{size // MiB}MiB",
        1 / meds["ours"],
        1 / meds["peer"],
        f"Vulkan import_buffer (vulkan {metadata.version('vulkan')})",
        "imports/s",
        repeats,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    opts = args(__doc__.splitlines()[0] if __doc__ else "gpu_ipc")
    from parallax._errors import MissingExtra, PlatformNotSupported
    from parallax.gpu import CudaContext

    try:
        ctx = CudaContext(0)
    except (MissingExtra, PlatformNotSupported) as e:
        print(f"# gpu_ipc: skipped, no CUDA device: {e}")
        return
    big = 64 * MiB if opts.quick else GiB
    repeats = 3 if opts.quick else 7
    notes: list[str] = [f"# device: {ctx.name}"]
    with ctx:
        results = [handoff(ctx, big, repeats), upload(ctx, big // 4, repeats)]
        uploads, bounds = element_upload(ctx, 8 * MiB, 64 if opts.quick else 256, repeats)
        results += uploads
        notes += bounds
        got = vulkan_import(ctx, 256 * MiB if not opts.quick else 16 * MiB, repeats)
        if isinstance(got, str):
            notes.append(f"# {got}")
        else:
            results.append(got)
    report("gpu_ipc: device buffers across processes", results, notes)


if __name__ == "__main__":
    main()
