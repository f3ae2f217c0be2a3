"""The receiving half of the TCP link: `tcpclientsrc` and `tcpserversrc` (see _tcp.py)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from parallax._errors import BrokenError, FlowError
from parallax.buffer import Buffer
from parallax.link import (
    CLOSED,
    DEFAULT_MAX_LENGTH,
    NEED_DATA,
    PREFIX,
    DeferredCrc,
    FrameDecoder,
    FrameEnd,
    FrameError,
    FrameStart,
    crc32,
)
from parallax.pipeline import AsyncSource, BufferAllocator, Media, MessageType, Property

from ._tcp import (
    _DEFER_CRC,
    _MAX_U32,
    _MIN_SLOT,
    CONNECT_TIMEOUT,
    DEFAULT_PORT,
    _listen,
)


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
        self._listener = _listen(self, self.host, self.port)
        self._listener.setblocking(False)
        self.bound_port = self._listener.getsockname()[1]
        self._finished = 0

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
