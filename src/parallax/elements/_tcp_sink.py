"""The sending half of the TCP link: `tcpclientsink` and `tcpserversink` (see _tcp.py)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Final

from parallax._errors import BrokenError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.link import (
    crc32,
    encode_eos,
    encode_head,
)
from parallax.pipeline import Media, MessageType, Property, Sink, wait_or_flush

from ._tcp import (
    _FOREVER,
    _LINGER_RESET,
    _SEND_POLL,
    _SEND_TIMEVAL,
    CONNECT_TIMEOUT,
    DEFAULT_PORT,
    _listen,
)
from ._tls import TlsClient, TlsServer, tls_accept, tls_reason

# -- sending -----------------------------------------------------------------------------


class _Encoder:
    """Builds frame heads for buffers, caching the utf-8 caps string."""

    __slots__ = ("_caps", "_caps_raw")

    def __init__(self) -> None:
        self._caps: Caps | None = None
        self._caps_raw = b""

    def head(self, buf: Buffer, view: memoryview) -> bytes:
        caps = buf.caps
        if caps is not self._caps:
            self._caps, self._caps_raw = caps, b"" if caps is None else str(caps).encode()
        return encode_head(
            len(view),
            payload_crc=crc32(view),
            sequence=buf.sequence,
            pts=buf.pts,
            dts=buf.dts,
            duration=buf.duration,
            offset=buf.offset,
            buffer_flags=buf.flags,
            caps=self._caps_raw,
        )


def _sending(sock: socket.socket) -> None:
    """Make `sock` a sender's socket: blocking, so that one `sendmsg` hands the kernel a
    whole frame and sleeps in the kernel while the socket buffer is full (a socket with a
    Python timeout is non-blocking underneath: a `poll` before every `sendmsg`, and a
    partial send whenever the buffer cannot take the frame); a kernel send timeout
    (SO_SNDTIMEO) still wakes a sender stuck on a stalled peer every `_SEND_POLL` seconds
    to look for `kick()`; TCP_NODELAY for small frames. A TLS socket gets a Python
    timeout of `_SEND_POLL` instead (_tls.py says why)."""
    if isinstance(sock, ssl.SSLSocket):
        sock.settimeout(_SEND_POLL)
    else:
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SEND_TIMEVAL)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_all(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    """Write every byte of `parts` with `sendmsg` (gather I/O: nothing is concatenated).
    On a blocking socket one call normally takes them all."""
    while parts:
        n = sock.sendmsg(parts)
        while n:
            first = parts[0]
            if n >= len(first):
                n -= len(first)
                parts.pop(0)
            else:
                parts[0] = memoryview(first)[n:]
                n = 0
        while parts and not parts[0]:
            parts.pop(0)


def _send_all_tls(sock: ssl.SSLSocket, parts: list[bytes | memoryview]) -> None:
    """Write every byte of `parts` over TLS, one `sendall` each (an SSLSocket has no
    `sendmsg`). A part is popped once sent whole; one that timed out (TimeoutError) has
    sent nothing we can see and must be retried with the same bytes (SSL_write(3))."""
    while parts:
        sock.sendall(parts[0])
        parts.pop(0)


def _discard_unread(sock: socket.socket) -> None:
    """Read (without waiting) and drop what the peer sent a sender: a TLS server's session
    tickets, say, which nobody reads. Closing a socket with unread bytes sends a reset
    (RFC 1122 4.2.2.13, tcp(7)), and a reset makes the peer's kernel drop the frames it
    has not yet read, EOS frame included. (Our servers send no tickets: _tls.py.)"""
    sock.setblocking(False)
    try:
        while sock.recv(1 << 16):
            pass
    except OSError:  # BlockingIOError: nothing (more) there; or the peer is gone
        pass


def _accept(listener: socket.socket, timeout: float) -> tuple[socket.socket, Any] | None:
    """A connection within `timeout` seconds, else None (a wait for `wait_or_flush`)."""
    listener.settimeout(timeout)
    try:
        return listener.accept()
    except TimeoutError:
        return None


class TcpClientSink(TlsClient, Sink[Media], factory="tcpclientsink"):
    """Send buffers as STRM frames to a TCP server (a `tcpserversrc`).

    The streaming thread builds each frame's head (hashing the payload) and hands it to
    this element's sender thread through a queue of `max-queue` frames, so hashing one
    buffer overlaps sending the previous one; a full queue holds the stream back.
    """

    klass = "Sink/Network"
    description = "Send buffers over a TCP connection (STRM frames)"

    host = Property("127.0.0.1", doc="host to connect to")
    port = Property(DEFAULT_PORT, doc="TCP port to connect to", minimum=1, maximum=65535)
    max_queue = Property(4, doc="frames queued for the sender thread", minimum=1)
    sync = Property(
        True, doc="send each buffer when the running time reaches its pts (GStreamer's default)"
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._client: _Client | None = None
        self._encoder = _Encoder()

    def start(self) -> None:
        sock = self.open_connection(self.host, self.port, CONNECT_TIMEOUT)
        peer = f"{self.host}:{self.port}"
        _sending(sock)
        self._client = _Client(sock, peer, self.max_queue)

    def activate(self) -> None:
        super().activate()
        client = self._client
        if client is not None and not self._tasks:
            self.start_task(client.run, "send")

    def deactivate(self) -> None:
        super().deactivate()
        if self._client is not None:
            self._client.kick()

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.kick()
            client.sock.close()  # normally closed by the sender thread already: a no-op

    def _check(self, client: _Client) -> None:
        if client.dead and not self.flushing:
            error = client.error or BrokenError(f"{self.name}: {client.peer} went away")
            raise BrokenError(f"{self.name}: {error}") from error

    def render(self, buf: Buffer) -> None:
        client = self._client
        assert client is not None
        self._check(client)
        view = buf.view  # holds the slot on loan until the frame is sent
        client.offer((self._encoder.head(buf, view), view), _FOREVER)
        self._check(client)

    def on_eos(self) -> None:
        client = self._client
        if client is not None:
            client.offer(None, _FOREVER)
            wait_or_flush(client.done.wait, lambda: self.flushing)  # all sent, or a stop
            if client.error is not None:
                self._check(client)
        super().on_eos()


_Item = tuple[bytes, memoryview] | None  # a frame's head and payload (None: EOS)
_KICKED: Final = (b"", memoryview(b""))  # wakes a sender thread that was kicked


class _Client:
    """One connected reader of a `tcpserversink`: its socket, queue and sender thread.

    The queue is two C-level `SimpleQueue`s, frames one way and room (`max_queue`
    tokens) the other: a hand-over costs two calls, where a `threading.Condition` costs
    some twenty Python-level calls and a lock allocation per wait. The sender thread owns
    the socket and closes it when it leaves. Its socket has a short kernel send timeout
    so that it notices `kick()` even while the peer reads nothing; a kicked client is
    closed with SO_LINGER 0 (a reset), so the peer sees an error, never a clean end of
    stream.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        max_queue: int,
        *,
        handshake: Callable[[str], None] | None = None,
    ) -> None:
        self.sock, self.peer, self.max_queue = sock, peer, max_queue
        self.tls = isinstance(sock, ssl.SSLSocket)
        # A TLS server's handshake, made first in the sender thread; a failure is told
        # to `handshake` (a warning) and ends the client.
        self._handshake = handshake
        self.items: SimpleQueue[_Item] = SimpleQueue()
        self.room: SimpleQueue[None] = SimpleQueue()
        for _ in range(max_queue):
            self.room.put(None)
        self.done = threading.Event()
        self.dead = False
        self.error: BaseException | None = None

    def offer(self, item: _Item, deadline: float) -> bool:
        """Queue a frame (None: EOS, which needs no room), waiting for room until
        `deadline` (monotonic); False if the queue is still full then (too slow a client).
        One thread offers (the streaming thread)."""
        if item is not None and not self.dead:
            try:
                if deadline == _FOREVER:
                    self.room.get()
                else:
                    self.room.get(timeout=max(deadline - time.monotonic(), 0.0))
            except Empty:
                return False
        if not self.dead:
            self.items.put(item)
        return True

    def kick(self) -> None:
        """Disconnect (from any thread): the sender drops what is queued and resets."""
        self.dead = True
        self.items.put(_KICKED)  # wakes the sender thread
        self.room.put(None)  # wakes an `offer()` waiting for room

    def _send(self, parts: list[bytes | memoryview]) -> None:
        while True:
            try:
                if self.tls:
                    _send_all_tls(self.sock, parts)  # type: ignore[arg-type]
                else:
                    _send_all(self.sock, parts)
                return
            except (BlockingIOError, TimeoutError):  # SO_SNDTIMEO / TLS timeout: retry
                if self.dead:
                    raise
                continue

    def _shake_hands(self, report: Callable[[str], None]) -> bool:
        """The server side of a TLS handshake, within CONNECT_TIMEOUT, looking for a kick
        every `_SEND_POLL` s. False (after telling `report` why) when it failed."""
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                sock.do_handshake()
                return True
            except TimeoutError:
                if self.dead:
                    return False
                if time.monotonic() < deadline:
                    continue
                report(f"client {self.peer}: no TLS handshake within {CONNECT_TIMEOUT} s")
                return False
            except OSError as e:
                if not self.dead:
                    report(f"client {self.peer}: TLS handshake failed: {tls_reason(e)}")
                return False

    def run(self) -> None:
        items, room = self.items, self.room
        try:
            if self._handshake is not None and not self._shake_hands(self._handshake):
                self.dead = True
                return
            while True:
                item = items.get()
                if self.dead:
                    return
                if item is None:
                    self._send([encode_eos()])
                    self.sock.shutdown(socket.SHUT_WR)
                    if self.tls:
                        _discard_unread(self.sock)
                    return
                room.put(None)
                self._send(list(item))
                del item  # the view holds the slot: it goes back now, not with the next frame
        except OSError as e:
            if not self.dead:
                self.error = BrokenError(f"client {self.peer} went away: {e}")
                self.error.__cause__ = e
        finally:
            kicked, self.dead = self.dead, True
            room.put(None)  # an `offer()` waiting for room sees `dead`
            while True:  # drop what is queued: those slots go back
                try:
                    items.get_nowait()
                except Empty:
                    break
            if kicked:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.sock.close()
            self.done.set()


