"""The executor: states, EOS, errors naming the element, stop, pull, bus, DAG checks."""

from __future__ import annotations

import threading
import time

import pytest

import parallax
from parallax import FlowError, LinkError, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.elements import AppSink, AppSrc, CapsFilter, FakeSink, FakeSrc, Identity, Queue, Tee
from parallax.pipeline import (
    Element,
    MessageType,
    PadDirection,
    PadPresence,
    PadTemplate,
    Pipeline,
    Sink,
    State,
    Tensor,
    registry,
)


def test_run_to_eos_counts_every_buffer() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=100 sizetype=fixed sizemax=16 ! identity ! fakesink name=s"
    )
    p.run(timeout=10)
    sink = p.get_by_name("s")
    assert isinstance(sink, FakeSink)
    assert sink.count == 100
    assert p.metrics()["s"]["bytes_in"] == 1600
    assert p.state is State.NULL


def test_error_in_an_element_stops_the_pipeline_and_names_it() -> None:
    p = parallax.parse_launch("fakesrc ! identity name=boom error-after=5 ! fakesink")
    with pytest.raises(FlowError, match="boom") as info:
        p.run(timeout=10)
    assert info.value.element == "boom"
    assert p.state is State.NULL


def test_error_in_a_queue_thread_names_the_element() -> None:
    p = parallax.parse_launch("fakesrc ! queue ! identity name=late error-after=3 ! fakesink")
    with pytest.raises(FlowError, match="late"):
        p.run(timeout=10)


def test_stop_mid_stream_joins_every_thread_within_a_second() -> None:
    p = parallax.parse_launch(
        "fakesrc ! queue ! identity sleep-time=100 ! tee name=t ! queue ! fakesink  t. ! queue ! fakesink"
    )
    p.play()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("parallax:")]


def test_eos_waits_for_every_sink() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=50 ! tee name=t ! queue ! fakesink name=a  t. ! queue ! identity sleep-time=200 ! fakesink name=b"
    )
    p.run(timeout=10)
    a, b = p.get_by_name("a"), p.get_by_name("b")
    assert isinstance(a, FakeSink) and isinstance(b, FakeSink)
    assert a.count == b.count == 50


def test_bus_reports_state_changes_stream_start_and_eos() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=1 ! fakesink")
    p.play()
    kinds = set()
    while (m := p.bus.poll(MessageType.ANY, 5)) is not None:
        kinds.add(m.type)
        if m.type is MessageType.EOS:
            break
    p.stop()
    assert {MessageType.STATE_CHANGED, MessageType.STREAM_START, MessageType.EOS} <= kinds
    assert any(m.data.get("new") is State.NULL for m in p.bus)


def test_run_times_out_and_stops() -> None:
    p = parallax.parse_launch("fakesrc ! identity sleep-time=1000 ! fakesink")
    with pytest.raises(TimeoutError):
        p.run(timeout=0.2)
    assert p.state is State.NULL


def test_pull_yields_buffers_until_eos() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=20 sizetype=fixed sizemax=8 filltype=zero ! appsink name=out"
    )
    got = [b.to_bytes() for b in p.pull("out")]
    assert got == [bytes(8)] * 20
    assert p.state is State.NULL


def test_pull_stopping_early_stops_the_pipeline() -> None:
    p = parallax.parse_launch("fakesrc ! appsink name=out")
    for i, _ in enumerate(p.pull("out")):
        if i == 5:
            break
    assert p.state is State.NULL


def test_pull_from_a_non_appsink_is_a_type_error() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=1 ! fakesink name=s")
    with pytest.raises(TypeError, match="not an appsink"):
        p.pull("s")


def test_appsrc_feeds_appsink() -> None:
    p = parallax.parse_launch("appsrc name=in ! queue ! appsink name=out")
    src = p.get_by_name("in")
    assert isinstance(src, AppSrc)
    p.play()
    for i in range(10):
        src.push_buffer(bytes([i]) * 4)
    src.end_of_stream()
    sink = p.get_by_name("out")
    assert isinstance(sink, AppSink)
    got = list(sink)
    p.stop()
    assert [b.to_bytes()[0] for b in got] == list(range(10))


def test_unlinked_pad_is_reported_at_start() -> None:
    p = Pipeline()
    p.add(FakeSrc())
    with pytest.raises(LinkError, match="src is not linked"):
        p.play()
    assert p.state is State.NULL


def test_cycles_are_refused() -> None:
    p = Pipeline()
    a, b = Identity(), Identity()
    p.link(a, b)
    with pytest.raises(LinkError, match="cycle"):
        p.link(b, a)


def test_duplicate_names_are_refused() -> None:
    p = Pipeline()
    p.add(FakeSink(name="x"))
    with pytest.raises(LinkError, match="already has an element named 'x'"):
        p.add(FakeSink(name="x"))


@registry.register
class TensorOnly(Sink[Tensor], factory="tensoronly-test"):
    pad_templates = (
        PadTemplate("sink", PadDirection.SINK, PadPresence.ALWAYS, Caps.from_string("tensor")),
    )

    def render(self, buf: Buffer) -> None:
        """Accept and forget."""


