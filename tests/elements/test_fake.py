"""fakesrc / fakesink / identity / capsfilter / consolesink / queue behaviour."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.buffer import Buffer, BufferFlags
from parallax.elements import (
    AppSink,
    AppSrc,
    FakeSink,
    FakeSrc,
    FillType,
    Identity,
    Queue,
    SizeType,
)
from parallax.pipeline import Element, Message, Pipeline

_E = TypeVar("_E", bound=Element)


def _get(p: Pipeline, name: str, kind: type[_E]) -> _E:
    """The element `name` of `p`, checked to be a `kind`."""
    element = p[name]
    assert isinstance(element, kind), element
    return element


def _pull(launch: str) -> list[bytes]:
    return [b.to_bytes() for b in parallax.parse_launch(launch).pull("out")]


def test_sizetypes() -> None:
    assert _pull("fakesrc num-buffers=2 ! appsink name=out") == [b"", b""]
    assert [
        len(b) for b in _pull("fakesrc num-buffers=2 sizetype=fixed sizemax=7 ! appsink name=out")
    ] == [7, 7]
    sizes = [
        len(b)
        for b in _pull(
            "fakesrc num-buffers=50 sizetype=random sizemin=3 sizemax=9 ! appsink name=out max-buffers=0"
        )
    ]
    assert min(sizes) >= 3 and max(sizes) <= 9


def test_filltypes() -> None:
    zero = _pull("fakesrc num-buffers=1 sizetype=fixed sizemax=4 filltype=zero ! appsink name=out")
    assert zero == [bytes(4)]
    pattern = _pull(
        "fakesrc num-buffers=1 sizetype=fixed sizemax=300 filltype=pattern ! appsink name=out"
    )
    assert pattern[0][:3] == b"\x00\x01\x02" and pattern[0][256] == 0
    span = _pull(
        "fakesrc num-buffers=2 sizetype=fixed sizemax=4 filltype=pattern-span ! appsink name=out"
    )
    assert span == [bytes([0, 1, 2, 3]), bytes([4, 5, 6, 7])]


def test_enum_property_errors_list_choices() -> None:
    with pytest.raises(
        PropertyError, match="expects one of 'empty', 'fixed', 'random', got 'huge'"
    ):
        parallax.parse_launch("fakesrc sizetype=huge ! fakesink")


def test_enum_by_python_value() -> None:
    p = parallax.parse_launch("fakesrc name=s sizetype=fixed filltype=zero ! fakesink")
    s = p.get_by_name("s")
    assert s.get_property("sizetype") is SizeType.FIXED
    assert s.get_property("filltype") is FillType.ZERO


def test_fakesink_handoff_and_dump(capsys: pytest.CaptureFixture[str]) -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=2 sizetype=fixed sizemax=20 filltype=pattern ! fakesink name=s signal-handoffs=true dump=true"
    )
    sink = p.get_by_name("s")
    assert isinstance(sink, FakeSink)
    seen: list[int] = []
    sink.connect("handoff", lambda b: seen.append(b.sequence))
    p.run(timeout=5)
    assert seen == [0, 1]
    assert "00000010: 10 11 12 13" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no signal 'nope'"):
        sink.connect("nope", print)


def test_identity_drop_probability_one_drops_all() -> None:
    assert _pull("fakesrc num-buffers=10 ! identity drop-probability=1.0 ! appsink name=out") == []


def test_source_caps_outside_a_capsfilter_fail_at_link_time() -> None:
    launch = (
        "appsrc name=in caps=video/raw,width=10 ! capsfilter caps=video/raw,width=20 ! fakesink"
    )
    with pytest.raises(
        parallax.LinkError, match="'video/raw,width=10' and 'video/raw,width=20' do not intersect"
    ) as info:
        parallax.parse_launch(launch)
    assert info.value.column == 40


def test_filesrc_bytes_can_be_labelled_by_a_caps_filter(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_bytes(b"a\nb\n")
    bufs = list(
        parallax.parse_launch(f"filesrc location={f} ! text/lines ! appsink name=out").pull("out")
    )
    assert str(bufs[0].caps) == "text/lines"


def test_consolesink_formats(capsys: pytest.CaptureFixture[str]) -> None:
    p = parallax.parse_launch("appsrc name=in ! consolesink format=hex")
    src = p.get_by_name("in")
    p.play()
    src.push_buffer(b"\x01\x02")  # type: ignore[attr-defined]
    src.end_of_stream()  # type: ignore[attr-defined]
    p.wait(5)
    p.stop()
    assert "01 02" in capsys.readouterr().out
    with pytest.raises(PropertyError, match="format"):
        parallax.parse_launch("fakesrc ! consolesink format=xml")


def test_queue_backpressure_bounds_the_level() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=300 ! queue name=q max-size-buffers=4 ! identity sleep-time=50 ! fakesink"
    )
    p.run(timeout=20)
    q = p.get_by_name("q")
    assert isinstance(q, Queue)
    assert q.max_level <= 4
    assert q.dropped == 0


def test_queue_leaky_upstream_drops_new() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=300 ! queue name=q max-size-buffers=2 leaky=upstream ! identity sleep-time=300 ! fakesink name=s"
    )
    p.run(timeout=20)
    q, s = p.get_by_name("q"), p.get_by_name("s")
    assert isinstance(q, Queue) and isinstance(s, FakeSink)
    assert q.dropped > 0 and s.count + q.dropped == 300


def test_error_after_names_identity() -> None:
    with pytest.raises(FlowError, match="identity-x: error-after=1"):
        parallax.parse_launch("fakesrc ! identity name=identity-x error-after=1 ! fakesink").run(
            timeout=5
        )


# -- fakesrc: timestamps, handoffs, dump -------------------------------------------------

SECOND = 1_000_000_000


def _buffers(launch: str) -> list[Buffer]:
    return list(parallax.parse_launch(launch).pull("out", timeout=5))


def test_fakesrc_datarate_timestamps_from_the_byte_count() -> None:
    bufs = _buffers(
        "fakesrc num-buffers=4 sizetype=fixed sizemax=250 datarate=1000 ! appsink name=out sync=false"
    )
    assert [b.pts for b in bufs] == [0, SECOND // 4, SECOND // 2, 3 * SECOND // 4]
    assert [b.dts for b in bufs] == [b.pts for b in bufs]
    assert {b.duration for b in bufs} == {SECOND // 4}
    assert [b.offset for b in bufs] == [0, 1, 2, 3]  # the buffer's number, as before


def test_fakesrc_datarate_with_random_sizes_counts_bytes() -> None:
    bufs = _buffers(
        "fakesrc num-buffers=20 sizetype=random sizemin=1 sizemax=50 datarate=100 "
        "! appsink name=out sync=false max-buffers=0"
    )
    sent = 0
    for b in bufs:
        assert b.pts == sent * SECOND // 100 and b.duration == b.size * SECOND // 100
        sent += b.size


def test_fakesrc_without_datarate_leaves_timestamps_unset() -> None:
    bufs = _buffers("fakesrc num-buffers=2 sizetype=fixed sizemax=8 ! appsink name=out")
    assert [(b.pts, b.duration) for b in bufs] == [(-1, -1), (-1, -1)]


def test_fakesrc_signal_handoffs_sees_each_buffer_before_it_is_pushed() -> None:
    p = parallax.parse_launch(
        "fakesrc name=src num-buffers=3 sizetype=fixed sizemax=4 signal-handoffs=true "
        "! fakesink name=sink signal-handoffs=true"
    )
    order: list[tuple[str, int]] = []
    _get(p, "src", FakeSrc).connect("handoff", lambda b: order.append(("src", b.sequence)))
    _get(p, "sink", FakeSink).connect("handoff", lambda b: order.append(("sink", b.sequence)))
    p.run(timeout=5)
    assert order == [(side, i) for i in range(3) for side in ("src", "sink")]
    with pytest.raises(ValueError, match=r"no signal 'new-sample' \(it has: handoff\)"):
        _get(p, "src", FakeSrc).connect("new-sample", print)


def test_fakesrc_handoffs_need_signal_handoffs() -> None:
    p = parallax.parse_launch("fakesrc name=src num-buffers=3 ! fakesink")
    seen: list[int] = []
    _get(p, "src", FakeSrc).connect("handoff", lambda b: seen.append(b.sequence))
    p.run(timeout=5)
    assert seen == []


def test_fakesrc_dump(capsys: pytest.CaptureFixture[str]) -> None:
    parallax.parse_launch(
        "fakesrc num-buffers=1 sizetype=fixed sizemax=3 filltype=pattern dump=true ! fakesink"
    ).run(timeout=5)
    assert "00000000: 00 01 02" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("launch", "message"),
    [
        ("fakesrc datarate=-1", "property 'datarate' expects an int in [0, 2147483647], got -1"),
        (
            "fakesrc datarate=nan",
            "property 'datarate' expects an int in [0, 2147483647], got 'nan'",
        ),
        ("fakesrc datarate=4G", "property 'datarate' expects an int in [0, 2147483647]"),
        ("fakesrc is-live=sometimes", "property 'is-live' expects a boolean"),
        ("fakesrc do-timestamp=2", "property 'do-timestamp' expects a boolean"),
    ],
)
def test_fakesrc_bad_timing_values(launch: str, message: str) -> None:
    with pytest.raises(PropertyError, match=re.escape(message)):
        parallax.parse_launch(f"{launch} ! fakesink")


# -- identity: GStreamer's testing properties --------------------------------------------


def test_identity_eos_after_passes_n_buffers_then_ends_the_stream() -> None:
    p = parallax.parse_launch("fakesrc name=src ! identity eos-after=3 ! fakesink name=s")
    p.run(timeout=5)
    assert _get(p, "s", FakeSink).count == 3
    assert _buffers("fakesrc ! identity eos-after=0 ! appsink name=out") == []


def test_identity_drop_buffer_flags() -> None:
    p = parallax.parse_launch(
        "appsrc name=src ! identity drop-buffer-flags=discont+gap ! appsink name=out"
    )
    src = _get(p, "src", AppSrc)
    for i, flags in enumerate([0, BufferFlags.DISCONT, BufferFlags.DELTA_UNIT, BufferFlags.GAP]):
        src.push_buffer(Buffer(bytes([i]), flags=flags))
    src.end_of_stream()
    assert [b.to_bytes() for b in p.pull("out", timeout=5)] == [b"\x00", b"\x02"]


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("discont", BufferFlags.DISCONT),
        ("discont+delta-unit", BufferFlags.DISCONT | BufferFlags.DELTA_UNIT),
        ("gap|marker", BufferFlags.GAP | BufferFlags.MARKER),
        ("0x2", BufferFlags.DISCONT),
        ("none", BufferFlags.NONE),
    ],
)
def test_identity_drop_buffer_flags_text(text: str, flags: BufferFlags) -> None:
    identity = parallax.parse_launch(
        f"fakesrc ! identity name=i drop-buffer-flags={text} ! fakesink"
    )["i"]
    assert identity.get_property("drop-buffer-flags") == flags


def test_identity_drop_buffer_flags_refuses_unknown_names() -> None:
    with pytest.raises(PropertyError, match=r"drop-buffer-flags.*no buffer flag 'shiny'"):
        parallax.parse_launch("fakesrc ! identity drop-buffer-flags=discont+shiny ! fakesink")


def test_identity_datarate_retimestamps_without_touching_the_input() -> None:
    p = parallax.parse_launch(
        "appsrc name=src ! tee name=t ! identity datarate=10 ! appsink name=out  t. ! appsink name=raw sync=false"
    )
    src = _get(p, "src", AppSrc)
    for data in (b"12345", b"1234567890"):
        src.push_buffer(Buffer(data, pts=7))
    src.end_of_stream()
    with p:
        p.play()
        out = list(_get(p, "out", AppSink))
        raw = list(_get(p, "raw", AppSink))
    assert [(b.pts, b.duration) for b in out] == [(0, SECOND // 2), (SECOND // 2, SECOND)]
    assert [b.pts for b in raw] == [7, 7]  # the other branch's buffers keep theirs


def test_identity_check_imperfect_timestamp_posts_a_message() -> None:
    p = parallax.parse_launch(
        "appsrc name=src ! identity name=i check-imperfect-timestamp=true ! fakesink"
    )
    src = _get(p, "src", AppSrc)
    for pts in (0, 10, 25):
        src.push_buffer(Buffer(b"x", pts=pts, duration=10))
    src.end_of_stream()
    seen: list[Message] = []
    p.bus.add_listener(
        lambda m: seen.append(m) if m.data.get("event") == "imperfect-timestamp" else None
    )
    p.run(timeout=5)
    assert [(m.source, m.data["prev_pts"], m.data["pts"]) for m in seen] == [("i", 10, 25)]


def test_identity_handoff_and_dump(capsys: pytest.CaptureFixture[str]) -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=2 sizetype=fixed sizemax=2 filltype=pattern ! identity name=i dump=true ! fakesink"
    )
    seen: list[int] = []
    _get(p, "i", Identity).connect("handoff", lambda b: seen.append(b.sequence))
    p.run(timeout=5)
    assert seen == [0, 1]  # signal-handoffs defaults to true, as in GStreamer
    assert "00000000: 00 01" in capsys.readouterr().out
    p = parallax.parse_launch(
        "fakesrc num-buffers=2 ! identity name=i signal-handoffs=false ! fakesink"
    )
    _get(p, "i", Identity).connect("handoff", lambda b: seen.append(-1))
    p.run(timeout=5)
    assert seen == [0, 1]


def test_identity_with_defaults_is_wired_through() -> None:
    p = parallax.parse_launch("appsrc name=src ! identity name=i ! fakesink name=s")
    identity = _get(p, "i", Identity)
    with p:
        p.play()
        assert identity.sinkpad._chain == identity.srcpad.push
        identity.connect("handoff", lambda b: None)  # from now on it needs the full path
        assert identity.sinkpad._chain == identity.chain
