"""GPU handoffs: a device buffer to another process, pinned uploads, Vulkan -> CUDA import.

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

from _common import Result, args, medians, report

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
            from parallax.gpu._cuda import check, driver

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
        got = vulkan_import(ctx, 256 * MiB if not opts.quick else 16 * MiB, repeats)
        if isinstance(got, str):
            notes.append(f"# {got}")
        else:
            results.append(got)
    report("gpu_ipc: device buffers across processes", results, notes)


if __name__ == "__main__":
    main()
