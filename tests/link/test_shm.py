"""The shared-memory process link: Publisher / Subscriber, in one process and across."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

from parallax._errors import BrokenError, ClosedError, PoolExhausted
from parallax.caps import Caps
from parallax.link._shm import Publisher, Sample, Subscriber


def _service(name: str) -> str:
    return f"test-{os.getpid()}-{name}"


def _wait(predicate: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_round_trip_is_zero_copy_and_read_only() -> None:
    service = _service("rt")
    with Publisher(service, slot_size=4096, slots=2) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        caps = Caps.from_string("video/raw,width=2")
        for i in range(5):  # more sends than slots: released slots are loaned again
            sample = pub.loan(timeout=1)
            np.asarray(sample.view)[:10] = np.arange(10) + i
            assert pub.send(sample, 10, caps=caps, sequence=i, pts=i * 10) == 1
            buf = sub.receive(timeout=1)
            assert buf is not None
            assert buf.view.readonly and buf.readonly
            assert bytes(buf.view) == bytes(range(i, i + 10))
            assert (buf.sequence, buf.pts, str(buf.caps)) == (i, i * 10, str(caps))
            with pytest.raises(TypeError):
                buf.view[0] = 1
            del buf
        _wait(lambda: pub.available == 2)


def test_sample_is_consumed_by_send_and_not_constructible() -> None:
    service = _service("consumed")
    with Publisher(service, slot_size=64, slots=1) as pub:
        sample = pub.loan()
        pub.send(sample)  # no subscriber: the slot is free again at once
        assert pub.available == 1
        with pytest.raises(ClosedError, match="was sent"):
            _ = sample.view
        with pytest.raises(TypeError, match="no public constructor"):
            Sample()
        with pytest.raises(ValueError, match="outside slot"):
            pub.send(pub.loan(), 65)


def test_slot_returns_only_when_every_subscriber_is_done() -> None:
    service = _service("two")
    with Publisher(service, slot_size=64, slots=4) as pub:
        with Subscriber(service) as a, Subscriber(service) as b:
            assert pub.wait_for_subscribers(2, timeout=2)
            pub.send(pub.loan())
            ba, bb = a.receive(1), b.receive(1)
            assert ba is not None and bb is not None
            view = ba.view
            del ba
            time.sleep(0.05)
            assert pub.available == 3  # b and a's view still hold it
            del view
            time.sleep(0.05)
            assert pub.available == 3
            del bb
            _wait(lambda: pub.available == 4)
        _wait(lambda: pub.subscribers == 0)
        assert pub.errors == []  # clean closes say BYE


def test_pool_exhaustion_with_timeout() -> None:
    service = _service("exhaust")
    with Publisher(service, slot_size=64, slots=2) as pub:
        held = [pub.loan(), pub.loan()]
        t0 = time.monotonic()
        with pytest.raises(PoolExhausted):
            pub.loan(timeout=0.1)
        assert 0.09 < time.monotonic() - t0 < 1
        del held


def test_leaky_skips_a_subscriber_that_holds_half_the_pool() -> None:
    service = _service("leaky")
    with Publisher(service, slot_size=64, slots=4, leaky=True) as pub, Subscriber(service):
        assert pub.wait_for_subscribers(1, timeout=2)
        reached = [pub.send(pub.loan(timeout=1)) for _ in range(6)]
        assert reached == [1, 1, 0, 0, 0, 0]
        assert pub.dropped == 4 and pub.available == 2


def test_late_joiner_gets_only_later_buffers_and_eos() -> None:
    service = _service("late")
    with Publisher(service, slot_size=64, slots=4) as pub, Subscriber(service) as early:
        assert pub.wait_for_subscribers(1, timeout=2)
        pub.send(pub.loan(), 0, sequence=1)
        with Subscriber(service) as late:
            assert pub.wait_for_subscribers(2, timeout=2)
            pub.send(pub.loan(), 0, sequence=2)
            pub.send_eos()
            assert [b.sequence for b in iter(lambda: late.receive(1), None)] == [2]
            assert late.ended
        assert [b.sequence for b in iter(lambda: early.receive(1), None)] == [1, 2]
        assert early.receive(0) is None and early.ended


def test_receive_timeout_and_closed() -> None:
    service = _service("timeout")
    with Publisher(service, slot_size=64, slots=1):
        sub = Subscriber(service)
        t0 = time.monotonic()
        assert sub.receive(timeout=0.05) is None
        assert time.monotonic() - t0 < 0.5 and not sub.ended
        sub.close()
        sub.close()
        with pytest.raises(ClosedError):
            sub.receive(0)


def test_no_publisher_and_duplicate_service() -> None:
    with pytest.raises(BrokenError, match="no publisher"):
        Subscriber(_service("nobody"))
    with pytest.raises(ValueError, match="service name"):
        Publisher("", slot_size=1)
    service = _service("dup")
    with Publisher(service, slot_size=64), pytest.raises(OSError):
        Publisher(service, slot_size=64)


def test_buffers_outlive_the_subscriber_and_the_publisher() -> None:
    service = _service("outlive")
    pub = Publisher(service, slot_size=64, slots=2)
    sub = Subscriber(service)
    assert pub.wait_for_subscribers(1, timeout=2)
    sample = pub.loan()
    sample.view[:3] = b"abc"
    pub.send(sample, 3)
    buf = sub.receive(1)
    sub.close()
    pub.close()
    assert buf is not None and bytes(buf.view) == b"abc"


CHILD_SUB = """
    import sys, zlib
    from parallax.link._shm import Subscriber
    sub = Subscriber(sys.argv[1], timeout=5)
    print("ready", flush=True)
    crc, n = 0, 0
    while (buf := sub.receive(timeout=5)) is not None:
        crc = zlib.crc32(buf.view, crc); n += 1
        if sys.argv[2] == "hold":
            held = globals().setdefault("held", []); held.append(buf)
            print("got", n, flush=True)
    print(n, crc, flush=True)
    sub.close()
