"""Slot pools: loans, returns by refcount, views that pin slots, exhaustion, threads."""

from __future__ import annotations

import copy
import gc
import itertools
import os
import pickle
import threading
import time
import weakref
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from parallax._errors import ClosedError, PoolExhausted, StateError
from parallax.memory import HeapSegment, MemfdSegment, MemoryType, Slot, SlotPool


def test_pool_basics() -> None:
    with SlotPool(1000, 4, name="frames") as pool:
        assert (pool.name, pool.slot_size, pool.slots, pool.stride) == ("frames", 1000, 4, 1024)
        assert pool.available == 4
        assert pool.in_use == 0
        assert not pool.closed
        assert pool.segment.memory_type is MemoryType.MEMFD
        slot = pool.loan()
        assert (slot.index, slot.offset, slot.size) == (0, 0, 1000)
        assert slot.pool is pool
        assert pool.available == 3
        assert pool.in_use == 1
        view = slot.view()
        assert len(view) == 1000
        assert not view.readonly
        view[:3] = b"abc"
        assert pool.segment.mmap[:3] == b"abc"
        del view, slot
        assert pool.available == 4
    assert pool.closed
    assert pool.segment.closed


def test_slots_are_aligned_and_views_see_their_own_bytes() -> None:
    with SlotPool(100, 8, align=256) as pool:
        slots = [pool.loan() for _ in range(8)]
        for slot in slots:
            assert slot.offset % 256 == 0
            arr = np.frombuffer(slot.view(), np.uint8)
            assert arr.ctypes.data % 256 == 0
            arr[:] = slot.index
        for slot in slots:
            assert set(np.frombuffer(slot.readonly_view(), np.uint8)) == {slot.index}
        del slots, slot, arr  # return them all before close()


def test_alignment_above_the_page_size_is_honoured() -> None:
    with SlotPool(10, 3, align=1 << 16) as pool:
        slots = [pool.loan() for _ in range(3)]
        addresses = [np.frombuffer(s.view(), np.uint8).ctypes.data for s in slots]
        assert all(a % (1 << 16) == 0 for a in addresses)
        del slots


def test_exhaustion_raises_immediately_with_a_useful_message() -> None:
    with SlotPool(4096, 2, name="cam") as pool:
        held = [pool.loan(), pool.loan()]
        start = time.monotonic()
        with pytest.raises(PoolExhausted) as info:
            pool.loan()
        assert time.monotonic() - start < 0.1
        text = str(info.value)
        assert "'cam'" in text
        assert "2 slots of 4,096 bytes are on loan" in text
        assert "loan(timeout=...)" in text
        assert "bigger" in text
        assert info.value.pool == "cam"
        assert info.value.slots == 2
        assert isinstance(info.value, MemoryError)
        assert pool.try_loan() is None
        del held


def test_loan_with_timeout_waits_for_a_return() -> None:
    with SlotPool(64, 1) as pool:
        holder = [pool.loan()]

        def give_back() -> None:
            time.sleep(0.05)
            holder.clear()

        thread = threading.Thread(target=give_back)
        thread.start()
        slot = pool.loan(timeout=5.0)
        thread.join()
        assert slot.index == 0
        del slot


def test_loan_with_timeout_times_out() -> None:
    with SlotPool(64, 1, name="tiny") as pool:
        held = pool.loan()
        start = time.monotonic()
        with pytest.raises(PoolExhausted, match=r"'tiny' is exhausted after waiting 0.05 s"):
            pool.loan(timeout=0.05)
        assert 0.04 < time.monotonic() - start < 1.0
        with pytest.raises(PoolExhausted):
            pool.loan(timeout=0)
        with pytest.raises(ValueError, match="timeout must be >= 0, got -1"):
            pool.loan(timeout=-1)
        del held


def test_close_wakes_a_waiting_loan_with_closed_error() -> None:
    pool = SlotPool(64, 1, name="w")
    held = pool.loan()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.loan(timeout=5.0)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.05)
    with pytest.warns(ResourceWarning):
        pool.close()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], ClosedError)
    del held


