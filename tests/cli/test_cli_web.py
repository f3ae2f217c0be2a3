"""`parallax launch --web ADDRESS`: the live view around a run, from the command line."""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from parallax.cli import main

URL = re.compile(r"Serving the live view on (http://\S+/)")


def _api(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/pipeline", timeout=10) as r:
        data: dict[str, Any] = json.load(r)
    return data


def _sink_buffers(data: dict[str, Any], name: str) -> int:
    entry = next(e for e in data["elements"] if e["name"] == name)
    return int(entry["metrics"]["buffers_in"])


def _read_until(proc: subprocess.Popen[bytes], pattern: re.Pattern[str], timeout: float) -> str:
    """Read the child's stdout until `pattern` matches; returns what was read."""
    assert proc.stdout is not None
    fd, text = proc.stdout.fileno(), ""
    deadline = time.monotonic() + timeout
    while not pattern.search(text):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern.pattern!r} within {timeout} s; got {text!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"exited first: {text!r}"
            text += chunk.decode()
    return text


def test_web_serves_the_running_pipeline_until_the_run_ends() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "parallax",
            "launch",
            "--web",
            "127.0.0.1:0",
            "fakesrc ! identity sleep-time=2000 ! queue ! fakesink name=out",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        match = URL.search(_read_until(proc, URL, timeout=20))
        assert match is not None
        url = match.group(1)
        first = _api(url)
        deadline = time.monotonic() + 10
        while (second := _api(url)) and _sink_buffers(second, "out") <= _sink_buffers(first, "out"):
            assert time.monotonic() < deadline, "the counters did not move"
            time.sleep(0.1)
        assert second["state"] == "PLAYING"
        proc.send_signal(signal.SIGTERM)  # not SIGINT: a background job ignores that
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))  # the server went with the run


def test_web_in_process_is_closed_with_the_run() -> None:
    out = io.StringIO()
    assert main(["launch", "--web", "0", "fakesrc num-buffers=5 ! fakesink"], out=out) == 0
    text = out.getvalue()
    assert re.search(r"^Serving the live view on http://127\.0\.0\.1:\d+/$", text, re.M), text
    assert "Got EOS" in text
    # The autouse fixture checks that the server's socket and threads are gone.


def test_web_with_a_malformed_address_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["launch", "--web", "127.0.0.1:x", "fakesrc ! fakesink"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: parallax launch" in err
    assert "argument --web: port 'x' is not a number at column 11" in err


def test_web_on_an_address_in_use_exits_1_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["launch", "-q", "--web", f"127.0.0.1:{port}", "fakesrc ! fakesink"])
    assert code == 1
    assert f"ERROR: --web 127.0.0.1:{port}: cannot listen" in capsys.readouterr().err


def test_web_on_a_non_loopback_host_says_who_can_read_it() -> None:
    out = io.StringIO()
    assert main(["launch", "--web", "0.0.0.0:0", "fakesrc num-buffers=1 ! fakesink"], out=out) == 0
    assert re.search(
        r"^Serving the live view on http://0\.0\.0\.0:\d+/ \(not loopback: anyone who can "
        r"reach this machine can read it\)$",
        out.getvalue(),
        re.M,
    )
