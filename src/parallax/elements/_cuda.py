"""`cudaupload` and `cudadownload`: buffers that live in CUDA device memory.

    appsrc ! cudaupload ! tee name=t  t. ! appsink name=a  t. ! cudadownload ! filesink

A GPU buffer is an ordinary `Buffer` whose memory owner is a `CudaMemory`: a slot of a
device pool (a `parallax.gpu.CudaBuffer`, shareable by CUDA IPC) plus the `CudaEvent`
recorded after the copy that filled it. Metadata, caps, `sub()` and `tee` work as for
host buffers; the bytes never come to the host by accident: `buf.view`, `np.asarray(buf)`,
`bytes(buf)` raise `CudaMemoryError` ("buffer lives on cuda:0; use cudadownload or
cupy.asarray(buf)"). `buf.__cuda_array_interface__` (from the owner, windowed to the
buffer) is what `cupy.asarray(buf)` and `torch.as_tensor(buf, device="cuda")` take,
without a copy; `buf.__dlpack__()` (delegated to the owner, windowed the same way) is
what `jax.dlpack.from_dlpack(buf)`, `torch.from_dlpack(buf)` and `cupy.from_dlpack(buf)`
take, without a copy, the consumer's stream waiting on the buffer's event.

Caps: the caps parser refuses GStreamer caps features (`video/raw(memory:CUDAMemory)`),
so GPU caps carry a field instead: `cudaupload` adds `memory=cuda` to each structure and
`cudadownload` removes it.

Copies: `cudaupload` copies each host buffer (split across `copy-threads` threads when
large: one thread's memmove is the bottleneck) into a ring of pinned (page-locked) staging
slots, queues `cuMemcpyHtoDAsync` into a device slot on its own non-blocking stream and
records the slot's event; with `sync=true` (the default) it waits for that event before
pushing, so any consumer (CuPy, torch) may read the memory at once. With `sync=false` it
pushes at once and consumers order themselves on the event (`CudaMemory.wait(stream)` or
`synchronize()`; `cudadownload` does it on the GPU). `cudadownload` makes its stream wait
for the event, copies device -> pinned staging -> a host pool slot (`BufferAllocator`).

Lifetimes: a device slot returns to its pool when the last reference to its `CudaMemory`
goes (the buffers on it, and CuPy arrays or torch tensors made from them, which hold the
buffer). Stopping the element closes the free slots; slots still on loan are freed when
their last buffer goes.
"""

from __future__ import annotations

import ctypes
import queue
from abc import abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from parallax._errors import FlowError, ParallaxError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.caps._structure import Structure
from parallax.gpu import CudaBuffer, CudaContext, CudaEvent, CudaStream, PinnedHostBuffer
from parallax.gpu._cuda import DeviceMemory, check
from parallax.gpu._dlpack import KDL_CUDA, WholeExport, export_cuda
from parallax.memory import Segment, Slot
from parallax.pipeline import BufferAllocator, Event, EventType, Media, Pad, Property, Transform

MEMORY_FIELD = "memory"
CUDA_MEMORY = "cuda"
_POLL = 0.05  # seconds between checks for a stopping pipeline while waiting for a slot


class CudaMemoryError(ParallaxError, BufferError):
    """Host access (a memoryview, a NumPy array, bytes) to a buffer in GPU memory."""