def test_a_view_keeps_its_slot_on_loan_until_everything_derived_is_gone() -> None:
    with SlotPool(256, 2) as pool:
        slot = pool.loan()
        view = slot.view()
        arr = np.asarray(view)
        part = np.frombuffer(view[10:20], np.uint8)
        sub = view[100:]
        ro = slot.readonly_view()
        del slot
        assert pool.in_use == 1
        del view
        assert pool.in_use == 1, "returned while np.asarray(view) was alive"
        del arr
        assert pool.in_use == 1, "returned while np.frombuffer(view[10:20]) was alive"
        del part
        assert pool.in_use == 1, "returned while view[100:] was alive"
        del sub
        assert pool.in_use == 1, "returned while readonly_view() was alive"
        del ro
        assert pool.in_use == 0


def test_a_slot_with_a_live_view_is_never_loaned_again() -> None:
    with SlotPool(16, 1) as pool:
        arr = np.frombuffer(pool.loan().view(), np.uint8)  # the Slot itself is dropped at once
        with pytest.raises(PoolExhausted):
            pool.loan()
        del arr
        assert pool.loan().index == 0


def test_direct_slot_construction_is_refused() -> None:
    with pytest.raises(TypeError, match=r"no public constructor.*SlotPool\.loan"):
        Slot()


def test_a_slot_cannot_be_copied_or_pickled() -> None:
    with SlotPool(16, 2) as pool:
        slot = pool.loan()
        for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError, match="slot 0 cannot be copied or pickled"):
                duplicate(slot)
        del slot
        assert pool.available == 2


def test_dropping_a_pool_with_live_slots_does_not_crash() -> None:
    pool = SlotPool(128, 2)
    slot = pool.loan()
    view = slot.view()
    view[0] = 5
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    assert slot.pool is None
    assert view[0] == 5  # the mapping outlives the pool while a view holds it
    with pytest.raises(ClosedError, match="pool is gone"):
        slot.view()
    assert "collected pool" in repr(slot)
    del slot, view  # returning to a collected pool is a no-op


def test_close_with_slots_on_loan_warns_and_unmaps_after_the_last_return() -> None:
    pool = SlotPool(64, 4, name="busy")
    a, b = pool.loan(), pool.loan()
    view = b.view()
    with pytest.warns(
        ResourceWarning, match=r"'busy' closed with 2 of 4 slots on loan \(indices \[0, 1\]\)"
    ):
        pool.close()
    assert pool.closed
    assert not pool.segment.closed
    with pytest.raises(ClosedError, match="cannot loan from closed pool 'busy'"):
        pool.loan()
    with pytest.raises(ClosedError):
        pool.try_loan()
    view[0] = 1  # still mapped
    assert a.view()[0] == 0  # an outstanding slot can still be viewed
    del a
    assert not pool.segment.closed
    del b, view
    assert pool.segment.closed
    pool.close()  # idempotent


def _mapped(name: str) -> bool:
    with open("/proc/self/maps", encoding="utf-8") as f:
        return any(f"/memfd:{name} " in line for line in f)


def test_the_mapping_goes_exactly_when_the_last_view_of_a_closed_pool_goes() -> None:
    pool = SlotPool(64, 2, name="unmap-check")
    arr = np.asarray(pool.loan().view())
    with pytest.warns(ResourceWarning):
        pool.close()
    assert _mapped("unmap-check")
    del arr
    assert not _mapped("unmap-check")


def test_the_mapping_of_a_collected_pool_goes_with_its_last_view() -> None:
    pool = SlotPool(64, 2, name="gc-check")
    view = pool.loan().view()
    del pool
    gc.collect()
    assert _mapped("gc-check")
    view[0] = 1  # still valid memory
    del view
    assert not _mapped("gc-check")


def test_a_given_segment_is_not_closed_by_the_pool() -> None:
    with HeapSegment(4096, name="mine") as seg:
        with SlotPool(1024, 4, segment=seg) as pool:
            assert pool.segment is seg
            with pytest.raises(StateError, match="'mine'"):
                seg.close()  # the pool still uses it
            pool.loan().view()[0] = 9
        assert not seg.closed
        assert seg.view[0] == 9


