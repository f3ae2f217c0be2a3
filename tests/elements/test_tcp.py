"""The TCP link: round trips through both element pairs, bad frames, slow clients."""

from __future__ import annotations

import socket
import time

import pytest

import parallax
from parallax import FlowError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.elements import TcpClientSink, TcpClientSrc, TcpServerSink, TcpServerSrc
from parallax.link import MAX_CAPS, FrameError, encode_eos, encode_frame
from parallax.pipeline import MessageType, registry

CAPS = "tensor,dtype=float32"


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    # Until pyproject.toml carries the entry points, register the classes here.
    for cls in (TcpServerSink, TcpClientSrc, TcpClientSink, TcpServerSrc):
        if cls.factory_name not in registry.names():
            registry.register(cls)


def _buffers(n: int) -> list[Buffer]:
    out = []
    for i in range(n):
        data = bytes([i % 256]) * (i * 37 % 5000)
        out.append(
            Buffer(
                data,
                sequence=i,
                pts=i * 1000,
                dts=i * 1000 - 5,
                duration=1000,
                offset=i * 10,
                flags=i % 8,
            )
        )
    return out


def _same(got: list[Buffer], sent: list[Buffer]) -> None:
    assert len(got) == len(sent)
    for g, s in zip(got, sent, strict=True):
        assert g.to_bytes() == s.to_bytes()
        assert g.metadata == s.metadata
        assert g.caps == Caps.from_string(CAPS)


def _drain(sock: socket.socket) -> None:
    while sock.recv(1 << 20):
        pass


def _wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_tcpserversink_to_tcpclientsrc_round_trip() -> None:
    sent = _buffers(300)
    tx = parallax.parse_launch("appsrc name=src max-buffers=0 ! tcpserversink name=out port=0")
    tx.get_by_name("src").set_property("caps", CAPS)
    tx.play()
    try:
        out = tx.get_by_name("out")
        assert isinstance(out, TcpServerSink) and out.bound_port > 0
        rx = parallax.parse_launch(
            f"tcpclientsrc port={out.bound_port} ! appsink name=sink max-buffers=0"
        )
        rx.play()
        try:
            _wait_for(lambda: out.num_clients == 1)
            src = tx.get_by_name("src")
            for buf in sent:
                src.push_buffer(buf)  # type: ignore[attr-defined]
            src.end_of_stream()  # type: ignore[attr-defined]
            got = list(rx.pull("sink", timeout=10))
            message = tx.wait(10)
            assert message is not None and message.type is MessageType.EOS
        finally:
            rx.stop()
    finally:
        tx.stop()
    _same(got, sent)


def test_tcpclientsink_to_tcpserversrc_round_trip() -> None:
    sent = _buffers(300)
    rx = parallax.parse_launch("tcpserversrc name=in port=0 ! appsink name=sink max-buffers=0")
    rx.play()
    try:
        port = rx.get_by_name("in").bound_port  # type: ignore[attr-defined]
        tx = parallax.parse_launch(f"appsrc name=src max-buffers=0 ! tcpclientsink port={port}")
        src = tx.get_by_name("src")
        src.set_property("caps", CAPS)
        for buf in sent:
            src.push_buffer(buf)  # type: ignore[attr-defined]
        src.end_of_stream()  # type: ignore[attr-defined]
        tx.run(timeout=10)
        got = list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    _same(got, sent)


def test_bound_port_is_posted() -> None:
    p = parallax.parse_launch("tcpserversrc name=in port=0 ! fakesink")
    p.set_state(parallax.State.READY)
    try:
        msg = p.bus.poll(MessageType.ELEMENT, 1)
        assert msg is not None and msg.data["bound-port"] == p.get_by_name("in").bound_port  # type: ignore[attr-defined]
    finally:
        p.stop()


def test_bad_frame_fails_tcpclientsrc_with_offset() -> None:
    good = encode_frame(b"fine", caps=b"bytes")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        p = parallax.parse_launch(f"tcpclientsrc port={port} ! fakesink")
        p.set_state(parallax.State.READY)  # connects
        conn, _ = server.accept()
        with conn:
            conn.sendall(good + b"JUNK" + good[4:])
            with pytest.raises(FlowError) as info:
                p.run(timeout=10)
    err = info.value.__cause__
    assert isinstance(err, FrameError)
    assert err.offset == len(good) and err.reason == "bad magic"
    assert f"byte {len(good)}" in str(info.value)


