"""procqueue: the downstream part of one pipeline runs in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import parallax
from parallax._errors import FlowError, LinkError
from parallax.elements import ProcQueue
from parallax.pipeline import (
    Filter,
    MessageType,
    PadDirection,
    PadPresence,
    PadTemplate,
    Pipeline,
    State,
    registry,
)


def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_registered() -> None:
    assert registry.get("procqueue") is ProcQueue


def test_bytes_cross_unchanged_and_metrics_come_back(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(os.urandom(3 << 20) + b"tail")
    p = parallax.parse_launch(
        f"filesrc location={src} blocksize=64k ! procqueue name=pq slots=4 ! "
        f"identity name=mid ! filesink name=out location={dst}"
    )
    p.enable_timing()
    p.run(timeout=30)
    assert dst.read_bytes() == src.read_bytes()
    m = p.metrics()
    blocks = (src.stat().st_size + (64 << 10) - 1) // (64 << 10)
    assert m["out"]["buffers_in"] == blocks
    assert m["out"]["bytes_in"] == src.stat().st_size
    assert m["mid"]["proc_ns"] > 0  # timing ran in the child too
    assert m["out"]["where"].startswith("pq: pid ")
    assert set(p.placed) == {"mid", "out"}


def test_caps_and_metadata_cross() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=5 sizetype=fixed sizemax=16 ! capsfilter caps=video/raw,width=4 ! "
        "procqueue ! capsfilter caps=video/raw ! fakesink name=sink"
    )
    p.run(timeout=30)
    assert p.metrics()["sink"]["buffers_in"] == 5


def test_error_in_the_child_names_its_element(tmp_path: Path) -> None:
    p = parallax.parse_launch(
        f"fakesrc num-buffers=10 ! procqueue ! filesink name=out location={tmp_path}/no/such/dir"
    )
    with pytest.raises(FlowError) as info:
        p.run(timeout=30)
    assert info.value.element == "out"
    assert "child process pid" in str(info.value)
    assert "cannot open" in str(info.value)


def test_unmovable_element_is_refused_at_start() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=1 ! procqueue name=pq ! appsink name=out")
    with pytest.raises(LinkError, match=r"out \(appsink\) cannot run in pq's child process"):
        p.play()
    assert p.state is State.NULL


def test_stage_with_a_second_entry_is_refused() -> None:
    class Join(Filter):  # any element with two sink pads will do; never started
        pad_templates = (
            *Filter.pad_templates,
            PadTemplate("side", PadDirection.SINK, PadPresence.ALWAYS, parallax.Caps.any()),
        )

    p = Pipeline()
    a, b = registry.get("fakesrc")(name="a"), registry.get("fakesrc")(name="b")
    pq, join, sink = ProcQueue(name="pq"), Join(name="join"), registry.get("fakesink")()
    p.link_many(a, pq, join, sink)
    p.link(b, join, sink_pad="side")
    with pytest.raises(LinkError, match="join is downstream of pq but is also fed by b"):
        p.play()


def test_killed_child_is_an_error_naming_the_procqueue() -> None:
    p = parallax.parse_launch(
        "fakesrc sizetype=fixed sizemax=4096 ! procqueue name=pq ! fakesink name=s"
    )
    with p:
        p.play()
        pq = p.get_by_name("pq")
        assert isinstance(pq, ProcQueue)
        _until(lambda: p.metrics()["s"]["buffers_in"] > 100)
        assert pq.pid is not None
        t0 = time.monotonic()
        os.kill(pq.pid, signal.SIGKILL)
        message = p.wait(5)
        assert message is not None and message.type is MessageType.ERROR
        assert time.monotonic() - t0 < 1.0
        assert message.source == "pq"
        assert "killed by signal 9" in str(message.error)


def test_stop_mid_stream_ends_the_child() -> None:
    p = parallax.parse_launch(
        "fakesrc sizetype=fixed sizemax=65536 ! procqueue name=pq ! identity ! fakesink name=s"
    )
    p.play()
    _until(lambda: p.metrics()["s"]["buffers_in"] > 10)
    pid = p.get_by_name("pq").pid  # type: ignore[attr-defined]
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 3.0
    assert not Path(f"/proc/{pid}").exists() or _zombie_free(pid)


def _zombie_free(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_nested_stages_report_to_the_top() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=200 sizetype=fixed sizemax=1000 ! procqueue name=outer ! identity name=mid "
        "! procqueue name=inner ! fakesink name=deep"
    )
    p.run(timeout=60)
    m = p.metrics()
    assert m["deep"]["buffers_in"] == 200
    assert m["deep"]["bytes_in"] == 200_000
    assert [b.name for b in p.boundaries()] == ["outer"]


def test_pipeline_runs_again_after_stop() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=20 ! procqueue ! fakesink name=s")
    p.run(timeout=30)
    p.run(timeout=30)
    assert p.metrics()["s"]["buffers_in"] == 20


def test_elements_from_the_main_script_reach_the_child(tmp_path: Path) -> None:
    # A user's @transform in their script: the child finds it by re-running the script as
    # __mp_main__, as multiprocessing's spawn does.
    script = tmp_path / "user.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import parallax
            from parallax.pipeline import transform

            @transform("invert")
            def invert(buf):
                out = buf.copy()
                np.bitwise_not(np.asarray(out), out=np.asarray(out))
                return out

            if __name__ == "__main__":
                import sys
                p = parallax.parse_launch(
                    f"filesrc location={sys.argv[1]} ! procqueue ! invert ! filesink location={sys.argv[2]}"
                )
                p.run(timeout=30)
                print("ok", p.metrics()["invert0"]["buffers_in"])
            """
        )
    )
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(bytes(range(256)) * 100)
    done = subprocess.run(
        [sys.executable, str(script), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    assert dst.read_bytes() == bytes(255 - b for b in src.read_bytes())


def test_element_defined_without_a_file_is_a_clear_error() -> None:
    code = textwrap.dedent(
        """
        import parallax
        from parallax.pipeline import transform

        @transform("same")
        def same(buf):
            return buf
        p = parallax.parse_launch("fakesrc num-buffers=1 ! procqueue name=pq ! same ! fakesink")
        try:
            p.run(timeout=30)
        except parallax.FlowError as e:
            print(e)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "pq: same0 (same) is defined in __main__ without a file" in done.stdout, done.stderr


def test_cli_shows_the_child(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parallax",
            "launch",
            "fakesrc num-buffers=50 sizetype=fixed sizemax=1k ! procqueue ! fakesink",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "└ procqueue0 → child process pid " in done.stdout
    assert ": 50 buffers  50.0 KiB" in done.stdout


def test_a_stage_that_cannot_be_pickled_starts_nothing() -> None:
    # A class defined in a function cannot be pickled by reference: the procqueue must
    # say so, naming the element, and leave no child, publisher or thread behind (the
    # autouse leak check fails the test otherwise).
    class Local(Filter):
        pass

    p = Pipeline()
    src, pq = registry.get("fakesrc")(name="src", num_buffers=1), ProcQueue(name="pq")
    p.link_many(src, pq, Local(name="local"), registry.get("fakesink")(name="sink"))
    with pytest.raises(FlowError, match=r"pq: local \(.*Local\) cannot be sent to another process"):
        p.play()
    assert p.state is State.NULL
    assert pq.pid is None
