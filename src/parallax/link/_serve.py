"""The publisher's I/O thread: it accepts subscribers and watches their sockets.

The per-buffer path never goes through it (the rings in shared memory carry buffers and
releases); it only sees connections come and go: a new connection, a subscriber's BYE,
EOF when a subscriber's process exits (kill -9 included). What to do about each is the
publisher's (`accepted`, `readable` callbacks, called in this thread); an exception from
a callback is handed to `failed` and the thread goes on serving, so one bad connection
cannot leave a publisher that no longer notices anybody.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from collections.abc import Callable

from ._peer import EFD_FLAGS, Peer


class IoThread:
    """Owns the listening socket it is given, a selector, a stop eventfd and the thread:
    `close()` stops and joins the thread, then closes the rest (idempotent). A failed
    constructor closes the listening socket too.

    Args:
        lsock: a bound, listening, non-blocking socket.
        accepted: called with each accepted connection (which it then owns).
        readable: called with the peer whose socket has something to read (or hung up).
        failed: called with an exception a callback raised.
    """

    def __init__(
        self,
        name: str,
        lsock: socket.socket,
        *,
        accepted: Callable[[socket.socket], None],
        readable: Callable[[Peer], None],
        failed: Callable[[Exception], None],
    ) -> None:
        self._lsock = lsock
        self._stop = -1
        self._sel: selectors.BaseSelector | None = None
        try:
            self._stop = os.eventfd(0, EFD_FLAGS)
            self._sel = sel = selectors.DefaultSelector()
            sel.register(lsock, selectors.EVENT_READ, None)
            sel.register(self._stop, selectors.EVENT_READ, None)
        except BaseException:
            self._release()
            raise
        self._accepted, self._readable, self._failed = accepted, readable, failed
        # A daemon, so that a forgotten publisher cannot hold up interpreter exit; its
        # finalizer (run at exit at the latest) still stops and joins it.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread.

        Raises:
            RuntimeError: the thread could not start (the caller closes this object).
        """
        self._thread.start()

    def watch(self, peer: Peer) -> None:
        """Hand `peer`'s socket to the thread (`readable(peer)` when it has something)."""
        assert self._sel is not None
        self._sel.register(peer.sock, selectors.EVENT_READ, peer)

    def forget(self, peer: Peer) -> None:
        """Stop watching `peer`'s socket (before it is closed). Idempotent."""
        sel = self._sel
        if sel is not None:
            try:
                sel.unregister(peer.sock)
            except (KeyError, ValueError):
                pass  # never watched (it failed in HELLO), or closed and forgotten already

    def _serve(self) -> None:
        sel, stop, lsock = self._sel, self._stop, self._lsock
        assert sel is not None
        while self._sel is not None:  # None: closed from this thread (a finalizer here)
            for key, _ in sel.select():
                try:
                    if key.fd == stop:
                        return
                    if key.fileobj is lsock:
                        try:
                            conn, _ = lsock.accept()
                        except BlockingIOError:
                            continue  # another connect()'s wake-up, or it left already
                        self._accepted(conn)
                    else:
                        self._readable(key.data)
                except Exception as e:
                    self._failed(e)

    def close(self) -> None:
        """Stop and join the thread (unless called from it), close everything. Idempotent."""
        thread = self._thread
        if thread.is_alive():
            os.eventfd_write(self._stop, 1)
            if thread is not threading.current_thread():
                thread.join()
        self._release()

    def _release(self) -> None:
        sel, self._sel = self._sel, None
        if sel is not None:
            sel.close()
        self._lsock.close()
        stop, self._stop = self._stop, -1
        if stop >= 0:
            os.close(stop)