def test_truncated_frame_fails_tcpclientsrc() -> None:
    frame = encode_frame(b"x" * 1000)
    with socket.create_server(("127.0.0.1", 0)) as server:
        p = parallax.parse_launch(f"tcpclientsrc port={server.getsockname()[1]} ! fakesink")
        p.set_state(parallax.State.READY)
        conn, _ = server.accept()
        with conn:
            conn.sendall(frame[:500])
        with pytest.raises(FlowError) as info:
            p.run(timeout=10)
    err = info.value.__cause__
    assert isinstance(err, FrameError) and err.reason == "truncated" and err.offset == 500


def test_oversized_frame_is_refused_before_allocating() -> None:
    big = encode_frame(b"y" * 2000)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        p = parallax.parse_launch(f"tcpclientsrc port={port} max-frame-size=1000 ! fakesink")
        p.set_state(parallax.State.READY)
        conn, _ = server.accept()
        with conn:
            conn.sendall(big[:100])  # the payload never comes: the header alone is refused
            with pytest.raises(FlowError) as info:
                p.run(timeout=10)
    err = info.value.__cause__
    assert isinstance(err, FrameError) and err.reason == "too long" and err.offset == 8


def test_tcpserversrc_drops_bad_sender_and_serves_others() -> None:
    rx = parallax.parse_launch(
        "tcpserversrc name=in port=0 num-senders=1 ! appsink name=sink max-buffers=0"
    )
    rx.play()
    try:
        port = rx.get_by_name("in").bound_port  # type: ignore[attr-defined]
        good = encode_frame(b"before", sequence=99, caps=CAPS.encode())
        bad = bytearray(encode_frame(b"corrupted payload"))
        bad[-3] ^= 0x55
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(good + bytes(bad))
            msg = rx.bus.poll(MessageType.WARNING, 10)
            assert msg is not None
            err = msg.data["error"]
            assert isinstance(err, FrameError) and err.reason == "crc mismatch"
            assert err.offset == len(good) + 12 and f"byte {len(good) + 12}" in str(err)
            raw.settimeout(5)
            assert raw.recv(10) == b""  # the server closed that connection
        sent = _buffers(50)
        tx = parallax.parse_launch(f"appsrc name=src max-buffers=0 ! tcpclientsink port={port}")
        src = tx.get_by_name("src")
        src.set_property("caps", CAPS)
        for buf in sent:
            src.push_buffer(buf)  # type: ignore[attr-defined]
        src.end_of_stream()  # type: ignore[attr-defined]
        tx.run(timeout=10)
        got = list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    assert got[0].to_bytes() == b"before" and got[0].sequence == 99
    _same(got[1:], sent)


def test_tcpserversink_survives_gone_and_slow_clients() -> None:
    tx = parallax.parse_launch(
        "appsrc name=src ! tcpserversink name=out port=0 max-queue=4 client-timeout=0.3"
    )
    tx.get_by_name("src").set_property("caps", CAPS)
    tx.play()
    out = tx.get_by_name("out")
    assert isinstance(out, TcpServerSink)
    rx = parallax.parse_launch(
        f"tcpclientsrc port={out.bound_port} ! appsink name=sink max-buffers=0"
    )
    slow = socket.socket()
    try:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", out.bound_port))  # connects and never reads
        with socket.create_connection(("127.0.0.1", out.bound_port)):
            pass  # connects and hangs up at once
        rx.play()
        _wait_for(lambda: out.num_clients >= 2)
        src = tx.get_by_name("src")
        sink = rx.get_by_name("sink")
        # The server drops buffers while no client is connected, and num_clients may
        # count the hung-up connection: wait until our receiver really gets one.
        for _ in range(100):
            src.push_buffer(Buffer(b"w", sequence=-1))  # type: ignore[attr-defined]
            if sink.pull(0.1) is not None:  # type: ignore[attr-defined]
                break
        while sink.pull(0.3) is not None:  # type: ignore[attr-defined]
            pass
        payload = b"z" * (1 << 20)
        got = []
        for i in range(48):
            src.push_buffer(Buffer(payload, sequence=i))  # type: ignore[attr-defined]
            buf = sink.pull(10)  # type: ignore[attr-defined]
            assert buf is not None
            got.append(buf.sequence)
        warnings = []
        while (msg := tx.bus.pop(MessageType.WARNING)) is not None:
            warnings.append(msg.data["text"])
        src.end_of_stream()  # type: ignore[attr-defined]
        assert tx.wait(10) is not None
        assert any("disconnected" in w for w in warnings), warnings
        assert got == list(range(got[0], got[0] + 48))  # appsrc numbers after the warm-up
        slow.settimeout(5)
        with pytest.raises(ConnectionResetError):  # kicked with a reset, not a clean EOS
            _drain(slow)
    finally:
        slow.close()
        rx.stop()
        tx.stop()


