"""The pipeline clock: GStreamer's clock time, base time and running time.

    clock time    Clock.time(): monotonic nanoseconds (time.monotonic_ns, CLOCK_MONOTONIC)
    base time     the clock time at which the running time was 0: set going to PLAYING
    running time  clock time - base time, while PLAYING; it stands still while PAUSED

This is GStreamer's model (design docs "Clocks" and "Synchronisation": running_time =
clock_time - base_time; a sink renders a buffer when the running time reaches its
timestamp; going PLAYING -> PAUSED -> PLAYING moves the base time forward by the time spent
paused, so pausing does not count as running time). Streams here have no SEGMENT events:
every stream is one segment starting at 0, so a buffer's running time is its pts.

Operations: `Clock.time()`, `Clock.wait_until(clock_time, cancelled)` and
`Clock.interrupt()`; a pipeline's `Timeline` adds `play()`, `pause()`, `reset()`,
`running_time()` and `wait(running_time, cancelled)`.

Waits sleep on one condition variable per clock. Whatever may end a wait early notifies
it: an element that flushes (stop) calls `interrupt()`, and so do `play()`/`pause()`,
after which each waiter re-checks its `cancelled()` and re-computes its deadline from the
new base time. So a sink waiting for a pts an hour away leaves as soon as the pipeline
stops, and a wait across a pause ends when the running time, not the wall time, arrives.

Limits: a wait ends within the condition variable's timer slack (about 0.1 ms on Linux),
not exactly on time. A stage placed in another process (`procqueue`) runs a pipeline of
its own there, with its own base time, taken when that stage starts playing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOCK_TIME_NONE = -1
"""An unknown time (GStreamer's GST_CLOCK_TIME_NONE), the value of an unset `Buffer.pts`."""


def _never() -> bool:
    return False


class Clock:
    """A monotonic clock in nanoseconds, with waits that can be interrupted.

    One per pipeline (`Pipeline.clock`); it owns no thread and no OS resource.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()

    def time(self) -> int:
        """The clock time: nanoseconds of `time.monotonic_ns()` (CLOCK_MONOTONIC)."""
        return time.monotonic_ns()

    def wait_until(self, clock_time: int, cancelled: Callable[[], bool] = _never) -> int | None:
        """Block until the clock reaches `clock_time`.

        `cancelled` is checked first and again each time `interrupt()` wakes the waiter.

        Returns:
            The jitter: nanoseconds the clock was past `clock_time` when the wait ended
            (>= 0; large when that time had already passed). None if `cancelled()` became
            true first (GStreamer's GST_CLOCK_UNSCHEDULED).
        """
        cond, now = self._cond, self.time
        with cond:
            while True:
                if cancelled():
                    return None
                left = clock_time - now()
                if left <= 0:
                    return -left
                cond.wait(left / 1e9)

    def interrupt(self) -> None:
        """Wake every waiter, so each re-checks its `cancelled` (an element flushing, the
        pipeline pausing or playing). Waiters that are not cancelled go back to sleep."""
        with self._cond:
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"<Clock {self.time()} ns>"


class Timeline:
    """A pipeline's base time on its clock: what the running time is, and waits on it.

    The pipeline calls `reset()` going READY -> PAUSED, `play()` going PAUSED -> PLAYING
    and `pause()` going PLAYING -> PAUSED. Elements reach it through the pipeline
    (`Element.running_time()`, `Element.wait_running_time()`).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._base_time = CLOCK_TIME_NONE
        self._start_time = 0  # the running time when last paused (GStreamer's start time)
        self._playing = False

    @property
    def base_time(self) -> int:
        """The clock time at which the running time was 0; CLOCK_TIME_NONE before the
        first PLAYING. While PAUSED it keeps its last value."""
        return self._base_time

    @property
    def playing(self) -> bool:
        """True while the running time advances (the pipeline is PLAYING)."""
        return self._playing

    def running_time(self) -> int:
        """Nanoseconds of PLAYING so far: clock time - base time while playing, the value
        it had when paused while paused, 0 before the first PLAYING."""
        if self._playing:
            return self.clock.time() - self._base_time
        return self._start_time

    def reset(self) -> None:
        """A new stream (READY -> PAUSED): the next PLAYING starts at running time 0."""
        with self.clock._cond:
            self._start_time = 0
            self._playing = False

    def play(self) -> None:
        """PAUSED -> PLAYING: base time = now - the running time already played."""
        clock = self.clock
        with clock._cond:
            self._base_time = clock.time() - self._start_time
            self._playing = True
            clock._cond.notify_all()

    def pause(self) -> None:
        """PLAYING -> PAUSED: the running time stops where it is."""
        clock = self.clock
        with clock._cond:
            if self._playing:
                self._start_time = clock.time() - self._base_time
                self._playing = False
            clock._cond.notify_all()

    def wait(self, running_time: int, cancelled: Callable[[], bool] = _never) -> int | None:
        """Block until the running time reaches `running_time`. While paused the wait
        goes on (paused time does not count); each `play()` re-computes the deadline.

        Returns:
            The jitter in nanoseconds (>= 0, see `Clock.wait_until`), or None if
            `cancelled()` became true first.
        """
        cond, now = self.clock._cond, self.clock.time
        with cond:
            while True:
                if cancelled():
                    return None
                if not self._playing:
                    cond.wait()
                    continue
                left = self._base_time + running_time - now()
                if left <= 0:
                    return -left
                cond.wait(left / 1e9)

    def __repr__(self) -> str:
        state = "playing" if self._playing else "paused"
        return f"<Timeline {state} base_time={self._base_time} running_time={self.running_time()}>"
