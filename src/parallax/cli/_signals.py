"""Ctrl-C (SIGINT) and SIGTERM while `parallax launch` runs: recorded, then acted on by
the run loop, instead of raised as exceptions wherever the main thread happens to be
(half-way through a state change, say).

Operations: `with Interrupts() as interrupts:` installs the handlers and restores the
previous ones on exit; `interrupts.received` lists the signals that came, in order.
The run loop looks at it every `POLL` seconds while it waits for EOS (docs/cli.md says
what the first and the second signal do).

Limits: handlers can only be installed from the main thread (a test calling `main()`
from another thread gets none, and Python's own SIGINT behaviour). A signal the shell
made the process ignore stays ignored: a background job (`parallax launch ... &`) is
not stopped by a Ctrl-C meant for the foreground, as with any program.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Self

HANDLED = (signal.SIGINT, signal.SIGTERM)

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Interrupts:
    """Owns the SIGINT and SIGTERM handlers while entered; restores the previous ones."""

    def __init__(self) -> None:
        self._received: list[int] = []
        self._previous: dict[int, _Handler] = {}

    @property
    def received(self) -> list[int]:
        """The signal numbers received so far, oldest first."""
        return list(self._received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signum)  # only this: the run loop decides what it means

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