def test_connect_refused_is_a_flow_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    p = parallax.parse_launch(f"tcpclientsrc port={port} ! fakesink")
    with pytest.raises(FlowError, match=f"cannot connect to 127.0.0.1:{port}"):
        p.play()


def test_properties_and_defaults() -> None:
    src, sink = TcpServerSrc(port=0), TcpClientSink()
    assert src.max_frame_size == 64 << 20 and src.num_senders == 1
    assert sink.port == 4953 and sink.host == "127.0.0.1"
    server = TcpServerSink()
    assert server.max_queue == 16 and server.client_timeout == 1.0
    with pytest.raises(parallax.PropertyError):
        TcpClientSrc(port=70000)


def test_crc_mismatch_in_a_large_frame_fails_tcpclientsrc() -> None:
    # Large payloads are hashed in the executor while the next frame is received.
    good = encode_frame(b"a" * (512 << 10))
    bad = bytearray(encode_frame(b"b" * (512 << 10)))
    bad[-1] ^= 0xFF
    with socket.create_server(("127.0.0.1", 0)) as server:
        p = parallax.parse_launch(
            f"tcpclientsrc port={server.getsockname()[1]} ! appsink name=sink max-buffers=0"
        )
        p.set_state(parallax.State.READY)
        conn, _ = server.accept()
        with conn:
            conn.sendall(good + bytes(bad) + good)
            with pytest.raises(FlowError) as info:
                list(p.pull("sink", timeout=10))
    err = info.value.__cause__
    assert isinstance(err, FrameError) and err.reason == "crc mismatch"
    assert err.offset == len(good) + 12


def _send_in_pieces(conn: socket.socket, data: bytes, piece: int, pause: float) -> None:
    for i in range(0, len(data), piece):
        conn.sendall(data[i : i + piece])
        time.sleep(pause)


def test_tcpclientsrc_frames_in_pieces_changing_caps_and_empty_payloads() -> None:
    # The receiver drains the socket while data is there and otherwise waits for the rest
    # of the payload (SO_RCVLOWAT); it reads each head with as many caps bytes as the
    # previous frame had, so shorter caps make it over-read into the payload.
    frames = [
        (b"a" * 300_000, b"tensor,dtype=float32,width=1000,height=20"),
        (b"b" * 5, b"tensor,dtype=float32,width=1000,height=20"),
        (b"", b"tensor"),  # empty payload, shorter caps
        (b"c" * 70_000, b""),  # no caps at all: the over-read lands in the payload
        (b"d" * 3, b"bytes"),
        (b"", b""),
    ]
    stream = b"".join(
        encode_frame(payload, sequence=i, pts=i * 7, caps=caps)
        for i, (payload, caps) in enumerate(frames)
    )
    with socket.create_server(("127.0.0.1", 0)) as server:
        p = parallax.parse_launch(
            f"tcpclientsrc port={server.getsockname()[1]} ! appsink name=sink max-buffers=0"
        )
        p.set_state(parallax.State.READY)
        conn, _ = server.accept()
        with conn:
            p.play()
            try:
                _send_in_pieces(conn, stream, 40_000, 0.002)
                _send_in_pieces(conn, encode_frame(b"e" * 100_000), 7, 0.0)  # tiny pieces
                conn.sendall(encode_eos())
                got = list(p.pull("sink", timeout=10))
            finally:
                p.stop()
    assert [g.to_bytes() for g in got] == [f[0] for f in frames] + [b"e" * 100_000]
    assert [g.sequence for g in got[:-1]] == list(range(len(frames)))
    assert [g.pts for g in got[:-1]] == [i * 7 for i in range(len(frames))]
    caps = [None if not c else Caps.from_string(c.decode()) for _, c in frames]
    assert [g.caps for g in got[:-1]] == caps


def test_tcpclientsrc_resumes_a_frame_across_pause() -> None:
    frame = encode_frame(b"p" * 200_000, sequence=5)
    with socket.create_server(("127.0.0.1", 0)) as server:
        p = parallax.parse_launch(
            f"tcpclientsrc port={server.getsockname()[1]} ! appsink name=sink max-buffers=0"
        )
        p.set_state(parallax.State.READY)
        conn, _ = server.accept()
        with conn:
            p.play()
            try:
                conn.sendall(frame[:120_000])
                time.sleep(0.1)  # the source has read what there is and waits for the rest
                p.pause()
                p.play()
                conn.sendall(frame[120_000:] + encode_eos())
                got = list(p.pull("sink", timeout=10))
            finally:
                p.stop()
    assert len(got) == 1
    assert got[0].to_bytes() == b"p" * 200_000
    assert got[0].sequence == 5


