"""The pipeline clock: base time, running time, sinks' sync, live sources, identity sync.

Wall-clock assertions use generous bounds (a loaded 2-core CI machine): a 1 s stream must
take 0.85-1.5 s with sync and well under 0.3 s without.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import urllib.request
from typing import TypeVar

import pytest

from parallax import FlowError, PropertyError
from parallax.buffer import Buffer
from parallax.elements import AppSink, AppSrc, FakeSink
from parallax.pipeline import (
    Clock,
    Element,
    Message,
    MessageType,
    MetricsServer,
    Pipeline,
    State,
    parse_launch,
)

_E = TypeVar("_E", bound=Element)


def _get(p: Pipeline, name: str, kind: type[_E]) -> _E:
    """The element `name` of `p`, checked to be a `kind`."""
    element = p[name]
    assert isinstance(element, kind), element
    return element


SECOND = 1_000_000_000
FRAME = SECOND // 30
SIZE = 1000
STREAM_30FPS = f"fakesrc num-buffers=30 sizetype=fixed sizemax={SIZE} datarate={30 * SIZE}"


def _timed_run(launch: str) -> tuple[float, Pipeline]:
    pipeline = parse_launch(launch)
    t0 = time.monotonic()
    pipeline.run(timeout=10)
    return time.monotonic() - t0, pipeline


# -- the clock itself ---------------------------------------------------------------


def test_clock_time_is_monotonic_nanoseconds() -> None:
    clock = Clock()
    a = clock.time()
    b = time.monotonic_ns()
    c = clock.time()
    assert a <= b <= c
    assert "Clock" in repr(clock)


def test_wait_until_a_past_time_returns_its_jitter_at_once() -> None:
    clock = Clock()
    t0 = time.monotonic()
    jitter = clock.wait_until(clock.time() - 5_000_000)
    assert jitter is not None and jitter >= 5_000_000
    assert time.monotonic() - t0 < 0.05


def test_wait_until_a_future_time_waits_for_it() -> None:
    clock = Clock()
    target = clock.time() + 50_000_000
    jitter = clock.wait_until(target)
    assert jitter is not None and 0 <= jitter < 20_000_000
    assert clock.time() >= target


def test_an_interrupt_ends_a_cancelled_wait_at_once() -> None:
    clock = Clock()
    cancel = threading.Event()
    result: list[int | None] = []
    waiter = threading.Thread(
        target=lambda: result.append(clock.wait_until(clock.time() + 3600 * SECOND, cancel.is_set))
    )
    waiter.start()
    time.sleep(0.05)
    clock.interrupt()  # not cancelled: it waits on
    time.sleep(0.05)
    assert waiter.is_alive()
    t0 = time.monotonic()
    cancel.set()
    clock.interrupt()
    waiter.join(1)
    assert not waiter.is_alive() and result == [None]
    assert time.monotonic() - t0 < 0.2


# -- base time and running time -------------------------------------------------------


def test_pipeline_clock_is_public_and_one_per_pipeline() -> None:
    a, b = parse_launch("fakesrc ! fakesink"), parse_launch("fakesrc ! fakesink")
    assert isinstance(a.clock, Clock) and a.clock is a.clock
    assert a.clock is not b.clock
    assert a.base_time == -1  # CLOCK_TIME_NONE before the first PLAYING
    assert a.running_time() == 0


def test_base_time_is_set_going_to_playing() -> None:
    p = parse_launch("appsrc name=src ! fakesink")
    with p:
        before = p.clock.time()
        p.play()
        after = p.clock.time()
        assert before <= p.base_time <= after
        time.sleep(0.1)
        assert 0.09 * SECOND <= p.running_time() <= 0.5 * SECOND
        assert p.running_time() == pytest.approx(p.clock.time() - p.base_time, abs=SECOND // 100)
        assert p["src"].running_time() <= p.running_time()  # elements see the same


def test_pausing_does_not_count_as_running_time() -> None:
    p = parse_launch("appsrc name=src ! fakesink")
    with p:
        p.play()
        time.sleep(0.1)
        p.pause()
        frozen = p.running_time()
        base = p.base_time
        time.sleep(0.3)
        assert p.running_time() == frozen  # it stands still while PAUSED
        p.play()
        assert p.base_time - base >= 0.29 * SECOND  # moved forward by the pause
        assert frozen <= p.running_time() < frozen + 0.1 * SECOND


def test_a_new_run_starts_at_running_time_zero() -> None:
    p = parse_launch("appsrc name=src ! fakesink")
    p.play()
    time.sleep(0.1)
    p.stop()
    p.play()
    try:
        assert p.running_time() < 0.05 * SECOND
    finally:
        p.stop()


def test_an_element_outside_a_pipeline_has_no_clock() -> None:
    sink = FakeSink()
    assert sink.running_time() == -1
    assert sink.wait_running_time(10 * SECOND) == 0  # nothing to wait on


# -- sinks: sync -------------------------------------------------------------------------


def test_a_30fps_stream_takes_a_second_with_sync_and_no_time_without() -> None:
    synced, p = _timed_run(f"{STREAM_30FPS} ! fakesink name=s sync=true")
    assert 0.85 <= synced <= 1.5
    assert p.metrics()["s"]["buffers_in"] == 30 and p.metrics()["s"]["dropped_late"] == 0
    free, _ = _timed_run(f"{STREAM_30FPS} ! fakesink sync=false")
    assert free < 0.3
    default, _ = _timed_run(f"{STREAM_30FPS} ! fakesink")  # fakesink: sync=false, as GStreamer
    assert default < 0.3


def _push_30fps(src: AppSrc) -> None:
    for i in range(30):
        src.push_buffer(Buffer(b"frame", pts=i * FRAME, duration=FRAME))
    src.end_of_stream()


@pytest.mark.parametrize(("sink", "paced"), [("appsink", True), ("appsink sync=false", False)])
def test_appsrc_with_explicit_pts_is_paced_by_appsink(sink: str, paced: bool) -> None:
    p = parse_launch(f"appsrc name=src max-buffers=0 ! {sink} name=out max-buffers=0")
    _push_30fps(_get(p, "src", AppSrc))
    t0 = time.monotonic()
    got = list(p.pull("out", timeout=10))
    took = time.monotonic() - t0
    assert [b.pts for b in got] == [i * FRAME for i in range(30)]
    if paced:  # appsink syncs by default, as GStreamer's
        assert 0.85 <= took <= 1.5
    else:
        assert took < 0.3


def test_buffers_without_pts_render_at_once() -> None:
    took, p = _timed_run("fakesrc num-buffers=100 ! fakesink name=s sync=true")
    assert took < 0.5 and _get(p, "s", FakeSink).count == 100


def test_ts_offset_shifts_the_sync_time() -> None:
    # Every buffer has pts 0; ts-offset=0.3 s renders the first one 0.3 s in.
    p = parse_launch(f"appsrc name=src ! fakesink name=s sync=true ts-offset={3 * SECOND // 10}")
    src = _get(p, "src", AppSrc)
    src.push_buffer(Buffer(b"x", pts=0))
    src.end_of_stream()
    t0 = time.monotonic()
    p.run(timeout=5)
    assert 0.25 <= time.monotonic() - t0 <= 1.0


def test_late_buffers_are_dropped_counted_and_reported() -> None:
    # identity sleeps 30 ms per buffer; buffers are 10 ms apart: every one arrives late.
    late = (
        "fakesrc num-buffers=5 sizetype=fixed sizemax=10 datarate=1000 ! identity sleep-time=30000"
    )
    p = parse_launch(
        f"{late} ! fakesink name=s sync=true max-lateness=5000000 signal-handoffs=true"
    )
    rendered: list[int] = []
    _get(p, "s", FakeSink).connect("handoff", lambda b: rendered.append(b.sequence))
    qos: list[Message] = []
    p.bus.add_listener(lambda m: qos.append(m) if m.data.get("event") == "qos" else None)
    p.run(timeout=5)
    assert rendered == []
    assert p.metrics()["s"]["dropped_late"] == 5
    assert [m.data["dropped"] for m in qos] == [1, 2, 3, 4, 5]
    assert all(m.source == "s" and m.data["jitter"] > 5_000_000 for m in qos)
    # max-lateness=-1 (the default): late, but never dropped.
    p = parse_launch(f"{late} ! fakesink name=s sync=true")
    p.run(timeout=5)
    assert _get(p, "s", FakeSink).count == 5 and p.metrics()["s"]["dropped_late"] == 0


def test_prometheus_serves_the_late_drops() -> None:
    pytest.importorskip("prometheus_client", reason="needs parallax-dataflow[metrics]")
    p = parse_launch(
        "fakesrc num-buffers=3 sizetype=fixed sizemax=10 datarate=1000 ! identity sleep-time=30000 "
        "! fakesink name=s sync=true max-lateness=0"
    )
    p.run(timeout=5)
    with (
        MetricsServer(p, 0) as server,
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r,
    ):
        text = r.read().decode()
    assert 'parallax_dropped_late_total{element="s"} 3.0' in text


def test_pause_holds_a_synced_stream_and_resumes_it() -> None:
    # 10 buffers of 50 ms: 0.5 s of running time, around a 0.4 s pause.
    p = parse_launch(
        "fakesrc num-buffers=10 sizetype=fixed sizemax=100 datarate=2000 "
        "! fakesink name=s sync=true signal-handoffs=true"
    )
    seen: list[float] = []
    _get(p, "s", FakeSink).connect("handoff", lambda b: seen.append(time.monotonic()))
    with p:
        t0 = time.monotonic()
        p.play()
        time.sleep(0.12)
        p.pause()
        paused_at = time.monotonic()
        time.sleep(0.4)
        resumed_at = time.monotonic()
        p.play()
        message = p.wait(5)
        took = time.monotonic() - t0
        assert message is not None and message.type is MessageType.EOS
        assert 0.4 * SECOND <= p.running_time() <= 0.8 * SECOND
    assert len(seen) == 10
    assert took >= 0.85  # 0.5 s of stream + 0.4 s of pause
    # Nothing was rendered during the pause (one buffer may finish as it starts).
    assert sum(1 for t in seen if paused_at + 0.06 < t < resumed_at) == 0


def test_stop_during_a_long_sync_wait_stops_within_a_second() -> None:
    p = parse_launch("appsrc name=src ! fakesink name=s sync=true")
    _get(p, "src", AppSrc).push_buffer(Buffer(b"x", pts=3600 * SECOND))
    p.play()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert _get(p, "s", FakeSink).count == 0


def test_stop_while_paused_in_a_sync_wait_stops_within_a_second() -> None:
    p = parse_launch("appsrc name=src ! appsink name=out")
    _get(p, "src", AppSrc).push_buffer(Buffer(b"x", pts=3600 * SECOND))
    p.play()
    time.sleep(0.1)
    p.pause()
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert _get(p, "out", AppSink).pull(0) is None


def test_sync_false_leaves_the_sink_pads_chain_function_its_own() -> None:
    # The hot path: without sync nothing stands between the pad and the sink.
    p = parse_launch("appsrc name=src ! fakesink name=s")
    sink = _get(p, "s", FakeSink)
    with p:
        p.play()
        assert sink.sinkpad._chain == sink._count
        assert _get(p, "src", AppSrc).srcpad._chain == sink._count


def test_a_synced_pipeline_runs_again_after_stop() -> None:
    launch = "fakesrc num-buffers=6 sizetype=fixed sizemax=100 datarate=2000 ! fakesink sync=true"
    p = parse_launch(launch)
    for _ in range(2):
        t0 = time.monotonic()
        p.run(timeout=5)
        assert 0.25 <= time.monotonic() - t0 <= 1.0  # 0.3 s each time: base time reset


def test_timing_and_sync_together() -> None:
    p = parse_launch(f"{STREAM_30FPS} ! fakesink name=s sync=true")
    p.enable_timing()
    t0 = time.monotonic()
    p.run(timeout=5)
    assert 0.85 <= time.monotonic() - t0 <= 1.5
    # The wait is not the sink's processing time.
    assert p.metrics()["s"]["proc_ns"] < 0.2 * SECOND


# -- sources: do-timestamp and live ----------------------------------------------------


def test_do_timestamp_gives_increasing_running_time_pts() -> None:
    p = parse_launch(
        "fakesrc num-buffers=5 do-timestamp=true ! identity sleep-time=20000 ! appsink name=out"
    )
    pts = [b.pts for b in p.pull("out", timeout=5)]
    assert len(pts) == 5 and pts[0] >= 0
    assert all(b - a >= 15_000_000 for a, b in itertools.pairwise(pts))
    assert pts[-1] < 2 * SECOND


def test_do_timestamp_survives_a_new_chain_function_downstream_while_playing() -> None:
    """identity.connect('handoff') while playing re-points its sink pad's chain function;
    the source's clock in front of it must stay (it was silently lost once)."""
    p = parse_launch(
        "fakesrc do-timestamp=true sizetype=fixed sizemax=8 ! identity name=i "
        "! appsink name=out max-buffers=0"
    )
    out = p.get("out", AppSink)
    p.play()
    try:
        first = out.pull(5)
        assert first is not None and first.pts >= 0
        p["i"].connect("handoff", lambda buf: None)  # type: ignore[attr-defined]
        seen = [out.pull(5) for _ in range(200)]
        assert all(b is not None and b.pts >= 0 for b in seen[-50:])
    finally:
        p.stop()


