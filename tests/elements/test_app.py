"""appsrc / appsink: GStreamer's queue bounds, leaky-type, num-buffers and signals.

(Their timing — do-timestamp, is-live, appsink's sync — is in tests/pipeline/test_clock.py.)
"""

from __future__ import annotations

from typing import TypeVar

import pytest

from parallax import FlowError, PropertyError
from parallax.buffer import Buffer
from parallax.elements import AppSink, AppSrc
from parallax.pipeline import Element, Pipeline, parse_launch

_E = TypeVar("_E", bound=Element)


def _get(p: Pipeline, name: str, kind: type[_E]) -> _E:
    """The element `name` of `p`, checked to be a `kind`."""
    element = p[name]
    assert isinstance(element, kind), element
    return element


def _src(props: str) -> AppSrc:
    return _get(parse_launch(f"appsrc name=src {props} ! fakesink"), "src", AppSrc)


def test_appsrc_max_bytes_bounds_the_queue() -> None:
    src = _src("max-buffers=0 max-bytes=10 block=false")
    src.push_buffer(b"123456")
    src.push_buffer(b"123456")  # 6 < 10 queued: accepted (GStreamer's rule), now 12
    with pytest.raises(FlowError, match=r"src: queue full"):
        src.push_buffer(b"1")
    assert src.metrics_extra()["level_bytes"] == 12


def test_appsrc_max_time_bounds_the_queue_by_duration() -> None:
    src = _src("max-buffers=0 max-time=100 block=false")
    src.push_buffer(Buffer(b"a", duration=60))
    src.push_buffer(Buffer(b"b", duration=60))
    with pytest.raises(FlowError, match=r"src: queue full"):
        src.push_buffer(Buffer(b"c", duration=60))
    assert src.metrics_extra()["level_time"] == 120


def test_appsrc_leaky_upstream_drops_the_new_buffer() -> None:
    p = parse_launch("appsrc name=src max-buffers=2 leaky-type=upstream ! appsink name=out")
    src = _get(p, "src", AppSrc)
    for data in (b"a", b"b", b"c", b"d"):
        src.push_buffer(data)  # never blocks
    src.end_of_stream()
    assert [b.to_bytes() for b in p.pull("out", timeout=5)] == [b"a", b"b"]
    assert src.dropped == 2


def test_appsrc_leaky_downstream_drops_the_oldest() -> None:
    p = parse_launch("appsrc name=src max-buffers=2 leaky-type=downstream ! appsink name=out")
    src = _get(p, "src", AppSrc)
    for data in (b"a", b"b", b"c", b"d"):
        src.push_buffer(data)
    assert src.metrics_extra() == {
        "level_buffers": 2,
        "level_bytes": 2,
        "level_time": 0,
        "dropped": 2,
    }
    src.end_of_stream()
    assert [b.to_bytes() for b in p.pull("out", timeout=5)] == [b"c", b"d"]


def test_appsrc_num_buffers_ends_the_stream() -> None:
    p = parse_launch("appsrc name=src num-buffers=2 max-buffers=0 ! appsink name=out")
    src = _get(p, "src", AppSrc)
    for data in (b"a", b"b", b"c"):
        src.push_buffer(data)
    assert [b.to_bytes() for b in p.pull("out", timeout=5)] == [b"a", b"b"]


def test_appsrc_metrics_show_the_queue() -> None:
    p = parse_launch("appsrc name=src ! fakesink")
    _get(p, "src", AppSrc).push_buffer(b"abc")
    assert p.metrics()["src"]["level_buffers"] == 1
    assert p.metrics()["src"]["level_bytes"] == 3


@pytest.mark.parametrize(
    ("props", "prop"),
    [
        ("max-bytes=-1", "max-bytes"),
        ("max-time=nan", "max-time"),
        ("leaky-type=sideways", "leaky-type"),
        ("num-buffers=-2", "num-buffers"),
        ("is-live=perhaps", "is-live"),
    ],
)
def test_appsrc_bad_values(props: str, prop: str) -> None:
    with pytest.raises(PropertyError, match=f"property '{prop}' expects"):
        _src(props)


def test_appsink_emit_signals_calls_new_sample_and_eos() -> None:
    p = parse_launch("appsrc name=src ! appsink name=out emit-signals=true")
    sink = _get(p, "out", AppSink)
    got: list[bytes] = []
    ended: list[bool] = []

    def new_sample(appsink: AppSink) -> None:
        buf = appsink.pull(0)
        assert buf is not None
        got.append(buf.to_bytes())

    sink.connect("new-sample", new_sample)
    sink.connect("eos", lambda appsink: ended.append(appsink.is_eos))
    src = _get(p, "src", AppSrc)
    src.push_buffer(b"a")
    src.push_buffer(b"b")
    src.end_of_stream()
    p.run(timeout=5)
    assert got == [b"a", b"b"] and ended == [True]


def test_appsink_signals_need_emit_signals() -> None:
    p = parse_launch("appsrc name=src ! appsink name=out")
    calls: list[AppSink] = []
    _get(p, "out", AppSink).connect("new-sample", calls.append)
    src = _get(p, "src", AppSrc)
    src.push_buffer(b"a")
    src.end_of_stream()
    p.run(timeout=5)
    assert calls == []
    with pytest.raises(ValueError, match=r"out: no signal 'handoff' \(it has: new-sample, eos\)"):
        _get(p, "out", AppSink).connect("handoff", calls.append)


def test_appsink_syncs_by_default_and_fakesink_does_not() -> None:
    p = parse_launch("appsrc name=src ! appsink name=a")
    assert _get(p, "a", AppSink).sync is True
    assert parse_launch("fakesrc ! fakesink name=f")["f"].get_property("sync") is False