def test_given_segment_must_be_big_enough_and_writable() -> None:
    with HeapSegment(4000, name="small") as seg:
        with pytest.raises(
            ValueError,
            match=r"'small' holds 4,000 bytes, but 4 slots of 1,000 bytes at a stride of "
            r"1,024 \(align 64\) need 4,072",
        ):
            SlotPool(1000, 4, segment=seg)
        with SlotPool(1000, 4, segment=seg, align=8) as pool:  # 4,000 exactly fits
            assert pool.stride == 1000
    seg2 = MemfdSegment(4096)
    ro = MemfdSegment.from_fd(os.dup(seg2.fd))
    seg2.close()
    with ro, pytest.raises(ValueError, match="read-only"):
        SlotPool(16, 1, segment=ro)
    with pytest.raises(ClosedError):
        SlotPool(16, 1, segment=ro)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slot_size": 0, "slots": 1}, "slot_size must be positive, got 0"),
        ({"slot_size": -5, "slots": 1}, "slot_size must be positive, got -5"),
        ({"slot_size": 8, "slots": 0}, "slots must be positive, got 0"),
        ({"slot_size": 8, "slots": 1, "align": 0}, "align must be a power of two, got 0"),
        ({"slot_size": 8, "slots": 1, "align": 48}, "align must be a power of two, got 48"),
        ({"slot_size": 8, "slots": 1, "align": -64}, "align must be a power of two, got -64"),
    ],
)
def test_bad_pool_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlotPool(**kwargs)


def test_repr() -> None:
    with SlotPool(10, 2, name="r") as pool:
        slot = pool.loan()
        assert repr(slot) == "<Slot 0 of pool 'r' offset=0 size=10>"
        assert "1/2 on loan" in repr(pool)
        del slot


def test_threads_never_share_an_index() -> None:
    pool = SlotPool(64, 8, name="mt")
    held: set[int] = set()
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        for _ in range(2000):
            slot = pool.try_loan()
            if slot is None:
                continue
            with lock:
                if slot.index in held:
                    failures.append(f"index {slot.index} loaned twice")
                held.add(slot.index)
            slot.view()[0] = slot.index
            with lock:
                held.discard(slot.index)
            del slot

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert pool.available == 8
    pool.close()


def test_threads_waiting_with_timeouts_all_get_slots() -> None:
    pool = SlotPool(64, 2)
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            slot = pool.loan(timeout=5.0)
            with lock:
                got.append(slot.index)
            time.sleep(0)
            del slot

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 250
    assert set(got) <= {0, 1}
    assert pool.available == 2
    pool.close()


class PoolMachine(RuleBasedStateMachine):
    """Random loans, view-pinning and drops keep the pool's books straight."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = SlotPool(24, 5, align=16)
        self.loans: dict[int, list[object]] = {}  # index -> what keeps it on loan

    slots = Bundle("slots")

    @rule(target=slots)
    def loan(self) -> int:
        if len(self.loans) == self.pool.slots:
            with pytest.raises(PoolExhausted):
                self.pool.loan()
            assert self.pool.try_loan() is None
            return -1
        slot = self.pool.loan()
        assert slot.index not in self.loans, "an index on loan was handed out again"
        self.loans[slot.index] = [slot]
        return slot.index

    @rule(index=slots, how=st.sampled_from(["view", "array", "readonly"]))
    def pin_with_a_view(self, index: int, how: str) -> None:
        keep = self.loans.get(index)
        if not keep or not isinstance(keep[0], Slot):
            return
        view = keep[0].view() if how != "readonly" else keep[0].readonly_view()
        keep.append(np.asarray(view) if how == "array" else view)

    @rule(index=consumes(slots), drop_slot_first=st.booleans())
    def drop(self, index: int, drop_slot_first: bool) -> None:
        keep = self.loans.get(index)
        if keep is None:
            return
        if drop_slot_first and len(keep) > 1 and isinstance(keep[0], Slot):
            del keep[0]
            assert index not in self.pool._free, "slot returned while a view was alive"
        del self.loans[index]
        keep.clear()
        assert index in self.pool._free

    @invariant()
    def books_balance(self) -> None:
        pool = self.pool
        assert pool.available + pool.in_use == pool.slots
        assert pool.in_use == len(self.loans)
        free = list(pool._free)
        assert len(free) == len(set(free))
        assert set(free).isdisjoint(self.loans)

    @invariant()
    def slots_do_not_overlap(self) -> None:
        spans = sorted(
            (keep[0].offset, keep[0].offset + keep[0].size)
            for keep in self.loans.values()
            if isinstance(keep[0], Slot)
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start
        assert all(s >= 0 and e <= self.pool.segment.size for s, e in spans)

    def teardown(self) -> None:
        self.loans.clear()
        self.pool.close()


PoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestPoolMachine = PoolMachine.TestCase