class CudaMemory(WholeExport):
    """The memory owner of a GPU `Buffer`: `size` bytes at `ptr` on device `device`.

    Args:
        memory: the device memory (a `CudaBuffer`, an opened one, or any `DeviceMemory`);
            referenced, so it stays allocated while this owner lives.
        size: bytes of `memory` this owner covers (default: all).
        event: recorded after the work that filled the memory (None: already complete).
        pool: where the memory returns when this owner is collected (internal).

    `view()` raises `CudaMemoryError`: GPU memory has no host view. Wrap an owner in a
    Buffer with `Buffer(CudaMemory(mem), caps=...)`.
    """

    __slots__ = ("_pool", "device", "event", "memory", "ptr", "size")

    def __init__(
        self,
        memory: DeviceMemory,
        *,
        size: int | None = None,
        event: CudaEvent | None = None,
        pool: _DevicePool | None = None,
    ) -> None:
        n = memory.size if size is None else size
        if not 0 <= n <= memory.size:
            raise ValueError(f"size: expected 0..{memory.size}, got {n}")
        self.memory = memory
        self.ptr: int = memory.ptr
        self.size: int = n
        self.device: int = memory.context.ordinal
        self.event = event
        self._pool = pool

    def view(self) -> memoryview:
        """Always raises: the bytes are on the GPU, and a host view would be a copy."""
        raise CudaMemoryError(
            f"buffer lives on cuda:{self.device}; use cudadownload or cupy.asarray(buf) "
            "(a host view of GPU memory would need a copy)"
        )

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """CUDA Array Interface v3: `size` bytes (`|u1`). The stream entry is None: wait
        on `event` first when the producer did not (cudaupload sync=false)."""
        return {
            "version": 3,
            "typestr": "|u1",
            "shape": (self.size,),
            "strides": None,
            "data": (self.ptr, False),
            "stream": None,
        }

    def __dlpack_device__(self) -> tuple[int, int]:
        """DLPack device: (kDLCUDA, `device`)."""
        return (KDL_CUDA, self.device)

    def dlpack_window(
        self,
        start: int,
        size: int,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """`__dlpack__` of `size` bytes from `start` (what a GPU `Buffer` delegates to).

        The consumer's `stream` (array API rules: None or 1 the legacy default stream,
        2 the per-thread one, a handle, -1 for none) is made to wait on `event`, so a
        `cudaupload sync=false` buffer is safe to read on it. The capsule keeps this
        owner, hence the device slot, out of the pool until the consumer frees its tensor.

        Raises:
            BufferError: `dl_device` is another device, or `copy=True`.
            ValueError: the window falls outside the memory, or `stream` is 0.
        """
        if start < 0 or size < 0 or start + size > self.size:
            raise ValueError(
                f"DLPack window [{start}, {start + size}) is outside the {self.size}-byte memory"
            )
        return export_cuda(
            self,
            self.ptr + start,
            size,
            self.device,
            stream=stream,
            max_version=max_version,
            dl_device=dl_device,
            copy=copy,
            wait=self.wait if self.event is not None else None,
        )

    def synchronize(self) -> None:
        """Block until the work that filled the memory is done."""
        if self.event is not None:
            self.event.synchronize()

    def wait(self, stream: CudaStream | int | None = None) -> None:
        """Make `stream` wait, on the GPU, for the work that filled the memory."""
        if self.event is not None:
            self.event.wait(stream)

    def __del__(self) -> None:
        pool = self._pool
        if pool is not None:
            self._pool = None
            pool.give_back(self.memory, self.event)

    def __repr__(self) -> str:
        return f"<CudaMemory {self.size} bytes at {self.ptr:#x} on cuda:{self.device}>"


def cuda_memory(buf: Buffer) -> CudaMemory | None:
    """The `CudaMemory` under `buf`, or None for a buffer in host memory."""
    owner = buf._owner
    return owner if isinstance(owner, CudaMemory) else None


def is_cuda_caps(caps: Caps | None) -> bool:
    """True if `caps` say `memory=cuda` (every structure)."""
    if caps is None or caps.is_any or caps.is_empty:
        return False
    return all(s.get(MEMORY_FIELD) == CUDA_MEMORY for s in caps)


def cuda_caps(caps: Caps | None) -> Caps:
    """`caps` with `memory=cuda` in each structure (untyped bytes for None or ANY)."""
    structures: Iterable[Structure] = Caps.bytes() if caps is None or caps.is_any else caps
    return Caps(*(Structure(s.name, {**s, MEMORY_FIELD: CUDA_MEMORY}) for s in structures))


def host_caps(caps: Caps | None) -> Caps | None:
    """`caps` without the `memory` field."""
    if caps is None or caps.is_any:
        return caps
    return Caps(
        *(Structure(s.name, {k: v for k, v in s.items() if k != MEMORY_FIELD}) for s in caps)
    )


class _DevicePool:
    """Up to `slots` device buffers of `slot_size` bytes, each with its event; a slot
    comes back when its `CudaMemory` is collected (from any thread: `give_back` never
    blocks). Closing frees the free slots; loans are freed when they come back."""

    def __init__(self, ctx: CudaContext, slot_size: int, slots: int) -> None:
        self.ctx, self.slot_size, self.slots = ctx, slot_size, slots
        self._free: queue.SimpleQueue[tuple[CudaBuffer, CudaEvent]] = queue.SimpleQueue()
        self._made = 0
        self.closed = False

    def loan(self, name: str, flushing: Callable[[], bool]) -> tuple[CudaBuffer, CudaEvent]:
        """A free slot: a returned one, a new one while fewer than `slots` exist, or
        wait for a return (FlowError when `flushing()` turns true)."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._made < self.slots:
            self._made += 1
            return CudaBuffer(self.ctx, self.slot_size), CudaEvent(self.ctx)
        while not flushing():
            try:
                return self._free.get(timeout=_POLL)
            except queue.Empty:
                continue
        raise FlowError(f"{name}: stopped while waiting for a free GPU buffer", element=name)

    def give_back(self, memory: DeviceMemory, event: CudaEvent | None) -> None:
        if self.closed or not isinstance(memory, CudaBuffer) or event is None:
            return  # unreferenced now: the finalizers free it
        self._free.put((memory, event))

    def close(self) -> None:
        self.closed = True
        while True:
            try:
                memory, event = self._free.get_nowait()
            except queue.Empty:
                return
            memory.close()
            event.close()


class _Staging:
    """A ring of pinned host slots, each with the event recorded after its last copy:
    a slot is reused only once that copy is done. Slots grow to the largest buffer."""

    def __init__(self, ctx: CudaContext, slots: int) -> None:
        self.ctx = ctx
        self._slots: list[tuple[PinnedHostBuffer | None, CudaEvent]] = [
            (None, CudaEvent(ctx)) for _ in range(slots)
        ]
        self._next = 0
        self._used = [False] * slots

    def take(self, size: int) -> tuple[PinnedHostBuffer, CudaEvent]:
        i = self._next
        self._next = (i + 1) % len(self._slots)
        pinned, event = self._slots[i]
        if self._used[i]:
            event.synchronize()
        if pinned is None or pinned.size < size:
            if pinned is not None:
                pinned.close()
            pinned = PinnedHostBuffer(self.ctx, max(size, 1))
            self._slots[i] = (pinned, event)
        self._used[i] = True
        return pinned, event

    def close(self) -> None:
        for i, (pinned, event) in enumerate(self._slots):
            if self._used[i]:
                event.synchronize()
            if pinned is not None:
                pinned.close()
            event.close()
        self._slots = []


_CHUNK = 1 << 20  # the smallest piece a staging copy is split into across threads


class _Copier:
    """Host copies between pageable and pinned memory, split across `threads` threads
    for large buffers: one thread's `memmove` stays well below the host's memory
    bandwidth and far below PCIe's (`ctypes.memmove` releases the GIL)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, "cuda-staging") if threads > 1 else None

    def memmove(self, dst: int, src: int, n: int) -> None:
        parts = min(self.threads, n // _CHUNK)
        if self._pool is None or parts <= 1:
            if n:
                ctypes.memmove(dst, src, n)
            return
        step = -(-n // parts) + 63 & ~63  # cache-line multiples
        pieces = [(off, min(step, n - off)) for off in range(0, n, step)]
        futures = [
            self._pool.submit(ctypes.memmove, dst + off, src + off, size)
            for off, size in pieces[1:]
        ]
        off, size = pieces[0]
        ctypes.memmove(dst + off, src + off, size)
        for future in futures:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _address(src: Buffer | memoryview) -> tuple[np.ndarray[Any, Any], int]:
    """A uint8 array on the bytes of `src` (keep it while copying) and their address."""
    mem = src.view if isinstance(src, Buffer) else src
    arr = np.frombuffer(mem, dtype=np.uint8)
    return arr, int(arr.ctypes.data)


class _CudaTransform(Transform[Media, Media]):
    """What both elements share: the context, stream and staging ring, opened in
    `start` and released in `stop`, and the caps rewrite on the CAPS event."""

    staging_slots = Property(2, doc="pinned host staging slots in the ring", minimum=1, maximum=64)
    copy_threads = Property(
        4, doc="threads for host <-> pinned staging copies of large buffers", minimum=1, maximum=64
    )

    _ctx: CudaContext | None = None
    _stream: CudaStream | None = None
    _staging: _Staging | None = None
    _copier: _Copier | None = None

    def _open(self, ordinal: int) -> None:
        self._ctx = CudaContext(ordinal)
        self._stream = CudaStream(self._ctx)
        self._staging = _Staging(self._ctx, self.staging_slots)
        self._copier = _Copier(self.copy_threads)

    def _memmove(self, dst: int, src: int, n: int) -> None:
        copier = self._copier
        if copier is None:
            raise FlowError(f"{self.name}: not started", element=self.name)
        copier.memmove(dst, src, n)

    def _live(self) -> tuple[CudaContext, CudaStream, _Staging]:
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


class _Registration:
    """A shared-memory segment page-locked for the GPU (`cuMemHostRegister`): upstream
    pool slots are then copied to the device straight from where they are, at the
    pinned rate, with no staging memmove. Holds a NumPy export of the segment, so the
    mapping cannot go before `close()` unregisters it."""

    def __init__(self, ctx: CudaContext, segment: Segment) -> None:
        self.segment = segment
        self._holder: np.ndarray[Any, Any] | None = np.frombuffer(segment.view, np.uint8)
        self.base = int(self._holder.ctypes.data)
        self._ctx = ctx
        drv = ctx._drv
        flags = drv.CU_MEMHOSTREGISTER_PORTABLE
        if not self._holder.flags.writeable:
            flags |= drv.CU_MEMHOSTREGISTER_READ_ONLY
        ctx.activate()
        try:
            check("cuMemHostRegister", drv.cuMemHostRegister(self.base, self._holder.nbytes, flags))
        except BaseException:
            self._holder = None
            raise

    def close(self) -> None:
        """Unregister (the stream must be idle) and let the mapping go."""
        if self._holder is not None:
            self._ctx.activate()
            self._ctx._drv.cuMemHostUnregister(self.base)
            self._holder = None


def _slot_window(buf: Buffer) -> tuple[Segment, int] | None:
    """(segment, byte offset in it) of a buffer on a pool slot; None for other memory."""
    owner = buf._owner
    if not isinstance(owner, Slot):
        return None
    pool = owner._pool()
    if pool is None:
        return None
    return pool.segment, owner.offset + buf._start


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

    _pool: _DevicePool | None = None
    _registered: dict[int, _Registration | None] | None = None

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
            for reg in registered.values():
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
            try:
                registered[key] = _Registration(ctx, segment)
            except (ParallaxError, ValueError, TypeError, BufferError):
                registered[key] = None  # this memory cannot be page-locked: stage it
        reg = registered[key]
        if reg is None or reg.segment is not segment:
            return None
        return reg.base + offset

    def _rewrite(self, caps: Caps | None) -> Caps | None:
        return cuda_caps(caps)

    def transform(self, buf: Buffer) -> Buffer | None:
        if cuda_memory(buf) is not None:
            return buf  # already on a GPU
        ctx, stream, staging = self._live()
        n = buf.size
        pool = self._pool
        if pool is None or pool.slot_size < n:
            if pool is not None:
                pool.close()
            pool = self._pool = _DevicePool(ctx, max(n, 1), self.pool_slots)
        memory, event = pool.loan(self.name, lambda: self.flushing)
        direct = self._direct(ctx, buf) if n else None
        if direct is not None:
            # From the page-locked pool itself. The source slot must outlive the copy: with
            # sync it is done before we push; without, the source is kept with the device
            # slot and let go when that slot is next loaned (its last copy waited for).
            sources = self._sources
            if sources.pop(id(memory), None) is not None:
                event.synchronize()
            ctx.activate()
            check(
                "cuMemcpyHtoDAsync",
                ctx._drv.cuMemcpyHtoDAsync(memory.ptr, direct, n, stream.ptr),
            )
            event.record(stream)
            if self.sync:
                event.synchronize()
            else:
                sources[id(memory)] = buf
        else:
            pinned, staged = staging.take(n)
            host, addr = _address(buf)
            self._memmove(pinned.ptr, addr, n)
            del host
            if n:
                ctx.activate()
                check(
                    "cuMemcpyHtoDAsync",
                    ctx._drv.cuMemcpyHtoDAsync(memory.ptr, pinned.ptr, n, stream.ptr),
                )
            staged.record(stream)
            event.record(stream)
            if self.sync:
                event.synchronize()
        out = Buffer(
            CudaMemory(memory, size=n, event=event, pool=pool),
            caps=self._out_caps(buf.caps),
            sequence=buf.sequence,
        )
        out._copy_meta(buf)
        return out


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
        ctx, stream, staging = self._live()
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
            ctx.activate()
            check(
                "cuMemcpyDtoHAsync",
                ctx._drv.cuMemcpyDtoHAsync(pinned.ptr, int(cai["data"][0]), n, stream.ptr),
            )
        staged.record(stream)
        staged.synchronize()
        out = alloc.buffer(n, self._out_caps(buf.caps), buf.sequence)
        if n:
            view = out.view
            host, addr = _address(view)
            self._memmove(addr, pinned.ptr, n)
            del host
            view.release()
        out._copy_meta(buf)
        return out
