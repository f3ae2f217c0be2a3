"""Frame arenas: bump allocation, frame resets, stale blocks and views, protection."""

from __future__ import annotations

import itertools
import mmap
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from parallax._errors import BudgetExceeded, ClosedError, StaleReference, StateError
from parallax.memory import ArenaBlock, FrameArena, RegionKind, RegionSpec, RegionStats

FRAME, PERSISTENT = RegionKind.FRAME, RegionKind.PERSISTENT
PAGE = mmap.PAGESIZE


def make(**kwargs: object) -> FrameArena:
    regions = {"gpu": RegionSpec(4096, FRAME), "scene": (8192, FRAME), "logic": (4096, PERSISTENT)}
    return FrameArena(1 << 16, regions, **kwargs)  # type: ignore[arg-type]


def address(block: ArenaBlock) -> int:
    return int(np.frombuffer(block.view(), np.uint8).ctypes.data)


def test_bump_allocation_and_alignment() -> None:
    with make() as arena:
        a = arena.alloc("scene", 10)
        b = arena.alloc("scene", 100, align=64)
        c = arena.alloc("scene", 1, align=1)
        assert (a.region, a.offset, a.size, a.generation) == ("scene", 0, 10, 0)
        assert b.offset == 64
        assert address(b) % 64 == 0
        assert c.offset == 164
        assert arena.stats()["scene"] == RegionStats(FRAME, 8192, 165, 165, 0, 0, False)
        assert arena.regions == {
            "gpu": RegionSpec(4096, FRAME),
            "scene": RegionSpec(8192, FRAME),
            "logic": RegionSpec(4096, PERSISTENT),
        }


def test_blocks_view_their_own_bytes_and_arrays_have_the_asked_shape() -> None:
    with make(stale_views="off") as arena:
        a, b = arena.alloc("gpu", 64), arena.alloc("gpu", 64)
        a.view()[:] = b"\x01" * 64
        b.array(np.float32)[:] = 2.5
        assert bytes(a.view()) == b"\x01" * 64
        grid = b.array("f4", (4, 4))
        assert grid.shape == (4, 4)
        assert grid.dtype == np.float32
        assert (grid == 2.5).all()
        del grid  # arrays pin the mapping: close() refuses while one lives
        assert b.array(np.uint16, 3).shape == (3,)
        with pytest.raises(
            ValueError, match="needs 68 bytes, but the block in region 'gpu' has 64"
        ):
            b.array(np.float32, (17,))
        odd = arena.alloc("gpu", 6)
        with pytest.raises(ValueError, match="not a whole number of float32 items"):
            odd.array(np.float32)


def test_regions_start_on_page_boundaries() -> None:
    with make(stale_views="off") as arena:
        for name in ("gpu", "scene", "logic"):
            assert address(arena.alloc(name, 1, align=1)) % PAGE == 0


def test_budget_exceeded_names_region_request_and_free() -> None:
    with make() as arena:
        arena.alloc("gpu", 4000)
        with pytest.raises(BudgetExceeded) as info:
            arena.alloc("gpu", 100)
        assert "region 'gpu' cannot fit 100 bytes (align 16): 96 of 4,096 bytes free" in str(
            info.value
        )
        assert (info.value.region, info.value.requested, info.value.free) == ("gpu", 100, 96)
        assert isinstance(info.value, MemoryError)
        arena.alloc("gpu", 96)  # exactly what is left fits
        with pytest.raises(BudgetExceeded):
            arena.alloc("gpu", 1)


def test_regions_over_budget_is_a_precise_value_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"regions need 5,000 bytes \(a=3,000, b=2,000\) but the budget is 4,096: "
        r"904 bytes over",
    ):
        FrameArena(4096, {"a": (3000, FRAME), "b": (2000, PERSISTENT)})


def test_end_frame_makes_frame_blocks_stale_and_keeps_persistent_ones() -> None:
    with make() as arena:
        frame_block = arena.alloc("scene", 32)
        keep = arena.alloc("logic", 32)
        keep.view()[:4] = b"save"
        arena.end_frame()
        assert arena.frame == 1
        assert frame_block.stale
        assert not keep.stale
        with pytest.raises(StaleReference) as info:
            frame_block.view()
        text = str(info.value)
        assert "region 'scene' is from generation 0" in text
        assert "now at generation 1" in text
        assert (info.value.region, info.value.generation) == ("scene", 0)
        with pytest.raises(StaleReference):
            frame_block.array(np.uint8)
        assert bytes(keep.view()[:4]) == b"save"
        again = arena.alloc("scene", 32)
        assert again.offset == 0
        assert again.generation == 1
        assert arena.stats()["scene"].used == 32
        assert arena.stats()["scene"].peak == 32


