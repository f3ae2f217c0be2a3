"""The shared-memory process link: Publisher / Subscriber, in one process and across."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from parallax._errors import BrokenError, ClosedError, PlatformNotSupported, PoolExhausted
from parallax.buffer import Buffer, BufferFlags, Metadata
from parallax.caps import Caps
from parallax.link import Loan, Publisher, Sample, Subscriber
from parallax.link._ring import NO_CAPS, PUB_SLEEPING, ControlBlock
from parallax.memory import MemfdSegment


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
            Loan()
        assert Sample is Loan  # the name before issue 9 still works
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
    from parallax.link import Subscriber
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
        from parallax.link import Publisher
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
    # The child looks for the service in our (root's) name space, then runs as nobody.
    code = f"""
        import os
        from parallax._errors import BrokenError
        from parallax.link import Subscriber
        os.setuid(65534)
        try:
            Subscriber({service!r}, allowed_uids={{0}})
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
        assert sub._releaser.releases.push(3)  # a slot it was never sent
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
        from parallax.link import Subscriber
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


# -- a fake publisher: a squatter, or a broken one ---------------------------------------

# HELLO as docs/links.md draws it: kind, 3 pad, magic, version, 0, slots, slot_size, size.
HELLO_HEAD = struct.Struct("<B3x4sHHIQQ")
EFD = os.EFD_CLOEXEC | os.EFD_NONBLOCK


def _hello(
    *,
    slots: int = 2,
    slot_size: int = 64,
    size: int = 4096,
    offsets: tuple[int, ...] | None = None,
    magic: bytes = b"PLXS",
    version: int = 2,
    seal: bool = True,
    wake: str = "eventfd",
    nfds: int = 4,
    declared: int | None = None,
) -> tuple[bytes, list[int]]:
    """A HELLO and its fds, as a publisher would send them (or not quite)."""
    pool = MemfdSegment(size, name="fake-pool")
    if seal:
        pool.seal(shrink=True, grow=True)
    block = ControlBlock.create(slots, name="fake-ctl")
    fds = [os.dup(pool.fd), os.dup(block.segment.fd)]
    pool.close()
    block.close()
    fds.append(os.eventfd(0, EFD) if wake == "eventfd" else os.open("/dev/null", os.O_RDONLY))
    fds.append(os.eventfd(0, EFD))
    for fd in fds[nfds:]:
        os.close(fd)
    if offsets is None:
        offsets = tuple(i * slot_size for i in range(slots))
    head = HELLO_HEAD.pack(
        1, magic, version, 0, slots, slot_size, size if declared is None else declared
    )
    return head + struct.pack(f"<{len(offsets)}Q", *offsets), fds[:nfds]


