"""TLS for the TCP link: the `tls*` properties of the four TCP elements, their
`ssl.SSLContext`s, and the handshakes (standard library `ssl`, OpenSSL underneath).

Opt-in: with `tls=false` (the default) nothing here runs and the plain path is the one
_tcp.py describes. With `tls=true`:

- A client (`tcpclientsrc`, `tcpclientsink`) always verifies the server: its certificate
  must chain to `tls-ca` (default: the system's CAs) and carry the name it was reached by,
  `tls-server-name` or else `host` (an IP address is matched against the certificate's IP
  subjectAltNames, a name against its DNS ones: `ssl.SSLContext.check_hostname`). It
  presents `tls-cert`/`tls-key` when given (for a server that asks for one).
- A server (`tcpserversink`, `tcpserversrc`) presents `tls-cert` (required) and asks
  clients for a certificate when `tls-ca` is given (CERT_OPTIONAL: one that is presented
  must verify); `tls-require-client-cert=true` refuses a client without one
  (CERT_REQUIRED). Protocol: TLS 1.2 or later (`ssl.create_default_context`'s floor).
- A tls-* property set while `tls=false` is refused at start, so that nobody believes a
  link is encrypted that is not.

What TLS changes on the data path (an `ssl.SSLSocket` is not a socket in every respect):
- It has no `sendmsg`/`recvmsg_into` (NotImplementedError): a sender writes the frame head
  and the payload as two `send`s (OpenSSL cuts them into 16 KiB records anyway, and
  encrypting copies once whatever we do), a receiver `recv_into`s the payload and reads
  the next head on its own.
- A sender's SSLSocket has a Python timeout (`_SEND_POLL`), not the plain path's blocking
  socket with SO_SNDTIMEO: a *blocking* SSLSocket retries a WANT_WRITE inside CPython's C
  loop and never returns to look for a kick. Without SSL_MODE_ENABLE_PARTIAL_WRITE (which
  CPython does not set) a write that timed out has sent nothing we can see, and is retried
  with the same bytes, as SSL_write(3) asks.
- A receiver leaves SO_RCVLOWAT alone: the kernel holds ciphertext, and OpenSSL may
  already hold part of a record, so waiting for as many bytes as the payload still needs
  could wait for bytes that never come. "Dry" is `SSLWantReadError` (or WantWrite),
  raised only once OpenSSL's own buffer is empty, so data it holds is never stranded.
- Server handshakes never block the accepting thread or loop: `tcpserversink` shakes
  hands in the client's sender thread, `tcpserversrc` non-blocking in its reader.

Under TLS 1.3 a client's handshake completes before the server has checked the client's
certificate: a refused client hears of it at its first read (an alert) or write.
The STRM EOS frame travels inside TLS, so an attacker who cuts the connection (a TLS
truncation attack) gets the same `no eos` error as a sender that died.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Any

from parallax._errors import FlowError, PropertyError
from parallax.pipeline import Property

_SSL_SUFFIX = re.compile(r" \(_ssl\.c:\d+\)$")
_KEY_DOC = "PEM file with the private key of tls-cert (empty: it is in tls-cert's file)"


def tls_reason(e: OSError) -> str:
    """OpenSSL's reason for `e`, as a person reads it (no `_ssl.c` line number)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    return _SSL_SUFFIX.sub("", str(e))


class _TlsProperties:
    """The properties both ends share (a mixin for the element classes)."""

    name: str  # the element's
    tls = Property(False, doc="encrypt the connection with TLS (the tls-* properties)")

    def _tls_refuse_unused(self, props: tuple[Property[Any], ...]) -> None:
        """A tls-* property set while tls=false is a mistake worth an error."""
        if self.tls:
            return
        for prop in props:
            value = prop.__get__(self, type(self))
            if value != prop.default:
                raise PropertyError(
                    f"{self.name}: property '{prop.name}' is set but tls=false "
                    "(set tls=true to encrypt the connection)",
                    element=self.name,
                    prop=prop.name,
                    value=value,
                )

    def _tls_load_chain(self, ctx: ssl.SSLContext, cert: str, key: str) -> None:
        try:
            ctx.load_cert_chain(cert, key or None)
        except (OSError, ValueError) as e:
            key = f" with tls-key {key!r}" if key else ""
            reason = tls_reason(e) if isinstance(e, OSError) else str(e)
            raise FlowError(
                f"{self.name}: cannot load tls-cert {cert!r}{key}: {reason}", element=self.name
            ) from e

    def _tls_load_ca(self, ctx: ssl.SSLContext, ca: str) -> None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot load tls-ca {ca!r}: {tls_reason(e)}", element=self.name
            ) from e


