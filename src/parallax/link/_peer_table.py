"""`PeerTable`: the publisher's subscribers, as its I/O thread sees them: a connection
admitted (`admit` in `_peer.py`), its BYE or its death, and everything a dead one held
given back. A base of `Publisher` (`_publisher.py`), which owns every attribute named
here; the methods run in the I/O thread, under the publisher's lock where they change
the slot bookkeeping.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading

from parallax._errors import BrokenError
from parallax.memory import Slot, SlotPool

from ._hello import BYE
from ._peer import Peer, admit
from ._serve import IoThread
from ._service import Trust

log = logging.getLogger("parallax.link")


class PeerTable:
    """The subscriber side of a publisher's state, and the I/O thread's callbacks."""

    _service: str
    _trust: Trust
    _pool: SlotPool
    _hello: bytes
    _fd: int
    _wake: int
    _io: IoThread
    _lock: threading.Lock
    _changed: threading.Condition
    _peers: dict[int, Peer]
    _targets: tuple[Peer, ...]
    _sent: list[Slot | None]
    _refs: list[int]
    _waiters: int
    _errors: collections.deque[BrokenError]

    def _unref(self, index: int) -> None:
        # Under self._lock. The Slot drops here, and its index returns to the pool.
        self._refs[index] -= 1
        if self._refs[index] == 0:
            self._sent[index] = None

    def _accept(self, conn: socket.socket) -> None:
        try:
            peer = admit(
                conn,
                service=self._service,
                trust=self._trust,
                slots=self._pool.slots,
                hello=self._hello,
                data_fd=self._fd,
                publisher_wake=self._wake,
            )
        except BrokenError as e:
            self._report(e, e.__cause__)
            return
        if peer is not None:
            with self._lock:
                self._peers[peer.sock.fileno()] = peer
                self._targets = tuple(self._peers.values())
                self._io.watch(peer)
                self._changed.notify_all()

    def _read(self, peer: Peer) -> None:
        # After HELLO a subscriber says one thing, BYE; anything else is a broken peer.
        try:
            data = peer.sock.recv(16)
        except BlockingIOError:
            return
        except OSError as e:
            self._drop(peer, e)
            return
        if data == BYE:
            self._drop(peer, None)
        elif not data:
            self._drop(peer, ConnectionResetError("closed without BYE"))
        else:
            self._drop(peer, ValueError(f"unexpected message {data!r}"))

    def _io_failed(self, error: Exception) -> None:
        self._report(BrokenError(f"publisher {self._service!r}: I/O thread: {error!r}"), error)

    def _drop(self, peer: Peer, error: BaseException | None) -> None:
        """Forget `peer` and give back every slot it held; report it unless it said BYE."""
        with self._lock:
            fd = peer.sock.fileno()
            if fd < 0 or self._peers.get(fd) is not peer:
                return
            del self._peers[fd]
            self._targets = tuple(self._peers.values())
            self._io.forget(peer)
            held = peer.pending
            for index, n in enumerate(peer.held):
                for _ in range(n):
                    self._unref(index)
            peer.held = [0] * len(peer.held)
            peer.pending = 0
            peer.close()
            if held and self._waiters:
                os.eventfd_write(self._wake, 1)  # a sleeping loan() can have these
            self._changed.notify_all()
        if error is not None:
            self._report(
                BrokenError(
                    f"publisher {self._service!r}: {peer.name} went away holding {held} "
                    f"slot(s); reclaimed them"
                ),
                error,
            )

    def _report(self, error: BrokenError, cause: BaseException | None = None) -> None:
        # The error outlives this call (in `errors`, in log records): its cause keeps no
        # traceback, whose frames would keep their callers' locals (buffers, mappings).
        error.__cause__ = None if cause is None else cause.with_traceback(None)
        self._errors.append(error)
        log.warning("%s", error)
