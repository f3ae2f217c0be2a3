"""`AsyncSource`: a source written with asyncio, for network-style producers.

The streaming thread runs an asyncio event loop; `acreate()` is awaited there and each
buffer is pushed downstream synchronously from the loop, exactly as a threaded source
pushes. Stopping cancels the pending `acreate()`, so a source waiting on a socket
leaves within the pipeline's stop timeout.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Any

from parallax.buffer import Buffer

from ._element import Out
from ._shapes import Source


class AsyncSource(Source[Out]):
    """Override `acreate()` (a coroutine returning a Buffer, or None at EOS)."""

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[bool] | None = None

    @abstractmethod
    async def acreate(self) -> Buffer | None:
        """The next buffer, or None at the end of the stream."""

    def create(self) -> Buffer | None:
        """Not used: the async loop awaits `acreate()` instead."""
        raise TypeError(f"{self.name}: an AsyncSource produces through acreate()")

    async def _aloop(self) -> bool:
        push = self.srcpad.push
        while self._running:
            buf = await self.acreate()
            if buf is None:
                return True
            push(buf)
        return False

    def loop(self) -> bool:
        with asyncio.Runner() as runner:
            self._loop = runner.get_loop()
            try:
                self._task = self._loop.create_task(self._aloop())
                return runner.run(self._wait(self._task))
            except asyncio.CancelledError:
                return False
            finally:
                self._loop = self._task = None

    @staticmethod
    async def _wait(task: asyncio.Task[bool]) -> bool:
        return await task

    def deactivate(self) -> None:
        super().deactivate()
        self._cancel()

    def pause(self) -> None:
        super().pause()
        self._cancel()

    def _cancel(self) -> None:
        """Cancel a pending `acreate()` so the loop notices `_running` went False."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed between the check and the call: done
                return