def test_link_with_caps_that_do_not_intersect_names_both_pads() -> None:
    p = Pipeline()
    flt = CapsFilter(name="only-video", caps=Caps.from_string("video/raw"))
    with pytest.raises(
        LinkError,
        match=r"cannot link only-video:src to tensoronly-test\d+:sink: caps 'video/raw' and 'tensor' do not intersect",
    ):
        p.link(flt, TensorOnly())


def test_launch_link_error_points_at_the_bang() -> None:
    with pytest.raises(LinkError) as info:
        parallax.parse_launch("fakesrc ! video/raw ! tensoronly-test")
    assert info.value.column is not None
    assert "^" in str(info.value)


def test_negotiated_caps_reach_buffers() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=2 ! video/raw,width=[1,100],height=10 ! appsink name=out"
    )
    bufs = list(p.pull("out"))
    assert str(bufs[0].caps) == "video/raw,width=1,height=10" or bufs[0].caps == Caps.from_string(
        "video/raw,width=1,height=10"
    )


def test_pause_and_resume() -> None:
    p = parallax.parse_launch("fakesrc ! identity sleep-time=100 ! fakesink name=s")
    p.play()
    time.sleep(0.05)
    p.pause()
    sink = p.get_by_name("s")
    assert isinstance(sink, FakeSink)
    time.sleep(0.05)
    n = sink.count
    time.sleep(0.1)
    assert sink.count <= n + 1
    p.play()
    time.sleep(0.05)
    assert sink.count > n
    p.stop()


def test_properties_cannot_change_while_playing() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink name=s")
    p.play()
    try:
        with pytest.raises(parallax.PropertyError, match="cannot change in state PLAYING"):
            p.get_by_name("s").set_property("num-buffers", 3)
    finally:
        p.stop()


def test_state_errors() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    p.play()
    try:
        with pytest.raises(StateError, match="cannot add elements in state PLAYING"):
            p.add(FakeSink())
    finally:
        p.stop()


def test_fakesink_num_buffers_ends_the_stream_upstream() -> None:
    p = parallax.parse_launch("fakesrc ! queue ! fakesink name=s num-buffers=30")
    p.run(timeout=10)
    s = p.get_by_name("s")
    assert isinstance(s, FakeSink) and s.count == 30


def test_custom_element_by_decorator() -> None:
    @parallax.transform("upper-test")
    def upper(buf: Buffer) -> Buffer:
        return Buffer(buf.to_bytes().upper())

    p = parallax.parse_launch("appsrc name=in ! upper-test ! appsink name=out")
    src = p.get_by_name("in")
    assert isinstance(src, AppSrc)
    src.push_buffer(b"abc")
    src.end_of_stream()
    assert [b.to_bytes() for b in p.pull("out")] == [b"ABC"]


def test_source_decorator_and_sink_decorator() -> None:
    seen: list[bytes] = []

    @parallax.source("gen-test")
    def gen() -> list[bytes]:
        return [b"a", b"b", b"c"]

    @parallax.sink("collect-test")
    def collect(buf: Buffer) -> None:
        seen.append(buf.to_bytes())

    parallax.parse_launch("gen-test ! collect-test").run(timeout=5)
    assert seen == [b"a", b"b", b"c"]


def test_element_base_without_chain_says_so() -> None:
    class Nothing(Element, factory="nothing-test"):
        pad_templates = (PadTemplate("sink", PadDirection.SINK),)

    with pytest.raises(FlowError, match="takes no buffers"):
        Nothing().chain(Buffer(b""))


def test_tee_pushes_the_same_memory_to_each_branch() -> None:
    p = Pipeline()
    src, tee = FakeSrc(num_buffers=3, sizetype="fixed", sizemax=64), Tee()
    a, b = AppSink(name="a"), AppSink(name="b")
    p.link(src, tee)
    p.link(tee, a)
    p.link(tee, b)
    p.play()
    try:
        x, y = a.pull(5), b.pull(5)
        assert x is not None and y is not None
        import numpy as np

        assert np.asarray(x).ctypes.data == np.asarray(y).ctypes.data
        assert x.readonly
    finally:
        p.stop()


def test_queue_leaky_downstream_drops_old_buffers() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=200 ! queue max-size-buffers=2 leaky=downstream name=q ! identity sleep-time=500 ! fakesink name=s"
    )
    p.run(timeout=20)
    q = p.get_by_name("q")
    assert isinstance(q, Queue)
    assert q.dropped > 0


def test_a_pipeline_runs_again_after_eos() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=5 ! tee name=t ! queue ! fakesink name=a  t. ! fakesink name=b"
    )
    p.run(timeout=10)
    p.run(timeout=10)
    a = p.get_by_name("a")
    assert isinstance(a, FakeSink)
    assert a.count == 5
    assert p.metrics()["b"]["buffers_in"] == 10