def test_tcpserversrc_merges_concurrent_senders() -> None:
    rx = parallax.parse_launch(
        "tcpserversrc name=in port=0 num-senders=2 ! appsink name=sink max-buffers=0"
    )
    rx.play()
    try:
        port = rx.get_by_name("in").bound_port  # type: ignore[attr-defined]
        txs = []
        for k in range(2):
            tx = parallax.parse_launch(
                f"appsrc name=src max-buffers=0 ! tcpclientsink port={port} max-queue=1"
            )
            src = tx.get_by_name("src")
            src.set_property("caps", CAPS)
            for i in range(200):
                data = bytes([k]) * (1 + i * 997 % 70_000)
                src.push_buffer(Buffer(data, sequence=i, offset=k))  # type: ignore[attr-defined]
            src.end_of_stream()  # type: ignore[attr-defined]
            txs.append(tx)
        for tx in txs:
            tx.play()
        for tx in txs:
            message = tx.wait(10)
            assert message is not None and message.type is MessageType.EOS
            tx.stop()
        got = list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    for k in range(2):
        mine = [g for g in got if g.offset == k]
        assert [g.sequence for g in mine] == list(range(200))  # in order, none lost
        assert all(g.to_bytes() == bytes([k]) * (1 + g.sequence * 997 % 70_000) for g in mine)


# -- how a stream ends: its EOS frame, or an error -----------------------------------------


def _frames(n: int) -> bytes:
    return b"".join(encode_frame(bytes([i]) * 100, sequence=i, caps=b"bytes") for i in range(n))


def _serve_once(data: bytes, launch: str) -> tuple[list[Buffer], BaseException | None]:
    """A raw server that sends `data` to one `tcpclientsrc ... ! appsink name=sink` and
    closes: what the sink got, and the error pulling raised (None: a clean EOS)."""
    got: list[Buffer] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        p = parallax.parse_launch(f"{launch.format(port=port)} ! appsink name=sink max-buffers=0")
        p.set_state(parallax.State.READY)  # connects
        try:
            conn, _ = server.accept()
            with conn:
                conn.sendall(data)
            try:
                for buf in p.pull("sink", timeout=10):
                    got.append(buf)
            except FlowError as e:
                return got, e
        finally:
            p.stop()
    return got, None


def test_tcpclientsrc_stream_without_eos_frame_is_an_error() -> None:
    # The sender died between frames: not a clean EOS. The error names the element, the
    # peer, the bytes and the frames that arrived.
    data = _frames(3)
    got, err = _serve_once(data, "tcpclientsrc name=rx port={port}")
    assert isinstance(err, FlowError) and err.element == "rx"
    cause = err.__cause__
    assert isinstance(cause, FrameError) and cause.reason == "no eos"
    assert cause.offset == len(data)
    text = str(err)
    assert text.startswith("rx: 127.0.0.1:")
    assert f"stream ended at byte {len(data)} without an EOS frame, after 3 whole frames" in text
    assert [b.sequence for b in got] == [0, 1, 2]  # what came before is still delivered


def test_tcpclientsrc_allow_truncated_takes_a_close_between_frames_for_eos() -> None:
    got, err = _serve_once(_frames(3), "tcpclientsrc port={port} allow-truncated=true")
    assert err is None and [b.sequence for b in got] == [0, 1, 2]
    # A frame cut in half is still an error: half a frame is not a buffer.
    data = _frames(2) + encode_frame(b"z" * 1000)[:500]
    got, err = _serve_once(data, "tcpclientsrc port={port} allow-truncated=true")
    assert isinstance(err, FlowError) and isinstance(err.__cause__, FrameError)
    assert err.__cause__.reason == "truncated" and "after 2 whole frames" in str(err)


def test_tcpclientsrc_empty_stream_is_an_error() -> None:
    got, err = _serve_once(b"", "tcpclientsrc port={port}")
    assert got == [] and isinstance(err, FlowError)
    assert "without an EOS frame, after 0 whole frames" in str(err)


