"""TLS on the TCP link, on loopback, with certificates made here by the `openssl` command:
round trips both ways, a server the client does not trust, a client the server refuses,
and the tls-* properties' errors."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.buffer import Buffer
from parallax.elements import TcpClientSink, TcpClientSrc, TcpServerSink, TcpServerSrc
from parallax.link import encode_eos, encode_frame
from parallax.pipeline import MessageType, Pipeline, registry

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(
    OPENSSL is None,
    reason="the TLS tests make their certificates with the openssl command (apt-get install "
    "openssl; the `cryptography` package is not in .venv)",
)
CAPS = "tensor,dtype=float32"


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    for cls in (TcpServerSink, TcpClientSrc, TcpClientSink, TcpServerSrc):
        if cls.factory_name not in registry.names():
            registry.register(cls)


# -- certificates --------------------------------------------------------------------------

_LEAF = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage={usage}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
{san}"""


def _openssl(where: Path, *args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=where, check=True, capture_output=True, timeout=60)


def _ca(where: Path, name: str) -> None:
    _openssl(
        where,
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )


def _leaf(where: Path, name: str, ca: str, usage: str, san: str = "") -> None:
    (where / f"{name}.ext").write_text(_LEAF.format(usage=usage, san=san))
    _openssl(
        where,
        *("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr"),
    )
    _openssl(
        where,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key"),
        *("-set_serial", "7", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem"),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca (trusted), other-ca (not), server (127.0.0.1 and localhost, by ca), client (by
    ca), stranger (a client by other-ca): each NAME.pem with NAME.key."""
    where = tmp_path_factory.mktemp("certs")
    _ca(where, "ca")
    _ca(where, "other-ca")
    _leaf(where, "server", "ca", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    _leaf(where, "client", "ca", "clientAuth")
    _leaf(where, "stranger", "other-ca", "clientAuth")
    return where


def _server_tls(certs: Path, *, ca: bool = False, require: bool = False) -> str:
    text = f"tls=true tls-cert={certs / 'server.pem'} tls-key={certs / 'server.key'}"
    if ca:
        text += f" tls-ca={certs / 'ca.pem'}"
    if require:
        text += " tls-require-client-cert=true"
    return text


def _client_tls(certs: Path, *, ca: str = "ca", cert: str = "") -> str:
    text = f"tls=true tls-ca={certs / (ca + '.pem')}"
    if cert:
        text += f" tls-cert={certs / (cert + '.pem')} tls-key={certs / (cert + '.key')}"
    return text


def _buffers(n: int) -> list[Buffer]:
    # Sizes from empty to several TLS records (16 KiB each), and one of 1 MiB.
    sizes = [0, 1, 61, 62, 4096, 16_384, 16_385, 100_000, 1 << 20]
    return [
        Buffer(bytes([i % 251]) * sizes[i % len(sizes)], sequence=i, pts=i * 40) for i in range(n)
    ]


def _same(got: list[Buffer], sent: list[Buffer]) -> None:
    assert [g.to_bytes() for g in got] == [s.to_bytes() for s in sent]
    assert [g.metadata for g in got] == [s.metadata for s in sent]


def _send_with_client_cert(certs: Path, port: int, rx: Pipeline, sent: list[Buffer]) -> None:
    """Send `sent` from a TLS client with the CA-signed client certificate to `port`, and
    check that `rx`'s appsink got exactly them."""
    tx = parallax.parse_launch(
        f"appsrc name=src max-buffers=0 ! tcpclientsink port={port} "
        f"{_client_tls(certs, cert='client')}"
    )
    _push(tx, sent)
    tx.run(timeout=20)
    _same(list(rx.pull("sink", timeout=20)), sent)


def _push(p: Pipeline, bufs: list[Buffer]) -> None:
    src = p.get_by_name("src")
    if src.state is parallax.State.NULL:
        src.set_property("caps", CAPS)
    for buf in bufs:
        src.push_buffer(buf)  # type: ignore[attr-defined]
    src.end_of_stream()  # type: ignore[attr-defined]


def _port(p: Pipeline, name: str) -> int:
    return p.get_by_name(name).bound_port  # type: ignore[attr-defined, no-any-return]


def _warnings(p: Pipeline) -> list[str]:
    out = []
    while (msg := p.bus.pop(MessageType.WARNING)) is not None:
        out.append(msg.data["text"])
    return out


# -- round trips ----------------------------------------------------------------------------


def test_tls_round_trip_tcpclientsink_to_tcpserversrc_with_client_certificate(
    certs: Path,
) -> None:
    sent = _buffers(60)
    rx = parallax.parse_launch(
        f"tcpserversrc name=in port=0 {_server_tls(certs, ca=True, require=True)} "
        "! appsink name=sink max-buffers=0"
    )
    rx.play()
    try:
        _send_with_client_cert(certs, _port(rx, "in"), rx, sent)
    finally:
        rx.stop()


def test_tls_round_trip_tcpserversink_to_tcpclientsrc(certs: Path) -> None:
    sent = _buffers(60)
    tx = parallax.parse_launch(
        f"appsrc name=src max-buffers=0 caps={CAPS} ! tcpserversink name=out port=0 "
        f"{_server_tls(certs)}"
    )
    tx.play()
    try:
        out = tx.get_by_name("out")
        assert isinstance(out, TcpServerSink)
        rx = parallax.parse_launch(
            f"tcpclientsrc port={out.bound_port} host=localhost {_client_tls(certs)} "
            "! appsink name=sink max-buffers=0"
        )
        rx.play()  # connects and verifies the server (by the name localhost)
        try:
            deadline = time.monotonic() + 10
            while out.num_clients < 1:  # the server drops buffers while nobody is there
                assert time.monotonic() < deadline, "the client did not connect"
                time.sleep(0.01)
            _push(tx, sent)
            got = list(rx.pull("sink", timeout=20))
            message = tx.wait(20)
            assert message is not None and message.type is MessageType.EOS
        finally:
            rx.stop()
    finally:
        tx.stop()
    _same(got, sent)


# -- the client verifies the server ------------------------------------------------------


def _tls_server_socket(certs: Path) -> tuple[TcpServerSink, Pipeline]:
    tx = parallax.parse_launch(f"appsrc ! tcpserversink name=out port=0 {_server_tls(certs)}")
    tx.play()
    out = tx.get_by_name("out")
    assert isinstance(out, TcpServerSink)
    return out, tx


def test_client_refuses_a_server_of_an_unknown_ca(certs: Path) -> None:
    out, tx = _tls_server_socket(certs)
    try:
        rx = parallax.parse_launch(
            f"tcpclientsrc name=rx port={out.bound_port} {_client_tls(certs, ca='other-ca')} "
            "! fakesink"
        )
        with pytest.raises(FlowError) as info:
            rx.play()
    finally:
        tx.stop()
    text = str(info.value)
    assert info.value.element == "rx" and text.startswith("rx: TLS: ")
    assert "certificate verify failed: unable to get local issuer certificate" in text
    assert f"tls-ca '{certs / 'other-ca.pem'}'" in text


def test_client_without_tls_ca_checks_the_system_cas(certs: Path) -> None:
    out, tx = _tls_server_socket(certs)
    try:
        sender = parallax.parse_launch(f"appsrc ! tcpclientsink port={out.bound_port} tls=true")
        with pytest.raises(FlowError, match="checked against the system's CAs"):
            sender.play()
    finally:
        tx.stop()


def test_client_checks_the_name_in_the_server_certificate(certs: Path) -> None:
    out, tx = _tls_server_socket(certs)
    try:
        rx = parallax.parse_launch(
            f"tcpclientsrc port={out.bound_port} {_client_tls(certs)} "
            "tls-server-name=elsewhere.example ! fakesink"
        )
        with pytest.raises(FlowError) as info:
            rx.play()
    finally:
        tx.stop()
    assert "Hostname mismatch" in str(info.value)
    assert "'elsewhere.example'" in str(info.value)


# -- the server can require client certificates ---------------------------------------------


def test_server_refuses_a_client_without_a_certificate(certs: Path) -> None:
    # TLS 1.3: the client's handshake completes first; it hears of the refusal at its
    # first read, and tcpserversink says which client it dropped and why.
    tx = parallax.parse_launch(
        f"appsrc name=src ! tcpserversink name=out port=0 "
        f"{_server_tls(certs, ca=True, require=True)}"
    )
    tx.play()
    try:
        rx = parallax.parse_launch(
            f"tcpclientsrc name=rx port={_port(tx, 'out')} {_client_tls(certs)} ! fakesink"
        )
        with pytest.raises(FlowError) as info:
            rx.run(timeout=10)
        msg = tx.bus.poll(MessageType.WARNING, 10)
    finally:
        tx.stop()
    assert "rx: 127.0.0.1:" in str(info.value) and "certificate required" in str(info.value)
    assert msg is not None
    assert "TLS handshake failed" in msg.data["text"]
    assert "peer did not return a certificate" in msg.data["text"]


def test_tcpserversrc_drops_refused_clients_and_serves_a_good_one(certs: Path) -> None:
    rx = parallax.parse_launch(
        f"tcpserversrc name=in port=0 {_server_tls(certs, ca=True, require=True)} "
        "! appsink name=sink max-buffers=0"
    )
    rx.play()
    try:
        port = _port(rx, "in")
        # A client without a certificate, one whose certificate another CA signed, and a
        # plain (not TLS) sender: each a WARNING, none counted as a sender.
        for tls in (_client_tls(certs), _client_tls(certs, cert="stranger")):
            tx = parallax.parse_launch(f"appsrc name=src ! tcpclientsink port={port} {tls}")
            _push(tx, [Buffer(b"never")])
            tx.play()
            msg = rx.bus.poll(MessageType.WARNING, 10)
            assert msg is not None and "TLS handshake failed" in msg.data["text"]
            tx.wait(10)  # done or failed (it may not notice: TLS 1.3)
            tx.stop()
        with socket.create_connection(("127.0.0.1", port)) as plain:
            plain.sendall(encode_frame(b"plain", caps=b"bytes") + encode_eos())
            msg = rx.bus.poll(MessageType.WARNING, 10)
            assert msg is not None and "TLS handshake failed" in msg.data["text"]
        _send_with_client_cert(certs, port, rx, _buffers(12))
    finally:
        rx.stop()


def test_a_tls_sender_that_dies_is_an_error_too(certs: Path) -> None:
    # The STRM EOS frame travels inside TLS: a cut connection is `no eos`, as in plain TCP.
    rx = parallax.parse_launch(
        f"tcpserversrc name=in port=0 {_server_tls(certs)} ! appsink name=sink max-buffers=0"
    )
    rx.play()
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", _port(rx, "in")))
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(encode_frame(b"one", caps=b"bytes") + encode_frame(b"two"))
        with pytest.raises(FlowError) as info:
            list(rx.pull("sink", timeout=10))
    finally:
        rx.stop()
    assert "without an EOS frame, after 2 whole frames" in str(info.value)


# -- the properties --------------------------------------------------------------------------


def test_tls_properties_and_defaults() -> None:
    for cls in (TcpClientSrc, TcpClientSink):
        el = cls()
        assert (el.tls, el.tls_cert, el.tls_key, el.tls_ca, el.tls_server_name) == (
            False,
            "",
            "",
            "",
            "",
        )
    for server in (TcpServerSrc, TcpServerSink):
        s = server()
        assert (s.tls, s.tls_cert, s.tls_key, s.tls_ca, s.tls_require_client_cert) == (
            False,
            "",
            "",
            "",
            False,
        )
    assert TcpServerSrc.find_property("tls-server-name") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tcpserversrc name=e port=0 tls-cert=x.pem", "property 'tls-cert' is set but tls=false"),
        (
            "tcpclientsrc name=e tls-ca=ca.pem",
            "property 'tls-ca' is set but tls=false",
        ),
        ("tcpserversrc name=e port=0 tls=true", "tls=true needs tls-cert"),
        (
            "tcpserversrc name=e port=0 tls=true tls-cert=x.pem tls-require-client-cert=true",
            "tls-require-client-cert=true needs tls-ca",
        ),
        ("tcpclientsrc name=e tls=true tls-key=k.pem", "tls-key is set without tls-cert"),
    ],
)
def test_tls_misconfiguration_is_refused_at_start(line: str, message: str) -> None:
    p = parallax.parse_launch(f"{line} ! fakesink")
    with pytest.raises(PropertyError) as info:
        p.set_state(parallax.State.READY)
    assert str(info.value).startswith("e: ") and message in str(info.value)
    assert info.value.element == "e"


def test_unreadable_certificate_files_name_the_property_and_path(
    certs: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    p = parallax.parse_launch(f"tcpserversrc name=e port=0 tls=true tls-cert={missing} ! fakesink")
    with pytest.raises(FlowError, match=f"e: cannot load tls-cert '{missing}'"):
        p.set_state(parallax.State.READY)
    # A key that is not the certificate's.
    p = parallax.parse_launch(
        f"fakesrc ! tcpserversink name=e port=0 tls=true tls-cert={certs / 'server.pem'} "
        f"tls-key={certs / 'client.key'}"
    )
    with pytest.raises(FlowError, match=r"e: cannot load tls-cert .* with tls-key .*client\.key"):
        p.set_state(parallax.State.READY)
    p = parallax.parse_launch(
        f"tcpclientsrc name=e tls=true tls-ca={certs / 'server.key'} ! fakesink"
    )
    with pytest.raises(FlowError, match=r"e: cannot load tls-ca '.*server\.key'"):
        p.set_state(parallax.State.READY)