def test_reset_of_a_persistent_region() -> None:
    with make() as arena:
        keep = arena.alloc("logic", 100)
        arena.reset("logic")
        assert keep.stale
        assert arena.stats()["logic"].generation == 1
        assert arena.stats()["logic"].used == 0
        assert arena.stats()["logic"].peak == 100


def test_a_live_view_at_the_frame_boundary_warns_by_default() -> None:
    with make() as arena:
        view = arena.alloc("scene", 16).view()
        arr = np.asarray(view)[4:]  # derived: still pins the exporter
        del view
        assert arena.stats()["scene"].live_views == 1
        with pytest.warns(RuntimeWarning, match=r"1 in 'scene' \(generation 0\)"):
            arena.end_frame()
        del arr
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arena.end_frame()  # nothing alive: no warning, and old views are not re-reported


def test_strict_mode_raises_and_resets_nothing() -> None:
    with make(stale_views="raise") as arena:
        block = arena.alloc("gpu", 16)
        arr = block.array(np.uint8)
        with pytest.raises(StaleReference, match=r"end_frame.*1 in 'gpu'") as info:
            arena.end_frame()
        assert info.value.region == "gpu"
        assert arena.frame == 0
        assert not block.stale
        arr[0] = 1
        del arr
        arena.end_frame()
        assert block.stale
        assert arena.frame == 1


def test_strict_mode_ignores_views_held_only_by_garbage_cycles() -> None:
    with make(stale_views="raise") as arena:
        cycle: list[object] = [arena.alloc("gpu", 8).view()]
        cycle.append(cycle)
        del cycle
        arena.end_frame()


def test_off_mode_tracks_nothing() -> None:
    with make(stale_views="off") as arena:
        view = arena.alloc("gpu", 8).view()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arena.end_frame()
        assert arena.stats()["gpu"].live_views == 0
        del view


def test_poison_fills_what_a_reset_region_used() -> None:
    with make(poison=0xDD, stale_views="off") as arena:
        view = arena.alloc("scene", 40).view()
        view[:] = b"\x00" * 40
        arena.end_frame()
        assert bytes(view) == b"\xdd" * 40  # a stale raw view reads the pattern
        del view


def test_tracking_list_stays_bounded_without_resets() -> None:
    with make() as arena:
        block = arena.alloc("logic", 8)
        for _ in range(1000):
            block.view()
        assert len(arena._regions["logic"].views or []) <= 128


def test_protect_makes_a_persistent_region_read_only() -> None:
    with make() as arena:
        block = arena.alloc("logic", 64)
        block.view()[:2] = b"ok"
        arena.protect("logic")
        arena.protect("logic")  # idempotent
        assert arena.stats()["logic"].protected
        assert block.view().readonly
        with pytest.raises(TypeError):
            block.view()[0] = 1
        arr = block.array(np.uint8)
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
        del arr
        assert _page_permissions(address(block)).startswith("r-")
        with pytest.raises(StateError, match="write-protected"):
            arena.alloc("logic", 8)
        with pytest.raises(StateError, match="write-protected"):
            arena.reset("logic")
        arena.unprotect("logic")
        arena.unprotect("logic")
        assert _page_permissions(address(block)).startswith("rw")
        block.view()[0] = ord("O")
        assert bytes(block.view()[:2]) == b"Ok"


def test_only_persistent_regions_can_be_protected() -> None:
    with make() as arena, pytest.raises(ValueError, match="'scene' is a FRAME region"):
        arena.protect("scene")


def _page_permissions(addr: int) -> str:
    with open("/proc/self/maps", encoding="ascii") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms
    raise AssertionError(f"address {addr:#x} is not mapped")


