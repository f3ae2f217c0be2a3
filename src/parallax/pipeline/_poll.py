"""The flush-poll wait: how a streaming thread blocked in a wait notices a stop.

Operations: `wait_or_flush(wait, flushing)` calls `wait(FLUSH_POLL)` until it delivers
what it waits for or `flushing()` turns true. Every wait that a stop must be able to end
— a pool loan, a queue's `get`, a sender's done event, an `accept()`, a bus poll — is
written with it, so "how long a stopping pipeline waits for a blocked thread" is one
number in one place.

Why a poll, not a wake-up: most of these waits are in C (`SimpleQueue.get`,
`Event.wait`, `socket.accept`) and cannot be told "the pipeline is flushing" except by
their timeout; a wait that has a wake-up as well (a condition the stopper notifies)
still polls, so a missed wake-up costs at most one tick, never the stop.

Limits: a thread blocked somewhere else (inside an element's own code) is not reached;
the pipeline waits `STOP_TIMEOUT` for it and reports it left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

_T = TypeVar("_T")

FLUSH_POLL: Final = 0.05
"""Seconds between looks at `flushing()` while a streaming thread waits (50 ms).

The bound on how long a stop waits for a blocked streaming thread to notice it: each
thread leaves within one FLUSH_POLL, well inside `STOP_TIMEOUT` (1 s, the spine issue's
"stop flushes and joins every thread within a second"), even with several elements
stopping one after another. Shorter costs wake-ups on idle threads (20 a second each
here); longer makes Ctrl-C feel slow. (GStreamer has no such number: its waits are woken
by the flush itself, e.g. `gst_poll_set_flushing` for a socket wait.)"""


def wait_or_flush(wait: Callable[[float], _T | None], flushing: Callable[[], bool]) -> _T | None:
    """Wait until `wait` delivers, giving up when `flushing()` turns true.

    Args:
        wait: waits at most the seconds it is given; returns what it waited for, or None
            (or False, as `threading.Event.wait` does) when that time passed first.
        flushing: looked at before each wait; True ends the wait (a stopping pipeline).

    Returns:
        What `wait` delivered; None when `flushing()` ended the wait first (at once if
        it is true already: a stopping thread does not wait even one tick).

    Raises:
        Whatever `wait` or `flushing` raise, unchanged.
    """
    while not flushing():
        got = wait(FLUSH_POLL)
        if got is not None and got is not False:
            return got
    return None
