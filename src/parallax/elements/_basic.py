"""`identity`, `capsfilter` and `consolesink`: the small one-pad-in elements."""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from parallax._errors import FlowError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import Bytes, Filter, Pad, Property, Sink


class Identity(Filter, factory="identity"):
    """Pass buffers through unchanged (optionally drop, delay, or fail on purpose)."""

    description = "Pass buffers through; drop, sleep or fail for testing"

    drop_probability = Property(0.0, doc="chance of dropping each buffer", minimum=0.0, maximum=1.0)
    sleep_time = Property(0, doc="microseconds to sleep per buffer", minimum=0)
    error_after = Property(-1, doc="fail on the Nth buffer (GStreamer: 0 or -1 never)", minimum=-1)
    silent = Property(True, doc="accepted for GStreamer compatibility; identity posts nothing")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.count = 0

    def start(self) -> None:
        self.count = 0
        simple = self.drop_probability == 0 and self.sleep_time == 0 and self.error_after <= 0
        # The common case pushes straight through: one call, no checks.
        self.sinkpad.set_chain_function(self.srcpad.push if simple else self.chain)

    def transform(self, buf: Buffer) -> Buffer | None:
        self.count += 1
        if 0 < self.error_after <= self.count:
            raise FlowError(
                f"{self.name}: error-after={self.error_after} reached", element=self.name
            )
        if self.sleep_time:
            time.sleep(self.sleep_time / 1e6)
        if self.drop_probability and random.random() < self.drop_probability:
            return None
        return buf


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
    """Print buffers to stdout: as text (default), hex, or a one-line summary each."""

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