def test_without_do_timestamp_fakesrc_leaves_pts_unset() -> None:
    p = parse_launch("fakesrc num-buffers=3 ! appsink name=out")
    assert [b.pts for b in p.pull("out", timeout=5)] == [-1, -1, -1]


def test_do_timestamp_keeps_a_pts_that_is_set() -> None:
    p = parse_launch("appsrc name=src do-timestamp=true ! appsink name=out sync=false")
    src = _get(p, "src", AppSrc)
    src.push_buffer(Buffer(b"x", pts=123))
    src.end_of_stream()
    assert [b.pts for b in p.pull("out", timeout=5)] == [123]


def test_appsrc_do_timestamp_stamps_when_pushed() -> None:
    p = parse_launch("appsrc name=src do-timestamp=true ! appsink name=out")
    src = _get(p, "src", AppSrc)
    original = Buffer(b"x")
    with p:
        p.play()
        time.sleep(0.1)
        src.push_buffer(original)
        time.sleep(0.1)
        src.push_buffer(b"y")
        src.end_of_stream()
        pts = [b.pts for b in p.pull("out", timeout=5)]
    assert 0.08 * SECOND <= pts[0] < pts[1] and pts[1] - pts[0] >= 0.08 * SECOND
    assert original.pts == -1  # the caller's buffer is not changed


