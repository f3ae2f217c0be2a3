"""`filesrc` and `filesink`, and the fd reading and writing that `fdsrc`/`fdsink` share.

Reading (`FdReader`). A regular file or a block device is read with `os.preadv` at an
offset, straight into pool slots: one copy, the kernel's, from the page cache into shared
memory — the same one GStreamer's filesrc makes. `filesrc mmap=true` maps a regular file
and pushes read-only windows of the mapping instead: no copy at all. Anything else — a
pipe, a FIFO, a socket, a character device (a terminal, `/dev/stdin` on a pipe) — cannot
seek: `preadv` fails there with ESPIPE ("Illegal seek"). Such an fd is read in order with
`os.readv`, after a `poll()` that wakes every `FLUSH_POLL` to look at `flushing`, so
stopping the pipeline is never stuck behind a read that no writer will ever satisfy
(GStreamer's fdsrc waits in a cancellable `gst_poll_wait` for the same reason). The kind
of file is decided once, at start, from `fstat`.

Writing (`write_all`). write(2) until every byte is out; an fd that another process set
non-blocking is waited for with `poll()`. A failure is a `FlowError` naming the path (or
the fd) and the OS's reason, with the `OSError` as its cause.

Limits: a FIFO is opened with O_NONBLOCK (then made blocking again), so `filesrc` on a
FIFO with no writer yet starts at once and waits, stoppably, for data; `filesink` on a
FIFO opens it blocking, as GStreamer does, and waits in start() for a reader.
"""

from __future__ import annotations

import os
import select
import stat
import time
from collections.abc import Callable
from typing import Any, Final

from parallax._errors import FlowError, PropertyError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.memory import FileSegment
from parallax.pipeline import FLUSH_POLL, BufferAllocator, Bytes, Property, Sink, Source

_READABLE: Final = select.POLLIN | select.POLLPRI
_TRANSIENT_RETRY: Final = 0.010  # s between retries after EACCES (GStreamer's g_usleep(10000))


