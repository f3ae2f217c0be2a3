"""Frame arenas: the Layer-W "ventilated" memory model (seed 004).

A fixed budget is split into named regions of one heap segment. FRAME regions are
bump-allocated during a frame and reset wholesale at its boundary (`end_frame()`): no
per-allocation free, no fragmentation. PERSISTENT regions live until `reset()` and are
guarded. Every reset bumps the region's generation.

What is caught, and how:
- A block used after its region was reset: `ArenaBlock.view()`/`array()` compare the
  block's generation with the region's and raise `StaleReference`. Always on; one compare.
- Views still alive at a reset (a memoryview from `view()`, an array from `array()`, and
  anything sliced or converted from them): each exporter handed out is tracked by a weak
  reference; at the reset a live one is reported -- `stale_views="warn"` (default) warns,
  `"raise"` raises `StaleReference` before anything is reset (after one `gc.collect()`,
  so a view held only by a dead reference cycle is not blamed). Cost ≈ 0.15 µs a view.
- `poison=0xDD` fills what a reset region had used, so a raw view that slipped through
  reads an obvious pattern instead of plausible old data.
- `protect()` write-protects a PERSISTENT region with mprotect(2): views made while it is
  protected are read-only (writes raise), and a write through an older writable view is
  stopped by the MMU (SIGSEGV: the process dies, it does not corrupt).

What is not caught: raw addresses (`ctypes`, `__array_interface__`), views of the whole
segment (`arena.segment.view`), and, with `stale_views="off"`, live views at a reset.
Copies (`bytes(view)`) are not stale by definition. Arenas are not thread-safe: use one
from one thread (the frame loop), as the seed does.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import mmap
import operator
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Self

import numpy as np

from parallax._errors import BudgetExceeded, ClosedError, StaleReference, StateError

from ._region import ArenaBlock, RegionKind, RegionSpec, RegionStats, _Bytes, _new_block, _Region
from ._segment import HeapSegment

StaleViews = Literal["off", "warn", "raise"]


@functools.cache
def _libc_mprotect() -> Callable[[int, int, int], int]:
    fn = ctypes.CDLL(None, use_errno=True).mprotect
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _mprotect(addr: int, length: int, prot: int, region: str) -> None:
    """mprotect(2) a page-aligned range; a failure is an OSError naming the region."""
    if _libc_mprotect()(addr, length, prot) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mprotect of region {region!r} ({length:,} bytes): {os.strerror(err)}")


def _specs(regions: Mapping[str, RegionSpec | tuple[int, RegionKind]]) -> dict[str, RegionSpec]:
    out: dict[str, RegionSpec] = {}
    for name, value in regions.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"arena region names must be non-empty strings, got {name!r}")
        spec = value if isinstance(value, RegionSpec) else RegionSpec(*value)
        if not isinstance(spec.kind, RegionKind):
            raise ValueError(
                f"arena region {name!r}: kind must be a RegionKind (FRAME or PERSISTENT), "
                f"got {spec.kind!r}"
            )
        if operator.index(spec.size) <= 0:
            raise ValueError(f"arena region {name!r}: size must be positive, got {spec.size}")
        out[name] = spec
    if not out:
        raise ValueError("an arena needs at least one region")
    return out


class FrameArena:
    """A fixed budget split into named regions of one heap segment; bump allocation.

    Owns its segment: `close()` it, or use `with` (a forgotten arena is unmapped when its
    segment is garbage-collected). Not thread-safe: use it from one thread.
    """

    def __init__(
        self,
        budget: int,
        regions: Mapping[str, RegionSpec | tuple[int, RegionKind]],
        *,
        name: str = "arena",
        stale_views: StaleViews = "warn",
        poison: int | None = None,
    ) -> None:
        """Lay out `regions` (name -> RegionSpec or (size, kind)) within `budget` bytes.

        Each region starts on a page boundary (so it can be protected); the mapping is the
        sum of the page-rounded sizes. `stale_views` says what a reset does about views
        still alive ("off", "warn", "raise"); `poison` (0-255) fills reset bytes.

        Raises:
            ValueError: a non-positive budget or region size, no regions, a bad kind, the
                regions' sizes exceed `budget` (the message lists them), an unknown
                `stale_views`, or `poison` outside 0-255.
            OSError: the mapping failed.
        """
        budget = operator.index(budget)
        if budget <= 0:
            raise ValueError(f"arena {name!r}: budget must be positive, got {budget}")
        specs = _specs(regions)
        total = sum(s.size for s in specs.values())
        if total > budget:
            sizes = ", ".join(f"{n}={s.size:,}" for n, s in specs.items())
            raise ValueError(
                f"arena {name!r}: regions need {total:,} bytes ({sizes}) but the budget is "
                f"{budget:,}: {total - budget:,} bytes over"
            )
        if stale_views not in ("off", "warn", "raise"):
            raise ValueError(
                f"arena {name!r}: stale_views must be 'off', 'warn' or 'raise', got {stale_views!r}"
            )
        if poison is not None and not 0 <= poison <= 255:
            raise ValueError(f"arena {name!r}: poison must be a byte value 0-255, got {poison}")
        track = stale_views != "off"
        self._regions: dict[str, _Region] = {}
        start = 0
        for region_name, spec in specs.items():
            region = _Region(region_name, spec, start, track)
            self._regions[region_name] = region
            start += region.extent
        segment = HeapSegment(start, name=name)
        addr = segment._address()
        whole: _Bytes = np.frombuffer(segment.mmap, np.uint8)
        for region in self._regions.values():
            region.addr = addr + region.start
            region.whole = whole
        self._frame_regions = [r for r in self._regions.values() if r.kind is RegionKind.FRAME]
        self._segment = segment
        self._whole: _Bytes | None = whole
        self._name = name
        self._budget = budget
        self._stale_views: StaleViews = stale_views
        self._poison = poison
        self._frame = 0
        self._closed = False

    # -- the hot path -------------------------------------------------------------------

    def alloc(self, region: str, nbytes: int, *, align: int = 16) -> ArenaBlock:
        """Bump-allocate `nbytes` in `region`, at an address aligned to `align`.

        Ownership: the arena owns the bytes; the block is valid until the region's next
        reset (`end_frame()` for FRAME regions, `reset(region)` for any).

        Raises:
            BudgetExceeded: the region has not enough bytes left (region, requested, free).
            ValueError: unknown region, `nbytes` not positive, `align` not a power of two.
            StateError: the region is write-protected.
            ClosedError: the arena is closed.
        """
        try:
            r = self._regions[region]
        except KeyError:
            raise self._unknown(region) from None
        if nbytes <= 0 or align <= 0 or align & (align - 1):
            raise self._bad_alloc(region, nbytes, align)
        if r.whole is None:
            raise ClosedError(f"cannot allocate from closed arena {self._name!r}")
        if r.protected:
            raise StateError(
                f"cannot allocate in region {region!r}: it is write-protected; unprotect() it first"
            )
        offset = r.used + (-(r.addr + r.used) & (align - 1))
        end = offset + nbytes
        if end > r.size:
            free = r.size - r.used
            raise BudgetExceeded(
                f"region {region!r} cannot fit {nbytes:,} bytes (align {align}): {free:,} of "
                f"{r.size:,} bytes free in generation {r.generation}",
                region=region,
                requested=nbytes,
                free=free,
            )
        r.used = end
        if end > r.peak:  # noqa: PLR1730 - a compare is cheaper than max() on this path
            r.peak = end
        block = _new_block(ArenaBlock)
        block._region = r
        block._offset = offset
        block._size = nbytes
        block._generation = r.generation
        return block

    def end_frame(self) -> None:
        """Close the frame: reset every FRAME region and advance `frame`.

        Blocks of those regions become stale. Live views in them are reported per
        `stale_views`; with "raise", nothing is reset.

        Raises:
            StaleReference: `stale_views="raise"` and views into a FRAME region are alive.
            ClosedError: the arena is closed.
        """
        self._check_open()
        self._reset(self._frame_regions, "end_frame()")
        self._frame += 1

    def reset(self, region: str) -> None:
        """Reset one region (of either kind): its blocks become stale, its bytes free.

        Raises:
            StaleReference: `stale_views="raise"` and views into the region are alive.
            StateError: the region is write-protected.
            ValueError: unknown region.
            ClosedError: the arena is closed.
        """
        r = self._lookup(region)
        self._check_open()
        if r.protected:
            raise StateError(
                f"cannot reset region {region!r}: it is write-protected; unprotect() it first"
            )
        self._reset([r], f"reset({region!r})")

    def _reset(self, regions: Iterable[_Region], what: str) -> None:
        regions = list(regions)
        if self._stale_views != "off":
            live = [(r, n) for r in regions if (n := r.live())]
            if live and self._stale_views == "raise":
                gc.collect()  # a view held only by unreachable cycles is not a live one
                live = [(r, n) for r in regions if (n := r.live())]
            if live:
                where = ", ".join(f"{n} in {r.name!r} (generation {r.generation})" for r, n in live)
                message = (
                    f"{what} on arena {self._name!r}: views are still alive: {where} "
                    "(memoryviews or arrays from ArenaBlock.view()/array(), or anything made "
                    "from them); drop them before the reset, or copy what must outlive it "
                    "into a PERSISTENT region"
                )
                if self._stale_views == "raise":
                    first = live[0][0]
                    raise StaleReference(message, region=first.name, generation=first.generation)
                warnings.warn(message, RuntimeWarning, stacklevel=3)
        for r in regions:
            if self._poison is not None and r.used and r.whole is not None:
                r.whole[r.start : r.start + r.used] = self._poison
            r.used = 0
            r.generation += 1
            if r.views is not None:
                r.views = []
                r.prune_at = 64

    # -- protection ---------------------------------------------------------------------

    def protect(self, region: str) -> None:
        """Write-protect a PERSISTENT region (mprotect PROT_READ). Idempotent.

        New views are read-only; writes through older writable views fault (SIGSEGV).

        Raises:
            ValueError: unknown region, or a FRAME region.
            ClosedError: the arena is closed.
            OSError: mprotect failed.
        """
        r = self._protectable(region)
        if not r.protected:
            _mprotect(r.addr, r.extent, mmap.PROT_READ, region)
            r.protected = True

    def unprotect(self, region: str) -> None:
        """Make a protected PERSISTENT region writable again. Idempotent.

        Raises:
            ValueError: unknown region, or a FRAME region.
            ClosedError: the arena is closed.
            OSError: mprotect failed.
        """
        r = self._protectable(region)
        if r.protected:
            _mprotect(r.addr, r.extent, mmap.PROT_READ | mmap.PROT_WRITE, region)
            r.protected = False

    def _protectable(self, region: str) -> _Region:
        r = self._lookup(region)
        self._check_open()
        if r.kind is not RegionKind.PERSISTENT:
            raise ValueError(
                f"only PERSISTENT regions can be protected; {region!r} is a FRAME region, "
                "reset every frame"
            )
        return r

    # -- state --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The arena's name, used in messages."""
        return self._name

    @property
    def budget(self) -> int:
        """The configured budget in bytes (the regions' sizes sum to at most this)."""
        return self._budget

    @property
    def frame(self) -> int:
        """Number of `end_frame()` calls so far."""
        return self._frame

    @property
    def regions(self) -> dict[str, RegionSpec]:
        """The regions' configuration, in layout order (a new dict each call)."""
        return {n: RegionSpec(r.size, r.kind) for n, r in self._regions.items()}

    @property
    def segment(self) -> HeapSegment:
        """The arena's own segment (its views bypass generation checks: for diagnostics)."""
        return self._segment

    @property
    def closed(self) -> bool:
        """True once `close()` succeeded."""
        return self._closed

    def stats(self) -> dict[str, RegionStats]:
        """A snapshot per region: kind, size, used, peak, generation, live views, protected."""
        return {
            n: RegionStats(r.kind, r.size, r.used, r.peak, r.generation, r.live(), r.protected)
            for n, r in self._regions.items()
        }

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the arena. Idempotent; blocks then raise ClosedError.

        Raises:
            StateError: views of its regions are still alive; the arena stays open, so drop
                them and close again.
        """
        if self._closed:
            return
        # Drop our own references first: the frombuffer base holds an export of the mapping.
        whole_ref = weakref.ref(self._whole) if self._whole is not None else None
        self._whole = None
        for r in self._regions.values():
            r.whole = None
        try:
            self._segment.close()
        except StateError as e:
            whole = whole_ref() if whole_ref is not None else None
            if whole is None:  # only something else (e.g. segment.view) held the mapping
                whole = np.frombuffer(self._segment.mmap, np.uint8)
            self._whole = whole
            for r in self._regions.values():
                r.whole = whole
            live = ", ".join(f"{r.name!r}: {n}" for r in self._regions.values() if (n := r.live()))
            raise StateError(
                f"cannot close arena {self._name!r}: views of its memory are still alive "
                f"({live or 'untracked'}); drop them, then close() again"
            ) from e
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"arena {self._name!r} is closed")

    def _lookup(self, region: str) -> _Region:
        try:
            return self._regions[region]
        except KeyError:
            raise self._unknown(region) from None

    def _unknown(self, region: str) -> ValueError:
        known = ", ".join(repr(n) for n in self._regions)
        return ValueError(f"arena {self._name!r} has no region {region!r}; its regions: {known}")

    def _bad_alloc(self, region: str, nbytes: int, align: int) -> ValueError:
        if nbytes <= 0:
            return ValueError(f"alloc in region {region!r}: nbytes must be positive, got {nbytes}")
        return ValueError(f"alloc in region {region!r}: align must be a power of two, got {align}")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"frame {self._frame}"
        return f"<FrameArena {self._name!r} budget={self._budget:,} {state}>"
