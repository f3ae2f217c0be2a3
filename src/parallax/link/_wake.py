"""Waiting and waking across the shared-memory link: spin first, sleep last, wake a sleeper.

Operations: `spin()` (a side that finds nothing: an empty descriptor ring, an empty pool,
a subscriber with no room), `wake_if_sleeping()` (a side that just published: descriptors,
releases), `drain()` (a woken side empties its eventfd).

Plan: a side that finds nothing to do spins for a while (`spin()`); one that finds nothing
still sets its sleeping flag in the control block, fences, looks once more, and sleeps in
poll() on its wake eventfd. The other side publishes, fences (`_ring.fence`), and writes
that eventfd only if the flag is set (`wake_if_sleeping`): Dekker's handshake, in which one
of the two always sees the other, so no wake-up is lost and no syscall is made while both
are awake. The sleep loops themselves stay with their owners (`Subscriber._wait`,
`Publisher._await_release`): what they poll and what ends them differ.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final, TypeVar

from ._ring import Words

T = TypeVar("T")

# iceoryx2's subscribers poll; ours spin this long before sleeping. A buffer that comes
# within it costs no wake-up: on our 2-vCPU VM an eventfd wake-up takes 20-50 us from
# write to running, and once both sides of a stream sleep they wait that long for each
# other, round after round (benches/ipc.py at 4 KiB with a flat 50 us spin: 98k-360k
# buffers/s from run to run; with this policy 360k-370k). The first HOT_SPIN seconds
# poll flat out, so a reply within microseconds, as in a ping-pong, is seen at once; after
# that each poll yields the CPU and the GIL (sched_yield, 0.2 us), so a spinner that
# shares its CPU with its peer (or with anything else) lets it run.
DEFAULT_SPIN: Final = 200e-6
HOT_SPIN: Final = 20e-6


def spin(poll: Callable[[], T | None], seconds: float) -> T | None:
    """Call `poll()` until it returns something, for at most `seconds`: flat out for the
    first HOT_SPIN seconds, then yielding the CPU between calls. None if nothing came."""
    clock = time.perf_counter
    now = clock()
    end, hot = now + seconds, now + min(seconds, HOT_SPIN)
    while now < end:
        got = poll()
        if got is not None:
            return got
        now = clock()
        if now > hot:
            os.sched_yield()
    return None


def wake_if_sleeping(
    words: Words, flag: int, fd: int, _write: Callable[[int, int], None] = os.eventfd_write
) -> None:
    """Wake the other end through its eventfd `fd` if its `flag` word says it sleeps (or
    is about to). Call it after publishing and `fence()`. Never blocks (the eventfds are
    non-blocking).

    The fence orders our stores (the entries just published) before our load of the
    flag; the sleeper sets its flag, fences, and looks again before it sleeps, so one of
    us sees the other (`_ring.py`). `_write` is bound as a default, so a finalizer that
    releases a buffer can call this while the interpreter exits and clears globals.
    """
    if words[flag]:
        try:
            _write(fd, 1)
        except BlockingIOError:
            pass  # the counter is full: the sleeper has a wake-up pending anyway


def drain(fd: int) -> None:
    """Reset a non-blocking wake eventfd that poll() said is readable."""
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass  # another reader of the same eventfd took it first
