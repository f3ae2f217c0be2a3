"""GPU buffers over the shared-memory link: a CUDA IPC handle travels instead of bytes.

`ipcsink`/`procqueue` (via `publish`) and `ipcsrc` use this when a buffer lives in CUDA
memory (`cudaupload`'s buffers: owner `CudaMemory`, caps `memory=cuda`). The slot then
carries a small record (`parallax.gpu.CudaBufferRecord`, magic `PXCB`: the device, the
buffer's window in its allocation, and the allocation's `CudaHandle`) and the consumer
opens the handle (`cuIpcOpenMemHandle`, cached per allocation: a producer's device pool
recycles a few allocations) and pushes a GPU buffer on the same memory. No byte of the
payload touches the host.

Lifetime: the producer keeps its GPU buffer until the slot that names it comes back,
which is when the consumer's last reference to the opened buffer is gone (the consumer's
owner holds the received slot). Ordering: the producer waits for the buffer's event
before sending (its copy or kernel has finished), so the consumer may read at once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Final

from parallax._errors import FlowError
from parallax.buffer import Buffer
from parallax.gpu import CudaBuffer, CudaBufferRecord, CudaContext, CudaMemory, HandleError

from ._cuda_caps import cuda_memory, is_cuda_caps

OPEN_CACHE: Final = 64
"""Opened producer allocations an ipcsrc keeps mapped (a device pool has a few)."""


class _LinkedCudaMemory(CudaMemory):
    """An opened producer allocation that also holds the link slot naming it: the slot,
    and so the producer's buffer, returns when this owner is collected."""

    __slots__ = ("_slot",)

    def __init__(self, memory: CudaBuffer, slot: Buffer) -> None:
        super().__init__(memory)
        self._slot = slot


def gpu_record(element_name: str, buf: Buffer) -> bytes | None:
    """The record to send for `buf` if it lives in CUDA memory, else None.

    Raises:
        FlowError: the memory cannot be shared by CUDA IPC.
    """
    mem = cuda_memory(buf)
    if mem is None:
        return None
    memory = mem.memory
    if not isinstance(memory, CudaBuffer):
        raise FlowError(
            f"{element_name}: a GPU buffer on {type(memory).__name__} memory cannot cross "
            "processes (only CudaBuffer allocations export CUDA IPC handles)",
            element=element_name,
        )
    handle, fd = memory.export()
    if fd is not None:  # VMM (fd) sharing: this link carries IPC handles only
        os.close(fd)
        raise FlowError(
            f"{element_name}: GPU buffer shared by fd; the link carries CUDA IPC handles "
            "(allocate with Sharing.IPC)",
            element=element_name,
        )
    mem.synchronize()  # the consumer may read as soon as it has the handle
    start = buf.__cuda_array_interface__["data"][0] - memory.ptr
    return CudaBufferRecord(mem.device, start, buf.size, handle).to_bytes()


class GpuOpener:
    """The consumer side: turns received records back into GPU buffers. Owns the
    contexts and the cache of opened allocations: `close()` it (buffers already pushed
    keep their allocation open until they are gone)."""

    def __init__(self, element_name: str) -> None:
        self._name = element_name
        self._contexts: dict[int, CudaContext] = {}
        self._opened: OrderedDict[bytes, CudaBuffer] = OrderedDict()

    _last_caps: object = None
    _last_cuda = False

    def wants(self, buf: Buffer) -> bool:
        """True for a received slot that carries a GPU record (the caps test is cached:
        the caps object of a stream rarely changes)."""
        caps = buf.caps
        if caps is not self._last_caps:
            self._last_caps, self._last_cuda = caps, is_cuda_caps(caps)
        return self._last_cuda and CudaBufferRecord.is_record(buf.view)

    def open(self, slot: Buffer) -> Buffer:
        """The GPU buffer a received slot names (metadata and caps kept).

        Raises:
            FlowError: a malformed record, or the handle does not open.
        """
        try:
            record = CudaBufferRecord.from_bytes(slot.view)
        except HandleError as e:
            raise FlowError(f"{self._name}: bad GPU record: {e}", element=self._name) from e
        key = record.key
        memory = self._opened.get(key)
        try:
            if memory is None:
                ctx = self._contexts.get(record.device)
                if ctx is None:
                    ctx = self._contexts[record.device] = CudaContext(record.device)
                memory = CudaBuffer.open_ipc(ctx, record.handle)
                self._opened[key] = memory
                while len(self._opened) > OPEN_CACHE:
                    self._opened.popitem(last=False)
            else:
                self._opened.move_to_end(key)
        except Exception as e:
            raise FlowError(
                f"{self._name}: cannot open a GPU buffer: {e}", element=self._name
            ) from e
        return Buffer(
            _LinkedCudaMemory(memory, slot),
            start=record.start,
            size=record.size,
            caps=slot.caps,
            sequence=slot.sequence,
            pts=slot.pts,
            dts=slot.dts,
            duration=slot.duration,
            offset=slot.offset,
            flags=slot.flags,
        )

    def close(self) -> None:
        """Forget the cache and the contexts; pushed buffers keep what they use."""
        self._opened.clear()
        self._contexts.clear()
