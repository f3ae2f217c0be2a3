"""`Buffer`: the unit that flows through a pipeline.

A buffer is a window (`offset`, `size`) on memory someone else owns — a pool slot, a
segment, a `bytes` object — plus timing metadata and caps. It never copies unless asked
(`copy()`, `to_bytes()`). The memory view is made lazily: a buffer that nobody looks at
(`fakesrc ! identity ! fakesink`) costs one small object and no view.

Ownership and lifetime: the buffer holds a strong reference to its memory owner, so a
pool slot returns to its pool only when the last buffer (and every view made from it)
is gone. Once a pad pushes a buffer downstream it is read-only, so two branches of a
`tee` can never corrupt each other; `copy()` gives a writable buffer.

Python 3.11 has no buffer protocol for classes written in Python: `buf.view` is the
`memoryview` (on 3.12+ `memoryview(buf)` works too, through `__buffer__`), and
`np.asarray(buf)` is a view through `__array__`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from parallax.caps import Caps

CLOCK_TIME_NONE = -1
"""The value of `pts`, `dts`, `duration` and `offset` when they are not known (GStreamer's
GST_CLOCK_TIME_NONE / GST_BUFFER_OFFSET_NONE)."""


class MemoryOwner(Protocol):
    """What a buffer can sit on besides bytes-like objects: something with a `view`,
    either a method that makes a memoryview (`parallax.memory.Slot.view()`) or a
    memoryview attribute (`Segment.view`). The view must keep the memory mapped for as
    long as it lives.
    """

    @property
    def view(self) -> Any: ...


class BufferFlags(enum.IntFlag):
    """Per-buffer flags, named as GStreamer's GstBufferFlags."""

    NONE = 0
    LIVE = 1 << 0
    DISCONT = 1 << 1
    HEADER = 1 << 2
    GAP = 1 << 3
    DROPPABLE = 1 << 4
    DELTA_UNIT = 1 << 5
    MARKER = 1 << 6


@dataclass(frozen=True, slots=True)
class Metadata:
    """A snapshot of a buffer's timing metadata. Times are nanoseconds, -1 when unknown."""

    sequence: int = 0
    pts: int = CLOCK_TIME_NONE
    dts: int = CLOCK_TIME_NONE
    duration: int = CLOCK_TIME_NONE
    offset: int = CLOCK_TIME_NONE
    flags: BufferFlags = BufferFlags.NONE


