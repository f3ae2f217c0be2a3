"""An arena's regions and the blocks carved from them: what a region is (`RegionKind`,
`RegionSpec`), what it reports (`RegionStats`), its bump state and live views, and
`ArenaBlock`, a block that checks its region's generation on every use (the rules are in
`_arena.py`'s docstring).
"""

from __future__ import annotations

import enum
import math
import mmap
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from parallax._errors import ClosedError, StaleReference

_PAGE = mmap.PAGESIZE
_Bytes = np.ndarray[tuple[int], np.dtype[np.uint8]]


class RegionKind(enum.Enum):
    """How a region's memory is recycled."""

    FRAME = "frame"  # reset wholesale by every end_frame()
    PERSISTENT = "persistent"  # lives until reset(region); may be write-protected


@dataclass(frozen=True, slots=True)
class RegionSpec:
    """A region's configured size in bytes and its kind."""

    size: int
    kind: RegionKind = RegionKind.FRAME


@dataclass(frozen=True, slots=True)
class RegionStats:
    """A snapshot of one region: bytes used now and at most, generation, live views."""

    kind: RegionKind
    size: int
    used: int
    peak: int
    generation: int
    live_views: int
    protected: bool


class _Region:
    __slots__ = (
        "addr",
        "extent",
        "generation",
        "kind",
        "name",
        "peak",
        "protected",
        "prune_at",
        "size",
        "start",
        "used",
        "views",
        "whole",
    )

    def __init__(self, name: str, spec: RegionSpec, start: int, track: bool) -> None:
        self.name, self.kind, self.size, self.start = name, spec.kind, spec.size, start
        self.extent = -(-spec.size // _PAGE) * _PAGE  # page-rounded, so mprotect fits it
        self.addr = 0
        self.used = self.peak = self.generation = 0
        self.protected = False
        self.views: list[weakref.ReferenceType[_Bytes]] | None = [] if track else None
        self.prune_at = 64
        self.whole: _Bytes | None = None

    def live(self) -> int:
        return 0 if self.views is None else sum(ref() is not None for ref in self.views)

    def prune(self) -> None:
        # Keeps the list O(live views) for PERSISTENT regions that are seldom reset.
        assert self.views is not None
        self.views = [ref for ref in self.views if ref() is not None]
        self.prune_at = max(64, 2 * len(self.views))


class ArenaBlock:
    """Bytes bump-allocated in an arena region; made only by `FrameArena.alloc()`.

    A block is valid for its region's current generation: after `end_frame()` (FRAME
    regions) or `reset()`, `view()` and `array()` raise `StaleReference`. The block holds
    no memory itself; the arena owns it.
    """

    __slots__ = ("_generation", "_offset", "_region", "_size")

    _generation: int
    _offset: int
    _region: _Region
    _size: int

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "ArenaBlock has no public constructor: allocate one with FrameArena.alloc()"
        )

    @property
    def region(self) -> str:
        """The name of the region the block lives in."""
        return self._region.name

    @property
    def offset(self) -> int:
        """Byte offset of the block from the start of its region."""
        return self._offset

    @property
    def size(self) -> int:
        """The block's size in bytes."""
        return self._size

    @property
    def generation(self) -> int:
        """The region generation the block was allocated in."""
        return self._generation

    @property
    def stale(self) -> bool:
        """True once the block's region was reset (its bytes may belong to another block)."""
        return self._generation != self._region.generation

    def view(self) -> memoryview:
        """A memoryview of the block's bytes; no copy. Read-only while the region is protected.

        The view is valid until the region's next reset; the arena tracks it (unless
        `stale_views="off"`) and reports it if it is still alive then.

        Raises:
            StaleReference: the region was reset since the block was allocated.
            ClosedError: the arena is closed.
        """
        r = self._region
        if self._generation != r.generation:
            raise self._stale_error()
        whole = r.whole
        if whole is None:
            raise ClosedError(f"block in region {r.name!r}: its arena is closed")
        start = r.start + self._offset
        exporter = whole[start : start + self._size]
        views = r.views
        if views is not None:
            views.append(weakref.ref(exporter))
            if len(views) > r.prune_at:
                r.prune()
        mv = exporter.data
        return mv.toreadonly() if r.protected else mv

    def array(
        self, dtype: npt.DTypeLike, shape: int | tuple[int, ...] | None = None
    ) -> npt.NDArray[Any]:
        """A NumPy view of the block as `dtype`, shaped `shape` (default: as many as fit).

        Same lifetime, tracking and protection as `view()`.

        Raises:
            StaleReference: the region was reset since the block was allocated.
            ValueError: the block's size is not a multiple of the itemsize (shape=None), or
                `shape` needs more bytes than the block has.
            ClosedError: the arena is closed.
        """
        dt = np.dtype(dtype)
        if shape is None:
            if self._size % dt.itemsize:
                raise ValueError(
                    f"block of {self._size:,} bytes in region {self._region.name!r} is not a "
                    f"whole number of {dt} items ({dt.itemsize} bytes each); pass a shape"
                )
            dims: tuple[int, ...] = (self._size // dt.itemsize,)
        else:
            dims = (shape,) if isinstance(shape, int) else tuple(shape)
        count = math.prod(dims)
        if count * dt.itemsize > self._size:
            raise ValueError(
                f"shape {dims} of {dt} needs {count * dt.itemsize:,} bytes, but the block in "
                f"region {self._region.name!r} has {self._size:,}"
            )
        return np.frombuffer(self.view(), dt, count=count).reshape(dims)

    def _stale_error(self) -> StaleReference:
        r = self._region
        return StaleReference(
            f"block of {self._size:,} bytes at offset {self._offset:,} of region {r.name!r} "
            f"is from generation {self._generation}, but the region was reset and is now at "
            f"generation {r.generation}; allocate a new block",
            region=r.name,
            generation=self._generation,
        )

    def __repr__(self) -> str:
        state = " stale" if self.stale else ""
        return (
            f"<ArenaBlock region={self._region.name!r} offset={self._offset:,} "
            f"size={self._size:,} generation={self._generation}{state}>"
        )


_new_block = ArenaBlock.__new__