def test_a_live_fakesrc_with_sync_paces_itself() -> None:
    took, _ = _timed_run(f"{STREAM_30FPS} is-live=true sync=true ! fakesink")
    assert 0.85 <= took <= 1.5
    # As in GStreamer, is-live alone does not wait: the timestamps are there, the sink syncs.
    took, _ = _timed_run(f"{STREAM_30FPS} is-live=true ! fakesink")
    assert took < 0.3


def test_a_live_appsrc_pushes_each_buffer_at_its_pts() -> None:
    p = parse_launch("appsrc name=src is-live=true max-buffers=0 ! fakesink name=s")
    _push_30fps(_get(p, "src", AppSrc))
    t0 = time.monotonic()
    p.run(timeout=5)
    assert 0.85 <= time.monotonic() - t0 <= 1.5


def test_a_live_fakesrc_stamps_running_time() -> None:
    p = parse_launch(
        "fakesrc num-buffers=3 is-live=true ! identity sleep-time=20000 ! appsink name=out"
    )
    pts = [b.pts for b in p.pull("out", timeout=5)]
    assert pts[0] >= 0 and pts[1] - pts[0] >= 15_000_000 and pts[2] > pts[1]


def test_stop_during_a_live_wait_stops_within_a_second() -> None:
    # The second buffer's pts is 10 s away: the source waits for it.
    p = parse_launch(
        "fakesrc is-live=true sync=true datarate=1 sizetype=fixed sizemax=10 ! fakesink name=s"
    )
    p.play()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    assert _get(p, "s", FakeSink).count == 1


