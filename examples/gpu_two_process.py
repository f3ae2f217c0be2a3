"""Two processes, one GPU, no host round trip.

The producer runs `appsrc ! cudaupload ! appsink`: each frame lands in a slot of
cudaupload's device pool (a `parallax.gpu.CudaBuffer`, legacy CUDA IPC). It sends the
slot's `CudaHandle` (108 bytes) plus the frame's size and sequence over a pipe; the
consumer (a spawned process) opens the handle once per slot (`CudaBuffer.open_ipc`),
views it as a PyTorch tensor (`torch.as_tensor(mem, device="cuda")`, zero-copy) and sums
it on the GPU. Both sides print the checksum; the producer keeps each frame's buffer
(and so its device slot) until the consumer acknowledges it.

    $ PYTHONPATH=src python examples/gpu_two_process.py
    frame 0: producer checksum 39068698, consumer checksum 39068698
    ...

Without a CUDA GPU (or cuda-bindings) it says so and exits 0.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

FRAMES = 8
WIDTH, HEIGHT = 640, 480


def consumer(conn: Connection) -> None:
    """Open each frame's device memory by its IPC handle and checksum it with torch."""
    from parallax.gpu import CudaBuffer, CudaContext, CudaHandle

    try:
        import torch
    except ImportError:
        torch = None
    ctx = CudaContext(0)
    opened: dict[tuple[int, bytes], CudaBuffer] = {}  # a pool slot is mapped once, then reused
    try:
        while (msg := conn.recv()) is not None:
            raw, ptr, size, sequence = msg
            handle = CudaHandle.from_bytes(raw)
            key = (ptr, handle.ipc)  # the producer's slot
            mem = opened.get(key)
            if mem is None:
                mem = opened[key] = CudaBuffer.open_ipc(ctx, handle)
            if torch is not None:
                frame = torch.as_tensor(mem, device="cuda")[:size]
                assert frame.data_ptr() == mem.ptr  # zero-copy: the producer's memory
                checksum = int(frame.to(torch.int64).sum())
            else:  # no torch: the same view through CuPy
                import cupy

                checksum = int(cupy.asarray(mem)[:size].sum(dtype=cupy.int64))
            conn.send((sequence, checksum))
    finally:
        for mem in opened.values():
            mem.close()
        ctx.close()


def main() -> int:
    try:
        from parallax.gpu import CudaContext

        CudaContext(0).close()
    except Exception as e:  # MissingExtra, PlatformNotSupported: no GPU here
        print(f"no CUDA GPU available ({type(e).__name__}: {e}); nothing to do")
        return 0

    import parallax
    from parallax.buffer import Buffer
    from parallax.elements import AppSink, AppSrc, CudaUpload, cuda_memory
    from parallax.pipeline import registry

    for cls in (AppSrc, AppSink, CudaUpload):  # entry points may not be installed
        registry.register(cls)
    try:
        import cupy
    except ImportError:
        cupy = None

    spawn = mp.get_context("spawn")  # CUDA does not survive fork
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=consumer, args=(theirs,), daemon=True)
    child.start()
    caps = f"video/raw,format=GRAY8,width={WIDTH},height={HEIGHT}"
    pipeline = parallax.parse_launch(
        "appsrc name=src max-buffers=0 ! cudaupload pool-slots=4 ! appsink name=out"
    )
    pipeline.get_by_name("src").set_property("caps", caps)
    rng = np.random.default_rng(0)
    ok = True
    src: Any = pipeline.get_by_name("src")
    try:
        for _ in range(FRAMES):
            src.push_buffer(Buffer(rng.integers(0, 256, WIDTH * HEIGHT, dtype=np.uint8)))
        src.end_of_stream()
        for i, buf in enumerate(pipeline.pull("out", timeout=30)):
            owner = cuda_memory(buf)
            assert owner is not None, "cudaupload made a host buffer"
            handle, _fd = owner.memory.export()  # legacy IPC: no fd
            if cupy is not None:  # the producer's checksum, on the GPU too
                mine = int(cupy.asarray(buf).sum(dtype=cupy.int64))
            else:
                mine = int(np.frombuffer(owner.memory.read(buf.size), np.uint8).sum())
            ours.send((handle.to_bytes(), owner.ptr, buf.size, buf.sequence))
            sequence, theirs_sum = ours.recv()  # `buf` (its slot) stays ours until here
            same = sequence == buf.sequence and theirs_sum == mine
            ok &= same
            print(
                f"frame {i}: producer checksum {mine}, consumer checksum {theirs_sum}"
                + ("" if same else "  MISMATCH")
            )
    finally:
        try:
            ours.send(None)
        except OSError:  # the consumer is gone already
            pass
        child.join(30)
        pipeline.stop()
    print("all checksums match" if ok and child.exitcode == 0 else "FAILED")
    return 0 if ok and child.exitcode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
