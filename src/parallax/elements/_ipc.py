"""`ipcsink` and `ipcsrc`: pipelines in different processes joined by shared memory.

    producer:  fakesrc ! ipcsink service=cam
    consumer:  ipcsrc service=cam ! appsink

`ipcsink` publishes through a `parallax.link` Publisher: each buffer is copied once (one
memcpy) into a loaned slot of the sink's sealed memfd pool; from there on nothing is copied.
`ipcsrc` pushes the received buffers, read-only views of that pool, and each slot returns to
the producer when the consumer's last reference to its buffer drops. See docs/links.md.
"""

from __future__ import annotations

from typing import Any

from parallax._errors import BrokenError, ClosedError, FlowError, PoolExhausted
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.link._shm import Publisher, Subscriber
from parallax.pipeline import Media, Property, Sink, Source

_POLL = 0.05  # seconds between checks for a stopping pipeline while waiting


class IpcSink(Sink[Media], factory="ipcsink"):
    """Publish buffers to `ipcsrc` elements in other processes, by shared memory."""

    klass = "Sink/Network"
    description = "Publish buffers over a shared-memory link (memfd + Unix socket)"

    service = Property("", doc="service name subscribers connect to")
    slot_size = Property(
        1 << 20, doc="bytes per slot: the largest buffer (k/M/G suffixes)", minimum=1
    )
    slots = Property(16, doc="slots in the shared pool", minimum=1, maximum=4096)
    leaky = Property(False, doc="skip a subscriber that holds half the pool instead of waiting")
    wait_for_connection = Property(True, doc="hold the stream until a subscriber connects")

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._pub: Publisher | None = None

    @property
    def publisher(self) -> Publisher | None:
        """The link while the element is started (READY or above)."""
        return self._pub

    def start(self) -> None:
        if not self.service:
            raise FlowError(f"{self.name}: property 'service' is not set", element=self.name)
        try:
            self._pub = Publisher(
                self.service, slot_size=self.slot_size, slots=self.slots, leaky=self.leaky
            )
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot publish service {self.service!r}: {e}", element=self.name
            ) from e

    def stop(self) -> None:
        pub, self._pub = self._pub, None
        if pub is not None:
            pub.close()

    def render(self, buf: Buffer) -> None:
        pub = self._pub
        assert pub is not None
        if buf.size > pub.slot_size:
            raise FlowError(
                f"{self.name}: a {buf.size:,}-byte buffer does not fit a {pub.slot_size:,}-byte "
                "slot; raise slot-size",
                element=self.name,
            )
        if self.wait_for_connection:
            while not pub.wait_for_subscribers(1, _POLL):
                if self.flushing:
                    return
        while True:
            try:
                sample = pub.loan(_POLL)
                break
            except PoolExhausted:
                if self.flushing:
                    return
            except ClosedError:
                return
        sample.view[: buf.size] = buf.view  # the one copy
        pub.send(
            sample,
            buf.size,
            caps=buf.caps,
            sequence=buf.sequence,
            pts=buf.pts,
            dts=buf.dts,
            duration=buf.duration,
            offset=buf.offset,
            flags=buf.flags,
        )

    def on_eos(self) -> None:
        if self._pub is not None:
            self._pub.send_eos()
        super().on_eos()


class IpcSrc(Source[Media], factory="ipcsrc"):
    """Receive buffers from an `ipcsink` in another process, without copying."""

    klass = "Source/Network"
    description = "Receive buffers over a shared-memory link (memfd + Unix socket)"

    service = Property("", doc="service name of the ipcsink to connect to")
    timeout = Property(5.0, doc="seconds to wait for the publisher at start", minimum=0.0)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._sub: Subscriber | None = None

    def output_caps(self) -> Caps:
        return Caps.any()

    def start(self) -> None:
        if not self.service:
            raise FlowError(f"{self.name}: property 'service' is not set", element=self.name)
        try:
            self._sub = Subscriber(self.service, timeout=self.timeout)
        except BrokenError as e:
            raise FlowError(f"{self.name}: {e}", element=self.name) from e

    def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()

    def create(self) -> Buffer | None:
        sub = self._sub
        assert sub is not None
        while self._running:
            try:
                buf = sub.receive(_POLL)
            except BrokenError as e:
                raise FlowError(f"{self.name}: {e}", element=self.name) from e
            if buf is not None:
                if buf.caps is None:
                    buf.caps = self.srcpad.caps
                return buf
            if sub.ended:
                return None
        return None

    def loop(self) -> bool:
        push = self.srcpad.push
        while self._running:
            buf = self.create()
            if buf is None:
                return self._running  # EOS, unless we were stopped
            push(buf)
        return False
