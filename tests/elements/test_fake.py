"""fakesrc / fakesink / identity / capsfilter / consolesink / queue behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.elements import FakeSink, FillType, Queue, SizeType


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
