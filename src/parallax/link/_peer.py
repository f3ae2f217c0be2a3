"""`Peer`: the publisher's side of one subscriber of the shared-memory link.

Made by the publisher's I/O thread for each accepted (and admitted) connection: a control
block (`_ring.ControlBlock`: the subscriber's descriptor ring, its release ring, two
sleeping flags) and a wake eventfd, handed over once with HELLO (`greet`). The publisher
changes the bookkeeping fields under its lock: which slots the subscriber holds, and,
when the publisher is leaky, whether it lags.
"""

from __future__ import annotations

import os
import socket
from typing import Final

from parallax._errors import BrokenError

from ._ring import ControlBlock, DescriptorWriter, ReleaseReader
from ._service import Credentials, Trust, peer_credentials

EFD_FLAGS: Final = os.EFD_CLOEXEC | os.EFD_NONBLOCK


class Peer:
    """One subscriber, as its publisher sees it. Owns its socket, control block and wake
    eventfd: `close()` releases all three (idempotent), and a failed constructor closes
    the socket it was given.
    """

    __slots__ = (
        "block",
        "caps",
        "eos",
        "held",
        "lagging",
        "name",
        "pending",
        "releases",
        "ring",
        "sock",
        "wake",
        "words",
    )

    def __init__(
        self, sock: socket.socket, credentials: Credentials, slots: int, service: str
    ) -> None:
        self.sock = sock
        self.wake = -1
        try:
            self.block = ControlBlock.create(slots, name=f"ipc-ctl:{service}")
            try:
                self.wake = os.eventfd(0, EFD_FLAGS)
            except BaseException:
                self.block.close()
                raise
        except BaseException:
            sock.close()
            raise
        self.name = f"subscriber pid {credentials.pid}"
        self.held = [0] * slots  # sent, not yet released, per slot (0 or 1)
        self.pending = 0  # sum(held)
        self.lagging = False  # leaky: it kept send() waiting; skipped until it catches up
        self.caps: str | None = None  # caps text of the last buffer sent to it
        self.eos = False  # EOS sent, and no buffer since
        self.words = self.block.words
        self.ring = DescriptorWriter(self.block)
        self.releases = ReleaseReader(self.block)

    def greet(self, hello: bytes, data_fd: int, publisher_wake: int) -> None:
        """Send HELLO with the four fds (data memfd, our control block, our wake eventfd,
        the publisher's wake eventfd), then make the socket non-blocking.

        Raises:
            OSError: the subscriber hung up (the caller closes this peer).
        """
        fds = [data_fd, self.block.segment.fd, self.wake, publisher_wake]
        socket.send_fds(self.sock, [hello], fds)
        self.sock.setblocking(False)

    def close(self) -> None:
        """Close the socket, unmap the control block, close the eventfd. Idempotent."""
        self.sock.close()
        self.block.close()
        wake, self.wake = self.wake, -1
        if wake >= 0:
            os.close(wake)


def admit(
    conn: socket.socket,
    *,
    service: str,
    trust: Trust,
    slots: int,
    hello: bytes,
    data_fd: int,
    publisher_wake: int,
) -> Peer | None:
    """Make an accepted connection a greeted `Peer`, or refuse it; owns `conn` either way.

    Returns None for a peer that left before we looked at it (nothing to serve, nothing
    it held).

    Raises:
        BrokenError: its uid is not trusted (SO_PEERCRED), or it could not be served or
            greeted (the cause attached); `conn` and whatever was made for it are closed.
    """
    try:
        cred = peer_credentials(conn)
    except OSError:
        conn.close()
        return None
    if not trust.admits(cred):
        conn.close()
        raise BrokenError(
            f"publisher {service!r} refused pid {cred.pid}: uid {cred.uid} is not {trust} "
            "(SO_PEERCRED)"
        )
    try:
        peer = Peer(conn, cred, slots, service)  # closes conn if it fails
    except Exception as e:
        raise BrokenError(f"publisher {service!r}: cannot serve pid {cred.pid}: {e}") from e
    try:
        peer.greet(hello, data_fd, publisher_wake)
    except OSError as e:
        peer.close()
        raise BrokenError(f"publisher {service!r}: {peer.name} hung up during HELLO") from e
    return peer
