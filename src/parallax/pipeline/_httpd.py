"""HTTP servers that a pipeline owns: the address they bind, and the thread that serves.

Two servers hang off a running pipeline: the Prometheus endpoint (`MetricsServer`) and
the live view (`WebServer`). Both are a standard-library `socketserver` server running
`serve_forever` on a thread of its own; `ServerThread` is that one owner, so starting,
stopping and joining are written once.

Addresses are written as `parse_address` reads them: `PORT`, `:PORT`, `HOST:PORT` or
`[IPV6]:PORT` (port 0: any free port). With no host a server binds to loopback
(127.0.0.1): a pipeline's insides are nobody else's business unless its user writes out
another host. `is_loopback` tells the two apart, so a server can refuse a request whose
`Host` header names some other machine (DNS rebinding: a web page that makes its own host
name resolve to 127.0.0.1 could otherwise read a loopback-only server).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import socketserver
import threading

from parallax._errors import ParseError

LOOPBACK = "127.0.0.1"
"""The host an address without one binds to."""

MAX_PORT = 65535  # TCP ports are 16-bit (RFC 793)

# A DNS name as RFC 1123 allows it: dot-separated labels of letters, digits and inner
# hyphens, 63 characters each at most.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """`(host, port)` from `PORT`, `:PORT`, `HOST:PORT` or `[IPV6]:PORT`.

    An empty host is loopback (`LOOPBACK`). `what` names the argument in errors
    (`"--web"`); empty, the message is the problem alone (argparse adds the argument).

    Raises:
        ParseError: the text is not one of those forms; the message names `what` and the
            bad part, and `column` points at it.
    """
    if not text:
        raise _bad(what, "empty address (expected HOST:PORT, e.g. 127.0.0.1:8080)", text, 1)
    if text.isdigit():
        return LOOPBACK, _port(text, text, 1, what)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise _bad(what, f"'[' without its ']' in '{text}'", text, 1)
        host, rest, column = text[1:close], text[close + 1 :], close + 2
        if not rest.startswith(":"):
            raise _bad(
                what, f"expected ':PORT' after ']' in '{text}'", text, min(column, len(text))
            )
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(what, f"'{host}' is not an IPv6 address", text, 2) from None
        return host, _port(rest[1:], text, column + 1, what)
    host, colon, port = text.rpartition(":")
    if not colon:
        raise _bad(
            what,
            f"'{text}' has no port (expected HOST:PORT, e.g. 127.0.0.1:8080)",
            text,
            len(text) + 1,
        )
    if ":" in host:
        raise _bad(what, f"an IPv6 host needs brackets, as in [::1]:{port or 'PORT'}", text, 1)
    if host and not _valid_host(host):
        raise _bad(what, f"'{host}' is not an IP address or host name", text, 1)
    return host or LOOPBACK, _port(port, text, len(host) + 2, what)


def _bad(what: str, message: str, text: str, column: int) -> ParseError:
    return ParseError(f"{what}: {message}" if what else message, text, column)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and _HOSTNAME.fullmatch(host) is not None
    return True


def _port(port: str, text: str, column: int, what: str) -> int:
    if not port:
        raise _bad(what, f"no port after ':' in '{text}'", text, column)
    if not port.isascii() or not port.isdigit():
        raise _bad(what, f"port '{port}' is not a number", text, column)
    value = int(port)
    if value > MAX_PORT:
        raise _bad(what, f"port {value} is out of range 0-{MAX_PORT}", text, column)
    return value


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_host(host: str) -> str:
    """The host as it is written in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """The address family and socket address to bind `host:port` (getaddrinfo(3)).

    Raises:
        OSError: the host does not resolve; the message names it.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as e:
        raise OSError(e.errno, f"cannot resolve host '{host}': {e.strerror}") from e
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


class ServerThread:
    """Runs `server.serve_forever()` on a thread named `name`, and owns both.

    `close()` (or `with`) stops serving, closes the listening socket (and, for a threading
    server that is not `daemon_threads`, joins the request threads), then joins the
    thread. It is not closed by garbage collection: stopping a server blocks, so it is
    done by its owner, never from a finalizer.
    """

    def __init__(self, server: socketserver.BaseServer, name: str) -> None:
        self._server: socketserver.BaseServer | None = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
        try:
            self._thread.start()
        except BaseException:
            server.server_close()  # a thread that cannot start leaves no socket behind
            raise

    def close(self) -> None:
        """Stop serving, close the socket, join the thread. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
