"""Shared memory: segments, slot pools with loans, and frame arenas.

Layout (each module one concept; import from here):

- ``_segment.py`` -- ``Segment`` and its kinds: ``HeapSegment``, ``MemfdSegment``,
  ``FileSegment``; ``MemoryType``.
- ``_hugepage.py`` -- ``HugePageSegment``: hugetlbfs, then transparent huge pages.
- ``_pool.py``    -- ``SlotPool`` and its loans, ``Slot``; ``loan_view``: a view that keeps
  a loan alive.
- ``_arena.py``   -- ``FrameArena``: the per-frame "ventilated" memory model.
- ``_region.py``  -- an arena's regions (``RegionKind``, ``RegionSpec``, ``RegionStats``)
  and the blocks carved from them (``ArenaBlock``).

This layer imports nothing from Parallax but ``parallax._errors``.
"""

from ._arena import FrameArena as FrameArena
from ._hugepage import HugePageSegment as HugePageSegment
from ._pool import Slot as Slot
from ._pool import SlotPool as SlotPool
from ._pool import loan_view as loan_view
from ._region import ArenaBlock as ArenaBlock
from ._region import RegionKind as RegionKind
from ._region import RegionSpec as RegionSpec
from ._region import RegionStats as RegionStats
from ._segment import FileSegment as FileSegment
from ._segment import HeapSegment as HeapSegment
from ._segment import MemfdSegment as MemfdSegment
from ._segment import MemoryType as MemoryType
from ._segment import Segment as Segment

__all__ = [
    "ArenaBlock",
    "FileSegment",
    "FrameArena",
    "HeapSegment",
    "HugePageSegment",
    "MemfdSegment",
    "MemoryType",
    "RegionKind",
    "RegionSpec",
    "RegionStats",
    "Segment",
    "Slot",
    "SlotPool",
    "loan_view",
]

# Tracebacks and reprs name the public module, not the private one that defines the class.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
