"""`ipcsink` and `ipcsrc`: pipelines in different processes joined by shared memory.

    producer:  fakesrc ! ipcsink service=cam
    consumer:  ipcsrc service=cam ! appsink

`ipcsink` publishes through a `parallax.link` Publisher: each buffer is copied once (one
memcpy) into a loaned slot of the sink's sealed memfd pool; from there on nothing is copied.
`ipcsrc` pushes the received buffers, read-only views of that pool, and each slot returns to
the producer when the consumer's last reference to its buffer drops. See docs/links.md.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from parallax._errors import BrokenError, ClosedError, FlowError, PoolExhausted, PropertyError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.link import Publisher, Subscriber, parse_uids
from parallax.pipeline import FLUSH_POLL, Element, Media, Property, Sink, Source

from ._ipc_cuda import GpuOpener, gpu_record


def _uids(text: str) -> str:
    """Launch text of an `allowed-uids` property: comma-separated uids, normalized."""
    return ",".join(str(uid) for uid in parse_uids(text))


def uid_list(element: Element, prop: str) -> list[int] | None:
    """The uids an `allowed-uids` property names (None: the default, our own uid).

    Raises:
        PropertyError: the value (set from Python) is not comma-separated uids.
    """
    text = element.get_property(prop)
    try:
        uids = parse_uids(text)
    except ValueError as e:
        raise PropertyError(
            f"{element.name}: property '{prop}' expects comma-separated uids, got {text!r} ({e})",
            element=element.name,
            prop=prop,
            value=text,
        ) from e
    return uids or None


def publish(
    element: Element,
    pub: Publisher,
    buf: Buffer,
    *,
    wait: bool,
    abandoned: Callable[[], str | None] = lambda: None,
) -> None:
    """Copy `buf` into a loan of `pub` and send it: the one copy of an ipcsink/procqueue.

    Waits (in short polls, giving up when `element` flushes) for a subscriber if `wait`,
    and for a free slot. `abandoned` returns why no subscriber can come any more (its
    process died), which raises. A buffer in CUDA memory travels as its CUDA IPC handle
    (`_ipc_cuda`), and is kept alive until its slot comes back.

    Raises:
        FlowError: the buffer exceeds the slot size, or `abandoned` says so.
    """
    record = gpu_record(element.name, buf) if buf.caps is not None else None
    size = buf.size if record is None else len(record)
    if size > pub.slot_size:
        raise FlowError(
            f"{element.name}: a {size:,}-byte buffer does not fit a {pub.slot_size:,}-byte "
            "slot; raise slot-size",
            element=element.name,
        )
    if wait:
        while not pub.wait_for_subscribers(1, FLUSH_POLL):
            why = abandoned()
            if why is not None:
                raise FlowError(f"{element.name}: {why}", element=element.name)
            if element.flushing:
                return
    while True:
        try:
            sample = pub.loan(FLUSH_POLL)
            break
        except PoolExhausted:
            why = abandoned()
            if why is not None:
                raise FlowError(f"{element.name}: {why}", element=element.name) from None
            if element.flushing:
                return
        except ClosedError:
            return
    if record is None:
        sample.view[:size] = buf.view  # the one copy
    else:
        sample.view[:size] = record  # the GPU bytes stay where they are
        # The slot lives until every subscriber released it: so does the GPU buffer.
        sample.keep_alive(buf)
    pub.send(
        sample,
        size,
        caps=buf.caps,
        sequence=buf.sequence,
        pts=buf.pts,
        dts=buf.dts,
        duration=buf.duration,
        offset=buf.offset,
        flags=buf.flags,
    )


class IpcSink(Sink[Media], factory="ipcsink"):
    """Publish buffers to `ipcsrc` elements in other processes, by shared memory."""

    klass = "Sink/Network"
    description = "Publish buffers over a shared-memory link (memfd + Unix socket)"

    service = Property("", doc="service name subscribers connect to")
    slot_size = Property(
        1 << 20, doc="bytes per slot: the largest buffer (k/M/G suffixes)", minimum=1
    )
    slots = Property(16, doc="slots in the shared pool", minimum=1, maximum=4096)
    leaky = Property(
        False,
        doc="drop buffers for a subscriber that holds half the pool and releases nothing "
        "within 50 ms, instead of waiting for it",
    )
    wait_for_connection = Property(True, doc="hold the stream until a subscriber connects")
    allowed_uids = Property(
        "", doc="uids whose subscribers are served, comma-separated (default: ours)", parse=_uids
    )

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
                self.service,
                slot_size=self.slot_size,
                slots=self.slots,
                leaky=self.leaky,
                allowed_uids=uid_list(self, "allowed-uids"),
            )
        except OSError as e:
            # EADDRINUSE's message names the service and who holds it already.
            why = (
                e.strerror
                if e.errno == errno.EADDRINUSE
                else f"cannot publish service {self.service!r}: {e}"
            )
            raise FlowError(f"{self.name}: {why}", element=self.name) from e

    def stop(self) -> None:
        pub, self._pub = self._pub, None
        if pub is not None:
            pub.close()

    def render(self, buf: Buffer) -> None:
        assert self._pub is not None
        publish(self, self._pub, buf, wait=self.wait_for_connection)

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
    allowed_uids = Property(
        "", doc="uids the publisher may run as, comma-separated (default: ours)", parse=_uids
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._sub: Subscriber | None = None
        self._first: Buffer | None = None  # read while negotiating, pushed first
        self._gpu: GpuOpener | None = None  # made with the first buffer that has caps

    def output_caps(self) -> Caps:
        return Caps.any()

    def start(self) -> None:
        if not self.service:
            raise FlowError(f"{self.name}: property 'service' is not set", element=self.name)
        try:
            self._sub = Subscriber(
                self.service, timeout=self.timeout, allowed_uids=uid_list(self, "allowed-uids")
            )
        except BrokenError as e:
            raise FlowError(f"{self.name}: {e}", element=self.name) from e

    def stop(self) -> None:
        self._first = None
        gpu, self._gpu = self._gpu, None
        if gpu is not None:
            gpu.close()
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()

    def negotiate(self) -> Caps:
        """The caps of the first buffer, when the producer sent caps (it waits for it);
        else what downstream accepts, as any source."""
        first = self._first = self._next()
        caps = first.caps if first is not None else None
        if caps is None:
            return super().negotiate()
        want = self.srcpad.peer_query_caps()
        if not caps.can_intersect(want):
            raise FlowError(
                f"{self.name}: not negotiated: the producer sends '{caps}', downstream "
                f"accepts '{want}'",
                element=self.name,
            )
        return caps

    def create(self) -> Buffer | None:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return self._next()

    def _next(self) -> Buffer | None:
        sub = self._sub
        assert sub is not None
        while self._running:
            try:
                buf = sub.receive(FLUSH_POLL)
            except BrokenError as e:
                raise FlowError(f"{self.name}: {e}", element=self.name) from e
            if buf is not None:
                if buf.caps is None:
                    buf.caps = self.srcpad.caps
                else:
                    gpu = self._gpu
                    if gpu is None:
                        gpu = self._gpu = GpuOpener(self.name)
                    if gpu.wants(buf):
                        return gpu.open(buf)
                return buf
            if sub.ended:
                return None
        return None
