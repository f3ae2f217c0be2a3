"""filesrc / filesink: byte-exact copies, offsets, mmap mode, and precise errors."""

from __future__ import annotations

import errno
import os
import threading
import time
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


# -- non-seekable files: pipes, FIFOs, character devices ---------------------------------


def _feed(fd: int, data: bytes, chunk: int) -> threading.Thread:
    """Write `data` to the pipe end `fd` in `chunk`-byte pieces from a thread, then close
    it (the reader's EOF). The caller joins the thread."""

    def run() -> None:
        try:
            for i in range(0, len(data), chunk):
                os.write(fd, data[i : i + chunk])
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, name="feeder")
    thread.start()
    return thread


@pytest.mark.parametrize("chunk", [1000, 4096, 100_000])
def test_filesrc_reads_a_pipe_in_order_in_full_blocks(tmp_path: Path, chunk: int) -> None:
    data = os.urandom(50_003)
    r, w = os.pipe()
    feeder = _feed(w, data, chunk)
    try:
        p = parallax.parse_launch(
            f"filesrc location=/proc/self/fd/{r} blocksize=4096 ! appsink name=out max-buffers=0"
        )
        bufs = list(p.pull("out"))
    finally:
        feeder.join()
        os.close(r)
    assert b"".join(b.to_bytes() for b in bufs) == data
    # Full blocks whatever the writer's chunks (as from a file), the last one shorter.
    assert [b.size for b in bufs[:-1]] == [4096] * (len(bufs) - 1)
    assert [b.offset for b in bufs] == list(range(0, len(data), 4096))


def test_filesrc_reads_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.bin"
    data = os.urandom(100_000)
    p = parallax.parse_launch(f"filesrc location={fifo} ! filesink location={out}")
    p.play()  # opens the FIFO before any writer: must not block in start()
    try:
        w = os.open(fifo, os.O_WRONLY)
        feeder = _feed(w, data, 7000)
        assert p.wait(10) is not None
        feeder.join()
    finally:
        p.stop()
    assert out.read_bytes() == data


def test_filesrc_reads_a_character_device_in_order(tmp_path: Path) -> None:
    p = parallax.parse_launch(
        "filesrc location=/dev/zero blocksize=1000 num-buffers=3 ! appsink name=out max-buffers=0"
    )
    bufs = list(p.pull("out"))
    assert [(b.offset, b.size) for b in bufs] == [(0, 1000), (1000, 1000), (2000, 1000)]
    assert all(b.to_bytes() == bytes(1000) for b in bufs)


def test_stopping_a_filesrc_that_waits_on_an_idle_pipe_is_prompt() -> None:
    r, w = os.pipe()
    try:
        p = parallax.parse_launch(f"filesrc location=/proc/self/fd/{r} ! fakesink")
        p.play()
        time.sleep(0.2)  # the streaming thread now waits for data that never comes
        began = time.monotonic()
        p.stop()
        assert time.monotonic() - began < 1.0
    finally:
        os.close(r)
        os.close(w)


def test_mmap_on_a_pipe_is_a_property_error_naming_path_and_kind() -> None:
    r, w = os.pipe()
    try:
        p = parallax.parse_launch(
            f"filesrc name=reader location=/proc/self/fd/{r} mmap=true ! fakesink"
        )
        with pytest.raises(PropertyError) as info:
            p.run(timeout=5)
    finally:
        os.close(r)
        os.close(w)
    assert str(info.value) == (
        f"reader: mmap=true needs a regular file; '/proc/self/fd/{r}' is a pipe or FIFO"
    )
    assert (info.value.element, info.value.prop) == ("reader", "mmap")


def test_offset_on_a_character_device_is_a_property_error() -> None:
    p = parallax.parse_launch("filesrc name=reader location=/dev/zero offset=10 ! fakesink")
    with pytest.raises(
        PropertyError,
        match=r"^reader: offset=10 needs a file that can seek; '/dev/zero' is a character device$",
    ):
        p.run(timeout=5)


def test_a_directory_is_refused_at_start_naming_the_path(tmp_path: Path) -> None:
    p = parallax.parse_launch(f"filesrc name=reader location={tmp_path} ! fakesink")
    with pytest.raises(FlowError, match=rf"^reader: cannot read '{tmp_path}': it is a directory$"):
        p.run(timeout=5)


# -- filesink: write errors, o-sync, transient errors --------------------------------------


def test_a_write_error_names_the_path_and_the_os_reason() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=1 sizetype=fixed sizemax=10 ! filesink name=writer location=/dev/full"
    )
    with pytest.raises(FlowError) as info:
        p.run(timeout=5)
    assert "writer: cannot write to '/dev/full': No space left on device" in str(info.value)
    assert _cause(info.value, OSError).errno == errno.ENOSPC


def _cause(error: BaseException, kind: type[OSError]) -> OSError:
    """The first `kind` in `error`'s cause chain."""
    e: BaseException | None = error
    while e is not None and not isinstance(e, kind):
        e = e.__cause__
    assert isinstance(e, kind), f"no {kind.__name__} among the causes of {error!r}"
    return e


def _open_flags(path: Path) -> int:
    """The open flags of this process's fd on `path`, from /proc/self/fdinfo."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == str(path):
            with open(f"/proc/self/fdinfo/{fd}") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            return int(fields["flags"].strip(), 8)
    raise AssertionError(f"no fd open on {path}")


@pytest.mark.parametrize("o_sync", [False, True])
def test_o_sync_opens_the_file_with_o_sync(tmp_path: Path, o_sync: bool) -> None:
    out = tmp_path / "out.bin"
    p = parallax.parse_launch(f"appsrc name=in ! filesink location={out} o-sync={o_sync}")
    p.play()
    try:
        assert bool(_open_flags(out) & os.O_SYNC) is o_sync
    finally:
        p.stop()


class _FlakyWrites:
    """Stands in for os.write: fails with EACCES `failures` times, then writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise PermissionError(errno.EACCES, "Permission denied")
        return self.real(fd, data)


def _write_two(out: Path, props: str) -> None:
    p = parallax.parse_launch(f"appsrc name=in ! filesink name=writer location={out} {props}")
    src = p["in"]
    p.play()
    try:
        src.push_buffer(b"hello ")  # type: ignore[attr-defined]
        src.push_buffer(b"world")  # type: ignore[attr-defined]
        src.end_of_stream()  # type: ignore[attr-defined]
        msg = p.wait(5)
        assert msg is not None
        if msg.error is not None:
            raise msg.error
    finally:
        p.stop()


def test_transient_eacces_is_retried_within_max_transient_error_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = _FlakyWrites(3)
    monkeypatch.setattr(os, "write", flaky)
    out = tmp_path / "out.bin"
    _write_two(out, "max-transient-error-timeout=2000")
    assert flaky.failures == 0
    assert out.read_bytes() == b"hello world"


def test_eacces_fails_at_once_without_max_transient_error_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "write", _FlakyWrites(1))
    out = tmp_path / "out.bin"
    with pytest.raises(FlowError, match=rf"writer: cannot write to '{out}': Permission denied"):
        _write_two(out, "")


def test_eacces_past_max_transient_error_timeout_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "write", _FlakyWrites(10_000))
    out = tmp_path / "out.bin"
    with pytest.raises(
        FlowError, match=r"Permission denied for longer than max-transient-error-timeout \(50 ms\)"
    ):
        _write_two(out, "max-transient-error-timeout=50")
