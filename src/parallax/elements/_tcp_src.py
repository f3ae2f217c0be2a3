"""The receiving half of the TCP link: `tcpclientsrc` and `tcpserversrc` (see _tcp.py)."""

from __future__ import annotations

import asyncio
import enum
import socket
import ssl
from collections.abc import Sequence
from typing import Any, Final

from parallax._errors import BrokenError, FlowError
from parallax.buffer import Buffer
from parallax.link import (
    CLOSED,
    DEFAULT_MAX_LENGTH,
    MAX_CAPS,
    NEED_DATA,
    PREFIX,
    FrameDecoder,
    FrameEnd,
    FrameError,
    FrameStart,
)
from parallax.pipeline import AsyncSource, BufferAllocator, Media, MessageType, Property

from ._tcp import (
    _MAX_U32,
    _MIN_SLOT,
    CONNECT_TIMEOUT,
    DEFAULT_PORT,
    _listen,
)
from ._tls import TlsClient, TlsServer, tls_accept, tls_reason

_NO_VIEW: Final = memoryview(b"")
_MAX_LOWAT: Final = 1 << 20  # most bytes one wake-up waits for (SO_RCVLOWAT)
_RUN_OF: Final = 32
"""Buffers `acreate()` may return in a row without awaiting before it lets the loop run
once (a socket that never runs dry would otherwise starve the loop's other tasks)."""


class _Again(enum.Enum):
    AGAIN = "the socket ran dry: await readiness, then poll again"


_AGAIN: Final = _Again.AGAIN


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _readable(
    loop: asyncio.AbstractEventLoop, fds: Sequence[int], fut: asyncio.Future[None] | None = None
) -> None:
    """Wait until one of `fds` is readable, or until someone else resolves `fut`."""
    if fut is None:
        fut = loop.create_future()
    for fd in fds:
        loop.add_reader(fd, _wake, fut)
    try:
        await fut
    finally:
        for fd in fds:
            loop.remove_reader(fd)