class Buffer:
    """A zero-copy window on memory, with metadata and caps.

    Args:
        data: the memory: a pool `Slot`, a `Segment`, `bytes`, `bytearray`, a
            `memoryview` or a contiguous NumPy array. It is referenced, never copied.
        size: bytes of `data` the buffer covers (default: all of it from `start`).
        start: where the window begins inside `data`.
        caps: what the bytes are (`parallax.caps.Caps`), or None when not negotiated.
        sequence, pts, dts, duration, offset, flags: metadata; see `Metadata`.
        readonly: make the buffer read-only from the start (`bytes` always is).

    Raises:
        ValueError: the window falls outside `data`, or `data` is not contiguous.
        TypeError: `data` is not one of the accepted kinds.
    """

    __slots__ = (
        "_mem",
        "_owner",
        "_readonly",
        "_size",
        "_start",
        "caps",
        "dts",
        "duration",
        "flags",
        "offset",
        "pts",
        "sequence",
    )

    _mem: memoryview | None
    _owner: Any
    _readonly: bool
    _size: int
    _start: int
    caps: Caps | None
    sequence: int
    pts: int
    dts: int
    duration: int
    offset: int
    flags: int

    def __init__(
        self,
        data: MemoryOwner | bytes | bytearray | memoryview | np.ndarray[Any, Any],
        *,
        size: int | None = None,
        start: int = 0,
        caps: Caps | None = None,
        sequence: int = 0,
        pts: int = CLOCK_TIME_NONE,
        dts: int = CLOCK_TIME_NONE,
        duration: int = CLOCK_TIME_NONE,
        offset: int = CLOCK_TIME_NONE,
        flags: int = 0,
        readonly: bool = False,
    ) -> None:
        mem: memoryview | None
        if isinstance(data, bytes | bytearray | memoryview | np.ndarray):
            mem = memoryview(data)  # type: ignore[arg-type]  # ndarray exports a buffer
            if not mem.contiguous:
                raise ValueError("Buffer needs contiguous memory; pass a contiguous copy")
            if mem.format != "B" or mem.ndim != 1:
                mem = mem.cast("B")
            owner: Any = None
            total = mem.nbytes
            readonly = readonly or mem.readonly
        elif hasattr(data, "view"):
            # A Slot's view() is made lazily; a Segment's `view` is already a memoryview.
            owner = data
            view = data.view
            mem = view if isinstance(view, memoryview) else None
            total = mem.nbytes if mem is not None else _owner_size(data)
        else:
            raise TypeError(
                f"Buffer takes a Slot, Segment, bytes, bytearray, memoryview or ndarray, "
                f"not {type(data).__name__}"
            )
        if size is None:
            size = total - start
        if start < 0 or size < 0 or start + size > total:
            raise ValueError(
                f"buffer window [{start}, {start + size}) is outside the {total}-byte memory"
            )
        self._owner = owner
        self._mem = mem
        self._start = start
        self._size = size
        self._readonly = readonly
        self.caps = caps
        self.sequence = sequence
        self.pts = pts
        self.dts = dts
        self.duration = duration
        self.offset = offset
        self.flags = flags

    @classmethod
    def from_owner(  # noqa: PLR0917 (once per buffer: positional arguments are the cheapest)
        cls,
        owner: MemoryOwner,
        size: int,
        caps: Caps | None = None,
        sequence: int = 0,
        pts: int = CLOCK_TIME_NONE,
        dts: int = CLOCK_TIME_NONE,
        duration: int = CLOCK_TIME_NONE,
        offset: int = CLOCK_TIME_NONE,
        flags: int = 0,
        readonly: bool = False,
    ) -> Buffer:
        """A buffer on the first `size` bytes of `owner`, every field given: the per-buffer
        path of sources and transports (a fakesrc pool slot, a received slot of the
        shared-memory link). No checks, and no view until one is asked for (then
        `owner.view()` makes it). It sets the fields itself rather than through
        `__init__`, whose type dispatch and checks would double its cost.

        The caller guarantees `0 <= size <=` the owner's size; the buffer holds `owner`,
        so the memory lives as long as the buffer and its views.
        """
        buf = cls.__new__(cls)
        buf._owner = owner
        buf._mem = None
        buf._start = 0
        buf._size = size
        buf._readonly = readonly
        buf.caps = caps
        buf.sequence = sequence
        buf.pts = pts
        buf.dts = dts
        buf.duration = duration
        buf.offset = offset
        buf.flags = flags
        return buf

    # -- memory ---------------------------------------------------------------------

    @property
    def owner(self) -> Any:
        """The memory owner: what keeps the bytes alive (a pool `Slot`, a segment, bytes,
        a `CudaMemory`, ...). The buffer is `size` bytes from `owner_offset` of it."""
        return self._owner

    @property
    def owner_offset(self) -> int:
        """Where this buffer starts in its owner's memory (non-zero for a sub-buffer)."""
        return self._start

    @property
    def size(self) -> int:
        """Number of bytes in the buffer."""
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def readonly(self) -> bool:
        """True once the buffer was pushed downstream (or was made from read-only memory)."""
        return self._readonly

    def make_readonly(self) -> None:
        """Forbid writes from now on (pads call this on push). Views already handed out stay as
        they were: take them after the buffer is yours."""
        self._readonly = True

    @property
    def view(self) -> memoryview:
        """The bytes, as a `memoryview` (read-only if the buffer is). No copy.

        The view keeps the memory alive: a pool slot is not reused while it exists.
        """
        mem = self._mem
        if mem is None:
            mem = self._mem = self._owner.view()
        mem = mem[self._start : self._start + self._size]
        return mem.toreadonly() if self._readonly else mem

    def __buffer__(self, flags: int) -> memoryview:
        """Buffer protocol for Python 3.12+ (`memoryview(buf)`)."""
        return self.view

    def __release_buffer__(self, view: memoryview) -> None:
        """Buffer protocol for Python 3.12+: views of ours need no release work."""

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def to_bytes(self) -> bytes:
        """A copy of the bytes, as `bytes`. This copies; use `view` to avoid it."""
        return self.view.tobytes()

    def array(
        self, dtype: npt.DTypeLike = np.uint8, shape: tuple[int, ...] | None = None
    ) -> np.ndarray[Any, Any]:
        """A NumPy view of the bytes as `dtype` (and `shape`). No copy.

        Raises:
            ValueError: the size is not a multiple of the item size, or `shape` does not fit.
        """
        arr = np.frombuffer(self.view, dtype=dtype)
        return arr if shape is None else arr.reshape(shape)

    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> np.ndarray[Any, Any]:
        """`np.asarray(buf)`: a uint8 view (no copy), or a copy when NumPy asks for one."""
        arr = np.frombuffer(self.view, dtype=np.uint8)
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError("a dtype conversion needs a copy, and copy=False was given")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __dlpack__(self, **kwargs: Any) -> Any:
        """DLPack export of the bytes (uint8), no copy.

        Host memory goes through NumPy (kDLCPU). A read-only buffer is exported with
        DLPack 1.0's read-only flag; consumers that only speak DLPack 0.x (no
        `max_version`) cannot take read-only memory and get a BufferError from NumPy.

        GPU memory (an owner with `dlpack_window`, e.g. `CudaMemory`) is exported by the
        owner, narrowed to this buffer's window (kDLCUDA; `stream`, `max_version`,
        `dl_device`, `copy` as in the array API). Like `__cuda_array_interface__` it is
        always writable: read-only-once-pushed is not enforced on the GPU.
        """
        window = getattr(self._owner, "dlpack_window", None)
        if window is not None:
            return window(self._start, self._size, **kwargs)
        return np.frombuffer(self.view, dtype=np.uint8).__dlpack__(**kwargs)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """The CUDA Array Interface (v3) of a buffer in GPU memory: its owner's, narrowed
        to this buffer's window (`|u1`, `size` bytes), for `cupy.asarray(buf)` and
        `torch.as_tensor(buf, device="cuda")` without a copy. Always reported writable
        (torch refuses read-only), so read-only-once-pushed is not enforced on the GPU.

        Raises:
            AttributeError: the buffer is in host memory (so `hasattr` is False).
        """
        cai = getattr(self._owner, "__cuda_array_interface__", None)
        if cai is None:
            raise AttributeError("a buffer in host memory has no __cuda_array_interface__")
        return {
            **cai,
            "typestr": "|u1",
            "shape": (self._size,),
            "strides": None,
            "data": (int(cai["data"][0]) + self._start, False),
        }

    def __dlpack_device__(self) -> tuple[int, int]:
        """DLPack device: (kDLCPU, 0) for host memory; the owner's for GPU memory
        (an owner with `dlpack_window`), e.g. (kDLCUDA, 0)."""
        if getattr(self._owner, "dlpack_window", None) is not None:
            device: tuple[int, int] = self._owner.__dlpack_device__()
            return device
        return (1, 0)

    # -- derived buffers ------------------------------------------------------------

    def sub(self, start: int, size: int | None = None) -> Buffer:
        """A buffer on part of this one, sharing its memory and metadata (no copy).

        Raises:
            ValueError: the range falls outside this buffer.
        """
        if size is None:
            size = self._size - start
        if start < 0 or size < 0 or start + size > self._size:
            raise ValueError(
                f"sub-buffer [{start}, {start + size}) is outside this {self._size}-byte buffer"
            )
        buf = Buffer.from_owner(self._owner, size, self.caps, self.sequence)
        buf._mem = self._mem
        buf._start = self._start + start
        buf._readonly = self._readonly
        buf.copy_metadata_from(self)
        return buf

    def __getitem__(self, index: slice) -> Buffer:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("buffers are sliced with [start:stop] only; use .view for bytes")
        start, stop, _ = index.indices(self._size)
        return self.sub(start, max(stop - start, 0))

    def copy(self) -> Buffer:
        """A writable copy on fresh heap memory, with the same metadata and caps."""
        buf = Buffer(bytearray(self.view), caps=self.caps, sequence=self.sequence)
        buf.copy_metadata_from(self)
        return buf

    def copy_metadata_from(self, other: Buffer) -> None:
        """Take `other`'s pts, dts, duration, offset and flags (not its sequence or caps):
        what a transform that makes a new buffer for an old one keeps."""
        self.pts, self.dts, self.duration = other.pts, other.dts, other.duration
        self.offset, self.flags = other.offset, other.flags

    # -- metadata -------------------------------------------------------------------

    @property
    def metadata(self) -> Metadata:
        """A frozen snapshot of sequence, pts, dts, duration, offset and flags."""
        return Metadata(
            self.sequence, self.pts, self.dts, self.duration, self.offset, BufferFlags(self.flags)
        )

    def __repr__(self) -> str:
        caps = f" caps={self.caps}" if self.caps is not None else ""
        ro = " readonly" if self._readonly else ""
        pts = f" pts={self.pts}" if self.pts != CLOCK_TIME_NONE else ""
        return f"<Buffer #{self.sequence} {self._size} bytes{pts}{caps}{ro}>"


def _owner_size(owner: MemoryOwner) -> int:
    size = getattr(owner, "size", None)
    if isinstance(size, int):
        return size
    return int(owner.view().nbytes)