# -- identity sync --------------------------------------------------------------------


def test_identity_sync_paces_a_stream() -> None:
    took, _ = _timed_run(f"{STREAM_30FPS} ! identity sync=true ! fakesink")
    assert 0.85 <= took <= 1.5
    took, _ = _timed_run(f"{STREAM_30FPS} ! identity ! fakesink")
    assert took < 0.3


def test_identity_datarate_and_sync_pace_an_untimed_stream() -> None:
    took, _ = _timed_run(
        f"fakesrc num-buffers=30 sizetype=fixed sizemax={SIZE} "
        f"! identity datarate={30 * SIZE} sync=true ! fakesink"
    )
    assert 0.85 <= took <= 1.5


def test_stop_during_identity_sync_stops_within_a_second() -> None:
    p = parse_launch("appsrc name=src ! identity sync=true ! fakesink")
    _get(p, "src", AppSrc).push_buffer(Buffer(b"x", pts=3600 * SECOND))
    p.play()
    time.sleep(0.2)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0


# -- bad values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("launch", "message"),
    [
        ("fakesink max-lateness=-2", "property 'max-lateness' expects an int >= -1, got -2"),
        ("fakesink max-lateness=nan", "property 'max-lateness' expects an int >= -1, got 'nan'"),
        ("fakesink ts-offset=soon", "property 'ts-offset' expects an int, got 'soon'"),
        ("fakesink sync=maybe", "property 'sync' expects a boolean"),
        ("appsink max-lateness=1.5", "property 'max-lateness' expects an int >= -1"),
        ("identity ts-offset=nan", "property 'ts-offset' expects an int"),
    ],
)
def test_bad_sync_values_are_property_errors(launch: str, message: str) -> None:
    with pytest.raises(PropertyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_launch(
            f"fakesrc ! {launch}" if "sink" in launch else f"fakesrc ! {launch} ! fakesink"
        )


@pytest.mark.parametrize("value", [math.nan, -2, 1.5, "x"])
def test_bad_max_lateness_from_python_is_a_property_error(value: object) -> None:
    with pytest.raises(PropertyError, match="max-lateness"):
        FakeSink(max_lateness=value)


def test_sync_cannot_change_while_playing_but_max_lateness_can() -> None:
    p = parse_launch("appsrc name=src ! fakesink name=s sync=true")
    sink = _get(p, "s", FakeSink)
    with p:
        p.play()
        sink.set_property("max-lateness", 1000)
        assert sink.max_lateness == 1000
        with pytest.raises(PropertyError, match="'sync' cannot change in state PLAYING"):
            sink.set_property("sync", False)


def test_an_error_in_a_synced_sink_names_it() -> None:
    p = parse_launch(f"{STREAM_30FPS} ! fakesink name=s sync=true num-buffers=2")
    p.run(timeout=5)  # EOS from the sink after 2 buffers, through the sync wrapper
    assert _get(p, "s", FakeSink).count == 2
    p = parse_launch("appsrc name=src ! identity error-after=1 name=bad ! fakesink sync=true")
    _get(p, "src", AppSrc).push_buffer(Buffer(b"x", pts=0))
    with pytest.raises(FlowError, match="bad: error-after=1 reached"):
        p.run(timeout=5)
    assert p.state is State.NULL
