"""`fakesrc` and `fakesink`, as GStreamer's: for tests, benchmarks and plumbing.

`fakesrc`'s loop is the per-buffer benchmark's hot path, so it is written out by hand:
one pool loan and one small Buffer per iteration, nothing else unless asked for (a fill,
timestamps, handoffs, a dump: those take `create()`, the general path).

Timestamps follow GStreamer's fakesrc: with `datarate` (bytes/s) a buffer's pts is the
bytes pushed before it / datarate and its duration its size / datarate; without, a live
fakesrc stamps the running time and a non-live one leaves pts unset. `is-live=true
sync=true` makes it pseudo-live: it pushes each buffer when the running time reaches its
pts (`Source.live_sync`, pipeline/_sync.py), so a datarate paces it.
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

from ._signals import Signals


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
SECOND = 1_000_000_000
"""Nanoseconds per second: timestamps are in ns, as GStreamer's GST_SECOND."""


def stamp_datarate(buf: Buffer, offset: int, rate: int) -> None:
    """GStreamer's datarate timestamps (fakesrc, identity): pts = dts = the bytes before
    this buffer / `rate`, duration = its size / `rate`, in nanoseconds."""
    buf.pts = buf.dts = offset * SECOND // rate
    buf.duration = buf.size * SECOND // rate


Handoff = Callable[[Buffer], None]


class Handoffs(Signals):
    """The `handoff` signal of fakesrc, fakesink and identity: `connect("handoff", fn)`
    registers `fn(buf)`, called (with signal-handoffs=true) for each buffer, in the
    streaming thread, before it is pushed or consumed."""

    signals: tuple[str, ...] = ("handoff",)

    def _emit_handoff(self, buf: Buffer) -> None:
        self.emit("handoff", buf)


class FakeSrc(Handoffs, Source[Media], factory="fakesrc"):
    """Push empty, fixed-size or random-size buffers; optionally filled and timestamped."""

    klass = "Source"
    description = "Push buffers of a chosen size and fill, from a shared-memory pool"

    num_buffers = Property(-1, doc="buffers to push before EOS (-1: forever)", minimum=-1)
    sizetype = Property(SizeType.EMPTY, doc="how buffer sizes are chosen")
    sizemin = Property(0, doc="minimum size for sizetype=random", minimum=0)
    sizemax = Property(4096, doc="size for fixed, maximum for random", minimum=0, maximum=1 << 30)
    filltype = Property(FillType.NOTHING, doc="what to write into each buffer")
    pool_slots = Property(64, doc="slots in the first buffer pool", minimum=1)
    datarate = Property(
        0,
        doc="bytes per second that timestamp the buffers (0: none)",
        minimum=0,
        maximum=(1 << 31) - 1,
    )
    is_live = Property(False, doc="a live source: timestamps are running times (or datarate's)")
    sync = Property(
        False, doc="with is-live: push each buffer when the running time reaches its pts"
    )
    signal_handoffs = Property(False, doc="call handoff callbacks before pushing each buffer")
    dump = Property(False, doc="hex-dump each buffer to stdout before pushing it")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._alloc: BufferAllocator | None = None
        self._bytes = 0  # bytes pushed so far: datarate's timestamps

    def start(self) -> None:
        self._alloc = BufferAllocator(
            max(self.sizemax, 1),
            slots=self.pool_slots,
            name=self.name,
            flushing=lambda: self.flushing,
        )
        self.sequence = self._bytes = 0

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

    def live_sync(self) -> bool:
        return self.is_live and self.sync

    def create(self) -> Buffer | None:
        if 0 <= self.num_buffers <= self.sequence:
            return None
        assert self._alloc is not None
        size = self._size()
        buf = self._alloc.buffer(size, self.srcpad.caps, self.sequence)
        buf.offset = self.sequence
        if self.filltype is not FillType.NOTHING:
            self._fill(buf)
        rate = self.datarate
        if rate:  # GStreamer fakesrc: time = bytes sent * GST_SECOND / datarate
            stamp_datarate(buf, self._bytes, rate)
        elif self.is_live:
            buf.pts = buf.dts = self.running_time()
        self._bytes += size
        self.sequence += 1
        if self.signal_handoffs:
            self._emit_handoff(buf)
        if self.dump:
            hexdump(buf)
        return buf

    def loop(self) -> bool:
        general = self.filltype is not FillType.NOTHING or self.datarate or self.is_live
        if self.sizetype is not SizeType.FIXED or general or self.signal_handoffs or self.dump:
            return super().loop()
        # The hot path: fixed size, no fill. Same result as create(), fewer calls.
        assert self._alloc is not None
        slot, wrap, push = self._alloc.slot, Buffer.from_owner, self.srcpad.push
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


class FakeSink(Handoffs, Sink[Media], factory="fakesink"):
    """Swallow buffers; optionally dump them or hand each to callbacks."""

    klass = "Sink"
    description = "Swallow buffers (dump or hand off on request)"

    dump = Property(False, doc="hex-dump each buffer to stdout")
    signal_handoffs = Property(False, doc="call handoff callbacks for each buffer")
    silent = Property(True, doc="post no per-buffer ELEMENT messages")
    num_buffers = Property(-1, doc="EOS after this many buffers (-1: never)", minimum=-1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.count = 0

    def render(self, buf: Buffer) -> None:
        self.count += 1
        if self.signal_handoffs:
            self._emit_handoff(buf)
        if self.dump:
            hexdump(buf)
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


def hexdump(buf: Buffer) -> None:
    data = buf.view
    out = sys.stdout
    out.write(f"{buf!r}\n")
    for off in range(0, len(data), 16):
        chunk = bytes(data[off : off + 16])
        hexs = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.write(f"{off:08x}: {hexs:<47}  {text}\n")
