"""`parallax launch | inspect | dot`: exit codes, output, and errors with carets."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parallax.cli import main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_launch_runs_to_eos_and_prints_totals() -> None:
    code, out = run("launch", "fakesrc num-buffers=10 sizetype=fixed sizemax=100 ! fakesink")
    assert code == 0
    assert "Got EOS" in out and "10 buffers" in out and "1,000 bytes" in out


def test_launch_verbose_prints_negotiated_caps() -> None:
    code, out = run("launch", "-v", "fakesrc num-buffers=1 ! video/raw,width=4 ! fakesink")
    assert code == 0
    assert "caps = video/raw,width=4" in out


def test_launch_verbose_prints_the_caps_a_procqueue_passes_on() -> None:
    code, out = run(
        "launch", "-v", "fakesrc num-buffers=1 ! video/raw,width=4 ! procqueue ! fakesink"
    )
    assert code == 0
    assert "/pipeline0/procqueue0:src: caps = video/raw,width=4" in out


def test_launch_quiet_prints_nothing() -> None:
    assert run("launch", "-q", "fakesrc num-buffers=1 ! fakesink") == (0, "")


def test_launch_joins_argv_like_gst_launch() -> None:
    code, _ = run("launch", "fakesrc", "num-buffers=3", "!", "fakesink")
    assert code == 0


def test_launch_error_exits_1_and_names_element(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("launch", "fakesrc ! identity name=bad error-after=2 ! fakesink")
    assert code == 1
    assert "bad" in capsys.readouterr().err


def test_launch_parse_error_shows_caret(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("launch", "fakesrc ! fakesnk")
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown element 'fakesnk'" in err and "did you mean 'fakesink'" in err
    assert "          ^" in err


def test_launch_timing_prints_ns_per_buffer() -> None:
    code, out = run("launch", "--timing", "fakesrc num-buffers=100 ! identity ! fakesink")
    assert code == 0
    assert "ns/buffer" in out


def test_launch_metrics_port_serves_prometheus() -> None:
    code, out = run("launch", "--metrics-port", "0", "fakesrc num-buffers=5 ! fakesink")
    assert code == 0
    assert "Serving metrics on http://127.0.0.1:" in out


def test_inspect_lists_and_describes() -> None:
    code, out = run("inspect")
    assert code == 0
    for name in (
        "filesrc",
        "filesink",
        "fakesrc",
        "fakesink",
        "identity",
        "tee",
        "queue",
        "capsfilter",
        "consolesink",
        "appsrc",
        "appsink",
    ):
        assert name in out
    code, out = run("inspect", "fakesrc")
    assert code == 0
    assert "num-buffers" in out and "SRC template: 'src'" in out


def test_inspect_unknown_element(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("inspect", "fakesnk")
    assert code == 1
    assert "did you mean 'fakesink'" in capsys.readouterr().err


def test_dot_prints_graphviz_and_json() -> None:
    code, out = run("dot", "fakesrc ! tee name=t ! fakesink  t. ! fakesink")
    assert code == 0 and out.startswith("digraph")
    code, out = run("dot", "--json", "fakesrc ! fakesink")
    assert code == 0 and '"factory": "fakesrc"' in out


def test_dot_bad_string_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("dot", "fakesrc ! ! fakesink")
    assert code == 1
    assert "^" in capsys.readouterr().err


def test_console_script_runs(tmp_path: Path) -> None:
    exe = shutil.which("parallax", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "parallax"]
    result = subprocess.run(
        [*cmd, "launch", "-q", "fakesrc num-buffers=2 ! fakesink"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_launch_argv_keeps_spaces_inside_one_argument(tmp_path: Path) -> None:
    f = tmp_path / "my file.txt"
    f.write_bytes(b"hello")
    code, out = run("launch", "filesrc", f"location={f}", "!", "fakesink")
    assert code == 0, out
    assert "5 bytes" in out


def test_launch_error_names_the_failing_element_not_the_thread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = run("launch", "-q", "fakesrc ! queue ! identity name=bad error-after=2 ! fakesink")
    assert code == 1
    assert capsys.readouterr().err.startswith("ERROR: from element bad:")


def test_launch_prints_what_failed_while_rolling_back_a_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from parallax import FlowError
    from parallax.pipeline import Filter, registry

    class NoDevice(Filter, factory="test-cli-nodevice"):
        def start(self) -> None:
            raise FlowError(f"{self.name}: cannot open /dev/video9", element=self.name)

    class BadClose(Filter, factory="test-cli-badclose"):
        def stop(self) -> None:
            raise OSError("close failed")

    for cls in (NoDevice, BadClose):
        registry.register(cls)
    try:
        code, _ = run(
            "launch",
            "-q",
            "fakesrc ! test-cli-nodevice name=cam ! test-cli-badclose name=enc ! fakesink",
        )
    finally:  # the registry has no unregister: the test's elements leave as they came
        for cls in (NoDevice, BadClose):
            registry._classes.pop(cls.factory_name)
    assert code == 1
    assert capsys.readouterr().err == (
        "ERROR: cam: cannot open /dev/video9\n"
        "  rolling back, enc.stop() failed: OSError: close failed\n"
    )
