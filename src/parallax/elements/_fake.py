"""`fakesrc` and `fakesink`, as GStreamer's: for tests, benchmarks and plumbing.

`fakesrc`'s loop is the per-buffer benchmark's hot path, so it is written out by hand:
one pool loan and one small Buffer per iteration, nothing else unless asked for.
"""

from __future__ import annotations

import enum
import random
import sys
from collections.abc import Callable
from typing import Any

from parallax.buffer import Buffer
from parallax.pipeline import (
    BufferAllocator,
    EndOfStream,
    Media,
    MessageType,
    Property,
    Sink,
    Source,
)


class SizeType(enum.Enum):
    """How fakesrc sizes its buffers (GStreamer's GstFakeSrcSizeType)."""

    EMPTY = 1
    FIXED = 2
    RANDOM = 3


class FillType(enum.Enum):
    """What fakesrc writes into its buffers (GStreamer's GstFakeSrcFillType)."""

    NOTHING = 1
    ZERO = 2
    RANDOM = 3
    PATTERN = 4
    PATTERN_SPAN = 5


_PATTERN = bytes(range(256)) * 2


class FakeSrc(Source[Media], factory="fakesrc"):
    """Push empty, fixed-size or random-size buffers; optionally filled."""

    klass = "Source"
    description = "Push buffers of a chosen size and fill, from a shared-memory pool"

    num_buffers = Property(-1, doc="buffers to push before EOS (-1: forever)", minimum=-1)
    sizetype = Property(SizeType.EMPTY, doc="how buffer sizes are chosen")
    sizemin = Property(0, doc="minimum size for sizetype=random", minimum=0)
    sizemax = Property(4096, doc="size for fixed, maximum for random", minimum=0, maximum=1 << 30)
    filltype = Property(FillType.NOTHING, doc="what to write into each buffer")
    pool_slots = Property(64, doc="slots in the first buffer pool", minimum=1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._alloc: BufferAllocator | None = None

    def start(self) -> None:
        self._alloc = BufferAllocator(
            max(self.sizemax, 1),
            slots=self.pool_slots,
            name=self.name,
            flushing=lambda: self.flushing,
        )
        self.sequence = 0

    def stop(self) -> None:
        alloc, self._alloc = self._alloc, None
        if alloc is not None:
            alloc.close()

    def _size(self) -> int:
        if self.sizetype is SizeType.EMPTY:
            return 0
        if self.sizetype is SizeType.FIXED:
            return self.sizemax
        return random.randint(self.sizemin, max(self.sizemin, self.sizemax))

    def _fill(self, buf: Buffer) -> None:
        kind, view = self.filltype, buf.view
        if kind is FillType.ZERO:
            view[:] = bytes(len(view))
        elif kind is FillType.RANDOM:
            view[:] = random.randbytes(len(view))
        elif kind is FillType.PATTERN:
            n = len(view)
            view[:] = (_PATTERN * (n // 256 + 1))[:n]
        elif kind is FillType.PATTERN_SPAN:
            start = (buf.sequence * buf.size) % 256
            n = len(view)
            view[:] = (_PATTERN * (n // 256 + 2))[start : start + n]

    def create(self) -> Buffer | None:
        if 0 <= self.num_buffers <= self.sequence:
            return None
        assert self._alloc is not None
        buf = self._alloc.buffer(self._size(), self.srcpad.caps, self.sequence)
        buf.offset = self.sequence
        if self.filltype is not FillType.NOTHING:
            self._fill(buf)
        self.sequence += 1
        return buf

    def loop(self) -> bool:
        if self.sizetype is not SizeType.FIXED or self.filltype is not FillType.NOTHING:
            return super().loop()
        # The hot path: fixed size, no fill. Same result as create(), fewer calls.
        assert self._alloc is not None
        slot, wrap, push = self._alloc.slot, Buffer._wrap, self.srcpad.push
        size, caps, limit = self.sizemax, self.srcpad.caps, self.num_buffers
        seq = self.sequence
        try:
            while self._running:
                if 0 <= limit <= seq:
                    return True
                buf = wrap(slot(), size, caps, seq)
                buf.offset = seq
                seq += 1
                push(buf)
            return False
        finally:
            self.sequence = seq


Handoff = Callable[[Buffer], None]


class FakeSink(Sink[Media], factory="fakesink"):
    """Swallow buffers; optionally dump them or hand each to callbacks."""

    klass = "Sink"
    description = "Swallow buffers (dump or hand off on request)"

    dump = Property(False, doc="hex-dump each buffer to stdout")
    signal_handoffs = Property(False, doc="call handoff callbacks for each buffer")
    silent = Property(True, doc="post no per-buffer ELEMENT messages")
    num_buffers = Property(-1, doc="EOS after this many buffers (-1: never)", minimum=-1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._handoffs: list[Handoff] = []
        self.count = 0

    def connect(self, signal: str, callback: Handoff) -> None:
        """Register `callback(buf)` for the `handoff` signal (needs signal-handoffs=true)."""
        if signal != "handoff":
            raise ValueError(f"{self.name}: fakesink has no signal '{signal}' (it has: handoff)")
        self._handoffs.append(callback)

    def render(self, buf: Buffer) -> None:
        self.count += 1
        if self.signal_handoffs:
            for callback in self._handoffs:
                callback(buf)
        if self.dump:
            _hexdump(buf)
        if not self.silent:
            self.post(MessageType.ELEMENT, event="handoff", sequence=buf.sequence, size=buf.size)
        if self.count == self.num_buffers:
            raise EndOfStream

    def start(self) -> None:
        self.count = 0
        plain = not (self.signal_handoffs or self.dump) and self.silent and self.num_buffers < 0
        # Nothing to do per buffer but count it: skip render() and its property reads.
        self.sinkpad.set_chain_function(self._count if plain else self.chain)

    def _count(self, buf: Buffer) -> None:
        self.count += 1


def _hexdump(buf: Buffer) -> None:
    data = buf.view
    out = sys.stdout
    out.write(f"{buf!r}\n")
    for off in range(0, len(data), 16):
        chunk = bytes(data[off : off + 16])
        hexs = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.write(f"{off:08x}: {hexs:<47}  {text}\n")
