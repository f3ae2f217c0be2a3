"""`wait_or_flush` and `FLUSH_POLL`, the one flush-poll wait: what it returns, when it
gives up, how fast a stop reaches a blocked thread, and a pool loan written with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax._errors import FlowError
from parallax.pipeline import FLUSH_POLL, BufferAllocator, wait_or_flush
from parallax.pipeline._pipeline import STOP_TIMEOUT

_NOTHING = (None, False)  # what a wait returns when its time passed first


def test_a_tick_is_well_inside_the_stop_timeout() -> None:
    # A stop joins each element's threads within STOP_TIMEOUT; a blocked thread notices
    # the stop within one tick, so several elements stopping in turn still fit.
    assert 0 < FLUSH_POLL * 10 <= STOP_TIMEOUT


@given(
    st.lists(st.sampled_from(_NOTHING), max_size=6),
    st.one_of(st.integers(), st.binary(max_size=2), st.just(True), st.just(0)),
    st.integers(0, 8),
)
def test_it_returns_the_first_thing_delivered_before_a_flush(
    misses: list[Any], value: Any, flush_after: int
) -> None:
    waits: list[float] = []
    results: Iterator[Any] = iter([*misses, value])

    def wait(timeout: float) -> Any:
        waits.append(timeout)
        return next(results)

    looks = iter(range(100))

    def flushing() -> bool:
        return next(looks) >= flush_after

    got = wait_or_flush(wait, flushing)
    if flush_after > len(misses):  # delivered first: falsy values (0, b"") too
        assert got is value and len(waits) == len(misses) + 1
    else:  # the flush came first, after `flush_after` waits that delivered nothing
        assert got is None and len(waits) == flush_after
    assert set(waits) <= {FLUSH_POLL}


def test_a_thread_already_flushing_does_not_wait_at_all() -> None:
    def wait(timeout: float) -> bool:
        raise AssertionError("waited although flushing")

    assert wait_or_flush(wait, lambda: True) is None


def test_what_wait_raises_comes_through_unchanged() -> None:
    def wait(timeout: float) -> None:
        raise OSError(9, "Bad file descriptor")

    with pytest.raises(OSError, match="Bad file descriptor"):
        wait_or_flush(wait, lambda: False)


def test_an_event_set_by_another_thread_ends_the_wait_at_once() -> None:
    done = threading.Event()
    timer = threading.Timer(0.02, done.set)
    timer.start()
    t0 = time.monotonic()
    try:
        assert wait_or_flush(done.wait, lambda: False) is True
    finally:
        timer.join()
    assert time.monotonic() - t0 < FLUSH_POLL + 0.5  # Event.wait wakes on set(), no tick


def test_a_stop_reaches_a_blocked_wait_within_one_tick() -> None:
    never = threading.Event()  # nothing will be delivered
    stopping = threading.Event()
    took: list[float] = []

    def streaming() -> None:
        t0 = time.monotonic()
        assert wait_or_flush(never.wait, stopping.is_set) is None
        took.append(time.monotonic() - stopping_at[0])
        assert time.monotonic() - t0 >= 0.1  # it did wait before the stop

    stopping_at = [0.0]
    thread = threading.Thread(target=streaming)
    thread.start()
    time.sleep(0.15)
    stopping_at[0] = time.monotonic()
    stopping.set()
    thread.join(STOP_TIMEOUT)
    assert not thread.is_alive() and took
    assert took[0] <= FLUSH_POLL + 0.25  # one tick, plus scheduling slack on a busy box


def test_an_allocator_waiting_for_a_return_gets_it_or_gives_up_on_a_stop() -> None:
    stopping = threading.Event()
    alloc = BufferAllocator(64, slots=1, max_bytes=64, name="src0", flushing=stopping.is_set)
    try:
        held = [alloc.slot()]  # the only slot: the next loan must wait for a return
        timer = threading.Timer(0.1, held.clear)  # its last reference goes: it returns
        timer.start()
        try:
            again = alloc.slot()  # the slot that came back
        finally:
            timer.join()
        assert again.index == 0 and alloc.pools[0].in_use == 1
        stopping.set()
        t0 = time.monotonic()
        with pytest.raises(FlowError, match="src0: stopped while waiting for a free buffer"):
            alloc.slot()  # flushing already: refused without waiting a tick
        assert time.monotonic() - t0 < FLUSH_POLL
        del again
    finally:
        alloc.close()
