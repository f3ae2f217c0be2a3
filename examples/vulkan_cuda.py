"""Vulkan memory read and written by CUDA, ordered by a shared timeline semaphore.

    python examples/vulkan_cuda.py

A Vulkan buffer in exportable memory is imported into CUDA (`cuImportExternalMemory`);
CuPy and PyTorch see it without a copy (their data pointers are the imported pointer).
CUDA inverts the bytes Vulkan wrote, then a Vulkan timeline semaphore imported into CUDA
(`cuImportExternalSemaphore`) orders a second CUDA write before Vulkan's read: CUDA
signals value 1 on its stream, Vulkan waits for 1 on the host. Needs an NVIDIA GPU with
Vulkan and CUDA (the device machine); elsewhere it exits 0 with a message.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np

SIZE = 64 << 20


def main() -> int:
    try:
        cupy = importlib.import_module("cupy")
        from parallax.gpu import CudaContext, SharedSemaphore, ShareManager
        from parallax.gpu._cuda_interop import import_vulkan_buffer, import_vulkan_semaphore

        ctx = CudaContext(0)
        vk = ShareManager()
    except Exception as e:
        print(f"needs an NVIDIA GPU with Vulkan, CUDA and CuPy ({e}); nothing to show")
        return 0
    data = np.random.default_rng(1).integers(0, 256, SIZE, dtype=np.uint8)
    with ctx, vk:
        buf = vk.create_shared_buffer(SIZE, host_visible=True)
        buf.write(data.tobytes())  # written by Vulkan (host-visible mapping)
        handle, fd = vk.export_buffer(buf)
        try:
            mem = import_vulkan_buffer(ctx, handle, fd)
        finally:
            os.close(fd)
        with mem:
            ctx.activate()
            arr = cupy.asarray(mem)  # __cuda_array_interface__: no copy
            same_ptr = arr.data.ptr == mem.ptr
            try:
                torch = importlib.import_module("torch")
                torch_ptr = torch.as_tensor(mem, device="cuda").data_ptr() == mem.ptr
            except ImportError:
                torch_ptr = None
            sums_match = int(arr.sum(dtype=cupy.uint64)) == int(data.sum(dtype=np.uint64))
            arr[:] = 255 - arr  # CUDA writes Vulkan's memory
            cupy.cuda.get_current_stream().synchronize()
            inverted = buf.read() == (255 - data).tobytes()

            with SharedSemaphore(vk.device, timeline=True) as sem:
                _, sfd = sem.export()
                try:
                    cuda_sem = import_vulkan_semaphore(ctx, sfd, timeline=True)
                finally:
                    os.close(sfd)
                with cuda_sem:
                    stream = cupy.cuda.get_current_stream()
                    arr[:16] = 7
                    cuda_sem.signal(1, stream.ptr)  # after the write, on the same stream
                    waited = sem.wait(1, timeout=5.0)  # Vulkan (host) waits for CUDA
                    ordered = waited and buf.read()[:16] == bytes([7]) * 16
            del arr
        print(
            f"{vk.device.name}: {SIZE >> 20} MiB Vulkan buffer imported into CUDA; "
            f"CuPy pointer is the import: {same_ptr}; torch pointer: {torch_ptr}; "
            f"checksums match: {sums_match}; CUDA's writes seen by Vulkan: {inverted}; "
            f"semaphore-ordered write seen: {ordered}"
        )
        ok = same_ptr and sums_match and inverted and ordered and torch_ptr is not False
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
