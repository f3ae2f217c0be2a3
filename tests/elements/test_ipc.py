"""ipcsink → ipcsrc: two pipelines joined by the shared-memory link."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib

import pytest

import parallax
from parallax._errors import FlowError
from parallax.elements._ipc import IpcSink, IpcSrc
from parallax.pipeline import registry

registry.register(IpcSink, "ipcsink")
registry.register(IpcSrc, "ipcsrc")

PRODUCER = "fakesrc num-buffers={n} sizetype=fixed sizemax={size} filltype=pattern-span ! ipcsink service={service} slot-size=64k slots=4"


def _expected(n: int, size: int) -> int:
    return zlib.crc32(bytes(i & 0xFF for i in range(n * size)))


def test_two_pipelines_in_one_process() -> None:
    service = f"ipc-{os.getpid()}-local"
    with parallax.parse_launch(PRODUCER.format(n=50, size=1000, service=service)) as producer:
        producer.play()
        consumer = parallax.parse_launch(f"ipcsrc service={service} ! appsink name=out")
        crc, seqs = 0, []
        for buf in consumer.pull("out", timeout=5):
            assert buf.readonly
            crc = zlib.crc32(buf.view, crc)
            seqs.append(buf.sequence)
        assert seqs == list(range(50)) and crc == _expected(50, 1000)
        msg = producer.wait(5)
        assert msg is not None and msg.type.name == "EOS"


def test_consumer_pipeline_in_a_child_process() -> None:
    service = f"ipc-{os.getpid()}-child"
    code = f"""
        import zlib
        import parallax
        from parallax.elements._ipc import IpcSrc
        from parallax.pipeline import registry
        registry.register(IpcSrc, "ipcsrc")
        p = parallax.parse_launch("ipcsrc service={service} ! appsink name=out")
        crc = n = 0
        for buf in p.pull("out", timeout=10):
            crc = zlib.crc32(buf.view, crc); n += 1
        print(n, crc)
    """
    with parallax.parse_launch(PRODUCER.format(n=200, size=4096, service=service)) as producer:
        producer.play()
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            out, err = child.communicate(timeout=20)
        assert out.split() == ["200", str(_expected(200, 4096))], err
        msg = producer.wait(5)
        assert msg is not None and msg.type.name == "EOS"


def test_ipcsrc_without_publisher_fails_at_start() -> None:
    p = parallax.parse_launch(f"ipcsrc service=ipc-{os.getpid()}-none timeout=0 ! fakesink")
    with pytest.raises(FlowError, match="no publisher"):
        p.play()


def test_oversized_buffer_is_a_flow_error() -> None:
    service = f"ipc-{os.getpid()}-big"
    launch = f"fakesrc num-buffers=1 sizetype=fixed sizemax=100 ! ipcsink service={service} slot-size=10 wait-for-connection=false"
    with pytest.raises(FlowError, match="does not fit a 10-byte slot"):
        parallax.parse_launch(launch).run(timeout=5)


def test_killed_producer_process_is_a_flow_error() -> None:
    service = f"ipc-{os.getpid()}-dies"
    code = f"""
        import parallax
        from parallax.elements._ipc import IpcSink
        from parallax.pipeline import registry
        registry.register(IpcSink, "ipcsink")
        p = parallax.parse_launch({PRODUCER.format(n=-1, size=100, service=service)!r})
        p.play()
        print("ready", flush=True)
        p.wait()
    """
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        consumer = parallax.parse_launch(f"ipcsrc service={service} ! fakesink")
        try:
            consumer.play()
            child.kill()
            msg = consumer.wait(5)
            assert msg is not None and msg.type.name == "ERROR"
            assert "went away" in str(msg.error)
        finally:
            consumer.stop()
        child.communicate(timeout=5)