class TcpServerSink(TlsServer, Sink[Media], factory="tcpserversink"):
    """Serve buffers as STRM frames to every TCP client that connects.

    Buffers that arrive while no client is connected are dropped (as GStreamer's
    tcpserversink does). `bound_port` is the port actually bound (useful with port=0);
    it is also posted as an ELEMENT message `{"bound-port": port}` when the element starts.
    """

    klass = "Sink/Network"
    description = "Serve buffers to TCP clients (STRM frames)"

    host = Property("127.0.0.1", doc="address to listen on")
    port = Property(
        DEFAULT_PORT, doc="TCP port to listen on (0: any free port)", minimum=0, maximum=65535
    )
    max_queue = Property(16, doc="frames queued per client", minimum=1)
    sync = Property(
        True, doc="send each buffer when the running time reaches its pts (GStreamer's default)"
    )
    client_timeout = Property(
        1.0,
        doc="seconds a buffer waits for room in a full client queue; then that client "
        "is disconnected",
        minimum=0.0,
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._listener: socket.socket | None = None
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._encoder = _Encoder()
        self._eos = False
        self._tls: ssl.SSLContext | None = None
        self.bound_port = 0

    @property
    def num_clients(self) -> int:
        """Clients connected now."""
        with self._lock:
            return sum(not c.dead for c in self._clients)

    def start(self) -> None:
        self._tls = self.tls_server_context()
        self._listener = _listen(self, self.host, self.port)
        self.bound_port = self._listener.getsockname()[1]
        self._eos = False

    def activate(self) -> None:
        super().activate()
        self.start_task(self._accept_loop, "accept")

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:  # until a stop: each accept() waits at most FLUSH_POLL
            got = wait_or_flush(lambda t: _accept(listener, t), lambda: self.flushing)
            if got is None:
                return
            sock, addr = got
            handshake = None
            if self._tls is not None:
                try:
                    sock = tls_accept(self._tls, sock)  # hands shaken in the client's thread
                except OSError:  # gone already: as a client that hangs up, dropped
                    continue
                handshake = self._warn
            _sending(sock)
            client = _Client(sock, f"{addr[0]}:{addr[1]}", self.max_queue, handshake=handshake)
            with self._lock:
                if self.flushing:
                    sock.close()
                    return
                self._clients.append(client)
                if self._eos:
                    client.offer(None, 0.0)
            self.start_task(client.run, f"client {client.peer}")

    def _warn(self, text: str) -> None:
        self.post_warning(f"{self.name}: {text}; disconnected")

    def render(self, buf: Buffer) -> None:
        with self._lock:
            clients = [c for c in self._clients if not c.dead]
            self._clients = clients
        if not clients:
            return
        view = buf.view  # holds the slot on loan until every client sent it
        item = (self._encoder.head(buf, view), view)
        deadline = time.monotonic() + self.client_timeout
        for client in clients:
            if not client.offer(item, deadline):
                client.kick()
                self.post_warning(
                    f"{self.name}: client {client.peer} stayed {client.max_queue} frames "
                    f"behind for {self.client_timeout} s: disconnected"
                )

    def on_eos(self) -> None:
        with self._lock:
            self._eos = True
            clients = list(self._clients)
        for client in clients:
            client.offer(None, 0.0)
        # Our EOS means "all sent": wait for each sender to flush (or for a stop).
        for client in clients:
            wait_or_flush(client.done.wait, lambda: self.flushing)
            if client.error is not None:
                self.post(
                    MessageType.WARNING, text=f"{self.name}: {client.error}", error=client.error
                )
        super().on_eos()

    def deactivate(self) -> None:
        super().deactivate()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.kick()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.kick()
            client.done.wait(1.0)
            client.sock.close()  # normally closed by its sender already: a no-op


# -- receiving ---------------------------------------------------------------------------
