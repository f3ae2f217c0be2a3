"""The TCP link: `tcpserversink`, `tcpclientsrc`, `tcpclientsink`, `tcpserversrc`.

Buffers cross as STRM frames (`parallax.link`, docs/wire.md): a 62-byte head plus caps,
then the payload. Senders write the head and the payload with one `sendmsg` from where the
payload lies (no concatenation); receivers are `AsyncSource`s on the pipeline's asyncio
executor that `recv_into` the payload straight into a pool slot, while the sans-IO
`FrameDecoder` checks every length before anything is allocated and the CRC after.

EOS: a sender ends its stream with an EOS frame (flags bit 0) and closes; a connection
closed at a frame boundary without one also ends that stream. A bad frame (wrong magic,
version or flags, a length over `max-frame-size`, a CRC mismatch, a frame cut short)
closes that connection with a `FrameError` naming the stream byte offset: `tcpclientsrc`
fails (a FlowError whose `__cause__` is the FrameError); `tcpserversrc` posts a WARNING
carrying the error and goes on serving its other senders.

Slow clients of `tcpserversink`: each client has its own sender thread and a bounded
queue of `max-queue` frames (default 16, the house queue depth). A full queue holds the
stream back (backpressure, so a burst is not a fault) for at most `client-timeout`
seconds (default 1); a client still full then is disconnected with a WARNING and a TCP
reset. So one stalled reader delays the others once, by that timeout, and never pins more
than `max-queue` pool slots; a client that hangs up is simply dropped. `tcpclientsink`
uses the same sender thread and queue (`max-queue`, default 4) without a timeout, so
hashing one buffer in the streaming thread overlaps sending the previous one.

Limits: going PLAYING → PAUSED → PLAYING while a receiver is mid-frame loses that frame's
place in the stream (the receive task lives on the streaming loop, which ends at PAUSED).
The CRC-32 is ISA-L's (`isal`, same function as zlib's, ~15x faster), zlib's if absent.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import deque
from typing import Any

from parallax._errors import BrokenError, FlowError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.link import (
    CLOSED,
    DEFAULT_MAX_LENGTH,
    FAST_CRC,
    NEED_DATA,
    PREFIX,
    DeferredCrc,
    FrameDecoder,
    FrameEnd,
    FrameError,
    FrameStart,
    crc32,
    encode_eos,
    encode_head,
)
from parallax.pipeline import AsyncSource, BufferAllocator, Media, MessageType, Property, Sink

DEFAULT_PORT = 4953  # GStreamer's tcpserversink/tcpclientsrc default port
CONNECT_TIMEOUT = 5.0
ACCEPT_POLL = 0.05  # how often a blocked accept() looks at `flushing` (seconds)
_MIN_SLOT = 4096
# With zlib's CRC (~1-3 GB/s) a large payload is hashed in the loop's executor while the
# next frame arrives (a hop is ~50 µs); ISA-L's (~50 GB/s) is cheaper inline than a hop.
_DEFER_CRC = 1 << 62 if FAST_CRC else 256 << 10
_MAX_U32 = (1 << 32) - 1
_SEND_POLL = 0.1  # a sender blocked on a stalled client looks for kick() this often (s)
_FOREVER = float("inf")
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST (socket(7))


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


def _send_all(sock: socket.socket, parts: list[memoryview]) -> None:
    """Write every byte of `parts` with `sendmsg` (gather I/O: nothing is concatenated)."""
    while parts:
        n = sock.sendmsg(parts)
        while n:
            first = parts[0]
            if n >= len(first):
                n -= len(first)
                parts.pop(0)
            else:
                parts[0] = first[n:]
                n = 0
        while parts and not parts[0]:
            parts.pop(0)


def _listen(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), backlog=64)


class TcpClientSink(Sink[Media], factory="tcpclientsink"):
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

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._client: _Client | None = None
        self._encoder = _Encoder()

    def start(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot connect to {self.host}:{self.port}: {e}", element=self.name
            ) from e
        sock.settimeout(_SEND_POLL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = _Client(sock, f"{self.host}:{self.port}", self.max_queue)

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
        view = buf.view
        client.offer((self._encoder.head(buf, view), buf), _FOREVER)
        self._check(client)

    def on_eos(self) -> None:
        client = self._client
        if client is not None:
            client.offer(None, _FOREVER)
            while not client.done.wait(0.05):
                if self.flushing:
                    break
            if client.error is not None:
                self._check(client)
        super().on_eos()


class _Client:
    """One connected reader of a `tcpserversink`: its socket, queue and sender thread.

    The sender thread owns the socket and closes it when it leaves. Its socket has a
    short send timeout so that it notices `kick()` even while the peer reads nothing; a
    kicked client is closed with SO_LINGER 0 (a reset), so the peer sees an error, never
    a clean end of stream.
    """

    def __init__(self, sock: socket.socket, peer: str, max_queue: int) -> None:
        self.sock, self.peer, self.max_queue = sock, peer, max_queue
        self.items: deque[tuple[bytes, Buffer] | None] = deque()  # None: EOS
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.dead = False
        self.error: BaseException | None = None

    def offer(self, item: tuple[bytes, Buffer] | None, deadline: float) -> bool:
        """Queue a frame (None: EOS), waiting for room until `deadline` (monotonic);
        False if the queue is still full then (the client is too slow)."""
        with self.cond:
            while item is not None and len(self.items) >= self.max_queue and not self.dead:
                if deadline == _FOREVER:
                    self.cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            if not self.dead:
                self.items.append(item)
                self.cond.notify_all()
        return True

    def kick(self) -> None:
        """Disconnect (from any thread): the sender drops what is queued and resets."""
        with self.cond:
            self.dead = True
            self.items.clear()
            self.cond.notify_all()

    def _send(self, parts: list[memoryview]) -> None:
        while True:
            try:
                _send_all(self.sock, parts)
                return
            except TimeoutError:  # nothing was sent; parts are unchanged
                if self.dead:
                    raise
                continue

    def run(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.items and not self.dead:
                        self.cond.wait()
                    if self.dead:
                        return
                    item = self.items.popleft()
                    self.cond.notify_all()
                if item is None:
                    self._send([memoryview(encode_eos())])
                    self.sock.shutdown(socket.SHUT_WR)
                    return
                head, buf = item
                self._send([memoryview(head), buf.view])
        except OSError as e:
            if not self.dead:
                self.error = BrokenError(f"client {self.peer} went away: {e}")
                self.error.__cause__ = e
        finally:
            with self.cond:
                kicked, self.dead = self.dead, True
                self.items.clear()
                self.cond.notify_all()
            if kicked:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.sock.close()
            self.done.set()


class TcpServerSink(Sink[Media], factory="tcpserversink"):
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
        self.bound_port = 0

    @property
    def num_clients(self) -> int:
        """Clients connected now."""
        with self._lock:
            return sum(not c.dead for c in self._clients)

    def start(self) -> None:
        try:
            self._listener = _listen(self.host, self.port)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot listen on {self.host}:{self.port}: {e}", element=self.name
            ) from e
        self._listener.settimeout(ACCEPT_POLL)
        self.bound_port = self._listener.getsockname()[1]
        self._eos = False
        self.post(MessageType.ELEMENT, **{"bound-port": self.bound_port})

    def activate(self) -> None:
        super().activate()
        self.start_task(self._accept_loop, "accept")

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self.flushing:
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(_SEND_POLL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock, f"{addr[0]}:{addr[1]}", self.max_queue)
            with self._lock:
                if self.flushing:
                    sock.close()
                    return
                self._clients.append(client)
                if self._eos:
                    client.offer(None, 0.0)
            self.start_task(client.run, f"client {client.peer}")

    def render(self, buf: Buffer) -> None:
        with self._lock:
            clients = [c for c in self._clients if not c.dead]
            self._clients = clients
        if not clients:
            return
        view = buf.view
        item = (self._encoder.head(buf, view), buf)
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
            while not client.done.wait(0.05):
                if self.flushing:
                    break
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


class _FrameReader:
    """Reads frames from one non-blocking socket into pool buffers, on an asyncio loop.

    Headers and caps are received into a small scratch buffer, never more than the
    decoder asks for (`bytes_needed`), so every payload byte is `recv_into`'d once,
    straight into its pool slot. Pools come per power-of-two size class, made on demand.
    """

    def __init__(
        self, sock: socket.socket, peer: str, allocs: dict[int, BufferAllocator], owner: Any
    ) -> None:
        self.sock, self.peer, self._allocs, self._owner = sock, peer, allocs, owner
        self.decoder = FrameDecoder(max_length=owner.max_frame_size)
        self._scratch = memoryview(bytearray(PREFIX + self.decoder.max_caps))
        self._prefetch: asyncio.Task[tuple[Buffer, DeferredCrc | None] | None] | None = None

    async def _recv(self, loop: asyncio.AbstractEventLoop, view: memoryview) -> int:
        try:
            return await loop.sock_recv_into(self.sock, view)
        except OSError as e:
            raise BrokenError(f"{self.peer} went away: {e}") from e

    async def read(self, loop: asyncio.AbstractEventLoop) -> Buffer | None:
        """The next buffer, CRC checked; None at the end of this connection's stream.

        A large payload's CRC runs in the loop's executor (zlib releases the GIL) while
        a task already receives the next frame into the next slot, so hashing and
        receiving overlap instead of taking turns.

        Raises:
            FrameError: a malformed or truncated frame (the connection is done).
            BrokenError: the connection failed.
        """
        task, self._prefetch = self._prefetch, None
        if task is not None and task.get_loop() is not loop:
            task = None  # left on a streaming loop that has ended (PAUSED in between)
        item = await (task if task is not None else self._read_frame(loop))
        if item is None:
            return None
        buf, check = item
        if check is not None:
            hashing = loop.run_in_executor(None, crc32, buf.view)
            self._prefetch = loop.create_task(self._read_frame(loop))
            check.verify(await hashing)
        return buf

    async def _read_frame(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[Buffer, DeferredCrc | None] | None:
        dec = self.decoder
        while True:
            ev = dec.next_event()
            if ev is NEED_DATA:
                view = self._scratch[: dec.bytes_needed]
                n = await self._recv(loop, view)
                dec.receive_data(view[:n])
            elif ev is CLOSED:
                return None
            elif isinstance(ev, FrameStart):
                if ev.eos:
                    dec.next_event()  # FrameEnd, after checking the EOS frame's CRC
                    return None
                return await self._payload(loop, ev)

    async def _payload(
        self, loop: asyncio.AbstractEventLoop, start: FrameStart
    ) -> tuple[Buffer, DeferredCrc | None]:
        dec = self.decoder
        length = start.length
        buf = Buffer(b"") if length == 0 else self._alloc(length).buffer(length)
        if length >= _DEFER_CRC:
            dec.defer_crc()
        if length:
            view = buf.view
            got = dec.take_payload(view)
            while got < length:
                n = await self._recv(loop, view[got:])
                if n == 0:
                    dec.receive_data(b"")
                    break
                dec.payload_received(view[got : got + n])
                got += n
        end = dec.next_event()
        if not isinstance(end, FrameEnd):  # EOF mid-payload raised above; this is a bug
            raise FrameError(f"{self.peer}: expected the end of a frame, got {end!r}")
        buf.caps = start.caps
        buf.sequence, buf.pts, buf.dts = start.sequence, start.pts, start.dts
        buf.duration, buf.offset = start.duration, start.buffer_offset
        buf.flags = start.buffer_flags
        return buf, end.deferred

    def _alloc(self, length: int) -> BufferAllocator:
        size = max(_MIN_SLOT, 1 << (length - 1).bit_length())
        alloc = self._allocs.get(size)
        if alloc is None:
            owner = self._owner
            alloc = self._allocs[size] = BufferAllocator(
                size, slots=8, name=f"{owner.name}.{size}", flushing=lambda: owner.flushing
            )
        return alloc


class _TcpSrcBase(AsyncSource[Media]):
    klass = "Source/Network"

    max_frame_size = Property(
        DEFAULT_MAX_LENGTH,
        doc="largest payload accepted; a frame declaring more closes the connection",
        minimum=0,
        maximum=_MAX_U32,
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._allocs: dict[int, BufferAllocator] = {}

    def _close_allocs(self) -> None:
        allocs, self._allocs = self._allocs, {}
        for alloc in allocs.values():
            alloc.close()


class TcpClientSrc(_TcpSrcBase, factory="tcpclientsrc"):
    """Receive STRM frames from a TCP server (a `tcpserversink`), on asyncio.

    A bad frame fails the pipeline: a FlowError whose `__cause__` is the FrameError.
    """

    description = "Receive buffers from a TCP server (STRM frames)"

    host = Property("127.0.0.1", doc="host to connect to")
    port = Property(DEFAULT_PORT, doc="TCP port to connect to", minimum=1, maximum=65535)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._sock: socket.socket | None = None
        self._reader: _FrameReader | None = None

    def start(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot connect to {self.host}:{self.port}: {e}", element=self.name
            ) from e
        sock.setblocking(False)
        self._sock = sock
        self._reader = _FrameReader(sock, f"{self.host}:{self.port}", self._allocs, self)

    def stop(self) -> None:
        self._reader = None
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._close_allocs()

    async def acreate(self) -> Buffer | None:
        reader = self._reader
        if reader is None:
            return None
        try:
            return await reader.read(asyncio.get_running_loop())
        except (FrameError, BrokenError) as e:
            self._reader = None  # that connection is finished
            raise FlowError(f"{self.name}: {reader.peer}: {e}", element=self.name) from e


_EOS = object()


class TcpServerSrc(_TcpSrcBase, factory="tcpserversrc"):
    """Accept TCP senders (`tcpclientsink`) and push the buffers of all of them, on asyncio.

    Each connection is read by its own task; their buffers merge into one bounded queue
    (16). The stream ends once `num-senders` connections have ended cleanly (EOS frame or
    a close at a frame boundary); 0 serves until stopped. A bad frame closes only that
    connection, with a WARNING whose `error` is the FrameError. `bound_port` is the
    port bound (useful with port=0), also posted as an ELEMENT message `{"bound-port": p}`.
    Going to PAUSED closes the open connections (the tasks live on the streaming loop).
    """

    description = "Receive buffers from TCP senders (STRM frames)"

    host = Property("127.0.0.1", doc="address to listen on")
    port = Property(
        DEFAULT_PORT, doc="TCP port to listen on (0: any free port)", minimum=0, maximum=65535
    )
    num_senders = Property(
        1, doc="end the stream after this many senders finished (0: never)", minimum=0
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._queue: asyncio.Queue[Any] | None = None
        self._serving: asyncio.AbstractEventLoop | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._finished = 0
        self.bound_port = 0

    def start(self) -> None:
        try:
            self._listener = _listen(self.host, self.port)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot listen on {self.host}:{self.port}: {e}", element=self.name
            ) from e
        self._listener.setblocking(False)
        self.bound_port = self._listener.getsockname()[1]
        self._finished = 0
        self.post(MessageType.ELEMENT, **{"bound-port": self.bound_port})

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()
        self._queue = self._serving = self._accepting = None
        self._close_allocs()

    async def acreate(self) -> Buffer | None:
        loop = asyncio.get_running_loop()
        if self._serving is not loop:  # first call on this streaming loop
            self._serving = loop
            self._queue = asyncio.Queue(16)
            self._accepting = loop.create_task(self._accept(loop, self._queue))
        assert self._queue is not None
        item = await self._queue.get()
        return None if item is _EOS else item

    async def _accept(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        listener = self._listener
        assert listener is not None
        tasks: set[asyncio.Task[None]] = set()
        while True:
            conn, addr = await loop.sock_accept(listener)
            conn.setblocking(False)
            self._conns.add(conn)
            task = loop.create_task(self._serve(loop, conn, f"{addr[0]}:{addr[1]}", queue))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        peer: str,
        queue: asyncio.Queue[Any],
    ) -> None:
        reader = _FrameReader(conn, peer, self._allocs, self)
        try:
            while (buf := await reader.read(loop)) is not None:
                await queue.put(buf)
        except (FrameError, BrokenError) as e:
            self.post(
                MessageType.WARNING,
                text=f"{self.name}: sender {peer}: {e}; connection closed",
                error=e,
            )
            return
        finally:
            self._conns.discard(conn)
            conn.close()
        self._finished += 1
        if self.num_senders and self._finished == self.num_senders:
            await queue.put(_EOS)