class TlsClient(_TlsProperties):
    """TLS for the elements that connect (`tcpclientsrc`, `tcpclientsink`)."""

    tls_cert = Property(
        "", doc="PEM file with this end's certificate chain, presented if the server asks"
    )
    tls_key = Property("", doc=_KEY_DOC)
    tls_ca = Property(
        "", doc="PEM file of the CAs that verify the server (empty: the system's CAs)"
    )
    tls_server_name = Property("", doc="name the server's certificate must carry (empty: host)")

    def tls_client_context(self) -> ssl.SSLContext | None:
        """The context this element connects with; None with tls=false.

        Raises:
            PropertyError: a tls-* property set while tls=false.
            FlowError: a certificate, key or CA file that cannot be loaded (naming it).
        """
        cls = type(self)
        self._tls_refuse_unused((cls.tls_cert, cls.tls_key, cls.tls_ca, cls.tls_server_name))
        if not self.tls:
            return None
        if self.tls_key and not self.tls_cert:
            raise PropertyError(
                f"{self.name}: tls-key is set without tls-cert", element=self.name, prop="tls-key"
            )
        # TLS >= 1.2, CERT_REQUIRED and check_hostname (Python 3.10's secure defaults),
        # trusting tls-ca only, or else the system's CAs.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.tls_ca:
            self._tls_load_ca(ctx, self.tls_ca)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.tls_cert:
            self._tls_load_chain(ctx, self.tls_cert, self.tls_key)
        return ctx

    def open_connection(self, host: str, port: int, timeout: float) -> socket.socket:
        """Connect to `host:port`, with TLS when `tls=true` (the server verified).

        Raises:
            PropertyError, FlowError: as `tls_client_context`; the connection or the
                handshake failed (naming the peer and the reason). Nothing stays open.
        """
        ctx = self.tls_client_context()
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot connect to {host}:{port}: {e}", element=self.name
            ) from e
        return sock if ctx is None else self.tls_connect(ctx, sock, host)  # closes on failure

    def tls_connect(self, ctx: ssl.SSLContext, sock: socket.socket, host: str) -> ssl.SSLSocket:
        """Shake hands over the connected `sock` (within its timeout); the result owns it.

        Raises:
            FlowError: the server's certificate is refused (the ssl reason, and against
                what it was checked) or the handshake failed; `sock` is closed.
        """
        name = self.tls_server_name or host
        try:
            return ctx.wrap_socket(sock, server_hostname=name)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            against = f"tls-ca {self.tls_ca!r}" if self.tls_ca else "the system's CAs"
            raise FlowError(
                f"{self.name}: TLS: the certificate of {host} is refused: {tls_reason(e)} "
                f"(checked against {against}, for the name {name!r})",
                element=self.name,
            ) from e
        except OSError as e:  # ssl.SSLError, a reset, a timeout
            sock.close()
            raise FlowError(
                f"{self.name}: TLS handshake with {host} failed: {tls_reason(e)}",
                element=self.name,
            ) from e


class TlsServer(_TlsProperties):
    """TLS for the elements that listen (`tcpserversink`, `tcpserversrc`)."""

    tls_cert = Property("", doc="PEM file with the server's certificate chain (needed for tls)")
    tls_key = Property("", doc=_KEY_DOC)
    tls_ca = Property(
        "", doc="PEM file of the CAs that verify client certificates (empty: none asked for)"
    )
    tls_require_client_cert = Property(
        False, doc="refuse a client without a certificate that tls-ca verifies"
    )

    def tls_server_context(self) -> ssl.SSLContext | None:
        """The context this element accepts with; None with tls=false.

        Raises:
            PropertyError: a tls-* property set while tls=false, tls without tls-cert, or
                tls-require-client-cert without tls-ca.
            FlowError: a certificate, key or CA file that cannot be loaded (naming it).
        """
        cls = type(self)
        self._tls_refuse_unused(
            (cls.tls_cert, cls.tls_key, cls.tls_ca, cls.tls_require_client_cert)
        )
        if not self.tls:
            return None
        if not self.tls_cert:
            raise PropertyError(
                f"{self.name}: tls=true needs tls-cert (the server's certificate, PEM)",
                element=self.name,
                prop="tls-cert",
            )
        if self.tls_require_client_cert and not self.tls_ca:
            raise PropertyError(
                f"{self.name}: tls-require-client-cert=true needs tls-ca (the CAs that "
                "verify client certificates)",
                element=self.name,
                prop="tls-require-client-cert",
            )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # TLS >= 1.2; asks clients for nothing
        # No TLS 1.3 session tickets: nobody resumes a session here, and a ticket left
        # unread in a sender's socket turns its close into a reset that loses frames.
        ctx.num_tickets = 0
        self._tls_load_chain(ctx, self.tls_cert, self.tls_key)
        if self.tls_ca:
            self._tls_load_ca(ctx, self.tls_ca)
            require = self.tls_require_client_cert
            ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
        return ctx


def tls_accept(ctx: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """Wrap an accepted connection for the server side, without shaking hands yet (the
    caller does, where it may wait). The result owns the connection; on error it is closed.

    Raises:
        OSError: the connection failed already.
    """
    try:
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