def file_kind(mode: int) -> str:
    """What an `st_mode` is, in words for an error: 'a pipe or FIFO', 'a directory', ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe or FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def seekable(mode: int) -> bool:
    """Whether an fd of this `st_mode` reads at an offset (`preadv`): regular files and
    block devices. Pipes, sockets and character devices are read in order."""
    return stat.S_ISREG(mode) or stat.S_ISBLK(mode)


def wait_fd(
    poller: select.poll,
    flushing: Callable[[], bool],
    *,
    timeout: float = 0.0,
    on_timeout: Callable[[], None] | None = None,
) -> bool:
    """Wait until `poller`'s fd is ready. Returns False if `flushing()` became True first.

    With `timeout` > 0, `on_timeout()` is called each time that many seconds pass without
    the fd becoming ready, and the wait goes on (GStreamer fdsrc's `timeout`).
    """
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while not flushing():
        wait = FLUSH_POLL
        if deadline is not None:
            wait = max(min(wait, deadline - time.monotonic()), 0.0)
        if poller.poll(wait * 1000):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            if on_timeout is not None:
                on_timeout()
            deadline = time.monotonic() + timeout
    return False


class FdReader:
    """Reads an fd into pool slots, one buffer at a time, as the module docstring says.

    Owns its allocator: `close()` it. Does not own the fd: its owner closes it, after.

    Args:
        fd: open for reading.
        what: names the fd in errors ("'/path'", "fd 0").
        blocksize: most bytes per buffer.
        offset: where a seekable fd is read from, with `preadv` (the fd's own offset is
            left alone); None: read in order with `readv` (pipes, sockets, devices).
        fill: in order, keep reading until a buffer is full or the stream ends (filesrc:
            every buffer `blocksize` but the last); else push what one read returns
            (fdsrc, as GStreamer's: a line typed on a terminal goes on at once).
        name: the element, for errors and pool names.
        flushing: True once the element stops: a waiting read gives up.
        timeout, on_timeout: see `wait_fd`.
    """

    def __init__(
        self,
        fd: int,
        *,
        what: str,
        blocksize: int,
        offset: int | None,
        fill: bool,
        name: str,
        flushing: Callable[[], bool],
        timeout: float = 0.0,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self._fd, self._what, self._name = fd, what, name
        self._seekable, self._fill = offset is not None, fill
        self._flushing = flushing
        self._timeout, self._on_timeout = timeout, on_timeout
        self._poller = select.poll()
        self._poller.register(fd, _READABLE)
        self._pos = 0 if offset is None else offset  # stream offset of the next byte
        self._eof = False
        self._alloc: BufferAllocator | None = BufferAllocator(
            blocksize, slots=16, name=name, flushing=flushing
        )

    def close(self) -> None:
        """Release the pools (buffers still held downstream keep their slots)."""
        alloc, self._alloc = self._alloc, None
        if alloc is not None:
            alloc.close()

    def read(self, caps: Caps | None, sequence: int) -> Buffer | None:
        """The next buffer (`offset` = its stream offset), or None at the end of the
        stream or when flushing.

        Raises:
            FlowError: the read failed (naming the fd and the OS's reason).
        """
        if self._eof:
            return None
        assert self._alloc is not None, "FdReader used after close()"
        buf = self._alloc.buffer(caps=caps, sequence=sequence)
        if self._seekable:
            try:
                n = os.preadv(self._fd, [buf.view], self._pos)
            except OSError as e:
                raise self._error(e) from e
        else:
            got = self._read_in_order(buf.view)
            if got is None:  # flushing
                return None
            n = got
        if n == 0:
            self._eof = True
            return None
        if n < buf.size:
            buf = buf.sub(0, n)
        buf.offset = self._pos
        self._pos += n
        return buf

    def _read_in_order(self, view: memoryview) -> int | None:
        n = 0
        while n < len(view):
            if not wait_fd(
                self._poller, self._flushing, timeout=self._timeout, on_timeout=self._on_timeout
            ):
                return None
            try:
                got = os.readv(self._fd, [view[n:]])
            except BlockingIOError:  # a non-blocking fd, drained meanwhile: wait again
                continue
            except OSError as e:
                raise self._error(e) from e
            if got == 0:
                self._eof = True
                break
            n += got
            if not self._fill:
                break
        return n

    def _error(self, e: OSError) -> FlowError:
        return FlowError(
            f"{self._name}: cannot read {self._what}: {e.strerror or e}", element=self._name
        )


def write_all(
    fd: int,
    view: memoryview,
    *,
    what: str,
    name: str,
    flushing: Callable[[], bool],
    transient_timeout: float = 0.0,
    position: int | None = None,
) -> int:
    """Write all of `view` to `fd`. Returns the bytes written: all, or fewer if the
    element began flushing while a non-blocking fd was full.

    Args:
        what: names the fd in errors ("'/path'", "fd 1").
        name: the element, for errors.
        transient_timeout: seconds to keep retrying a write that fails with EACCES, which
            network file systems (SMB/CIFS, NFS) report spuriously (filesink's
            `max-transient-error-timeout`); 0: fail at once.
        position: where `view` starts in the file, so a retry seeks back there first
            (None: the fd does not seek, or appends).

    Raises:
        FlowError: the write failed (naming the fd and the OS's reason: ENOSPC, EPIPE ...).
    """
    total = len(view)
    poller: select.poll | None = None
    deadline: float | None = None
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            if not wait_fd(poller, flushing):
                break
            continue
        except PermissionError as e:
            if transient_timeout <= 0:
                raise _write_error(e, what, name) from e
            now = time.monotonic()
            deadline = now + transient_timeout if deadline is None else deadline
            if now >= deadline:
                raise FlowError(
                    f"{name}: cannot write to {what}: {e.strerror} for longer than "
                    f"max-transient-error-timeout ({transient_timeout * 1000:g} ms)",
                    element=name,
                ) from e
            time.sleep(_TRANSIENT_RETRY)
            if position is not None:
                try:
                    os.lseek(fd, position + total - len(view), os.SEEK_SET)
                except OSError as seek:
                    raise _write_error(seek, what, name) from seek
            continue
        except OSError as e:
            raise _write_error(e, what, name) from e
        deadline = None
        view = view[n:]
    return total - len(view)


def _write_error(e: OSError, what: str, name: str) -> FlowError:
    return FlowError(f"{name}: cannot write to {what}: {e.strerror or e}", element=name)


class FileSrc(Source[Bytes], factory="filesrc"):
    """Read a file into buffers of `blocksize` bytes."""

    klass = "Source/File"
    description = "Read from a file, into pool slots or as windows of a mapping"

    location = Property("", doc="path of the file to read")
    blocksize = Property(4096, doc="bytes per buffer (k/M/G suffixes)", minimum=1, maximum=1 << 31)
    offset = Property(0, doc="byte offset to start reading at", minimum=0)
    num_buffers = Property(-1, doc="stop after this many buffers (-1: whole file)", minimum=-1)
    mmap = Property(False, doc="map the file and push windows of it (no copy)")

    def __init__(self, location: str | None = None, name: str | None = None, **props: Any) -> None:
        if location is not None:
            props["location"] = location
        super().__init__(name, **props)
        self._fd = -1
        self._reader: FdReader | None = None
        self._segment: FileSegment | None = None
        self._pos = 0
        self._size = 0

    def start(self) -> None:
        if not self.location:
            raise PropertyError(
                f"{self.name}: property 'location' is not set", element=self.name, prop="location"
            )
        path = self.location
        try:
            # O_NONBLOCK: opening a FIFO for reading would wait for a writer, here in
            # start(), where no stop can reach it. Made blocking again below.
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot open '{path}': {e.strerror}", element=self.name
            ) from e
        try:
            st = self._check(path)
        except BaseException:
            self.stop()
            raise
        mode, self._size = st.st_mode, st.st_size
        self._pos = self.offset
        self.sequence = 0
        if self.mmap and self._size > 0:
            self._segment = FileSegment(path)
            return
        self._reader = FdReader(
            self._fd,
            what=f"'{path}'",
            blocksize=self.blocksize,
            offset=self.offset if seekable(mode) else None,
            fill=True,
            name=self.name,
            # A wait for data also ends on pause() and send_eos() (`_running` goes False):
            # `launch -e` on a terminal or an idle pipe ends at once, losing nothing.
            flushing=lambda: self.flushing or not self._running,
        )

    def _check(self, path: str) -> os.stat_result:
        """Refuse what cannot be read as asked; returns the file's `fstat`."""
        st = os.fstat(self._fd)
        mode = st.st_mode
        kind = file_kind(mode)
        if stat.S_ISDIR(mode):
            raise FlowError(
                f"{self.name}: cannot read '{path}': it is a directory", element=self.name
            )
        os.set_blocking(self._fd, True)
        if self.mmap and not stat.S_ISREG(mode):
            raise PropertyError(
                f"{self.name}: mmap=true needs a regular file; '{path}' is {kind}",
                element=self.name,
                prop="mmap",
                value=True,
            )
        if self.offset and not seekable(mode):
            raise PropertyError(
                f"{self.name}: offset={self.offset} needs a file that can seek; '{path}' is {kind}",
                element=self.name,
                prop="offset",
                value=self.offset,
            )
        return st

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        # Buffers downstream may still view the mapping; it unmaps when the last goes.
        self._segment = None

    def create(self) -> Buffer | None:
        if self.num_buffers >= 0 and self.sequence >= self.num_buffers:
            return None
        if self._segment is None:
            assert self._reader is not None
            buf = self._reader.read(self.srcpad.caps, self.sequence)
            if buf is None:
                return None
        else:
            pos = self._pos
            if pos >= self._size:
                return None
            n = min(self.blocksize, self._size - pos)
            buf = Buffer(self._segment, start=pos, size=n, readonly=True, caps=self.srcpad.caps)
            buf.sequence = self.sequence
            buf.offset = pos
            self._pos = pos + n
        self.sequence += 1
        return buf


class FileSink(Sink[Bytes], factory="filesink"):
    """Write buffers to a file."""

    klass = "Sink/File"
    description = "Write to a file"

    location = Property("", doc="path of the file to write")
    append = Property(False, doc="append instead of truncating")
    o_sync = Property(False, doc="open with O_SYNC: each write reaches the device before returning")
    max_transient_error_timeout = Property(
        0, doc="milliseconds to retry writes failing with EACCES (network file systems)", minimum=0
    )

    def __init__(self, location: str | None = None, name: str | None = None, **props: Any) -> None:
        if location is not None:
            props["location"] = location
        super().__init__(name, **props)
        self._fd = -1
        self._what = ""
        self._position: int | None = None  # where the next write lands; None: no seeking
        self._transient = 0.0
        self._stopping: Callable[[], bool] = lambda: self.flushing

    def start(self) -> None:
        if not self.location:
            raise PropertyError(
                f"{self.name}: property 'location' is not set", element=self.name, prop="location"
            )
        path = self.location
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if self.append else os.O_TRUNC)
        )
        if self.o_sync:
            flags |= os.O_SYNC
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot open '{path}': {e.strerror}", element=self.name
            ) from e
        self._what = f"'{path}'"
        self._transient = self.max_transient_error_timeout / 1000
        mode = os.fstat(self._fd).st_mode
        self._position = 0 if seekable(mode) and not self.append else None

    def stop(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)  # NFS and others report deferred write errors here
            except OSError as e:
                raise _write_error(e, self._what, self.name) from e

    def render(self, buf: Buffer) -> None:
        n = write_all(
            self._fd,
            buf.view,
            what=self._what,
            name=self.name,
            flushing=self._stopping,
            transient_timeout=self._transient,
            position=self._position,
        )
        if self._position is not None:
            self._position += n
