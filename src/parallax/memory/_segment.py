"""Segments: one contiguous mapping with one owner.

A segment is an `mmap.mmap` plus what backs it (nothing, a memfd, huge pages, a file)
and an owner that calls `close()`. Pools and arenas carve views out of it.

Lifetime rules, and the one trap they exist for: NumPy arrays built with
`np.ndarray(..., buffer=mm)` do NOT hold a buffer export on the mmap (NumPy releases the
buffer and keeps only a reference), so `mmap.close()` would succeed under them and the next
access would fault. Everything in this package therefore builds its views from
`np.frombuffer(mm)`, whose base is a `memoryview` that does hold an export: while any view
lives, `mmap.close()` raises `BufferError`, which `Segment.close()` reports as a
`StateError`. The garbage-collection path (`weakref.finalize`) never raises: it closes the
fd and, if views still hold the mapping, leaves the unmapping to the mmap object itself,
which unmaps when its last view goes (CPython's `mmap_object_dealloc`).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import mmap
import os
import weakref
from pathlib import Path
from typing import Final, Self

import numpy as np

from parallax._errors import ClosedError, StateError

# Missing as constants in Python 3.11's mmap/fcntl modules; the numbers are the kernel's
# (include/uapi/linux/mman.h MAP_HUGETLB, include/uapi/linux/fcntl.h F_SEAL_FUTURE_WRITE).
MAP_HUGETLB: Final = getattr(mmap, "MAP_HUGETLB", 0x40000)
F_SEAL_FUTURE_WRITE: Final = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)


class MemoryType(enum.Enum):
    """What backs a segment."""

    HEAP = "heap"
    MEMFD = "memfd"
    HUGEPAGE = "hugepage"
    FILE = "file"


def _release_mapping(mm: mmap.mmap, fd: int) -> None:
    """Finalizer body: close `fd` (if any) and unmap `mm`; never raises for live views.

    If views of the mapping are still alive, `mm.close()` raises `BufferError`; the
    mapping then stays until the last view is released, when the mmap object unmaps
    itself. That is the memory-safe outcome, not an error to report from a finalizer.
    """
    if fd >= 0:
        os.close(fd)
    with contextlib.suppress(BufferError):
        mm.close()


def _check_size(size: int, what: str) -> int:
    size = int(size)
    if size <= 0:
        raise ValueError(f"{what} must be a positive number of bytes, got {size}")
    return size


class Segment:
    """A contiguous mapping with one owner; the base class of every segment type.

    The segment owns its mapping (and fd, if any): `close()` it, or use `with`. A
    forgotten segment is unmapped when garbage-collected (`weakref.finalize`).

    `Segment` itself is not constructed directly: use `HeapSegment`, `MemfdSegment`,
    `HugePageSegment` or `FileSegment`.
    """

    def __init__(
        self,
        mm: mmap.mmap,
        *,
        size: int,
        memory_type: MemoryType,
        name: str,
        readonly: bool,
        fd: int = -1,
    ) -> None:
        if type(self) is Segment:
            raise TypeError(
                "Segment is a base class: make a HeapSegment, MemfdSegment, "
                "HugePageSegment or FileSegment"
            )
        self._mmap: mmap.mmap | None = mm  # None once closed (see release)
        self._fd = fd
        self._size = size
        self._memory_type = memory_type
        self._name = name
        self._readonly = readonly
        # The callback must not reference self, or self would never be collected.
        self._finalizer = weakref.finalize(self, _release_mapping, mm, fd)

    @property
    def size(self) -> int:
        """Length of the mapping in bytes."""
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def memory_type(self) -> MemoryType:
        """What backs the mapping."""
        return self._memory_type

    @property
    def name(self) -> str:
        """A name for messages (the memfd name, the file path, ...)."""
        return self._name

    @property
    def readonly(self) -> bool:
        """True if the mapping is read-only (views refuse writes)."""
        return self._readonly

    @property
    def closed(self) -> bool:
        """True once `close()` (or the garbage-collection net) has released the segment."""
        return self._mmap is None or not self._finalizer.alive

    @property
    def mmap(self) -> mmap.mmap:
        """The underlying `mmap.mmap`; owned by the segment, valid until `close()`.

        Raises:
            ClosedError: the segment is closed.
        """
        mm = self._mmap
        if mm is None:
            raise ClosedError(f"{self._describe()} is closed")
        return mm

    @property
    def view(self) -> memoryview:
        """A memoryview of the whole mapping (read-only if the segment is).

        The view holds the mapping: `close()` refuses (StateError) while it lives.

        Raises:
            ClosedError: the segment is closed.
        """
        mm = self._mmap
        if mm is None:
            raise ClosedError(f"cannot view {self._describe()}: it is closed")
        return memoryview(mm)

    def _address(self) -> int:
        """Virtual address of the first byte of the mapping (for alignment and mprotect)."""
        probe = np.frombuffer(self.mmap, np.uint8, count=1)
        return int(probe.ctypes.data)

    def release(self) -> None:
        """Close without raising for live views (an owner's garbage path; see the module):
        what a pool or a link does with a segment whose buffers may outlive it.

        Dropping our reference leaves the views as the mmap object's only owners, so the
        mapping goes exactly when the last of them does.
        """
        self._finalizer()
        self._mmap = None

    def close(self) -> None:
        """Unmap the segment and close its fd. Idempotent.

        Raises:
            StateError: views of the mapping are still alive (memoryviews, NumPy arrays, or
                a pool or arena built on it); the segment stays open and usable, so drop
                them and call `close()` again. Its `__cause__` is mmap's `BufferError`.
        """
        mm = self._mmap
        if mm is None:
            return
        try:
            mm.close()
        except BufferError as e:
            raise StateError(
                f"cannot close {self._describe()}: views of its {self._size:,} bytes are "
                "still alive (memoryviews, NumPy arrays, slots, or a pool or arena built on "
                "it); drop or close them first, then close() again"
            ) from e
        self.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _describe(self) -> str:
        return f"{type(self).__name__} {self._name!r} ({self._size:,} bytes)"

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self._readonly else "read-write")
        return f"<{type(self).__name__} {self._name!r} size={self._size:,} {state}>"


class HeapSegment(Segment):
    """Anonymous private memory: fast, process-local, not shareable by fd.

    Owns its mapping: `close()` it, or use `with`.
    """

    def __init__(self, size: int, *, name: str = "heap") -> None:
        """Map `size` bytes of zeroed anonymous memory.

        Raises:
            ValueError: `size` is not positive.
            OSError: the kernel refused the mapping.
        """
        size = _check_size(size, "HeapSegment size")
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        super().__init__(mm, size=size, memory_type=MemoryType.HEAP, name=name, readonly=False)


class MemfdSegment(Segment):
    """Shared memory backed by a memfd: shareable by fd (`socket.send_fds`), sealable.

    Owns its fd and mapping: `close()` it, or use `with`. The fd is close-on-exec.
    """

    def __init__(self, size: int, *, name: str = "parallax") -> None:
        """Create a memfd of `size` zeroed bytes and map it read-write, shared.

        Raises:
            ValueError: `size` is not positive.
            OSError: memfd_create, ftruncate or mmap failed (nothing is leaked).
        """
        size = _check_size(size, "MemfdSegment size")
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)  # a failed constructor leaks nothing
            raise
        super().__init__(
            mm, size=size, memory_type=MemoryType.MEMFD, name=name, readonly=False, fd=fd
        )

    @classmethod
    def from_fd(
        cls, fd: int, *, size: int | None = None, readonly: bool = True, name: str | None = None
    ) -> MemfdSegment:
        """Map a memfd received from elsewhere (e.g. by `socket.recv_fds`).

        Takes ownership of `fd`: it is closed by the segment's `close()`, and also when
        this call fails. `size` defaults to the file's size; a larger `size` is refused
        (touching pages past the end of a memfd raises SIGBUS). `readonly` maps it
        PROT_READ, which also works on a peer's fd sealed against writes. `name` defaults
        to the memfd's own name, as /proc/self/fd shows it. A read-only segment maps a
        read-only reopen of the memfd, so it never blocks `seal(write=True)`.

        Raises:
            ValueError: `size` is not positive or exceeds the file's size.
            OSError: fstat or mmap failed (e.g. EPERM: writable map of a write-sealed fd).
        """
        try:
            st_size = os.fstat(fd).st_size
            if name is None:
                name = _memfd_name(fd)
            if size is None:
                if st_size == 0:
                    raise ValueError(f"cannot map memfd {name!r} (fd {fd}): it is empty")
                size = st_size
            size = _check_size(size, "MemfdSegment.from_fd size")
            if size > st_size:
                raise ValueError(
                    f"cannot map {size:,} bytes of memfd {name!r} (fd {fd}): it holds only "
                    f"{st_size:,} bytes, and pages past its end would fault (SIGBUS)"
                )
            if readonly:
                mm = _map_readonly(fd, size)
            else:
                mm = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)
        except BaseException:
            os.close(fd)  # we own fd from the first line on
            raise
        self = cls.__new__(cls)
        Segment.__init__(
            self, mm, size=size, memory_type=MemoryType.MEMFD, name=name, readonly=readonly, fd=fd
        )
        return self

    @property
    def fd(self) -> int:
        """The memfd; owned by the segment (dup it to keep it past `close()`).

        Raises:
            ClosedError: the segment is closed.
        """
        if not self._finalizer.alive:
            raise ClosedError(f"{self._describe()} is closed: its fd is gone")
        return self._fd

    def seal(
        self,
        *,
        shrink: bool = True,
        grow: bool = True,
        write: bool = False,
        future_write: bool = False,
    ) -> None:
        """Add seals (fcntl F_ADD_SEALS; memfd_create(2)); seals are never removed.

        `shrink`/`grow` forbid ftruncate smaller/larger; `write` forbids every write
        (F_SEAL_WRITE); `future_write` forbids new writable mappings and write() while
        existing writable mappings, such as this segment's own, keep working.

        Raises:
            StateError: `write=True` while a writable shared mapping exists (EBUSY), which
                includes this segment's own mapping unless it was mapped read-only.
            ClosedError: the segment is closed.
            OSError: any other refusal, e.g. EPERM once F_SEAL_SEAL is set.
        """
        flags = (
            (fcntl.F_SEAL_SHRINK if shrink else 0)
            | (fcntl.F_SEAL_GROW if grow else 0)
            | (fcntl.F_SEAL_WRITE if write else 0)
            | (F_SEAL_FUTURE_WRITE if future_write else 0)
        )
        try:
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, flags)
        except OSError as e:
            if e.errno == errno.EBUSY and write:
                own = "" if self._readonly else ", and this segment's own mapping is writable"
                raise StateError(
                    f"cannot seal writes on {self._describe()}: F_SEAL_WRITE needs every "
                    f"writable shared mapping of the memfd gone (EBUSY){own}; use "
                    "seal(future_write=True) to keep this mapping and forbid new writers, or "
                    "close it and seal a read-only MemfdSegment.from_fd(os.dup(fd))"
                ) from e
            raise


def _map_readonly(fd: int, size: int) -> mmap.mmap:
    """Map `fd` read-only through a read-only open of the same file.

    A PROT_READ MAP_SHARED mapping of the O_RDWR memfd would still count as writable
    (VM_MAYWRITE: it could be mprotect'ed writable), so F_SEAL_WRITE would fail with
    EBUSY while it exists. Mapping an O_RDONLY reopen (/proc/self/fd) cannot become
    writable and does not block sealing.
    """
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return mmap.mmap(ro, size, access=mmap.ACCESS_READ)
    finally:
        os.close(ro)  # the mmap object keeps its own duplicate


def _memfd_name(fd: int) -> str:
    """The name a memfd was created with; /proc shows it as '/memfd:NAME (deleted)'."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd{fd}"
    target = target.removesuffix(" (deleted)")
    return target.removeprefix("/memfd:") if target.startswith("/memfd:") else target


class FileSegment(Segment):
    """A mapped file: read-only (default), or read-write and persistent.

    Owns its mapping (the file itself outlives it): `close()` it, or use `with`.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, writable: bool = False, size: int | None = None
    ) -> None:
        """Map `path`.

        Read-only maps the whole file. `writable=True` maps it shared read-write, so
        writes reach the file (`flush()` forces them out); with `size`, the file is
        created if missing and extended (never shrunk) to `size` bytes, and the first
        `size` bytes are mapped.

        Raises:
            ValueError: the file is empty (a 0-byte mapping is impossible), `size` is not
                positive, or `size` is given without `writable=True`.
            OSError: the file cannot be opened or mapped (FileNotFoundError, ...).
        """
        p = Path(path)
        if size is not None:
            size = _check_size(size, "FileSegment size")
            if not writable:
                raise ValueError(
                    f"FileSegment({str(p)!r}, size={size}) creates or extends the file, "
                    "so it needs writable=True"
                )
        flags = (os.O_RDWR | (os.O_CREAT if size is not None else 0)) if writable else os.O_RDONLY
        fd = os.open(p, flags | os.O_CLOEXEC, 0o644)
        try:
            length = os.fstat(fd).st_size
            if size is not None:
                if length < size:
                    os.ftruncate(fd, size)
                length = size
            if length == 0:
                raise ValueError(
                    f"cannot map {str(p)!r}: the file is empty (0 bytes); to create it with "
                    "a size, use FileSegment(path, writable=True, size=N)"
                )
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            mm = mmap.mmap(fd, length, access=access)
        finally:
            os.close(fd)  # the mmap object keeps its own duplicate of the fd
        self._path = p
        super().__init__(
            mm, size=length, memory_type=MemoryType.FILE, name=str(p), readonly=not writable
        )

    @property
    def path(self) -> Path:
        """The mapped file's path."""
        return self._path

    def flush(self) -> None:
        """Write dirty pages back to the file (msync); a no-op for read-only mappings.

        Raises:
            ClosedError: the segment is closed.
            OSError: msync failed.
        """
        mm = self.mmap
        if not self._readonly:
            mm.flush()
