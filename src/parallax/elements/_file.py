"""`filesrc` and `filesink`.

`filesrc` reads straight into pool slots with `os.preadv` (one copy: the kernel's, from
the page cache into shared memory — the same one GStreamer's filesrc makes), or with
`mmap=true` maps the file and pushes read-only windows of the mapping: no copy at all.
"""

from __future__ import annotations

import os
from typing import Any

from parallax._errors import FlowError, PropertyError
from parallax.buffer import Buffer
from parallax.memory import FileSegment
from parallax.pipeline import BufferAllocator, Bytes, Property, Sink, Source


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
        self._alloc: BufferAllocator | None = None
        self._segment: FileSegment | None = None
        self._pos = 0
        self._size = 0

    def start(self) -> None:
        if not self.location:
            raise PropertyError(
                f"{self.name}: property 'location' is not set", element=self.name, prop="location"
            )
        try:
            self._fd = os.open(self.location, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot open '{self.location}': {e.strerror}", element=self.name
            ) from e
        self._size = os.fstat(self._fd).st_size
        self._pos = self.offset
        if self.mmap and self._size > 0:
            self._segment = FileSegment(self.location)
        else:
            self._alloc = BufferAllocator(
                self.blocksize, slots=16, name=self.name, flushing=lambda: self.flushing
            )
        self.sequence = 0

    def stop(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        alloc, self._alloc = self._alloc, None
        if alloc is not None:
            alloc.close()
        # Buffers downstream may still view the mapping; it unmaps when the last goes.
        self._segment = None

    def create(self) -> Buffer | None:
        if self.num_buffers >= 0 and self.sequence >= self.num_buffers:
            return None
        pos = self._pos
        if self._segment is not None:
            if pos >= self._size:
                return None
            n = min(self.blocksize, self._size - pos)
            buf = Buffer(self._segment, start=pos, size=n, readonly=True, caps=self.srcpad.caps)
            buf.sequence = self.sequence
        else:
            assert self._alloc is not None
            buf = self._alloc.buffer(caps=self.srcpad.caps, sequence=self.sequence)
            n = os.preadv(self._fd, [buf.view], pos)
            if n == 0:
                return None
            if n < buf.size:
                buf = buf.sub(0, n)
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

    def __init__(self, location: str | None = None, name: str | None = None, **props: Any) -> None:
        if location is not None:
            props["location"] = location
        super().__init__(name, **props)
        self._fd = -1

    def start(self) -> None:
        if not self.location:
            raise PropertyError(
                f"{self.name}: property 'location' is not set", element=self.name, prop="location"
            )
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if self.append else os.O_TRUNC)
        )
        try:
            self._fd = os.open(self.location, flags, 0o644)
        except OSError as e:
            raise FlowError(
                f"{self.name}: cannot open '{self.location}': {e.strerror}", element=self.name
            ) from e

    def stop(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def render(self, buf: Buffer) -> None:
        view = buf.view
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
