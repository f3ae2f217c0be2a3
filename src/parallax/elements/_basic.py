"""`identity`, `capsfilter` and `consolesink`: the small one-pad-in elements.

`identity` with its defaults costs nothing per buffer: its sink pad is wired to the next
element's chain function. Anything asked of it per buffer (drop, sleep, fail, EOS, sync,
datarate, flags, checks, handoffs, dump) takes its `transform`, in GStreamer's order:
drop by flags or probability, re-timestamp (datarate), check, sync, hand off, dump.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from parallax._errors import FlowError
from parallax.buffer import Buffer, BufferFlags
from parallax.caps import Caps
from parallax.pipeline import Bytes, EndOfStream, Filter, MessageType, Pad, Property, Sink, State

from ._fake import Handoff, Handoffs, hexdump, stamp_datarate


def parse_buffer_flags(text: str) -> BufferFlags:
    """GStreamer flags text: names joined by `+` (or `|`), e.g. `discont+gap`, or a number.

    Raises:
        ValueError: a name that is not a buffer flag.
    """
    text = text.strip()
    if text.lstrip("-").isdigit() or text.lower().startswith("0x"):
        return BufferFlags(int(text, 0))
    flags = BufferFlags.NONE
    for part in text.replace("|", "+").split("+"):
        name = part.strip().upper().replace("-", "_")
        if name not in BufferFlags.__members__:
            raise ValueError(f"no buffer flag '{part.strip()}'")
        flags |= BufferFlags[name]
    return flags


class Identity(Handoffs, Filter, factory="identity"):
    """Pass buffers through unchanged (optionally drop, delay, pace, or fail on purpose)."""

    description = "Pass buffers through; drop, sleep, sync or fail for testing"

    drop_probability = Property(0.0, doc="chance of dropping each buffer", minimum=0.0, maximum=1.0)
    sleep_time = Property(0, doc="microseconds to sleep per buffer", minimum=0)
    error_after = Property(-1, doc="fail on the Nth buffer (GStreamer: 0 or -1 never)", minimum=-1)
    eos_after = Property(-1, doc="end the stream after this many buffers (-1: never)", minimum=-1)
    silent = Property(True, doc="accepted for GStreamer compatibility; identity posts nothing")
    sync = Property(False, doc="hold each buffer until the running time reaches its pts")
    ts_offset = Property(0, doc="ns added to each pts before syncing (negative: earlier)")
    datarate = Property(
        0,
        doc="re-timestamp buffers at this many bytes per second (0: off)",
        minimum=0,
        maximum=(1 << 31) - 1,
    )
    drop_buffer_flags = Property(
        BufferFlags.NONE,
        doc="drop buffers with any of these flags (e.g. discont+gap)",
        parse=parse_buffer_flags,
    )
    check_imperfect_timestamp = Property(
        False, doc="post an ELEMENT message where pts != previous pts + duration"
    )
    signal_handoffs = Property(True, doc="call handoff callbacks for each buffer")
    dump = Property(False, doc="hex-dump each buffer to stdout")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.count = 0
        self._offset = 0  # bytes passed so far: datarate's timestamps
        self._prev: tuple[int, int] | None = None  # (pts, duration) of the last buffer

    def start(self) -> None:
        self.count = self._offset = 0
        self._prev = None
        self._pick_chain()

    def connect(self, signal: str, callback: Handoff) -> None:
        super().connect(signal, callback)
        if self.state >= State.READY:  # handoffs need the full path from now on
            self._pick_chain()

    def _pick_chain(self) -> None:
        simple = not (
            self.drop_probability
            or self.sleep_time
            or self.error_after > 0
            or self.eos_after >= 0
            or self.sync
            or self.datarate
            or self.drop_buffer_flags
            or self.check_imperfect_timestamp
            or self.dump
            or (self.signal_handoffs and self.callbacks("handoff"))
        )
        # The common case pushes straight through: one call, no checks.
        self.sinkpad.set_chain_function(self.srcpad.push if simple else self.chain)

    def transform(self, buf: Buffer) -> Buffer | None:
        self.count += 1
        if 0 < self.error_after <= self.count:
            raise FlowError(
                f"{self.name}: error-after={self.error_after} reached", element=self.name
            )
        if 0 <= self.eos_after < self.count:  # GStreamer: eos-after buffers pass, then EOS
            raise EndOfStream
        if self.drop_buffer_flags and buf.flags & self.drop_buffer_flags:
            return None
        if self.sleep_time:
            time.sleep(self.sleep_time / 1e6)
        if self.drop_probability and random.random() < self.drop_probability:
            return None
        if self.datarate:
            buf = self._retimestamp(buf)
        if self.check_imperfect_timestamp:
            self._check_timestamp(buf)
        if self.sync and buf.pts >= 0 and self.wait_running_time(buf.pts + self.ts_offset) is None:
            return None  # stopping while it waited
        if self.signal_handoffs and self.callbacks("handoff"):
            self._emit_handoff(buf)
        if self.dump:
            hexdump(buf)
        return buf

    def _retimestamp(self, buf: Buffer) -> Buffer:
        """GStreamer identity's datarate: pts = bytes before / rate, duration = size / rate,
        on a new buffer over the same memory (this one may be shared)."""
        out = buf.sub(0)
        stamp_datarate(out, self._offset, self.datarate)
        self._offset += out.size
        return out

    def _check_timestamp(self, buf: Buffer) -> None:
        prev, self._prev = self._prev, (buf.pts, buf.duration)
        if prev is None or min(*prev, buf.pts) < 0:
            return
        if prev[0] + prev[1] != buf.pts:
            self.post(
                MessageType.ELEMENT,
                event="imperfect-timestamp",
                prev_pts=prev[0],
                prev_duration=prev[1],
                pts=buf.pts,
                sequence=buf.sequence,
            )


class CapsFilter(Filter, factory="capsfilter"):
    """Restrict the caps that may pass; what a `! caps !` in a launch string makes."""

    description = "Restrict the caps allowed through"

    caps = Property(Caps.any(), doc="the allowed caps", parse=Caps.from_string)

    _accepted: Caps | None = None  # the last buffer caps found within `caps` (per stream)

    def query_caps(self, pad: Pad) -> Caps:
        return super().query_caps(pad).intersect(self.caps)

    def transform(self, buf: Buffer) -> Buffer | None:
        caps = buf.caps
        if caps is None or caps.is_any:
            out = buf.sub(0)
            out.caps = self.caps.fixate() if not self.caps.is_any else caps
            return out
        if caps is self._accepted:
            return buf
        if caps is not self.caps and not caps.is_subset(self.caps):
            raise FlowError(
                f"{self.name}: buffer caps '{caps}' are not within '{self.caps}'", element=self.name
            )
        return buf


class ConsoleSink(Sink[Bytes], factory="consolesink"):
    """Print buffers to stdout: as text (default), hex, or a one-line summary each.

    Like GStreamer's fdsink (to which it is closest) it prints as buffers come, sync=false;
    with sync=true it prints each at its pts.
    """

    klass = "Sink"
    description = "Print buffers to the console"

    format = Property(
        "text", doc="text | hex | summary", parse=lambda s: _choice(s, ("text", "hex", "summary"))
    )
    encoding = Property("utf-8", doc="text encoding for format=text")

    def render(self, buf: Buffer) -> None:
        out = sys.stdout
        if self.format == "text":
            out.write(bytes(buf.view).decode(self.encoding, errors="replace"))
        elif self.format == "hex":
            out.write(bytes(buf.view).hex(" ") + "\n")
        else:
            out.write(f"{buf!r}\n")
        out.flush()


def _choice(text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return text
