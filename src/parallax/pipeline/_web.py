"""`WebServer`: the live view of a running pipeline, in the browser.

    with pipeline.serve_web("127.0.0.1:0") as web:   # `parallax launch --web ADDR ...`
        print(web.url)                                # http://127.0.0.1:PORT/
        pipeline.run()

Routes (GET only; anything else is 405, an unknown path 404):
    /                the page (web/index.html, web/app.js, web/style.css: package data,
                     read once at start; no CDN, nothing fetched from elsewhere)
    /api/pipeline    `LiveView.snapshot()` as JSON: graph, layout, placement, metrics,
                     rates with their history, state, errors and warnings

The page polls /api/pipeline once a second and draws the graph itself (SVG from its own
script). Anchors: GStreamer 1.26's gst-dots-viewer (the graph of a running pipeline in a
browser) and the Ray dashboard (per-stage rates, where each actor runs).

Serving: the standard library's `ThreadingHTTPServer` on a `ServerThread`; between
requests the server thread takes the rate samples (`service_actions`), so the view needs
no thread of its own. Request threads are not daemons and the server joins them on
close, so `close()` leaves no thread and no socket; HTTP/1.0 (one request per
connection) and a socket timeout keep a slow or idle client from holding `close()` up.

Security: the address binds to loopback unless a host is written out (`_httpd`); while
bound to loopback, a request whose `Host` header is not a loopback name is refused (403),
so a web page cannot read the view through DNS rebinding. The page carries a strict
Content-Security-Policy: its own script and style only. There is no authentication:
bind a non-loopback host only on a network you trust.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._httpd import (
    ServerThread,
    format_host,
    is_loopback,
    parse_address,
    resolve,
)
from ._view import LiveView

if TYPE_CHECKING:
    from ._pipeline import Pipeline

log = logging.getLogger("parallax.web")

PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
"""Path → (file in parallax/pipeline/web/, content type)."""

REQUEST_TIMEOUT = 5.0
"""Seconds a client may take to send its request: after that its thread gives up, so a
connection that never speaks cannot keep `close()` waiting longer."""

_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"


def _page_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("parallax.pipeline") / "web"
    return {
        path: ((folder / name).read_bytes(), ctype) for path, (name, ctype) in PAGE_FILES.items()
    }


class _Server(ThreadingHTTPServer):
    """The HTTP server with what its handlers read: the view, the page, allowed hosts."""

    daemon_threads = False  # request threads are joined by server_close()
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        view: LiveView,
        files: dict[str, tuple[bytes, str]],
        local_only: bool,
    ) -> None:
        self.view, self.files, self.local_only = view, files, local_only
        super().__init__(address, _Handler)

    def service_actions(self) -> None:
        # serve_forever calls this between requests, at least every poll interval (0.5 s).
        try:
            self.view.tick()
        except Exception:  # a metrics read that fails must not stop the server
            log.exception("live view: taking a rate sample failed")

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's FQDN (a reverse DNS query that
        # can take seconds); the name is only used in CGI variables, which we do not have.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT
    server_version = "parallax-web"

    def log_message(self, format: str, *args: Any) -> None:
        """Polls once a second are not worth a log line each."""

    def do_GET(self) -> None:
        if self.server.local_only and not self._local_host():
            self._send(HTTPStatus.FORBIDDEN, b"the live view answers to loopback names only\n")
            return
        path = urlsplit(self.path).path
        if path == "/api/pipeline":
            try:
                body = json.dumps(self.server.view.snapshot(), default=str).encode()
            except Exception as e:
                log.exception("live view: the snapshot failed")
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"snapshot failed: {e}\n".encode())
                return
            self._send(HTTPStatus.OK, body, "application/json")
            return
        page = self.server.files.get("/" if path == "/index.html" else path)
        if page is None:
            self._send(HTTPStatus.NOT_FOUND, f"no such page: {path}\n".encode())
            return
        self._send(HTTPStatus.OK, *page)

    def _local_host(self) -> bool:
        host = self.headers.get("Host", "")
        if not host:  # an HTTP/1.0 client may send none; browsers always do
            return True
        name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":")[0]
        return is_loopback(name)

    def _refuse_method(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"the live view is read-only: GET only\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse_method

    def _send(
        self, status: HTTPStatus, body: bytes, ctype: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class WebServer:
    """Serves the live view of `pipeline` at `url` until closed.

    Made by `Pipeline.serve_web(address)`. Owns the listening socket, the server thread
    (joined on close, with its request threads) and a listener on the pipeline's bus:
    `close()` it, or use `with`. It may be started before the pipeline plays and outlive
    its run (the page then shows the final counters and state); closing it does not stop
    the pipeline.

    Args:
        pipeline: what to show.
        address: `PORT`, `:PORT`, `HOST:PORT` or `[IPV6]:PORT`; no host binds to
            127.0.0.1, port 0 takes any free port (`url` says which).
        what: names the address in errors (`"--web"` from the CLI).

    Raises:
        ParseError: the address is malformed (the message names `what`).
        OSError: the address cannot be bound (in use, not this machine's); the message
            names the address.
    """

    def __init__(self, pipeline: Pipeline, address: str, *, what: str = "web address") -> None:
        host, port = parse_address(address, what=what)
        files = _page_files()
        family, sockaddr = resolve(host, port)
        view = LiveView(pipeline)
        try:
            try:
                cls = _Server6 if family == socket.AF_INET6 else _Server
                server = cls(sockaddr, view, files, is_loopback(host))
            except OSError as e:
                raise OSError(e.errno, f"{what} {address}: cannot listen: {e.strerror}") from e
            self.host, self.port = host, int(server.server_address[1])
            self._serving = ServerThread(server, "parallax:web")
        except BaseException:
            view.close()
            raise
        self._view = view

    @staticmethod
    def parse_address(text: str, *, what: str = "web address") -> tuple[str, int]:
        """`(host, port)` as a `WebServer` reads `text`, without binding: for checking an
        argument early (the CLI's `--web`). Raises ParseError, as the constructor does."""
        return parse_address(text, what=what)

    @property
    def url(self) -> str:
        """Where the page is: `http://HOST:PORT/`."""
        return f"http://{format_host(self.host)}:{self.port}/"

    @property
    def local_only(self) -> bool:
        """True when bound to loopback (only this machine can connect)."""
        return is_loopback(self.host)

    def snapshot(self) -> dict[str, Any]:
        """What `/api/pipeline` returns now."""
        return self._view.snapshot()

    def close(self) -> None:
        """Stop serving; join the server and its request threads. Idempotent."""
        self._serving.close()
        self._view.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WebServer {self.url}>"
