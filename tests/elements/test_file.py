"""filesrc / filesink: byte-exact copies, offsets, mmap mode, and precise errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.elements import FileSrc


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.bin"
    path.write_bytes(os.urandom(1_000_003))
    return path


@pytest.mark.parametrize("mode", ["false", "true"])
@pytest.mark.parametrize("blocksize", ["4096", "64k", "1M", "1000"])
def test_copy_is_byte_exact(data_file: Path, tmp_path: Path, mode: str, blocksize: str) -> None:
    out = tmp_path / "out.bin"
    parallax.parse_launch(
        f"filesrc location={data_file} blocksize={blocksize} mmap={mode} ! filesink location={out}"
    ).run(timeout=10)
    assert out.read_bytes() == data_file.read_bytes()


def test_offset_and_num_buffers(data_file: Path) -> None:
    p = parallax.parse_launch(
        f"filesrc location={data_file} offset=10 blocksize=100 num-buffers=3 ! appsink name=out max-buffers=0"
    )
    bufs = list(p.pull("out"))
    assert [b.offset for b in bufs] == [10, 110, 210]
    assert b"".join(b.to_bytes() for b in bufs) == data_file.read_bytes()[10:310]


def test_mmap_buffers_are_read_only_views(data_file: Path) -> None:
    p = parallax.parse_launch(
        f"filesrc location={data_file} mmap=true blocksize=1M ! appsink name=out max-buffers=0"
    )
    bufs = list(p.pull("out"))
    assert all(b.readonly for b in bufs)
    assert sum(b.size for b in bufs) == data_file.stat().st_size
    del bufs


def test_empty_file_gives_eos_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for mode in ("false", "true"):
        p = parallax.parse_launch(f"filesrc location={empty} mmap={mode} ! appsink name=out")
        assert list(p.pull("out")) == []


def test_filesink_append(tmp_path: Path) -> None:
    out = tmp_path / "log"
    out.write_bytes(b"start:")
    p = parallax.parse_launch(f"appsrc name=in ! filesink location={out} append=true")
    src = p.get_by_name("in")
    p.play()
    src.push_buffer(b"more")  # type: ignore[attr-defined]
    src.end_of_stream()  # type: ignore[attr-defined]
    assert p.wait(5) is not None
    p.stop()
    assert out.read_bytes() == b"start:more"


def test_missing_file_names_the_element_and_path(tmp_path: Path) -> None:
    p = parallax.parse_launch(f"filesrc name=reader location={tmp_path}/nope ! fakesink")
    with pytest.raises(FlowError, match=r"reader: cannot open '.*nope': No such file"):
        p.run(timeout=5)


def test_location_is_required() -> None:
    with pytest.raises(PropertyError, match="'location' is not set"):
        parallax.parse_launch("filesrc ! fakesink").run(timeout=5)


def test_bad_blocksize_is_a_property_error_with_column() -> None:
    with pytest.raises(PropertyError) as info:
        parallax.parse_launch("filesrc location=x blocksize=ten ! fakesink")
    assert info.value.column == 30
    assert "expects an int in [1, 2147483648], got 'ten'" in str(info.value)


def test_python_constructor_takes_location() -> None:
    assert FileSrc("a.bin", blocksize=10).location == "a.bin"