class FakePublisher:
    """Binds `name` and answers the first connection with `hello()`'s message and fds."""

    def __init__(self, name: str, hello: Callable[[], tuple[bytes, list[int]]]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.bind(name)
        self.sock.listen(1)
        self._hello = hello
        self.conn_fd = -1
        self.sent = threading.Event()  # HELLO sent, and our copies of its fds closed
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.conn_fd = conn.fileno()
        with conn:
            data, fds = self._hello()
            try:
                socket.send_fds(conn, [data], fds)
            except BrokenPipeError:
                return  # the subscriber refused us before HELLO: as it should, often
            finally:
                for fd in fds:
                    os.close(fd)
                self.sent.set()
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(16)  # until the subscriber hangs up

    def close(self) -> None:
        self.thread.join(10)
        self.sock.close()


def _fds() -> set[str]:
    """Open fds (without the one listing /proc/self/fd used, closed by now)."""
    return {fd for fd in os.listdir("/proc/self/fd") if os.path.lexists(f"/proc/self/fd/{fd}")}


def test_a_publisher_of_a_uid_we_do_not_allow_is_refused_before_hello() -> None:
    # We (any uid) squat the name of uid 65534's service: a subscriber that trusts only
    # uid 65534 must refuse us, and take none of the fds we offer.
    service = _service("squat")
    before = _fds()
    fake = FakePublisher(f"\0parallax/65534/{service}", _hello)
    try:
        with pytest.raises(BrokenError) as info:
            Subscriber(service, allowed_uids={65534}, timeout=2)
    finally:
        fake.close()
    message = str(info.value)
    assert f"refused the publisher of service {service!r}" in message
    assert f"pid {os.getpid()} runs as uid {os.getuid()}, not uid 65534" in message
    assert _fds() == before  # nothing received, nothing kept


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to setuid() a child to another uid")
def test_a_squatter_of_another_uid_is_refused() -> None:
    # Another user (nobody) binds our service's name before our publisher starts and
    # speaks a valid HELLO: our subscriber checks SO_PEERCRED and refuses it.
    service = _service("squat-root")
    code = f"""
        import os, socket, struct, sys
        from parallax.link._ring import ControlBlock
        from parallax.memory import MemfdSegment
        os.setuid(65534)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.bind("\\0parallax/{os.getuid()}/{service}")
        sock.listen(1)
        print("ready", flush=True)
        conn, _ = sock.accept()
        pool = MemfdSegment(4096)
        pool.seal(shrink=True, grow=True)
        block = ControlBlock.create(2)
        e1, e2 = os.eventfd(0), os.eventfd(0)
        hello = struct.pack("<B3x4sHHIQQ", 1, b"PLXS", 2, 0, 2, 64, 4096) + struct.pack("<2Q", 0, 64)
        socket.send_fds(conn, [hello], [pool.fd, block.segment.fd, e1, e2])
        conn.recv(16)
    """
    with _child(code) as child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with pytest.raises(BrokenError, match="refused the publisher") as info:
            Subscriber(service, timeout=5)
        child.communicate(timeout=10)
    assert f"pid {child.pid} runs as uid 65534, not uid 0" in str(info.value)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to setuid() a child to another uid")
def test_a_trusted_other_uid_is_served_both_ways() -> None:
    service = _service("trusted")
    code = f"""
        import os
        from parallax.link import Subscriber
        os.setuid(65534)
        with Subscriber({service!r}, allowed_uids={{0}}, timeout=5) as sub:
            buf = sub.receive(timeout=5)
            print(bytes(buf.view).decode(), flush=True)
            del buf
    """
    with Publisher(service, slot_size=64, slots=2, allowed_uids={0, 65534}) as pub:
        with _child(code) as child:
            assert pub.wait_for_subscribers(1, timeout=5)
            sample = pub.loan(timeout=1)
            sample.view[:5] = b"hello"
            pub.send(sample, 5)
            out, err = child.communicate(timeout=10)
        assert out == "hello\n", err
    assert pub.errors == []


def test_allowed_uids_are_checked() -> None:
    for bad, match in (([], "empty"), ([-1], "not a uid"), ([True], "not a uid"), ("0", "string")):
        with pytest.raises(ValueError, match=match):
            Subscriber(_service("bad-uids"), allowed_uids=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=match):
            Publisher(_service("bad-uids"), slot_size=64, allowed_uids=bad)  # type: ignore[arg-type]


BAD_HELLOS = [
    pytest.param(
        {"offsets": (0, 4096)}, "slot 1 at byte 4,096 ends past the 4,096-byte", id="slot-past-end"
    ),
    pytest.param(
        {"magic": b"XXXX"},
        r"magic: expected b.PLXS. \(a HELLO\), got b.XXXX. at byte 4",
        id="magic",
    ),
    pytest.param({"version": 1}, "version: expected 2, got 1 at byte 8", id="version"),
    pytest.param({"offsets": (0,)}, "a HELLO of 40 bytes; 2 slots make it 48", id="short"),
    pytest.param({"nfds": 3}, "sent 3 fds with HELLO, not 4", id="three-fds"),
    pytest.param({"wake": "file"}, "bad wake eventfd: it is '/dev/null'", id="wake-not-eventfd"),
    pytest.param({"seal": False}, "bad pool memfd: .* not sealed", id="unsealed-pool"),
    pytest.param(
        {"declared": 8192}, "a pool we cannot map: cannot map 8,192 bytes", id="pool-too-small"
    ),
]


@pytest.mark.parametrize(("hello", "match"), BAD_HELLOS)
def test_a_bad_hello_is_refused_and_every_fd_it_brought_is_closed(
    hello: dict[str, Any], match: str
) -> None:
    service = _service("badhello")
    before = _fds()
    fake = FakePublisher(f"\0parallax/{os.getuid()}/{service}", lambda: _hello(**hello))
    try:
        with pytest.raises(BrokenError, match=match):
            Subscriber(service, timeout=2)
        # Closed at once, while the error (and its frames) still live: not by the GC.
        assert fake.sent.wait(5)
        assert _fds() - before <= {str(fake.sock.fileno()), str(fake.conn_fd)}
    finally:
        fake.close()
    assert _fds() == before


def test_a_publisher_whose_thread_cannot_start_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    before = _fds()
    with pytest.raises(RuntimeError, match="can't start new thread"):
        Publisher(_service("nothread"), slot_size=64)
    assert _fds() == before  # at once: not when the half-made publisher is collected


def test_a_subscriber_the_publisher_cannot_serve_is_reported_and_others_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _service("cannot-serve")
    create = ControlBlock.create
    calls = []

    def fail_once(slots: int, **kwargs: Any) -> ControlBlock:
        calls.append(slots)
        if len(calls) == 1:
            raise PlatformNotSupported("no libatomic here")
        return create(slots, **kwargs)

    monkeypatch.setattr(ControlBlock, "create", staticmethod(fail_once))
    with Publisher(service, slot_size=64, slots=2) as pub:
        with pytest.raises(BrokenError, match=r"refused the connection|hung up"):
            Subscriber(service, timeout=2)
        _wait(lambda: len(pub.errors) == 1)
        assert "cannot serve pid" in str(pub.errors[0]) and "no libatomic" in str(pub.errors[0])
        with Subscriber(service, timeout=2) as sub:  # the I/O thread still serves
            assert pub.wait_for_subscribers(1, timeout=2)
            pub.send(pub.loan(timeout=1), 1, sequence=3)
            buf = sub.receive(timeout=1)
            assert buf is not None and buf.sequence == 3
            del buf


# -- service names ---------------------------------------------------------------------


def test_a_taken_service_name_says_who_holds_it() -> None:
    service = _service("taken")
    with (
        Publisher(service, slot_size=64),
        pytest.raises(OSError, match="already published") as info,
    ):
        Publisher(service, slot_size=64)
    assert info.value.errno == errno.EADDRINUSE
    assert service in str(info.value)
    assert f"held by pid {os.getpid()} (this process" in str(info.value)


def test_a_service_name_taken_by_another_process_names_it() -> None:
    service = _service("taken-child")
    code = f"""
        import sys
        from parallax.link import Publisher
        with Publisher({service!r}, slot_size=64):
            print("ready", flush=True)
            sys.stdin.readline()
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with child:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with pytest.raises(OSError, match=f"held by pid {child.pid} \\(python"):
            Publisher(service, slot_size=64)
        child.communicate("\n", timeout=10)


# -- leaky -------------------------------------------------------------------------------


def test_leaky_loses_nothing_to_a_subscriber_that_keeps_up() -> None:
    # A subscriber thread in this process: it runs only when the producer lets go of the
    # GIL. Leaky used to skip it whenever it held half the pool (99% of the buffers lost).
    service = _service("leaky-keeps-up")
    n = 2000
    with Publisher(service, slot_size=64, slots=4, leaky=True) as pub:
        with Subscriber(service) as sub:
            assert pub.wait_for_subscribers(1, timeout=2)
            got: list[int] = []

            def consume() -> None:
                while (buf := sub.receive(timeout=5)) is not None:
                    got.append(buf.sequence)
                    del buf

            consumer = threading.Thread(target=consume)
            consumer.start()
            reached = [pub.send(pub.loan(timeout=1), 8, sequence=i) for i in range(n)]
            pub.send_eos()
            consumer.join(10)
        assert reached == [1] * n and pub.dropped == 0
        assert got == list(range(n))


def test_leaky_waits_once_for_a_stalled_subscriber_then_not_until_it_catches_up() -> None:
    service = _service("leaky-stall")
    grace = 0.1
    with (
        Publisher(service, slot_size=64, slots=4, leaky=True, grace=grace) as pub,
        Subscriber(service) as stalled,
        Subscriber(service) as fine,
    ):
        assert pub.wait_for_subscribers(2, timeout=2)
        times, reached = [], []
        for i in range(8):
            t0 = time.monotonic()
            reached.append(pub.send(pub.loan(timeout=1), 1, sequence=i))
            times.append(time.monotonic() - t0)
            buf = fine.receive(timeout=1)
            assert buf is not None and buf.sequence == i
            del buf
        assert reached == [2, 2, 1, 1, 1, 1, 1, 1]  # `stalled` holds its half: 2 of 4
        assert pub.dropped == 6
        assert times[2] >= grace * 0.9  # waited once for `stalled`...
        assert max(times[3:]) < grace / 2  # ...and no more
        held = list(iter(lambda: stalled.receive(0), None))
        assert [b.sequence for b in held] == [0, 1]
        del held  # it caught up: it gets buffers again
        assert pub.send(pub.loan(timeout=1), 1, sequence=8) == 2


def test_grace_is_checked() -> None:
    for grace in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="grace"):
            Publisher(_service("grace"), slot_size=64, leaky=True, grace=grace)