class _FrameReader:
    """Reads frames from one non-blocking socket into pool buffers, without blocking.

    `poll()` receives while the socket has data and returns as soon as a buffer is
    complete and its CRC checked; `_AGAIN` when the socket ran dry first (all state is
    kept here, so the next call resumes mid-frame), None at the end of the stream. The
    elements await readiness (`add_reader`) only on `_AGAIN`: a frame that is already in
    the socket costs no event-loop iteration at all. Before `_AGAIN` mid-payload,
    SO_RCVLOWAT is set to the rest of the payload (at most `_MAX_LOWAT`), so the loop
    wakes once that much is there instead of once per segment; between frames it is 1.

    Every payload byte is `recv_into`'d once, straight into its pool slot: a payload's
    last chunk and the next frame's 62-byte prefix (plus as many caps bytes as the last
    frame had) come in one `recvmsg_into` scattered over the slot and a small scratch
    buffer, so in a steady stream the head costs no call of its own. The decoder sees
    the prefix and caps only, never more than `PREFIX + max_caps` bytes (a payload byte
    passes through it only when the caps got shorter than the previous frame's, and then
    `take_payload` moves it into the slot). Pools come per power-of-two size class, made
    on demand.

    Over TLS (an `ssl.SSLSocket`, _tls.py) the payload is `recv_into`'d alone and the
    next head read on its own, SO_RCVLOWAT is left alone, and a server-side connection
    shakes hands (non-blocking) before its first frame.
    """

    __slots__ = (
        "_ahead",
        "_allocs",
        "_buf",
        "_got",
        "_handshaking",
        "_lowat",
        "_owner",
        "_scratch",
        "_start",
        "_tls",
        "_view",
        "decoder",
        "fd",
        "peer",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        allocs: dict[int, BufferAllocator],
        owner: Any,
        *,
        handshake: bool = False,
    ) -> None:
        self.sock, self.peer, self._allocs, self._owner = sock, peer, allocs, owner
        self.fd = sock.fileno()
        self.decoder = FrameDecoder(
            max_length=owner.max_frame_size, require_eos=not owner.allow_truncated
        )
        self._scratch = memoryview(bytearray(PREFIX + MAX_CAPS))
        self._ahead = PREFIX  # read past a payload: the next prefix and last frame's caps
        self._start: FrameStart | None = None  # the frame whose payload is arriving
        self._buf: Buffer | None = None
        self._view = _NO_VIEW
        self._got = 0
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._handshaking = handshake  # a TLS server's connection, before its handshake
        # SO_RCVLOWAT now (0: leave it alone: the socket refused it, or TLS)
        self._lowat = 0 if self._tls else 1

    def received(self) -> str:
        """What this connection delivered so far, in words (for errors)."""
        dec = self.decoder
        return f"{dec.offset:,} bytes, {dec.frames:,} whole frame{'' if dec.frames == 1 else 's'}"

    def poll(self) -> Buffer | _Again | None:
        """Receive without blocking: a buffer, `_AGAIN` (socket dry), or None (the end).

        Raises:
            FrameError: a malformed or truncated frame, or (unless the owner's
                `allow-truncated`) a stream ended without its EOS frame.
            BrokenError: the connection failed, or its TLS did.
        """
        try:
            return self._poll()
        except BlockingIOError:
            pass
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # TLS ran dry (OpenSSL's buffer too). WantWrite is a handshake or key update
            # that found our send buffer full: a peer that reads nothing; it waits as dry.
            pass
        except ssl.SSLError as e:
            what = "TLS handshake failed" if self._handshaking else "TLS failed"
            raise BrokenError(f"{what} after {self.received()}: {tls_reason(e)}") from e
        except OSError as e:
            raise BrokenError(f"the connection failed after {self.received()}: {e}") from e
        # Dry: wake us when what we wait for is there. In a payload that is the rest of
        # it (it must come; EOF and errors wake us anyway); between frames, any byte.
        lowat = min(len(self._view) - self._got, _MAX_LOWAT) if self._buf is not None else 1
        if lowat != self._lowat and self._lowat:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                self._lowat = lowat
            except OSError:  # not settable on this platform: wake on any byte, as before
                self._lowat = 0  # (a socket that died says so at the next recv)
        return _AGAIN

    def _poll(self) -> Buffer | None:
        dec, sock, scratch = self.decoder, self.sock, self._scratch
        if self._handshaking:
            sock.do_handshake()  # type: ignore[attr-defined]  # (an SSLSocket)
            self._handshaking = False
        while True:
            if self._buf is not None:  # inside a payload: its rest, then what follows
                view, got = self._view, self._got
                want = len(view) - got
                if self._tls:  # an SSLSocket has no recvmsg_into
                    n = sock.recv_into(view[got:])
                else:
                    n = sock.recvmsg_into((view[got:], scratch[: self._ahead]))[0]
                if n == 0:
                    dec.receive_data(b"")
                    dec.next_event()  # raises FrameError: truncated
                    raise FrameError(f"{self.peer}: the stream ended inside a payload")
                if n < want:
                    dec.payload_received(view[got : got + n])
                    self._got = got + n
                    continue
                dec.payload_received(view[got:])
                if n > want:
                    dec.receive_data(scratch[: n - want])
                return self._finish()
            ev = dec.next_event()
            if ev is NEED_DATA:
                need = dec.bytes_needed
                if need == PREFIX:  # at a frame boundary: read the caps we expect too
                    need = self._ahead
                n = sock.recv_into(scratch[:need])
                dec.receive_data(scratch[:n])  # b"" marks EOF
            elif ev is CLOSED:
                return None
            elif isinstance(ev, FrameStart):
                if ev.eos:
                    dec.next_event()  # FrameEnd, after checking the EOS frame's CRC
                    return None
                self._ahead = dec.offset - ev.offset  # this frame's prefix and caps
                length = ev.length
                self._start = ev
                if length == 0:
                    self._buf = Buffer(b"")
                    return self._finish()
                buf = self._buf = self._alloc(length).buffer(length)
                view = self._view = buf.view
                got = self._got = dec.take_payload(view)
                if got == length:
                    return self._finish()

    def _finish(self) -> Buffer:
        start, buf = self._start, self._buf
        assert start is not None
        assert buf is not None
        self._start, self._buf, self._view, self._got = None, None, _NO_VIEW, 0
        end = self.decoder.next_event()  # checks the CRC
        if not isinstance(end, FrameEnd):  # EOF mid-payload raised earlier; this is a bug
            raise FrameError(f"{self.peer}: expected the end of a frame, got {end!r}")
        buf.caps = start.caps
        buf.sequence, buf.pts, buf.dts = start.sequence, start.pts, start.dts
        buf.duration, buf.offset = start.duration, start.buffer_offset
        buf.flags = start.buffer_flags
        return buf

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
    allow_truncated = Property(
        False,
        doc="a stream that ends between frames without its EOS frame (a sender that "
        "died, or nc) ends cleanly instead of failing",
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._allocs: dict[int, BufferAllocator] = {}
        self._run = 0  # buffers returned since `acreate()` last let the loop run

    def _close_allocs(self) -> None:
        allocs, self._allocs = self._allocs, {}
        for alloc in allocs.values():
            alloc.close()


class TcpClientSrc(TlsClient, _TcpSrcBase, factory="tcpclientsrc"):
    """Receive STRM frames from a TCP server (a `tcpserversink`), on asyncio.

    A bad frame fails the pipeline: a FlowError whose `__cause__` is the FrameError; so
    does a stream that ends without its EOS frame (reason `no eos`), unless
    `allow-truncated`. With `tls`, the server is verified at start (_tls.py).
    """

    description = "Receive buffers from a TCP server (STRM frames)"

    host = Property("127.0.0.1", doc="host to connect to")
    port = Property(DEFAULT_PORT, doc="TCP port to connect to", minimum=1, maximum=65535)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._sock: socket.socket | None = None
        self._reader: _FrameReader | None = None

    def start(self) -> None:
        sock = self.open_connection(self.host, self.port, CONNECT_TIMEOUT)
        peer = f"{self.host}:{self.port}"
        sock.setblocking(False)
        self._sock = sock
        self._reader = _FrameReader(sock, peer, self._allocs, self)

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
        loop = asyncio.get_running_loop()
        self._run += 1
        if self._run > _RUN_OF:  # the socket never ran dry: let the loop run once
            self._run = 0
            await asyncio.sleep(0)
        try:
            while isinstance(item := reader.poll(), _Again):
                self._run = 0
                await _readable(loop, (reader.fd,))
        except (FrameError, BrokenError) as e:
            self._reader = None  # that connection is finished
            raise FlowError(f"{self.name}: {reader.peer}: {e}", element=self.name) from e
        return item


class TcpServerSrc(TlsServer, _TcpSrcBase, factory="tcpserversrc"):
    """Accept TCP senders (`tcpclientsink`) and push the buffers of all of them, on asyncio.

    `acreate()` polls the connections in turn (round robin) and returns the first buffer
    that is complete; when none is, it awaits the first that becomes readable (or a new
    connection). Nothing is read ahead of demand, so a slow pipeline holds the senders
    back through TCP's own flow control. The stream ends once `num-senders` connections
    have ended cleanly (with their EOS frame; with `allow-truncated`, a close at a frame
    boundary too); 0 serves until stopped. A sender that delivered bytes and then ended
    without its EOS frame (it died: `no eos`, `truncated`, a reset) fails the pipeline,
    since the merged stream is incomplete; with `allow-truncated` it is a WARNING and
    that connection is closed. A bad frame, a failed TLS handshake, or a connection
    closed before its first byte closes only that connection, with a WARNING whose
    `error` is the FrameError or BrokenError. `bound_port` is the port bound (useful with
    port=0), also posted as an ELEMENT message `{"bound-port": p}`. Connections and their
    partly received frames survive PAUSED; the accept task lives on the streaming loop and
    is restarted with it.
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
        self._readers: list[_FrameReader] = []
        self._serving: asyncio.AbstractEventLoop | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._finished = 0
        self._next = 0  # round robin: the reader to poll first
        self._tls: ssl.SSLContext | None = None
        self.bound_port = 0

    def start(self) -> None:
        self._tls = self.tls_server_context()
        self._listener = _listen(self, self.host, self.port)
        self._listener.setblocking(False)
        self.bound_port = self._listener.getsockname()[1]
        self._finished = 0

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.sock.close()
        self._serving = self._accepting = self._waiter = None
        self._close_allocs()

    async def acreate(self) -> Buffer | None:
        loop = asyncio.get_running_loop()
        if self._serving is not loop:  # first call on this streaming loop
            self._serving = loop
            self._accepting = loop.create_task(self._accept(loop))
        self._run += 1
        if self._run > _RUN_OF:  # no socket ran dry: let the accept task (and others) run
            self._run = 0
            await asyncio.sleep(0)
        while isinstance(item := self._poll(), _Again):
            self._run = 0
            fut = self._waiter = loop.create_future()
            try:
                await _readable(loop, [r.fd for r in self._readers], fut)
            finally:
                self._waiter = None
        return item

    def _poll(self) -> Buffer | _Again | None:
        """The first buffer any connection has complete, polling each once from `_next`."""
        readers = self._readers[:]  # _close() edits the list
        n = len(readers)
        first = self._next % n if n else 0
        for k in range(n):
            reader = readers[(first + k) % n]
            try:
                item = reader.poll()
            except (FrameError, BrokenError) as e:
                self._close(reader)
                if self._cut_short(reader, e):
                    raise FlowError(
                        f"{self.name}: sender {reader.peer}: {e}", element=self.name
                    ) from e
                self.post(MessageType.WARNING, text=self._dropped(reader, e), error=e)
                continue
            if isinstance(item, _Again):
                continue
            if item is None:  # that sender finished cleanly
                self._close(reader)
                self._finished += 1
                if self.num_senders and self._finished >= self.num_senders:
                    return None
                continue
            self._next = (first + k + 1) % n
            return item
        return _AGAIN

    def _cut_short(self, reader: _FrameReader, e: FrameError | BrokenError) -> bool:
        """Did a sender die mid-stream (after delivering bytes, without its EOS frame)?"""
        if self.allow_truncated or reader.decoder.offset == 0:
            return False
        return isinstance(e, BrokenError) or e.reason in ("no eos", "truncated")

    def _dropped(self, reader: _FrameReader, e: FrameError | BrokenError) -> str:
        if isinstance(e, FrameError) and e.reason == "no eos" and reader.decoder.offset == 0:
            return (
                f"{self.name}: sender {reader.peer} closed its connection before sending "
                "a frame; not counted as a sender"
            )
        return f"{self.name}: sender {reader.peer}: {e}; connection closed"

    def _close(self, reader: _FrameReader) -> None:
        self._readers.remove(reader)
        reader.sock.close()

    async def _accept(self, loop: asyncio.AbstractEventLoop) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            conn, addr = await loop.sock_accept(listener)
            conn.setblocking(False)
            if self._tls is not None:
                try:
                    conn = tls_accept(self._tls, conn)  # hands shaken by the reader
                except OSError:  # gone already: nothing came, nothing to say
                    continue
            peer = f"{addr[0]}:{addr[1]}"
            reader = _FrameReader(conn, peer, self._allocs, self, handshake=self._tls is not None)
            self._readers.append(reader)
            if self._waiter is not None:
                _wake(self._waiter)
