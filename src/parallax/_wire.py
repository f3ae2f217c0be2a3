"""One wire header: a hand-written binary record declared once, packed, and decoded with
its checks. Pure: bytes in, values out.

Parallax's binary records (the STRM frame header, the shared-memory link's HELLO, the GPU
handles) each open with a fixed header: a 4-byte magic that names the record and, for most,
a version. `WireHeader` declares one in a line — its name, its `struct` format, its magic and
version, and the error its module raises — and does the checks each record used to write
by hand, with one set of messages::

    _WIRE: Final = WireHeader(
        "a CUDA handle", "<4sBBHIQQ16s64s", magic=b"PXCU", version=1, error=handle_error
    )
    kind, _reserved, pid, size, alloc, uuid, ipc = _WIRE.unpack(data)

Operations: `pack(*fields)` takes the fields other than the magic and the version, in
layout order, and puts those two in; `unpack(data)` (exactly `size` bytes) and
`unpack_from(data, offset)` (at least `size` bytes from `offset`) check the record and
return the same fields back; `check()` is the checks alone, for a caller that unpacks
its own `struct` on a hot path; `matches()` asks whether bytes start with the magic.

Checks, in this order, and the first that fails is the one reported: the magic (as soon
as its bytes are there, so a stranger's bytes are named as such even when they are also
too short), the length, the version. The problem goes to the caller's `error` factory as a
`HeaderFault` — the record, the field, the byte offset, what was found and what was
expected, and a message saying all of it — so each module keeps its own error class
(`FrameError` with its offset and reason, `HandleError` with its field, `ValueError`).
Offsets count from `at`: the position of the record in whatever the caller counts (the
stream offset of a STRM frame), by default its offset in the buffer.

Layout rules: the format names its byte order (`<`, `>`, `!` or `=`: standard sizes, no
alignment, so every field sits where the format says); the magic is the format's first
`Ns` field with N = len(magic) (HELLO has a kind byte before it); the version, when the
record has one, is the integer field right after the magic.

One magic per record: every declaration is recorded by magic, a second record with the
same magic is refused when its module is imported (two records once shared `PXCU`), and a
wrong magic that belongs to another declared record is named in the error ("got
b'PXCB' at byte 0, the magic of a GPU buffer record").
"""

from __future__ import annotations

import re
import struct
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_ORDERS: Final = "<>!="
_FIELD: Final = re.compile(r"\s*(\d*)([xcbB?hHiIlLqQnNefdspP])\s*")
_INTEGERS: Final = frozenset("bBhHiIlLqQ")
_DECLARED: dict[bytes, str] = {}  # magic -> record name, for the whole process

Bytes = bytes | bytearray | memoryview
"""What the decoders take: any contiguous bytes (slicing a memoryview copies nothing)."""


@dataclass(frozen=True, slots=True)
class HeaderFault:
    """What is wrong with one record's header: the facts an error class carries.

    `field` is `magic`, `version` or `length`; `offset` the byte (counted from the
    caller's `at`) where the problem is — the field's first byte, or for `length` the
    byte where the data ended (too short) or the first byte past the record (too long);
    `found` and `expected` the values (bytes for the magic, ints otherwise).
    """

    record: str
    field: str
    offset: int
    found: object
    expected: object
    message: str

    def __str__(self) -> str:
        return self.message


def _value_error(fault: HeaderFault) -> Exception:
    return ValueError(fault.message)


def declared() -> Mapping[bytes, str]:
    """Every record declared so far in this process: magic -> record name (read-only)."""
    return types.MappingProxyType(_DECLARED)