def test_a_write_through_an_old_view_of_a_protected_region_faults() -> None:
    code = textwrap.dedent(
        """
        from parallax.memory import FrameArena, RegionKind
        arena = FrameArena(4096, {"logic": (4096, RegionKind.PERSISTENT)})
        view = arena.alloc("logic", 8).view()
        arena.protect("logic")
        print("protected", flush=True)
        view[0] = 1
        print("not reached", flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout == "protected\n"
    assert result.returncode == -11  # SIGSEGV: the MMU stopped the write


def test_close_with_live_views_is_refused_then_works() -> None:
    arena = make()
    block = arena.alloc("gpu", 8)
    view = block.view()
    with pytest.raises(StateError, match=r"arena 'arena'.*'gpu': 1"):
        arena.close()
    assert not arena.closed
    block.view()[0] = 3  # still fully usable
    del view
    arena.close()
    arena.close()
    assert arena.closed
    assert arena.segment.closed
    with pytest.raises(ClosedError):
        block.view()
    with pytest.raises(ClosedError):
        arena.alloc("gpu", 8)
    with pytest.raises(ClosedError):
        arena.end_frame()


def test_close_refused_for_a_segment_view_alone() -> None:
    arena = make()
    raw = arena.segment.view
    with pytest.raises(StateError, match="untracked"):
        arena.close()
    arena.alloc("gpu", 8).view()[0] = 1  # the arena was restored
    del raw
    arena.close()


def test_direct_block_construction_is_refused() -> None:
    with pytest.raises(TypeError, match=r"FrameArena\.alloc"):
        ArenaBlock()


@pytest.mark.parametrize(
    ("budget", "regions", "kwargs", "message"),
    [
        (0, {"a": (1, FRAME)}, {}, "budget must be positive, got 0"),
        (-1, {"a": (1, FRAME)}, {}, "budget must be positive, got -1"),
        (100, {}, {}, "at least one region"),
        (100, {"a": (0, FRAME)}, {}, "region 'a': size must be positive, got 0"),
        (100, {"a": (-4, FRAME)}, {}, "region 'a': size must be positive, got -4"),
        (100, {"a": (10, "frame")}, {}, "kind must be a RegionKind"),
        (100, {"": (10, FRAME)}, {}, "non-empty strings"),
        (100, {"a": (10, FRAME)}, {"stale_views": "loud"}, "stale_views must be"),
        (100, {"a": (10, FRAME)}, {"poison": 256}, "poison must be a byte value"),
    ],
)
def test_bad_arena_arguments(
    budget: int, regions: dict[str, tuple[int, object]], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        FrameArena(budget, regions, **kwargs)  # type: ignore[arg-type]


def test_bad_alloc_arguments() -> None:
    with make() as arena:
        with pytest.raises(
            ValueError, match=r"no region 'ui'; its regions: 'gpu', 'scene', 'logic'"
        ):
            arena.alloc("ui", 8)
        with pytest.raises(ValueError, match="nbytes must be positive, got 0"):
            arena.alloc("gpu", 0)
        with pytest.raises(ValueError, match="nbytes must be positive, got -8"):
            arena.alloc("gpu", -8)
        with pytest.raises(ValueError, match="align must be a power of two, got 24"):
            arena.alloc("gpu", 8, align=24)
        with pytest.raises(ValueError, match="no region 'ui'"):
            arena.reset("ui")


class ArenaMachine(RuleBasedStateMachine):
    """Random allocations and resets against a model of each region's bump pointer."""

    SIZES = {"f": 3000, "g": 700, "p": 5000}

    def __init__(self) -> None:
        super().__init__()
        self.arena = FrameArena(
            1 << 16,
            {"f": (3000, FRAME), "g": (700, FRAME), "p": (5000, PERSISTENT)},
            stale_views="raise",
        )
        self.used = dict.fromkeys(self.SIZES, 0)
        self.blocks: list[ArenaBlock] = []

    @rule(
        region=st.sampled_from(["f", "g", "p"]),
        nbytes=st.integers(1, 1200),
        align=st.sampled_from([1, 2, 8, 16, 64, 256, 4096]),
    )
    def alloc(self, region: str, nbytes: int, align: int) -> None:
        offset = -(-self.used[region] // align) * align  # regions start page-aligned
        if offset + nbytes > self.SIZES[region]:
            with pytest.raises(BudgetExceeded) as info:
                self.arena.alloc(region, nbytes, align=align)
            assert info.value.free == self.SIZES[region] - self.used[region]
            return
        block = self.arena.alloc(region, nbytes, align=align)
        assert block.offset == offset
        assert address(block) % align == 0
        self.used[region] = offset + nbytes
        self.blocks.append(block)

    @rule()
    def end_frame(self) -> None:
        self.arena.end_frame()
        self.used["f"] = self.used["g"] = 0

    @precondition(lambda self: self.used["p"] > 0)
    @rule()
    def reset_persistent(self) -> None:
        self.arena.reset("p")
        self.used["p"] = 0

    @invariant()
    def live_blocks_are_inside_their_region_and_disjoint(self) -> None:
        self.blocks = [b for b in self.blocks if not b.stale]
        spans: dict[str, list[tuple[int, int]]] = {}
        for b in self.blocks:
            assert b.offset >= 0
            assert b.offset + b.size <= self.SIZES[b.region]
            spans.setdefault(b.region, []).append((b.offset, b.offset + b.size))
        for region_spans in spans.values():
            region_spans.sort()
            for (_, end), (start, _) in itertools.pairwise(region_spans):
                assert end <= start

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.arena.stats()
        for name, used in self.used.items():
            assert stats[name].used == used
            assert stats[name].peak >= used

    def teardown(self) -> None:
        self.blocks.clear()
        self.arena.close()


ArenaMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestArenaMachine = ArenaMachine.TestCase