"""


def test_child_subscriber_checksums() -> None:
    service = _service("child")
    with Publisher(service, slot_size=4096, slots=8) as pub:
        with _child(
            CHILD_SUB.replace("sys.argv[1]", repr(service)).replace("sys.argv[2]", "'free'")
        ) as child:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            assert pub.wait_for_subscribers(1, timeout=5)
            rng = np.random.default_rng(1)
            crc = 0
            for i in range(200):
                sample = pub.loan(timeout=5)
                data = rng.integers(0, 256, 1000 + i, dtype=np.uint8)
                np.asarray(sample.view)[: data.size] = data
                crc = zlib.crc32(data.tobytes(), crc)
                pub.send(sample, data.size, sequence=i)
            pub.send_eos()
            out, err = child.communicate(timeout=10)
            assert out.split() == ["200", str(crc)], err
        _wait(lambda: pub.available == 8)


def test_killed_subscriber_slots_are_reclaimed_and_others_served() -> None:
    service = _service("kill")
    code = CHILD_SUB.replace("sys.argv[1]", repr(service)).replace("sys.argv[2]", "'hold'")
    with Publisher(service, slot_size=64, slots=8) as pub, Subscriber(service) as other:
        with _child(code) as child:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            assert pub.wait_for_subscribers(2, timeout=5)
            for i in range(3):
                pub.send(pub.loan(timeout=1), 8, sequence=i)
                assert child.stdout.readline() == f"got {i + 1}\n"
            mine = [other.receive(1) for _ in range(3)]
            del mine
            _wait(lambda: pub.available == 5)  # the child holds 3
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=5)
        _wait(lambda: pub.available == 8 and pub.subscribers == 1)
        assert len(pub.errors) == 1 and "holding 3 slot(s)" in str(pub.errors[0])
        pub.send(pub.loan(), 8, sequence=9)
        buf = other.receive(1)
        assert buf is not None and buf.sequence == 9


def test_killed_publisher_breaks_receive_within_a_second() -> None:
    service = _service("pubkill")
    code = f"""
        import time
        from parallax.link._shm import Publisher
        pub = Publisher({service!r}, slot_size=64, slots=2)
        print("ready", flush=True)
        pub.wait_for_subscribers(1, timeout=5)
        pub.send(pub.loan(), 4)
        time.sleep(60)
    """
    with _child(code) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with Subscriber(service, timeout=5) as sub:
            buf = sub.receive(timeout=5)
            assert buf is not None
            child.send_signal(signal.SIGKILL)
            t0 = time.monotonic()
            with pytest.raises(BrokenError, match="went away"):
                sub.receive(timeout=5)
            assert time.monotonic() - t0 < 1.0
            assert len(buf.view) == 4  # our mapping stays valid
            del buf
        child.communicate(timeout=5)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to setuid() a child to another uid")
def test_other_uid_is_refused() -> None:
    service = _service("uid")
    # The abstract name embeds the uid; the child connects to ours after setuid(nobody).
    code = f"""
        import os, socket
        from parallax._errors import BrokenError
        from parallax.link import _shm
        name = _shm.address({service!r})
        os.setuid(65534)
        _shm.address = lambda service: name
        try:
            _shm.Subscriber({service!r})
        except BrokenError as e:
            print("refused:", e)
    """
    with Publisher(service, slot_size=64) as pub:
        with _child(code) as child:
            out, err = child.communicate(timeout=10)
        assert out.startswith("refused:"), err
        _wait(lambda: len(pub.errors) == 1)
        assert "uid 65534" in str(pub.errors[0]) and pub.subscribers == 0