class WireHeader:
    """A binary record's fixed header: its layout, magic and version, and its checks.

    Args:
        record: what the record is, with its article, as messages name it ("a CUDA
            handle"); also what a wrong magic that is this record's is called elsewhere.
        fmt: the `struct` format of the whole header, magic and version included.
        magic: the bytes that open the record (its first `len(magic)s` field).
        version: the record's version, in the integer field right after the magic; None
            for a record without one.
        error: makes the exception to raise from a `HeaderFault` (default `ValueError`).

    Raises:
        ValueError: a format without a byte order, without a field for the magic, or
            without an integer field after it for the version; a version that does not
            fit its field; a magic another record already has.
    """

    __slots__ = (
        "_cut",
        "_error",
        "_head",
        "_magic_end",
        "_pack",
        "_unpack_from",
        "_version_at",
        "magic",
        "magic_offset",
        "record",
        "size",
        "struct",
        "version",
        "version_offset",
    )

    def __init__(
        self,
        record: str,
        fmt: str,
        *,
        magic: bytes,
        version: int | None = None,
        error: Callable[[HeaderFault], Exception] = _value_error,
    ) -> None:
        if not fmt or fmt[0] not in _ORDERS:
            raise ValueError(
                f"{record}: format {fmt!r} must start with a byte order ({_ORDERS}): "
                "standard sizes, no alignment"
            )
        fields = _fields(record, fmt)
        layout = struct.Struct(fmt)
        want = f"{len(magic)}s"
        magic_at = next((i for i, (code, _) in enumerate(fields) if code == want), None)
        if not magic or magic_at is None:
            raise ValueError(f"{record}: format {fmt!r} has no {want} field for magic {magic!r}")
        cut = magic_at + 1
        self.version_offset: int | None = None
        """Byte offset of the version field in the header (None: no version)."""
        if version is not None:
            if cut >= len(fields) or fields[cut][0] not in _INTEGERS:
                raise ValueError(
                    f"{record}: format {fmt!r} has no integer field after the magic "
                    f"for version {version}"
                )
            try:
                struct.pack(fmt[0] + fields[cut][0], version)
            except struct.error as e:
                raise ValueError(f"{record}: version {version} does not fit: {e}") from e
            self.version_offset = fields[cut][1]
            cut += 1
        known = _DECLARED.get(magic)
        if known is not None and known != record:
            raise ValueError(
                f"{record}: magic {magic!r} is already {known}'s; each record needs its own"
            )
        _DECLARED[magic] = record
        self.record, self.magic, self.version = record, magic, version
        self.struct: Final = layout
        """The raw layout, magic and version included (for tests that forge records)."""
        self.size: Final = layout.size
        self.magic_offset: Final = fields[magic_at][1]
        """Byte offset of the magic in the header."""
        self._magic_end = self.magic_offset + len(magic)
        self._cut = (magic_at, cut)  # the fields a caller does not see: [magic_at, cut)
        self._head = (magic,) if version is None else (magic, version)
        self._version_at = magic_at + 1 if version is not None else -1
        self._pack = layout.pack
        self._unpack_from = layout.unpack_from
        self._error = error

    def pack(self, *fields: Any) -> bytes:
        """The header, from its fields other than the magic and the version, in order.

        Raises:
            struct.error: a field that does not fit, or the wrong number of fields (the
                message names the record).
        """
        lo = self._cut[0]
        try:
            if lo == 0:
                return self._pack(*self._head, *fields)
            return self._pack(*fields[:lo], *self._head, *fields[lo:])
        except struct.error as e:
            raise struct.error(f"cannot pack {self.record}: {e}") from e

    def unpack(self, data: Bytes, *, at: int = 0) -> tuple[Any, ...]:
        """The fields of a record that is exactly `size` bytes, magic and version left out.

        Raises:
            The `error` factory's exception: a wrong magic, a wrong length or a wrong
            version (in that order of precedence).
        """
        if len(data) != self.size:
            self.check(data, at=at, exact=True)
        fields = self._unpack_from(data)
        lo, hi = self._cut
        if fields[lo:hi] != self._head:
            self.check(data, at=at, exact=True)
        return fields[hi:] if lo == 0 else fields[:lo] + fields[hi:]

    def unpack_from(
        self, data: Bytes, offset: int = 0, *, at: int | None = None
    ) -> tuple[Any, ...]:
        """The fields of the record at `offset` (at least `size` bytes from there), magic
        and version left out. `at` is the record's position for messages (default
        `offset`).

        Raises:
            The `error` factory's exception, as `unpack`.
        """
        if offset < 0 or len(data) - offset < self.size:
            self.check(data, offset, at=at)
        fields = self._unpack_from(data, offset)
        lo, hi = self._cut
        if fields[lo:hi] != self._head:
            self.check(data, offset, at=at)
        return fields[hi:] if lo == 0 else fields[:lo] + fields[hi:]

    def matches(self, data: Bytes, offset: int = 0) -> bool:
        """True if `data` holds this record's magic at `offset` (a cheap test, no checks)."""
        start = offset + self.magic_offset
        return bytes(memoryview(data)[start : start + len(self.magic)]) == self.magic

    def fault(
        self, data: Bytes, offset: int = 0, *, at: int | None = None, exact: bool = False
    ) -> HeaderFault | None:
        """The first thing wrong with the record at `offset`, or None when it checks.

        `exact`: the record must end where `data` ends (as `unpack`), not merely fit.
        """
        if offset < 0:
            raise ValueError(f"{self.record}: offset {offset}, expected >= 0")
        view = memoryview(data)
        base = offset if at is None else at
        have = len(view) - offset
        if have >= self._magic_end:
            start = offset + self.magic_offset
            got = bytes(view[start : start + len(self.magic)])
            if got != self.magic:
                other = _DECLARED.get(got)
                seen = f", the magic of {other}" if other else ""
                return HeaderFault(
                    self.record,
                    "magic",
                    base + self.magic_offset,
                    got,
                    self.magic,
                    f"magic: expected {self.magic!r} ({self.record}), got {got!r} at byte "
                    f"{base + self.magic_offset}{seen}",
                )
        if have < self.size or (exact and have != self.size):
            end = base + max(have, 0)
            if have < self.size:
                least = "" if exact else " at least"
                where = f"cut short at byte {end}"
            else:
                least, where = "", f"{have - self.size:,} extra from byte {base + self.size}"
            return HeaderFault(
                self.record,
                "length",
                end if have < self.size else base + self.size,
                have,
                self.size,
                f"{self.record}: {have} bytes, expected {self.size}{least} ({where})",
            )
        if self.version_offset is not None:
            got_version = self._unpack_from(view, offset)[self._version_at]
            if got_version != self.version:
                return HeaderFault(
                    self.record,
                    "version",
                    base + self.version_offset,
                    got_version,
                    self.version,
                    f"version: expected {self.version}, got {got_version} at byte "
                    f"{base + self.version_offset} ({self.record})",
                )
        return None

    def check(
        self, data: Bytes, offset: int = 0, *, at: int | None = None, exact: bool = False
    ) -> None:
        """Raise the `error` factory's exception for the first thing `fault()` finds."""
        fault = self.fault(data, offset, at=at, exact=exact)
        if fault is not None:
            raise self._error(fault)

    def __repr__(self) -> str:
        version = "" if self.version is None else f" v{self.version}"
        return f"<WireHeader {self.record} {self.magic!r}{version} {self.struct.format!r}>"


def _fields(record: str, fmt: str) -> list[tuple[str, int]]:
    """Each field of `fmt` as (its code, with the count for `s`/`p`; its byte offset)."""
    order, body, pos = fmt[0], fmt[1:], 0
    fields: list[tuple[str, int]] = []
    at = 0
    while pos < len(body):
        m = _FIELD.match(body, pos)
        if m is None:
            raise ValueError(f"{record}: cannot read format {fmt!r} at {body[pos:]!r}")
        pos = m.end()
        count, code = int(m.group(1) or 1), m.group(2)
        if code in "sp":
            fields.append((f"{count}{code}", at))
            at += count
        elif code == "x":
            at += count
        else:
            width = struct.calcsize(order + code)
            fields.extend((code, at + i * width) for i in range(count))
            at += count * width
    return fields
