"""The shared-memory process link: Publisher / Subscriber, in one process and across."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import numpy as np
import pytest

from parallax._errors import BrokenError, ClosedError, PoolExhausted
from parallax.buffer import Buffer, BufferFlags, Metadata
from parallax.caps import Caps
from parallax.link._ring import NO_CAPS, PUB_SLEEPING
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


def test_caps_travel_only_when_they_change() -> None:
    service = _service("caps")
    a, b = Caps.from_string("video/raw,width=2"), Caps.from_string("video/raw,width=4")
    with Publisher(service, slot_size=64, slots=8) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        for caps in (a, a, b, None, None, a):
            pub.send(pub.loan(timeout=1), 1, caps=caps)
        ring = sub._ring
        entries = [ring.get() for _ in range(6)]
        assert [e[2] if e is not None else "-" for e in entries] == [
            str(a),
            0,  # unchanged: no text
            str(b),
            NO_CAPS,
            0,
            str(a),
        ]
    del entries


def test_sleeping_sides_are_woken() -> None:
    service = _service("wake")
    with (
        Publisher(service, slot_size=64, slots=1, spin=0) as pub,
        Subscriber(service, spin=0) as sub,
    ):
        assert pub.wait_for_subscribers(1, timeout=2)
        sender = threading.Timer(0.1, lambda: pub.send(pub.loan(timeout=1), 1, sequence=7))
        sender.start()
        t0 = time.monotonic()
        buf = sub.receive(timeout=5)  # sleeps in poll(): the send must wake it
        assert buf is not None and buf.sequence == 7 and time.monotonic() - t0 < 2
        sender.join()
        seen: list[int] = []

        def drop() -> None:
            nonlocal buf
            _wait(lambda: sub._words[PUB_SLEEPING] == 1)  # loan() below is asleep
            seen.append(1)
            buf = None  # the release must wake it

        dropper = threading.Thread(target=drop)
        dropper.start()
        sample = pub.loan(timeout=5)  # the pool's one slot is in `buf`
        dropper.join()
        assert seen == [1] and sample.index == 0
        assert sub._words[PUB_SLEEPING] == 0
        del sample


def test_close_wakes_a_sleeping_subscriber_with_eos() -> None:
    service = _service("closewake")
    pub = Publisher(service, slot_size=64, slots=2)
    with Subscriber(service, spin=0) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        closer = threading.Timer(0.1, pub.close)
        closer.start()
        assert sub.receive(timeout=5) is None and sub.ended
        closer.join()
    assert pub.errors == []


def test_a_subscriber_that_breaks_the_release_ring_is_dropped() -> None:
    service = _service("liar")
    with Publisher(service, slot_size=64, slots=4) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        pub.send(pub.loan(), 1)
        held = sub.receive(1)
        assert sub._link.releases.push(3)  # a slot it was never sent
        assert pub.available == 4  # reclaimed what it held, dropped it
        assert pub.subscribers == 0 and "holding 1 slot(s)" in str(pub.errors[0])
        with pytest.raises(BrokenError, match="went away"):
            sub.receive(timeout=1)
        del held


def test_double_eos_leaves_no_error_when_the_subscriber_closes() -> None:
    # The cause of the "went away holding K slot(s)" warnings at the end of benches/ipc.py
    # (link version 1): send_eos(), then close() sent a second EOS; the subscriber stopped
    # at the first and closed with the second unread, which Linux reports to the peer as
    # ECONNRESET (af_unix: a close with unread data), read before its BYE.
    service = _service("eos2")
    code = f"""
        from parallax.link._shm import Subscriber
        with Subscriber({service!r}, timeout=5) as sub:
            print("ready", flush=True)
            n = 0
            while (buf := sub.receive(timeout=5)) is not None:
                n += 1
                del buf
            print(n, flush=True)
    """
    with Publisher(service, slot_size=64, slots=4) as pub:
        with _child(code) as child:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            assert pub.wait_for_subscribers(1, timeout=5)
            for _ in range(3):
                pub.send(pub.loan(timeout=5), 8)
            pub.send_eos()
            pub.send_eos()  # not sent again: it got EOS and nothing since
            out, err = child.communicate(timeout=10)
            assert out.split() == ["3"], err
        _wait(lambda: pub.subscribers == 0)
        assert pub.available == 4
    assert pub.errors == []


def test_a_view_kept_past_send_keeps_its_slot_from_being_loaned_again() -> None:
    service = _service("keptview")
    with Publisher(service, slot_size=64, slots=2) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        sample = pub.loan()
        kept = sample.view  # misuse: written after send() it would corrupt a later buffer
        pub.send(sample, 1)
        buf = sub.receive(1)
        del buf
        _wait(lambda: pub.available == 1)  # every subscriber is done, but `kept` lives
        assert [pub.loan().index for _ in range(3)] == [1, 1, 1]
        del kept
        assert pub.available == 2
        a, b = pub.loan(), pub.loan()
        assert {a.index, b.index} == {0, 1}
        del a, b


def test_a_received_buffer_has_every_field_of_buffer() -> None:
    # receive() fills Buffer's slots directly (its per-buffer fast path): a field added to
    # Buffer must be set there too.
    service = _service("fields")
    with Publisher(service, slot_size=64, slots=2) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        pub.send(pub.loan(), 3, sequence=5, pts=6, dts=7, duration=8, offset=9, flags=1)
        buf = sub.receive(1)
        assert buf is not None
        for name in Buffer.__slots__:
            getattr(buf, name)  # AttributeError if receive() left it unset
        assert buf.metadata == Metadata(5, 6, 7, 8, 9, BufferFlags.LIVE)
        assert buf.size == 3 and buf.readonly
        del buf
