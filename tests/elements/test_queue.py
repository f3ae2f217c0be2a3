"""queue: min thresholds, flush-on-eos and the read-only current levels."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import parallax
from parallax import PropertyError
from parallax.buffer import Buffer
from parallax.elements import AppSink, AppSrc, Queue
from parallax.pipeline import Pipeline, sink


def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def playing() -> Iterator[list[Pipeline]]:
    """Pipelines the test plays; each is stopped after it."""
    started: list[Pipeline] = []
    yield started
    for p in started:
        p.stop()


def _play(text: str, started: list[Pipeline]) -> tuple[Pipeline, AppSrc, Queue, AppSink]:
    p = parallax.parse_launch(text)
    started.append(p)
    p.play()
    return p, p.get("in", AppSrc), p.get("q", Queue), p.get("out", AppSink)


def test_min_threshold_buffers_holds_data_back_until_that_many_are_queued(
    playing: list[Pipeline],
) -> None:
    _, src, q, out = _play(
        "appsrc name=in ! queue name=q min-threshold-buffers=3 ! appsink name=out max-buffers=0",
        playing,
    )
    src.push_buffer(b"a")
    src.push_buffer(b"b")
    _until(lambda: q.current_level_buffers == 2)
    assert out.pull(0.2) is None  # two queued, three wanted: nothing goes on
    src.push_buffer(b"c")
    first = out.pull(5)
    assert first is not None and first.to_bytes() == b"a"
    assert out.pull(0.2) is None  # back to two: held again, as in GStreamer
    src.end_of_stream()  # the newest item is an event now: the rest drains
    assert [b.to_bytes() for b in iter(lambda: out.pull(5), None)] == [b"b", b"c"]


def test_min_threshold_bytes_and_time(playing: list[Pipeline]) -> None:
    _, src, q, out = _play(
        "appsrc name=in ! queue name=q min-threshold-bytes=10 min-threshold-time=3000"
        " ! appsink name=out max-buffers=0",
        playing,
    )
    src.push_buffer(Buffer(b"12345678", duration=2000))
    _until(lambda: q.current_level_bytes == 8)
    assert (q.current_level_time, out.pull(0.2)) == (2000, None)
    src.push_buffer(Buffer(b"90", duration=500))  # 10 bytes, but 2500 ns: still held
    _until(lambda: q.current_level_time == 2500)
    assert out.pull(0.2) is None
    src.push_buffer(Buffer(b"!", duration=500))  # both met
    got = out.pull(5)
    assert got is not None and got.to_bytes() == b"12345678"


def test_a_min_threshold_above_the_limit_does_not_hold_a_full_queue(
    playing: list[Pipeline],
) -> None:
    _, src, _, out = _play(
        "appsrc name=in ! queue name=q max-size-buffers=2 min-threshold-buffers=5"
        " ! appsink name=out max-buffers=0",
        playing,
    )

    def push_six() -> None:
        for i in range(6):
            src.push_buffer(bytes([i]))

    pushed = threading.Thread(target=push_six)
    pushed.start()
    got = [out.pull(5) for _ in range(4)]  # full at two: pushed on though below five
    pushed.join()
    assert [b.to_bytes() for b in got if b is not None] == [bytes([i]) for i in range(4)]


def test_flush_on_eos_drops_the_queued_buffers_and_passes_eos() -> None:
    release = threading.Event()
    seen: list[bytes] = []

    @sink("slowsink", register=False)
    def slow(buf: Buffer) -> None:
        seen.append(buf.to_bytes())
        release.wait(5)

    src = AppSrc(name="in", max_buffers=0)
    q = Queue(name="q", max_size_buffers=0, flush_on_eos=True)
    p = Pipeline()
    out = slow(name="slow")
    p.add(src, q, out)
    p.link_many(src, q, out)
    p.play()
    try:
        for i in range(10):
            src.push_buffer(bytes([i]))
        _until(lambda: seen == [b"\x00"] and q.current_level_buffers == 9)
        src.end_of_stream()
        _until(lambda: q.current_level_buffers == 0)
        release.set()
        msg = p.wait(5)
        assert msg is not None and msg.error is None
    finally:
        p.stop()
    assert seen == [b"\x00"]  # the nine queued behind it were flushed; EOS came through


def test_without_flush_on_eos_everything_queued_arrives() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=50 ! queue max-size-buffers=0 ! identity sleep-time=100"
        " ! appsink name=out max-buffers=0"
    )
    assert len(list(p.pull("out"))) == 50


@pytest.mark.parametrize(
    "name", ["current-level-buffers", "current-level-bytes", "current-level-time"]
)
def test_current_levels_are_read_only(name: str) -> None:
    q = Queue(name="q")
    assert q.get_property(name) == 0
    with pytest.raises(PropertyError, match=rf"^q: property '{name}' is read-only$"):
        q.set_property(name, 3)
    with pytest.raises(PropertyError, match=rf"^q: property '{name}' is read-only$"):
        q.set_property(name, "3")
    text = f"fakesrc ! queue name=q {name}=3 ! fakesink"
    with pytest.raises(PropertyError) as info:
        parallax.parse_launch(text)
    assert info.value.column == text.index("=3 ") + 2  # the value, 1-based


def test_current_levels_follow_the_queue(playing: list[Pipeline]) -> None:
    _, src, q, _ = _play(
        "appsrc name=in ! queue name=q min-threshold-buffers=100 ! appsink name=out", playing
    )
    for _ in range(3):
        src.push_buffer(Buffer(b"abcd", duration=10))
    _until(lambda: q.current_level_buffers == 3)
    assert (q.current_level_bytes, q.current_level_time) == (12, 30)
    assert q.get_property("current_level_bytes") == 12


def test_to_launch_of_a_filled_queue_leaves_the_read_only_levels_out(
    playing: list[Pipeline],
) -> None:
    p, src, q, _ = _play(
        "appsrc name=in ! queue name=q min-threshold-buffers=100 ! appsink name=out", playing
    )
    src.push_buffer(b"held")
    _until(lambda: q.current_level_buffers == 1)
    text = p.to_launch()
    assert "current-level" not in text
    assert "min-threshold-buffers=100" in text
    parallax.parse_launch(text)  # what to_launch prints builds again
