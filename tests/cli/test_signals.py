"""`parallax launch` and signals, run as a user runs it: a process of its own, then Ctrl-C
(SIGINT) or SIGTERM. Exit statuses as docs/cli.md lists them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# A slow branch behind a queue: when the signal comes the queue holds buffers, which an
# EOS drains into the file and a plain stop flushes away.
SLOW_TO_FILE = (
    "fakesrc sizetype=fixed sizemax=1000 filltype=pattern ! queue ! "
    "identity sleep-time=1000 ! filesink location={out}"
)


class Launched:
    """A `parallax` process with its output read as it comes (and a bounded wait)."""

    def __init__(self, *argv: str, script: str | None = None, merge: bool = False) -> None:
        cmd = (
            [sys.executable, "-c", textwrap.dedent(script)]
            if script is not None
            else [sys.executable, "-m", "parallax", *argv]
        )
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            # A test run in the background (`make test &`) ignores SIGINT, and children
            # inherit that: give this one the default, as a shell's foreground job has.
            # (Safe with threads here: the child only calls sigaction before exec.)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
        self.stdout = ""

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        """Read stdout until `text` appears (the process prints it once it handles signals)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} within {timeout} s; got {self.stdout!r}"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, f"exited before {text!r}: {self.stdout!r} {self.finish()}"
                self.stdout += chunk.decode()

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 5.0) -> tuple[int, str, str]:
        """Wait for the exit: (status, all of stdout, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        self.stdout += out.decode()
        return self.proc.returncode, self.stdout, "" if err is None else err.decode()

    def __enter__(self) -> Launched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def _pushed_bytes(stdout: str) -> int:
    """The byte count of the summary line, `... (12,000 bytes) ...`."""
    line = next(s for s in stdout.splitlines() if s.startswith("Execution ended after"))
    return int(line.split("(")[1].split(" bytes")[0].replace(",", ""))


def test_eos_on_shutdown_drains_to_the_file_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with Launched("launch", "-e", SLOW_TO_FILE.format(out=out)) as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.4)
        p.signal(signal.SIGINT)
        code, stdout, stderr = p.finish()
    assert code == 0, stderr
    assert "Interrupt: EOS on shutdown enabled -- forcing EOS on the pipeline ..." in stdout
    assert 'Got EOS from pipeline "pipeline0".' in stdout
    assert stderr == ""
    pushed = _pushed_bytes(stdout)
    assert pushed > 16_000  # the queue was full when the EOS went in
    assert out.stat().st_size == pushed  # every buffer the source pushed is in the file


def test_eos_on_shutdown_on_sigterm_too(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    with Launched("launch", "--eos-on-shutdown", SLOW_TO_FILE.format(out=out)) as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.3)
        p.signal(signal.SIGTERM)
        code, stdout, stderr = p.finish()
    assert code == 0, stderr
    assert "Terminated: EOS on shutdown enabled" in stdout
    assert out.stat().st_size == _pushed_bytes(stdout)


def test_a_second_ctrl_c_stops_at_once_while_eos_drains() -> None:
    # identity sleeps 1 s a buffer: the EOS would take 16+ s to get through the queue.
    with Launched(
        "launch",
        "-e",
        "fakesrc sizetype=fixed sizemax=8 ! queue ! identity sleep-time=1000000 ! fakesink",
    ) as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.2)
        p.signal(signal.SIGINT)
        p.wait_for("forcing EOS on the pipeline")
        t0 = time.monotonic()
        p.signal(signal.SIGINT)
        code, stdout, _ = p.finish()
    assert code == 130
    assert time.monotonic() - t0 < 2.5  # the 1-s sleep in identity, then the stop
    assert "Interrupt: stopping pipeline ..." in stdout
    assert "Execution ended after" in stdout  # the summary after Ctrl-C too


def test_ctrl_c_stops_and_exits_130_with_the_summary() -> None:
    with Launched("launch", "fakesrc sizetype=fixed sizemax=8 ! queue ! fakesink") as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.2)
        p.signal(signal.SIGINT)
        code, stdout, stderr = p.finish()
    assert code == 130, stderr
    assert stdout.splitlines()[-2:][0] == "Interrupt: stopping pipeline ..."
    assert stdout.splitlines()[-1].startswith("Execution ended after ")
    assert stderr == ""


def test_sigterm_stops_as_cleanly_as_ctrl_c_and_exits_143(tmp_path: Path) -> None:
    # A procqueue child too: it must be reaped, not left behind.
    script = f"""
        import sys
        from parallax.cli import main
        status = main(["launch", "fakesrc sizetype=fixed sizemax=8 ! procqueue ! fakesink"])
        import os
        left = [open(f"/proc/self/task/{{t}}/children").read() for t in os.listdir("/proc/self/task")]
        open({str(tmp_path / "children")!r}, "w").write(" ".join(left))
        sys.exit(status)
    """
    with Launched(script=script) as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.5)
        p.signal(signal.SIGTERM)
        code, stdout, stderr = p.finish()
    assert code == 143, stderr
    assert "Terminated: stopping pipeline ..." in stdout
    assert "Execution ended after" in stdout
    assert (tmp_path / "children").read_text().split() == []  # the procqueue child is reaped
    assert stderr == ""


def test_ctrl_c_while_an_element_blocks_in_chain_exits_130_naming_the_thread() -> None:
    script = """
        import sys, time
        import parallax
        from parallax.cli import main

        @parallax.sink("test-sleepy-sink")
        def sleepy(buf):
            time.sleep(30)

        sys.exit(main(["launch", "fakesrc ! test-sleepy-sink"]))
    """
    with Launched(script=script) as p:
        p.wait_for("Setting pipeline to PLAYING ...")
        time.sleep(0.3)
        t0 = time.monotonic()
        p.signal(signal.SIGINT)
        code, stdout, stderr = p.finish()
        took = time.monotonic() - t0
    assert code == 130, stderr
    assert took < 2.0
    assert stderr.startswith(
        "WARNING: from element fakesrc0: fakesrc0: thread 'parallax:fakesrc0' did not stop "
        "within 1.0 s, blocked in sleepy ("
    ), stderr
    assert stderr.rstrip().endswith("it is left running") and len(stderr.splitlines()) == 1
    assert "Execution ended after" in stdout


def test_handlers_are_restored_after_launch() -> None:
    from parallax.cli import main

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["launch", "-q", "fakesrc num-buffers=1 ! fakesink"]) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_is_acted_on_once_playing(signum: int) -> None:
    """A signal that comes while the pipeline starts is not lost, nor a traceback."""
    script = """
        import sys, time
        import parallax
        from parallax.cli import main
        from parallax.pipeline import Filter

        @parallax.pipeline.registry.register
        class SlowStart(Filter, factory="test-slow-start"):
            def start(self):
                print("starting", flush=True)
                time.sleep(0.5)

        sys.exit(main(["launch", "fakesrc ! test-slow-start ! fakesink"]))
    """
    with Launched(script=script) as p:
        p.wait_for("starting")
        p.signal(signum)
        code, _, stderr = p.finish()
    assert code == 128 + signum, stderr
    assert stderr == ""


def test_verbose_caps_lines_come_as_links_negotiate_not_at_the_end() -> None:
    with Launched("launch", "-v", "fakesrc ! video/raw,width=4 ! queue ! fakesink") as p:
        p.wait_for("/pipeline0/capsfilter0:src: caps = video/raw,width=4")
        p.wait_for("/pipeline0/queue0:src: caps = video/raw,width=4")  # still running
        p.signal(signal.SIGINT)
        code, stdout, _ = p.finish()
    assert code == 130
    assert stdout.index("fakesrc0:src: caps") < stdout.index("capsfilter0:src: caps")


def test_warnings_are_printed_as_they_come_without_verbose() -> None:
    script = """
        import sys
        import parallax
        from parallax.cli import main
        from parallax.pipeline import Filter, registry

        @registry.register
        class Grumbles(Filter, factory="test-grumbles"):
            warned = False

            def transform(self, buf):
                if not self.warned:
                    self.warned = True
                    self.post_warning("a buffer without a timestamp")
                return buf

        sys.exit(main(["launch", "fakesrc ! test-grumbles name=g ! identity sleep-time=1000 ! fakesink"]))
    """
    with Launched(script=script, merge=True) as p:
        p.wait_for("WARNING: from element g: a buffer without a timestamp")  # while playing
        p.signal(signal.SIGINT)
        code, stdout, _ = p.finish()
    assert code == 130
    assert stdout.count("WARNING") == 1
    assert stdout.index("WARNING") < stdout.index("Interrupt: stopping pipeline ...")
