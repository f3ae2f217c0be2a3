"""`cudaupload` and `cudadownload`: buffers that live in CUDA device memory.

    appsrc ! cudaupload ! tee name=t  t. ! appsink name=a  t. ! cudadownload ! filesink

A GPU buffer is an ordinary `Buffer` whose memory owner is a `parallax.gpu.CudaMemory`: a
slot of a `CudaPool` (a `CudaBuffer`, shareable by CUDA IPC) plus the `CudaEvent` recorded
after the copy that filled it. Metadata, caps, `sub()` and `tee` work as for host buffers;
the bytes never come to the host by accident: `buf.view`, `np.asarray(buf)`, `bytes(buf)`
raise `CudaMemoryError` ("buffer lives on cuda:0; use cudadownload or
cupy.asarray(buf)"). `buf.__cuda_array_interface__` (from the owner, windowed to the
buffer) is what `cupy.asarray(buf)` and `torch.as_tensor(buf, device="cuda")` take,
without a copy; `buf.__dlpack__()` (delegated to the owner, windowed the same way) is
what `jax.dlpack.from_dlpack(buf)`, `torch.from_dlpack(buf)` and `cupy.from_dlpack(buf)`
take, without a copy, the consumer's stream waiting on the buffer's event. GPU caps say
`memory=cuda` (`_cuda_caps.py`).

Copies: `cudaupload` copies each host buffer (split across `copy-threads` threads when
large: one thread's memmove is the bottleneck) into a ring of pinned (page-locked) staging
slots (`_cuda_staging.py`), queues `cuMemcpyHtoDAsync` into a device slot on its own
non-blocking stream and records the slot's event; with `sync=true` (the default) it waits
for that event before pushing, so any consumer (CuPy, torch) may read the memory at once.
With `sync=false` it pushes at once and consumers order themselves on the event
(`CudaMemory.wait(stream)` or `synchronize()`; `cudadownload` does it on the GPU). Buffers
on upstream shared-memory pool slots are copied straight from the pool once it is
page-locked (`HostRegistration`, `register=true`). `cudadownload` makes its stream wait
for the event, copies device -> pinned staging -> a host pool slot (`BufferAllocator`).

Lifetimes: a device slot returns to its pool when the last reference to its `CudaMemory`
goes (the buffers on it, and CuPy arrays or torch tensors made from them, which hold the
buffer), and when a copy into it fails. Stopping the element closes the free slots; slots
still on loan are freed when their last buffer goes.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from parallax._errors import FlowError, ParallaxError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.gpu import (
    CudaBuffer,
    CudaContext,
    CudaEvent,
    CudaMemory,
    CudaPool,
    CudaStream,
    HostRegistration,
)
from parallax.memory import Segment, Slot
from parallax.pipeline import (
    FLUSH_POLL,
    BufferAllocator,
    Event,
    EventType,
    Media,
    Pad,
    Property,
    Transform,
)

from ._cuda_caps import cuda_caps, cuda_memory, host_caps
from ._cuda_staging import Copier, Staging, host_address


class _CudaTransform(Transform[Media, Media]):
    """What both elements share: the context, stream and staging ring, opened in
    `start` and released in `stop`, and the caps rewrite on the CAPS event."""

    staging_slots = Property(2, doc="pinned host staging slots in the ring", minimum=1, maximum=64)
    copy_threads = Property(
        4, doc="threads for host <-> pinned staging copies of large buffers", minimum=1, maximum=64
    )

    _ctx: CudaContext | None = None
    _stream: CudaStream | None = None
    _staging: Staging | None = None
    _copier: Copier | None = None

    def _open(self, ordinal: int) -> None:
        self._ctx = CudaContext(ordinal)
        self._stream = CudaStream(self._ctx)
        self._staging = Staging(self._ctx, self.staging_slots)
        self._copier = Copier(self.copy_threads)

    def _memmove(self, dst: int, src: int, n: int) -> None:
        copier = self._copier
        if copier is None:
            raise FlowError(f"{self.name}: not started", element=self.name)
        copier.memmove(dst, src, n)

    def _live(self) -> tuple[CudaContext, CudaStream, Staging]:
        ctx, stream, staging = self._ctx, self._stream, self._staging
        if ctx is None or stream is None or staging is None:
            raise FlowError(f"{self.name}: not started", element=self.name)
        return ctx, stream, staging

    def stop(self) -> None:
        # The context is not closed here: closing it would free the device slots that
        # buffers downstream still use. Each object frees itself when collected.
        staging, self._staging = self._staging, None
        if staging is not None:
            staging.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.synchronize()
            stream.close()
        copier, self._copier = self._copier, None
        if copier is not None:
            copier.close()
        self._ctx = None

    @abstractmethod
    def _rewrite(self, caps: Caps | None) -> Caps | None:
        """The output caps for input `caps` (cudaupload adds `memory=cuda`, cudadownload
        takes it away)."""

    def handle_event(self, pad: Pad, event: Event) -> None:
        if event.type is EventType.CAPS:
            pad.caps = event.caps
            caps = self._rewrite(event.caps)
            self.forward_event(Event(EventType.CAPS, caps=caps))
            return
        super().handle_event(pad, event)

    def _out_caps(self, caps: Caps | None) -> Caps | None:
        if caps is None:
            return None
        cached = self._caps_cache
        if cached is not None and cached[0] is caps:
            return cached[1]
        out = self._rewrite(caps)
        self._caps_cache = (caps, out)
        return out

    _caps_cache: tuple[Caps, Caps | None] | None = None


def _slot_window(buf: Buffer) -> tuple[Segment, int] | None:
    """(segment, byte offset in it) of a buffer on a pool slot; None for other memory."""
    owner = buf.owner
    if not isinstance(owner, Slot):
        return None
    pool = owner.pool
    if pool is None:
        return None
    return pool.segment, owner.offset + buf.owner_offset


class CudaUpload(_CudaTransform, factory="cudaupload"):
    """Host buffers in, GPU buffers out (asynchronous copies, from page-locked upstream
    pools or through pinned staging)."""

    klass = "Filter/Converter/Video/Hardware"
    description = "Copy buffers from host memory to CUDA device memory"

    device = Property(0, doc="CUDA device ordinal", minimum=0)
    pool_slots = Property(8, doc="device buffers in flight (the pool's bound)", minimum=1)
    sync = Property(
        True, doc="wait for each copy before pushing (false: consumers wait on its event)"
    )
    register = Property(
        True,
        doc="page-lock upstream shared-memory pools and copy from them directly "
        "(false: always through pinned staging)",
    )

    _pool: CudaPool | None = None
    # id(segment) -> (the segment, kept so its id stays its own; its registration, or
    # None for memory the driver would not page-lock)
    _registered: dict[int, tuple[Segment, HostRegistration | None]] | None = None

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._sources: dict[int, Buffer] = {}  # device slot -> host slot it is copied from

    def start(self) -> None:
        self._open(self.device)
        self._caps_cache = None
        self._registered = {}

    def stop(self) -> None:
        registered, self._registered = self._registered, None
        if registered:
            if self._stream is not None:
                self._stream.synchronize()
            self._sources.clear()  # every copy is done
            for _segment, reg in registered.values():
                if reg is not None:
                    reg.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        super().stop()

    def _direct(self, ctx: CudaContext, buf: Buffer) -> int | None:
        """The host address to copy `buf` from directly, if its pool is page-locked."""
        registered = self._registered
        if not self.register or registered is None:
            return None
        window = _slot_window(buf)
        if window is None:
            return None
        segment, offset = window
        key = id(segment)
        if key not in registered:
            reg: HostRegistration | None
            try:
                reg = HostRegistration(ctx, segment.view)
            except (ParallaxError, ValueError, TypeError, BufferError):
                reg = None  # this memory cannot be page-locked: stage it
            registered[key] = (segment, reg)
        known, reg = registered[key]
        if reg is None or known is not segment:
            return None
        return reg.base + offset

    def _rewrite(self, caps: Caps | None) -> Caps | None:
        return cuda_caps(caps)

    def transform(self, buf: Buffer) -> Buffer | None:
        if cuda_memory(buf) is not None:
            return buf  # already on a GPU
        ctx = self._live()[0]
        n = buf.size
        pool = self._pool
        if pool is None or pool.slot_size < n:
            if pool is not None:
                pool.close()
            pool = self._pool = CudaPool(ctx, max(n, 1), self.pool_slots)
        memory, event = pool.loan(self.name, lambda: self.flushing, poll=FLUSH_POLL)
        try:
            self._upload(buf, memory, event)
        except BaseException:
            pool.give_back(memory, event)  # a failed copy keeps the pool's size
            raise
        out = Buffer(
            CudaMemory(memory, size=n, event=event, pool=pool),
            caps=self._out_caps(buf.caps),
            sequence=buf.sequence,
        )
        out.copy_metadata_from(buf)
        return out

    def _upload(self, buf: Buffer, memory: CudaBuffer, event: CudaEvent) -> None:
        """Queue the copy of `buf` into `memory` and record `event` after it (waited for
        with `sync`)."""
        ctx, stream, staging = self._live()
        n = buf.size
        direct = self._direct(ctx, buf) if n else None
        if direct is not None:
            # From the page-locked pool itself. The source slot must outlive the copy: with
            # sync it is done before we push; without, the source is kept with the device
            # slot and let go when that slot is next loaned (its last copy waited for).
            sources = self._sources
            if sources.pop(id(memory), None) is not None:
                event.synchronize()
            stream.copy_to_device(memory.ptr, direct, n)
            event.record(stream)
            if self.sync:
                event.synchronize()
            else:
                sources[id(memory)] = buf
        else:
            pinned, staged = staging.take(n)
            host, addr = host_address(buf)
            self._memmove(pinned.ptr, addr, n)
            del host
            if n:
                stream.copy_to_device(memory.ptr, pinned.ptr, n)
            staged.record(stream)
            event.record(stream)
            if self.sync:
                event.synchronize()


class CudaDownload(_CudaTransform, factory="cudadownload"):
    """GPU buffers in, host buffers (pool slots) out; host buffers pass through."""

    klass = "Filter/Converter/Video/Hardware"
    description = "Copy buffers from CUDA device memory to host memory"

    device = Property(0, doc="CUDA device ordinal of the staging context", minimum=0)
    pool_slots = Property(16, doc="host buffers in the first pool", minimum=1)

    _alloc: BufferAllocator | None = None

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._retired: list[BufferAllocator] = []

    def start(self) -> None:
        self._open(self.device)
        self._caps_cache = None

    def stop(self) -> None:
        allocs, self._retired = self._retired, []
        alloc, self._alloc = self._alloc, None
        for each in [*allocs, *([alloc] if alloc is not None else [])]:
            each.close()
        super().stop()

    def _rewrite(self, caps: Caps | None) -> Caps | None:
        return host_caps(caps)

    def transform(self, buf: Buffer) -> Buffer | None:
        try:
            cai = buf.__cuda_array_interface__
        except AttributeError:
            return buf  # already in host memory
        _ctx, stream, staging = self._live()
        n = buf.size
        alloc = self._alloc
        if alloc is None or alloc.slot_size < n:
            if alloc is not None:  # its loans still read its pools: keep it until stop
                self._retired.append(alloc)
            alloc = self._alloc = BufferAllocator(
                max(n, 1),
                slots=self.pool_slots,
                name=self.name,
                flushing=lambda: self.flushing,
            )
        owner = cuda_memory(buf)
        if owner is not None:
            owner.wait(stream)
        pinned, staged = staging.take(n)
        if n:
            stream.copy_to_host(pinned.ptr, int(cai["data"][0]), n)
        staged.record(stream)
        staged.synchronize()
        out = alloc.buffer(n, self._out_caps(buf.caps), buf.sequence)
        if n:
            view = out.view
            host, addr = host_address(view)
            self._memmove(addr, pinned.ptr, n)
            del host
            view.release()
        out.copy_metadata_from(buf)
        return out