def test_tcpclientsrc_non_strm_bytes_are_bad_magic() -> None:
    _, err = _serve_once(b"hi\n", "tcpclientsrc port={port}")
    assert isinstance(err, FlowError) and isinstance(err.__cause__, FrameError)
    assert err.__cause__.reason == "bad magic" and "b'hi\\n'" in str(err)


def _sender(port: int, data: bytes, *, shutdown: bool = True) -> None:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(data)
        if shutdown:
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(5)
            _drain(raw)  # until the server closes its side


def _serversrc(extra: str = "") -> parallax.Pipeline:
    rx = parallax.parse_launch(
        f"tcpserversrc name=in port=0 {extra} ! appsink name=sink max-buffers=0"
    )
    rx.play()
    return rx


def _in_port(rx: parallax.Pipeline) -> int:
    return rx.get_by_name("in").bound_port  # type: ignore[attr-defined, no-any-return]


def test_tcpserversrc_sender_that_dies_fails_the_pipeline() -> None:
    for cut in (_frames(2), _frames(2) + encode_frame(b"y" * 1000)[:300]):
        rx = _serversrc()
        try:
            _sender(_in_port(rx), cut)
            with pytest.raises(FlowError) as info:
                list(rx.pull("sink", timeout=10))
        finally:
            rx.stop()
        assert info.value.element == "in"
        assert str(info.value).startswith("in: sender 127.0.0.1:")
        assert "after 2 whole frames" in str(info.value)
        assert isinstance(info.value.__cause__, FrameError)
        assert info.value.__cause__.reason == ("no eos" if cut == _frames(2) else "truncated")


def test_tcpserversrc_allow_truncated_counts_a_close_between_frames_as_finished() -> None:
    rx = _serversrc("allow-truncated=true num-senders=1")
    try:
        _sender(_in_port(rx), _frames(4))
        got = list(rx.pull("sink", timeout=10))  # EOS: the one sender finished
    finally:
        rx.stop()
    assert [b.sequence for b in got] == [0, 1, 2, 3]


def test_tcpserversrc_probes_are_warnings_not_senders() -> None:
    # `echo hi | nc 127.0.0.1 PORT` (fewer bytes than a header), an HTTP request, and a
    # connection closed before its first byte (`nc -z`): a WARNING each; the pipeline
    # goes on and still counts its one real sender.
    rx = _serversrc("num-senders=1")
    try:
        port = _in_port(rx)
        _sender(port, b"hi\n")
        msg = rx.bus.poll(MessageType.WARNING, 10)
        assert msg is not None
        err = msg.data["error"]
        assert isinstance(err, FrameError) and err.reason == "bad magic" and err.offset == 0
        assert "b'hi\\n'" in str(err) and "3 bytes seen" in str(err)
        _sender(port, b"GET / HTTP/1.1\r\n\r\n", shutdown=False)
        msg = rx.bus.poll(MessageType.WARNING, 10)
        assert msg is not None and "b'GET / HTTP/1.1\\r\\n'" in msg.data["text"]
        _sender(port, b"")
        msg = rx.bus.poll(MessageType.WARNING, 10)
        assert msg is not None
        assert "closed its connection before sending a frame" in msg.data["text"]
        _sender(port, _frames(2) + encode_eos())
        got = list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    assert [b.sequence for b in got] == [0, 1]


def test_tcpserversrc_allow_truncated_drops_a_half_frame_with_a_warning() -> None:
    rx = _serversrc("allow-truncated=true num-senders=1")
    try:
        port = _in_port(rx)
        _sender(port, _frames(1) + encode_frame(b"y" * 1000)[:300])
        msg = rx.bus.poll(MessageType.WARNING, 10)
        assert msg is not None and msg.data["error"].reason == "truncated"
        _sender(port, _frames(1) + encode_eos())
        got = list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    assert [b.sequence for b in got] == [0, 0]


def test_tcpclientsink_refuses_caps_over_the_limit() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        tx = parallax.parse_launch(
            f"appsrc name=src ! tcpclientsink name=tx port={server.getsockname()[1]}"
        )
        src = tx.get_by_name("src")
        src.set_property("caps", "application/x-test,note=" + "a" * MAX_CAPS)
        src.push_buffer(Buffer(b"x"))  # type: ignore[attr-defined]
        src.end_of_stream()  # type: ignore[attr-defined]
        with pytest.raises(FlowError) as info:
            tx.run(timeout=10)
    assert info.value.element == "tx"
    assert f"the limit is {MAX_CAPS:,} bytes" in str(info.value)
    assert f"caps of {MAX_CAPS + 24:,} bytes" in str(info.value)
