"""`fdsrc` and `fdsink`: read from / write to a file descriptor the process already has.

GStreamer's fdsrc/fdsink (`fd=`, default 0 and 1), so a shell pipe works:
`cat x | parallax launch fdsrc ! ...` and `parallax launch -q ... ! fdsink | wc -c`.
The reading and writing are filesrc's and filesink's (`_file.FdReader`, `write_all`):
a pipe or terminal is read in order after a stoppable `poll()`. Neither element owns its
fd: it is neither closed at stop nor made (non-)blocking — another process may share it.

As GStreamer's fdsrc, a buffer is what one read(2) returns (at most `blocksize` bytes),
so a line typed on a terminal goes downstream at once; `timeout` posts an ELEMENT message
`GstFdSrcTimeout` each time that many microseconds pass without data, and waits on.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from typing import Any, Final

from parallax._errors import FlowError
from parallax.buffer import Buffer
from parallax.pipeline import Bytes, MessageType, Property, Sink, Source

from ._file import FdReader, write_all

TIMEOUT_MESSAGE: Final = "GstFdSrcTimeout"
"""The `structure` of fdsrc's timeout ELEMENT message (GStreamer's structure name)."""


def _check_fd(element: str, fd: int, *, writing: bool) -> int:
    """The `st_mode` of `fd`, refusing one that is closed, a directory, or open the
    wrong way for `writing`.

    Raises:
        FlowError: naming the element, the fd and the reason.
    """
    try:
        mode = os.fstat(fd).st_mode
        access = os.O_ACCMODE & fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise FlowError(f"{element}: fd {fd} cannot be used: {e.strerror}", element=element) from e
    if stat.S_ISDIR(mode):
        raise FlowError(f"{element}: fd {fd} is a directory", element=element)
    wrong = os.O_RDONLY if writing else os.O_WRONLY
    if access == wrong:
        how = "read-only" if writing else "write-only"
        raise FlowError(f"{element}: fd {fd} is open {how}", element=element)
    return mode


class FdSrc(Source[Bytes], factory="fdsrc"):
    """Read a file descriptor (default 0, standard input) into buffers."""

    klass = "Source/File"
    description = "Read from a file descriptor"

    fd = Property(0, doc="file descriptor to read (not closed at stop)", minimum=0)
    blocksize = Property(
        4096, doc="most bytes per buffer (k/M/G suffixes)", minimum=1, maximum=1 << 31
    )
    num_buffers = Property(-1, doc="stop after this many buffers (-1: until EOF)", minimum=-1)
    timeout = Property(
        0, doc="microseconds without data before each GstFdSrcTimeout message (0: none)", minimum=0
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._reader: FdReader | None = None

    def start(self) -> None:
        _check_fd(self.name, self.fd, writing=False)
        self.sequence = 0
        self._reader = FdReader(
            self.fd,
            what=f"fd {self.fd}",
            blocksize=self.blocksize,
            offset=None,  # in order from the fd's own offset, which it advances, as read(2)
            fill=False,
            name=self.name,
            # A wait for data also ends on pause() and send_eos() (`_running` goes False):
            # `launch -e` on a terminal or an idle pipe ends at once, losing nothing.
            flushing=lambda: self.flushing or not self._running,
            timeout=self.timeout / 1e6,
            on_timeout=self._post_timeout,
        )

    def _post_timeout(self) -> None:
        self.post(MessageType.ELEMENT, structure=TIMEOUT_MESSAGE, timeout=self.timeout)

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def create(self) -> Buffer | None:
        if self.num_buffers >= 0 and self.sequence >= self.num_buffers:
            return None
        assert self._reader is not None
        buf = self._reader.read(self.srcpad.caps, self.sequence)
        if buf is not None:
            self.sequence += 1
        return buf


class FdSink(Sink[Bytes], factory="fdsink"):
    """Write buffers to a file descriptor (default 1, standard output)."""

    klass = "Sink/File"
    description = "Write to a file descriptor"

    fd = Property(1, doc="file descriptor to write (not closed at stop)", minimum=0)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._fd = -1
        self._what = ""
        self._stopping: Callable[[], bool] = lambda: self.flushing

    def start(self) -> None:
        _check_fd(self.name, self.fd, writing=True)
        self._fd, self._what = self.fd, f"fd {self.fd}"

    def render(self, buf: Buffer) -> None:
        write_all(self._fd, buf.view, what=self._what, name=self.name, flushing=self._stopping)
