"""`Signals`: GStreamer-style signals of an element (`handoff`, `new-sample`, `eos`):
`connect(signal, callback)` registers a callback, and the element emits the signal in
its streaming thread. Which signals an element has, and what a callback gets, is in
that element's section of docs/elements.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Callback = Callable[..., None]


class Signals:
    """A mixin of elements: `signals` names what may be connected to."""

    signals: tuple[str, ...] = ()
    name: str
    _callbacks: Mapping[str, tuple[Callback, ...]] = {}  # replaced, never mutated

    def connect(self, signal: str, callback: Callback) -> None:
        """Register `callback` for `signal` (called in the streaming thread).

        Raises:
            ValueError: the element has no such signal (the message lists those it has).
        """
        if signal not in self.signals:
            raise ValueError(
                f"{self.name}: no signal '{signal}' (it has: {', '.join(self.signals)})"
            )
        self._callbacks = {**self._callbacks, signal: (*self.callbacks(signal), callback)}

    def callbacks(self, signal: str) -> tuple[Callback, ...]:
        """What is connected to `signal`, in the order it was connected."""
        return self._callbacks.get(signal, ())

    def emit(self, signal: str, *args: Any) -> None:
        """Call every callback of `signal` with `args`."""
        for callback in self._callbacks.get(signal, ()):
            callback(*args)
