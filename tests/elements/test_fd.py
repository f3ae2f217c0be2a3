"""fdsrc / fdsink: shell pipes through the CLI, and the fd cases in-process."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.elements import AppSink, FdSink, FdSrc
from parallax.pipeline import MessageType

_EXE = shutil.which("parallax", path=os.path.dirname(sys.executable))
PARALLAX = [_EXE] if _EXE else [sys.executable, "-m", "parallax"]


def launch(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run `parallax launch ARGS` in a child process, bytes in and out."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*PARALLAX, "launch", *args], capture_output=True, timeout=60, check=False, **kwargs
    )


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.bin"
    path.write_bytes(os.urandom(300_007))
    return path


# -- the CLI, as a shell uses it ---------------------------------------------------------


def test_fdsrc_reads_standard_input_from_a_pipe(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    result = launch("-q", "fdsrc", "!", "filesink", f"location={out}", input=data_file.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == data_file.read_bytes()


def test_cat_into_fdsrc_in_a_real_shell(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    cmd = " ".join(shlex.quote(a) for a in [*PARALLAX, "launch", "-q", "fdsrc", "!", "filesink"])
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"cat {shlex.quote(str(data_file))} | {cmd} location={shlex.quote(str(out))}",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == data_file.read_bytes()


def test_fdsink_writes_standard_output_byte_exact(data_file: Path) -> None:
    result = launch("-q", "filesrc", f"location={data_file}", "!", "fdsink")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data_file.read_bytes()


def test_fdsink_into_wc_in_a_real_shell(data_file: Path) -> None:
    cmd = " ".join(shlex.quote(a) for a in [*PARALLAX, "launch", "-q", "filesrc"])
    result = subprocess.run(
        ["bash", "-c", f"{cmd} location={shlex.quote(str(data_file))} '!' fdsink | wc -c"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == data_file.stat().st_size


def test_fdsink_fd_2_writes_standard_error() -> None:
    result = launch(
        "-q",
        "fakesrc",
        "num-buffers=2",
        "sizetype=fixed",
        "sizemax=3",
        "filltype=zero",
        "!",
        "fdsink",
        "fd=2",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == bytes(6)
    assert result.stdout == b""


def test_fdsink_on_a_closed_fd_fails_naming_the_fd() -> None:
    result = launch("-q", "fakesrc", "num-buffers=1", "!", "fdsink", "name=out", "fd=97")
    assert result.returncode == 1
    assert b"out: fd 97 cannot be used: Bad file descriptor" in result.stderr


# -- in-process -------------------------------------------------------------------------


class Pipe:
    """Both ends of a pipe; `close(fd)` closes one end once, and the fixture the rest
    (closing an fd number twice could close someone else's fd that reused it)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self._open = {self.r, self.w}

    def close(self, fd: int) -> None:
        self._open.remove(fd)
        os.close(fd)

    def close_all(self) -> None:
        for fd in sorted(self._open):
            self.close(fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close_all()


def test_fdsrc_pushes_what_each_read_returns(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    p = parallax.parse_launch(f"fdsrc fd={r} ! appsink name=out max-buffers=0")
    sink = p["out"]
    p.play()
    try:
        os.write(w, b"first line\n")
        first = sink.pull(5)  # type: ignore[attr-defined]
        os.write(w, b"second\n")
        second = sink.pull(5)  # type: ignore[attr-defined]
        assert (first.to_bytes(), first.offset) == (b"first line\n", 0)
        assert (second.to_bytes(), second.offset) == (b"second\n", 11)
    finally:
        p.stop()
    os.fstat(r)  # fdsrc does not own its fd: still open after stop


def test_fdsrc_eof_ends_the_stream_and_num_buffers_stops_it(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.write(w, b"x" * 10_000)
    p = parallax.parse_launch(
        f"fdsrc fd={r} blocksize=1000 num-buffers=3 ! appsink name=out max-buffers=0"
    )
    assert [b.size for b in p.pull("out")] == [1000, 1000, 1000]
    pipe.close(w)
    p = parallax.parse_launch(f"fdsrc fd={r} blocksize=4k ! appsink name=out max-buffers=0")
    assert sum(b.size for b in p.pull("out")) == 7000


def test_send_eos_ends_an_fdsrc_waiting_on_an_idle_pipe(pipe: Pipe) -> None:
    """`launch -e` with nothing on stdin: the wait for data gives way to EOS at once."""
    p = parallax.parse_launch(f"fdsrc fd={pipe.r} ! appsink name=out max-buffers=0")
    sink = p.get("out", AppSink)
    p.play()
    try:
        os.write(pipe.w, b"before\n")
        first = sink.pull(5)
        assert first is not None and first.to_bytes() == b"before\n"
        t0 = time.monotonic()
        p.send_eos()
        message = p.wait(5)
        assert message is not None and message.type is MessageType.EOS
        assert time.monotonic() - t0 < 1.0  # one FLUSH_POLL, not the pipe's next write
    finally:
        p.stop()


def test_fdsrc_reads_a_non_blocking_fd(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.set_blocking(r, False)
    data = os.urandom(200_000)

    def feed() -> None:
        for i in range(0, len(data), 10_000):
            os.write(w, data[i : i + 10_000])
            time.sleep(0.001)
        pipe.close(w)

    feeder = threading.Thread(target=feed)
    p = parallax.parse_launch(f"fdsrc fd={r} blocksize=64k ! appsink name=out max-buffers=0")
    feeder.start()
    got = b"".join(b.to_bytes() for b in p.pull("out", timeout=10))
    feeder.join()
    assert got == data
    assert os.get_blocking(r) is False  # left as it was: the fd is not ours


def test_fdsrc_timeout_posts_messages_and_keeps_waiting(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    p = parallax.parse_launch(f"fdsrc name=in fd={r} timeout=30000 ! appsink name=out")
    p.play()
    try:
        first = p.bus.poll(MessageType.ELEMENT, timeout=5)
        second = p.bus.poll(MessageType.ELEMENT, timeout=5)
        os.write(w, b"late")
        buf = p["out"].pull(5)  # type: ignore[attr-defined]
    finally:
        p.stop()
    for msg in (first, second):
        assert msg is not None
        assert msg.source == "in"
        assert msg.data == {"structure": "GstFdSrcTimeout", "timeout": 30000}
    assert buf.to_bytes() == b"late"


def test_stopping_an_fdsrc_waiting_on_an_idle_pipe_is_prompt(pipe: Pipe) -> None:
    r = pipe.r
    p = parallax.parse_launch(f"fdsrc fd={r} ! fakesink")
    p.play()
    time.sleep(0.2)
    began = time.monotonic()
    p.stop()
    assert time.monotonic() - began < 1.0


def test_fdsrc_on_a_write_only_fd_is_refused(pipe: Pipe) -> None:
    w = pipe.w
    p = parallax.parse_launch(f"fdsrc name=in fd={w} ! fakesink")
    with pytest.raises(FlowError, match=rf"^in: fd {w} is open write-only$"):
        p.run(timeout=5)


def test_fdsink_on_a_read_only_fd_is_refused(pipe: Pipe) -> None:
    r = pipe.r
    p = parallax.parse_launch(f"fakesrc num-buffers=1 ! fdsink name=out fd={r}")
    with pytest.raises(FlowError, match=rf"^out: fd {r} is open read-only$"):
        p.run(timeout=5)


def test_fdsrc_on_a_directory_fd_is_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        p = parallax.parse_launch(f"fdsrc name=in fd={fd} ! fakesink")
        with pytest.raises(FlowError, match=rf"^in: fd {fd} is a directory$"):
            p.run(timeout=5)
    finally:
        os.close(fd)


def test_fdsink_into_a_pipe_nobody_reads_names_the_fd_and_epipe(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    pipe.close(r)
    p = parallax.parse_launch(
        f"fakesrc num-buffers=1 sizetype=fixed sizemax=10 ! fdsink name=out fd={w}"
    )
    with pytest.raises(FlowError) as info:
        p.run(timeout=5)
    assert f"out: cannot write to fd {w}: Broken pipe" in str(info.value)


def test_fdsink_waits_on_a_full_non_blocking_pipe(pipe: Pipe) -> None:
    r, w = pipe.r, pipe.w
    os.set_blocking(w, False)
    got = bytearray()

    def drain() -> None:
        time.sleep(0.1)  # let the pipe fill: fdsink then sees EAGAIN
        while chunk := os.read(r, 65536):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    p = parallax.parse_launch(
        f"fakesrc num-buffers=64 sizetype=fixed sizemax=16k filltype=pattern-span ! fdsink fd={w}"
    )
    try:
        p.run(timeout=10)
    finally:
        pipe.close(w)
        reader.join()
    assert bytes(got) == bytes(i % 256 for i in range(64 * 16384))


def test_fd_defaults_are_gstreamers() -> None:
    assert (FdSrc().fd, FdSrc().blocksize, FdSrc().timeout, FdSink().fd) == (0, 4096, 0, 1)
    assert FdSink().sync is False  # GStreamer's fdsink, as its filesink, does not sync
    with pytest.raises(PropertyError, match="property 'fd' expects an int >= 0, got -1"):
        FdSink(fd=-1)
