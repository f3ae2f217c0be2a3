"""AsyncSource: asyncio producers push on the same executor, and stop promptly."""

from __future__ import annotations

import asyncio
import time

from parallax.buffer import Buffer
from parallax.elements import AppSink, FakeSink
from parallax.pipeline import AsyncSource, Media, Pipeline, State


class Ticker(AsyncSource[Media], factory="ticker-test"):
    def __init__(self, n: int, name: str | None = None) -> None:
        super().__init__(name)
        self.n = n

    async def acreate(self) -> Buffer | None:
        if self.sequence >= self.n:
            return None
        await asyncio.sleep(0.001)
        self.sequence += 1
        return Buffer(self.sequence.to_bytes(4, "little"), sequence=self.sequence)


class Forever(AsyncSource[Media], factory="forever-test"):
    async def acreate(self) -> Buffer | None:
        await asyncio.Event().wait()  # like a socket that never receives
        return None


def test_async_source_pushes_to_eos() -> None:
    p = Pipeline()
    sink = AppSink(name="out", max_buffers=0)
    p.link(Ticker(5), sink)
    got = [int.from_bytes(b.to_bytes(), "little") for b in p.pull("out", timeout=5)]
    assert got == [1, 2, 3, 4, 5]


def test_stop_cancels_a_pending_acreate_within_a_second() -> None:
    p = Pipeline()
    p.link(Forever(), FakeSink())
    p.play()
    time.sleep(0.1)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert p.state is State.NULL
