"""The TCP link: `tcpserversink`, `tcpclientsrc`, `tcpclientsink`, `tcpserversrc`.

Buffers cross as STRM frames (`parallax.link`, docs/wire.md): a 62-byte head plus caps,
then the payload. Senders write the head and the payload with one blocking `sendmsg` from
where the payload lies (no concatenation); receivers are `AsyncSource`s on the pipeline's
asyncio executor that `recv_into` the payload straight into a pool slot, while the
sans-IO `FrameDecoder` checks every length before anything is allocated and the CRC after.

Receiving: each connection's `_FrameReader` is non-blocking and keeps its state between
calls. `acreate()` lets it drain the socket synchronously while data is there (a frame
already in the socket costs no event-loop iteration) and awaits readiness (`add_reader`)
only when the socket runs dry, with SO_RCVLOWAT set to the rest of the payload so that the
loop wakes once per frame, not once per segment. A payload's last bytes and the next
frame's head arrive in one `recvmsg_into` scattered over the slot and a scratch buffer.
Because the state lives in the reader, not in a task, going PLAYING → PAUSED → PLAYING
mid-frame resumes where it stopped.

EOS: a sender ends its stream with an EOS frame (flags bit 0) and closes. A connection
that closes without one was cut short (the sender died): a `FrameError` (`no eos` between
frames, `truncated` inside one) naming the bytes and frames that came, never a clean EOS,
unless the receiver's `allow-truncated` takes a close between frames for the end. A bad
frame (wrong magic, version or flags, a length over `max-frame-size`, a CRC mismatch)
closes that connection with a `FrameError` naming the stream byte offset: `tcpclientsrc`
fails (a FlowError whose `__cause__` is the FrameError); `tcpserversrc` posts a WARNING
carrying the error and goes on serving its other senders — but a sender of its own that
was cut short fails it, since the stream it merges is incomplete. A stray client's bytes
(`echo hi | nc`) are `bad magic` from the first byte that cannot begin a frame.

TLS (`tls=true`, opt-in; _tls.py): the same frames inside a TLS connection, with
`send`/`recv_into` where the plain path uses `sendmsg`/`recvmsg_into`.

Slow clients of `tcpserversink`: each client has its own sender thread and a bounded
queue of `max-queue` frames (default 16, the house queue depth). A full queue holds the
stream back (backpressure, so a burst is not a fault) for at most `client-timeout`
seconds (default 1); a client still full then is disconnected with a WARNING and a TCP
reset. So one stalled reader delays the others once, by that timeout, and never pins more
than `max-queue` pool slots; a client that hangs up is simply dropped. `tcpclientsink`
uses the same sender thread and queue (`max-queue`, default 4) without a timeout, so
hashing one buffer in the streaming thread overlaps sending the previous one. Sender
sockets are blocking with a kernel send timeout (SO_SNDTIMEO, 0.1 s), so a sender stuck on
a stalled peer still notices a kick or a stop.

The CRC-32 is ISA-L's (`isal`, same function as zlib's, ~15x faster), zlib's if absent;
receivers hash each chunk as it lands. Socket buffer sizes are left to the kernel's
autotuning (larger fixed SO_SNDBUF/SO_RCVBUF measured no better on loopback).

Layout: this module holds what both halves share (ports, timeouts, limits); the senders
(`tcpclientsink`, `tcpserversink`) are in `_tcp_sink.py`, the receivers (`tcpclientsrc`,
`tcpserversrc`) in `_tcp_src.py`, TLS in `_tls.py`.
"""

from __future__ import annotations

import socket
import struct

from parallax._errors import FlowError
from parallax.pipeline import Element, MessageType

DEFAULT_PORT = 4953  # GStreamer's tcpserversink/tcpclientsrc default port
CONNECT_TIMEOUT = 5.0
_MIN_SLOT = 4096
_MAX_U32 = (1 << 32) - 1
_SEND_POLL = 0.1  # a sender blocked on a stalled client looks for kick() this often (s)
_SEND_TIMEVAL = struct.pack("ll", 0, int(_SEND_POLL * 1e6))  # SO_SNDTIMEO (socket(7))
_FOREVER = float("inf")
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST (socket(7))


def _listen(element: Element, host: str, port: int) -> socket.socket:
    """Open the listening socket of a server element and announce its bound port.

    Raises:
        FlowError: naming the element and the address, when the port cannot be had.
    """
    try:
        listener = socket.create_server((host, port), backlog=64)
    except OSError as e:
        raise FlowError(
            f"{element.name}: cannot listen on {host}:{port}: {e}", element=element.name
        ) from e
    element.post(MessageType.ELEMENT, **{"bound-port": listener.getsockname()[1]})
    return listener
