"""ipcsink → ipcsrc: two pipelines joined by the shared-memory link."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import zlib

import pytest

import parallax
from parallax._errors import FlowError, PropertyError
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


def test_leaky_ipcsink_loses_nothing_to_a_consumer_that_keeps_up() -> None:
    # The consumer pipeline runs in this process: its thread gets the GIL only when the
    # producer's lets go of it. leaky=true used to drop 99% of the buffers here.
    service = f"ipc-{os.getpid()}-leaky"
    n = 2000
    producer = parallax.parse_launch(
        f"fakesrc num-buffers={n} sizetype=fixed sizemax=100 ! "
        f"ipcsink name=sink service={service} slot-size=4k slots=4 leaky=true"
    )
    consumer = parallax.parse_launch(f"ipcsrc service={service} ! fakesink name=out")
    with producer, consumer:
        producer.play()
        consumer.play()
        msg = consumer.wait(30)
        assert msg is not None and msg.type.name == "EOS", msg
        sink = producer.get_by_name("sink")
        assert isinstance(sink, IpcSink) and sink.publisher is not None
        assert sink.publisher.dropped == 0
        assert consumer.metrics()["out"]["buffers_in"] == n


def test_ipcsrc_refuses_a_publisher_of_a_uid_it_does_not_allow() -> None:
    # Anyone may bind an abstract name: here we squat uid 65534's service, and an ipcsrc
    # that trusts only uid 65534 must refuse us (before any HELLO: we send none).
    service = f"ipc-{os.getpid()}-squat"
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with squatter:
        squatter.bind(f"\0parallax/65534/{service}")
        squatter.listen(1)
        p = parallax.parse_launch(
            f"ipcsrc service={service} allowed-uids=65534 timeout=1 ! fakesink"
        )
        with pytest.raises(FlowError, match="refused the publisher of service") as info:
            p.play()
    assert f"pid {os.getpid()} runs as uid {os.getuid()}, not uid 65534" in str(info.value)


def test_allowed_uids_must_be_uids() -> None:
    with pytest.raises(PropertyError, match="allowed-uids"):
        parallax.parse_launch("ipcsrc service=x allowed-uids=root ! fakesink")
    with pytest.raises(PropertyError, match="allowed-uids"):
        parallax.parse_launch("fakesrc ! ipcsink service=x allowed-uids=-5")
    src = IpcSrc(service="x")
    src.allowed_uids = "0,nobody"  # from Python: checked when it starts
    p = parallax.Pipeline()
    p.link_many(src, registry.get("fakesink")())
    with pytest.raises(PropertyError, match="'allowed-uids' expects comma-separated uids"):
        p.play()
    p.stop()


def test_ipcsink_says_who_holds_a_taken_service() -> None:
    service = f"ipc-{os.getpid()}-taken"
    launch = f"fakesrc num-buffers=1 ! ipcsink service={service} wait-for-connection=false"
    with parallax.parse_launch(launch) as first:
        first.play()
        with pytest.raises(FlowError, match="already published") as info:
            parallax.parse_launch(launch).play()
    assert f"held by pid {os.getpid()}" in str(info.value)
