"""The STRM frame codec (seed 002): pure, sans-IO — bytes in, events out.

Wire layout (docs/wire.md has the byte table)::

    header  16 bytes  <4sHHII   magic b"STRM", u16 version (1), u16 flags, u32 length, u32 crc
    meta    46 bytes  <qqqqqIH  sequence, pts, dts, duration, offset, u32 flags, u16 caps len
    caps    0..4096   utf-8     the caps string (`str(caps)`); length 0 means "no caps"
    payload `length` bytes

`length` counts the payload only; the frame is 62 + caps length + `length` bytes. The CRC
is `zlib.crc32` (ISO-HDLC) of the byte string payload ‖ meta ‖ caps — everything after the
header, payload first: a sender hashes the payload where it lies and extends that CRC over
the small meta and caps (no concatenation, no crc32_combine, which Python's zlib lacks); a
receiver updates it as payload bytes land and extends it over the meta and caps it kept.
Frame flag bit 0 (`EOS`) ends the stream; an EOS frame has an empty payload and no caps.
Every other flag bit is reserved and rejected. A stream that ends without its EOS frame
was cut short (the sender died): by default the decoder says so (reason `no eos`), since
a receiver that took it for a clean end would pass on an incomplete stream as complete.

Operations: `encode_head()` builds the 62+ bytes that precede a payload (the payload is
sent from where it lies); `FrameDecoder` parses a stream incrementally in h11's style —
`receive_data()`, then `next_event()` until `NEED_DATA`. For zero-copy receive, after a
`FrameStart` the caller may put the payload wherever it likes (a pool slot): it drains what
the decoder already buffered with `take_payload(view)`, receives the rest itself
(`recv_into`), reports it with `payload_received(view)`, and `next_event()` then checks
the CRC and returns `FrameEnd`.

Limits: the payload length is checked against `max_length` (default 64 MiB) from the
header alone, before anyone allocates; the caps string is bounded by `MAX_CAPS` (4 KiB:
a caps string is a line of text), the same limit in the encoder and the decoder, so a
frame one side writes the other side reads; the decoder never buffers more than one
header and one caps string. Bytes that cannot start a frame are refused as soon as they
arrive (`bad magic`, quoting the bytes seen), even fewer than a header: a stray client
(`echo hi | nc`) is told apart from a sender that died mid-frame. Every error is a
`FrameError` naming the stream byte offset and the reason; after one, the decoder is dead
(the connection must close).
"""

from __future__ import annotations

import struct

try:  # ISA-L's CRC-32 is the same function as zlib's, ~15x faster (PCLMUL)
    from isal.isal_zlib import crc32 as crc32  # noqa: PLC0414  (explicit re-export)

    FAST_CRC = True
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    from zlib import crc32 as crc32  # noqa: PLC0414

    FAST_CRC = False
from dataclasses import dataclass
from typing import Final

from parallax._errors import ParallaxError, ParseError
from parallax._wire import HeaderFault, WireHeader
from parallax.caps import Caps

META: Final = struct.Struct("<qqqqqIH")  # sequence, pts, dts, duration, offset, flags, caps length
MAGIC: Final = b"STRM"
VERSION: Final = 1
FLAG_EOS: Final = 1 << 0
KNOWN_FLAGS: Final = FLAG_EOS
DEFAULT_MAX_LENGTH: Final = 64 << 20
"""64 MiB (the issue's default): larger than any buffer a pool slot here is made for, small
enough that a hostile length cannot make a receiver reserve gigabytes."""
MAX_CAPS: Final = 4096
"""The one caps limit, in bytes of utf-8, for the encoder and the decoder alike. Caps
strings seen in practice are well under 200 bytes; 4 KiB leaves room for long tensor
shapes while bounding what one frame can make a receiver buffer and parse. (The wire's
u16 caps length could say 65,535; no frame may.)"""
DEFAULT_MAX_CAPS: Final = MAX_CAPS  # the name this limit had when the decoder alone had it
_SHOWN: Final = 16  # bytes of a bad frame start quoted in a `bad magic` message
MAX_U32: Final = (1 << 32) - 1
CLOCK_TIME_NONE: Final = -1  # parallax.buffer's "unknown" time/offset (GST_CLOCK_TIME_NONE)


class FrameError(ParallaxError, ValueError):
    """A malformed frame: `offset` is the stream byte offset of the problem, `reason` a
    short name of what is wrong (`bad magic`, `crc mismatch`, `truncated`, `no eos`, ...)."""

    def __init__(self, message: str, *, offset: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.offset, self.reason = offset, reason


def _header_error(fault: HeaderFault) -> FrameError:
    if fault.field == "magic":
        message = f"bad magic {fault.found!r} at byte {fault.offset} (expected {fault.expected!r})"
        return FrameError(message, offset=fault.offset, reason="bad magic")
    if fault.field == "version":
        message = f"unknown version {fault.found} at byte {fault.offset} (expected {VERSION})"
        return FrameError(message, offset=fault.offset, reason="unknown version")
    return FrameError(fault.message, offset=fault.offset, reason="truncated")  # too short


# magic, u16 version, u16 flags, u32 length, u32 crc32. The checks are the helper's; the
# per-frame paths (`parse_header`, `encode_head`) pack and unpack `HEADER` directly and
# ask `_STRM` only about a header that fails them: the helper's call costs ~150 ns, a
# few per cent of a small frame's decode.
_STRM: Final = WireHeader(
    "a STRM frame header", "<4sHHII", magic=MAGIC, version=VERSION, error=_header_error
)
HEADER: Final = _STRM.struct
PREFIX: Final = HEADER.size + META.size  # 62: the fixed part of every frame


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The 16-byte header, decoded and checked."""

    version: int
    flags: int
    length: int
    crc: int


@dataclass(frozen=True, slots=True)
class FrameStart:
    """A frame's header, metadata and caps; its `length` payload bytes follow.

    Provisional until `FrameEnd`: the CRC is checked only when the payload is complete.
    `offset` is the stream offset of the frame's first byte.
    """

    header: FrameHeader
    offset: int
    sequence: int
    pts: int
    dts: int
    duration: int
    buffer_offset: int
    buffer_flags: int
    caps: Caps | None

    @property
    def length(self) -> int:
        """Payload bytes."""
        return self.header.length

    @property
    def eos(self) -> bool:
        """True for the end-of-stream frame (flags bit 0)."""
        return bool(self.header.flags & FLAG_EOS)


@dataclass(frozen=True, slots=True)
class PayloadData:
    """Payload bytes the decoder had buffered (the copying path; see `take_payload`)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class DeferredCrc:
    """The CRC check of a frame whose payload the caller hashes itself (`defer_crc()`):
    call `verify(crc32(payload))` before trusting the payload."""

    expected: int
    tail: bytes  # the frame's metadata and caps, which the CRC covers after the payload
    frame_at: int

    def verify(self, payload_crc: int) -> None:
        """Raises FrameError (reason `crc mismatch`) unless the frame's CRC matches."""
        crc = crc32(self.tail, payload_crc)
        if crc != self.expected:
            raise _crc_mismatch(self.frame_at, self.expected, crc)


@dataclass(frozen=True, slots=True)
class FrameEnd:
    """The frame's payload is complete and its CRC matched — or, after `defer_crc()`,
    `deferred` holds the check the caller must still make."""

    crc: int
    deferred: DeferredCrc | None = None


def _crc_mismatch(frame_at: int, expected: int, got: int) -> FrameError:
    return FrameError(
        f"crc mismatch at byte {frame_at + 12} (frame at byte {frame_at}): "
        f"header says {expected:#010x}, content has {got:#010x}",
        offset=frame_at + 12,
        reason="crc mismatch",
    )


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")
"""`next_event()`: nothing more can be decoded until `receive_data()` is called."""
CLOSED: Final = _Sentinel("CLOSED")
"""`next_event()`: the stream ended cleanly: EOF after its EOS frame (or, with
`require_eos=False`, at any frame boundary)."""

Event = FrameStart | PayloadData | FrameEnd | _Sentinel


def encode_head(
    length: int,
    *,
    payload_crc: int,
    sequence: int = 0,
    pts: int = CLOCK_TIME_NONE,
    dts: int = CLOCK_TIME_NONE,
    duration: int = CLOCK_TIME_NONE,
    offset: int = CLOCK_TIME_NONE,
    buffer_flags: int = 0,
    caps: bytes = b"",
    flags: int = 0,
) -> bytes:
    """The header, metadata and caps that precede a `length`-byte payload.

    Args:
        payload_crc: `zlib.crc32(payload)`; the frame's CRC extends it over meta and caps.
        caps: the caps string as utf-8 (`str(caps).encode()`), empty for none.

    Raises:
        FrameError: caps longer than `MAX_CAPS` (reason `caps too long`), or a field that
            does not fit its wire type (reason `too large`).
    """
    if len(caps) > MAX_CAPS:
        raise FrameError(
            f"cannot encode caps of {len(caps):,} bytes: the limit is {MAX_CAPS:,} bytes "
            "(MAX_CAPS, which every receiver enforces)",
            reason="caps too long",
        )
    if not 0 <= length <= MAX_U32 or not 0 <= buffer_flags <= MAX_U32:
        raise FrameError(
            f"cannot encode: length {length}, buffer flags {buffer_flags} (each a u32)",
            reason="too large",
        )
    try:
        meta = META.pack(sequence, pts, dts, duration, offset, buffer_flags, len(caps))
    except struct.error as e:
        raise FrameError(f"cannot encode metadata: {e}", reason="too large") from e
    crc = crc32(caps, crc32(meta, payload_crc))
    return HEADER.pack(MAGIC, VERSION, flags, length, crc) + meta + caps


def encode_eos() -> bytes:
    """The end-of-stream frame: flags bit 0, no payload, no caps."""
    return encode_head(0, payload_crc=0, flags=FLAG_EOS)


def encode_frame(
    payload: bytes | bytearray | memoryview,
    *,
    sequence: int = 0,
    pts: int = CLOCK_TIME_NONE,
    dts: int = CLOCK_TIME_NONE,
    duration: int = CLOCK_TIME_NONE,
    offset: int = CLOCK_TIME_NONE,
    buffer_flags: int = 0,
    caps: bytes = b"",
) -> bytes:
    """A whole frame as one `bytes` (copies the payload: for tests and small frames)."""
    head = encode_head(
        len(payload),
        payload_crc=crc32(payload),
        sequence=sequence,
        pts=pts,
        dts=dts,
        duration=duration,
        offset=offset,
        buffer_flags=buffer_flags,
        caps=caps,
    )
    return head + bytes(payload)


def parse_header(view: memoryview | bytes, *, at: int, max_length: int) -> FrameHeader:
    """Decode and check the 16-byte header that `view` starts with. `at` is its stream
    offset, for errors only.

    Raises:
        FrameError: bad magic, unknown version or flags, a length above `max_length`, or
            fewer than 16 bytes (reason `truncated`).
    """
    try:
        magic, version, flags, length, crc = HEADER.unpack_from(view)
    except struct.error:  # fewer than 16 bytes
        fault = _STRM.fault(view, at=at)
        assert fault is not None
        raise _header_error(fault) from None
    if magic != MAGIC or version != VERSION:
        _STRM.check(view, at=at)
    if flags & ~KNOWN_FLAGS:
        raise FrameError(
            f"unknown flags {flags:#06x} at byte {at + 6} (known: {KNOWN_FLAGS:#06x})",
            offset=at + 6,
            reason="unknown flags",
        )
    if length > max_length:
        raise FrameError(
            f"frame at byte {at} declares {length:,} bytes at byte {at + 8}; max {max_length:,}",
            offset=at + 8,
            reason="too long",
        )
    if flags & FLAG_EOS and length:
        raise FrameError(
            f"EOS frame at byte {at} declares a {length:,}-byte payload at byte {at + 8} "
            "(must be empty)",
            offset=at + 8,
            reason="eos with payload",
        )
    return FrameHeader(version, flags, length, crc)


_HEADER, _CAPS, _PAYLOAD, _DEAD, _CLOSED = range(5)


class FrameDecoder:
    """Incremental STRM decoder for one connection (one direction). Pure: no I/O.

    Feed bytes with `receive_data()` (`b""` means EOF); call `next_event()` until it
    returns `NEED_DATA` (or `CLOSED`). Events per frame: `FrameStart`, then the payload as
    `PayloadData` events — or, for zero-copy, via `take_payload`/`payload_received` — then
    `FrameEnd`.

    Args:
        max_length: the largest payload a frame may declare.
        require_eos: EOF at a frame boundary before an EOS frame is an error (reason
            `no eos`: the sender died); False takes it for a clean end (`CLOSED`), as a
            peer that cannot send an EOS frame (`cat frames | nc`) needs.

    Raises (from `next_event`, `receive_data`, `payload_received`): `FrameError` with the
    stream offset; after that the decoder stays failed. Any other exception is a bug.
    """

    max_caps: Final = MAX_CAPS  # not a parameter: one limit, the encoder's too

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, require_eos: bool = True) -> None:
        self.max_length, self.require_eos = max_length, require_eos
        self.frames = 0
        """Frames decoded whole (CRC checked or deferred), the EOS frame not counted."""
        self.eos = False
        """True once the EOS frame was decoded."""
        self._buf = bytearray()
        self._state = _HEADER
        self._eof = False
        self._error: FrameError | None = None
        self._consumed = 0  # stream offset of self._buf[0]
        self._frame_at = 0
        self._header: FrameHeader | None = None
        self._meta: tuple[int, ...] = ()
        self._head_tail = b""  # meta and caps of the current frame, for the CRC
        self._crc = 0
        self._pending = 0  # payload bytes still to come
        self._defer = False  # the caller hashes this frame's payload itself
        self._caps_cache: tuple[bytes, Caps | None] = (b"", None)

    @property
    def offset(self) -> int:
        """Stream offset of the next byte the decoder has not consumed."""
        return self._consumed

    @property
    def pending_payload(self) -> int:
        """Payload bytes of the current frame not yet delivered (0 outside a payload)."""
        return self._pending if self._state == _PAYLOAD else 0

    @property
    def bytes_needed(self) -> int:
        """Bytes to receive before the next header or caps can be decoded (0 in a payload).

        A caller that reads no more than this never reads a payload into the decoder's
        own buffer, so every payload byte can go straight to its final place.
        """
        if self._state == _HEADER:
            return max(PREFIX - len(self._buf), 1)
        if self._state == _CAPS:
            return max(self._meta[6] - len(self._buf), 1)
        return 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; `b""` marks EOF.

        Raises:
            FrameError: data after EOF, or the decoder already failed.
        """
        self._check()
        if not data:
            self._eof = True
            return
        if self._eof:
            raise self._fail("data after EOF", self._consumed + len(self._buf), "data after eof")
        self._buf += data

    def next_event(self) -> Event:
        """The next event, `NEED_DATA` or `CLOSED`.

        Raises:
            FrameError: the stream is malformed or truncated (the message has the offset).
        """
        self._check()
        if self._state == _HEADER:
            return self._next_header()
        if self._state == _CLOSED:
            return CLOSED
        if self._state == _CAPS:
            return self._next_caps()
        if self._state == _PAYLOAD:
            if self._pending == 0:
                return self._finish()
            if self._buf:
                n = min(len(self._buf), self._pending)
                data = bytes(self._buf[:n])
                self._eat(n)
                self._pending -= n
                if not self._defer:
                    self._crc = crc32(data, self._crc)
                return PayloadData(data)
            if self._eof:
                raise self._truncated(self._pending)
            return NEED_DATA
        return CLOSED

    def defer_crc(self) -> None:
        """For the current frame (after its `FrameStart`): the caller will hash the whole
        payload itself — e.g. in another thread, overlapping the next receive — so the
        decoder hashes none of it and its `FrameEnd.deferred` holds the check to make."""
        if self._state == _PAYLOAD:
            self._defer = True

    def take_payload(self, dest: memoryview) -> int:
        """Move buffered payload bytes (at most `len(dest)`) into `dest`; returns how many."""
        self._check()
        if self._state != _PAYLOAD:
            return 0
        n = min(len(self._buf), self._pending, len(dest))
        if n:
            dest[:n] = self._buf[:n]
            if not self._defer:
                self._crc = crc32(dest[:n], self._crc)
            self._eat(n)
            self._pending -= n
        return n

    def payload_received(self, data: memoryview | bytes | bytearray) -> None:
        """The caller received these payload bytes itself (e.g. `recv_into` a pool slot).

        Raises:
            FrameError: more bytes than the frame has left (a caller bug, reported as such).
        """
        self._check()
        if self._state != _PAYLOAD or len(data) > self._pending:
            raise self._fail(
                f"{len(data)} payload bytes reported, {self.pending_payload} expected",
                self._consumed,
                "payload overrun",
            )
        if not self._defer:
            self._crc = crc32(data, self._crc)
        self._consumed += len(data)
        self._pending -= len(data)

    # -- internals -------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _fail(self, message: str, offset: int, reason: str) -> FrameError:
        self._state = _DEAD
        self._error = FrameError(message, offset=offset, reason=reason)
        return self._error

    def _eat(self, n: int) -> None:
        del self._buf[:n]
        self._consumed += n

    def _truncated(self, missing: int) -> FrameError:
        at = self._consumed + len(self._buf)
        return self._fail(
            f"truncated frame: stream ended at byte {at}, {missing:,} bytes short of the "
            f"frame that starts at byte {self._frame_at} (after {self._whole()})",
            at,
            "truncated",
        )

    def _whole(self) -> str:
        return f"{self.frames:,} whole frame{'' if self.frames == 1 else 's'}"

    def _bad_magic(self, at: int) -> FrameError:
        seen = bytes(self._buf[:_SHOWN])
        more = "" if len(self._buf) <= _SHOWN else ", ..."
        return self._fail(
            f"bad magic at byte {at}: {seen!r}{more} is not a STRM frame (expected "
            f"{MAGIC!r}; {len(self._buf):,} bytes seen there)",
            at,
            "bad magic",
        )

    def _next_header(self) -> Event:
        buf = self._buf
        if len(buf) < PREFIX:
            if buf and not MAGIC.startswith(buf[: len(MAGIC)]):  # a stray client, not STRM
                raise self._bad_magic(self._consumed)
            if self._eof:
                if buf:
                    raise self._truncated(PREFIX - len(buf))
                if self.require_eos and not self.eos:
                    at = self._consumed
                    raise self._fail(
                        f"stream ended at byte {at} without an EOS frame, after "
                        f"{self._whole()} (the sender died?)",
                        at,
                        "no eos",
                    )
                self._state = _CLOSED
                return CLOSED
            return NEED_DATA
        at = self._consumed
        try:
            header = parse_header(memoryview(buf)[: HEADER.size], at=at, max_length=self.max_length)
        except FrameError as e:
            if e.reason == "bad magic":  # quote what came instead (parse_header has 4 bytes)
                raise self._bad_magic(at) from None
            self._state, self._error = _DEAD, e
            raise
        meta = META.unpack_from(buf, HEADER.size)
        caps_len = meta[6]
        if caps_len > MAX_CAPS:
            raise self._fail(
                f"caps of {caps_len:,} bytes at byte {at + PREFIX - 2}; max {MAX_CAPS:,} "
                "(MAX_CAPS)",
                at + PREFIX - 2,
                "caps too long",
            )
        if header.flags & FLAG_EOS and caps_len:
            raise self._fail(
                f"EOS frame at byte {at} carries caps (length at byte {at + PREFIX - 2})",
                at + PREFIX - 2,
                "eos with caps",
            )
        self._head_tail = bytes(buf[HEADER.size : PREFIX])
        self._header, self._meta, self._frame_at = header, meta, at
        self._eat(PREFIX)
        self._state = _CAPS
        return self._next_caps()

    def _next_caps(self) -> Event:
        caps_len = self._meta[6]
        if len(self._buf) < caps_len:
            if self._eof:
                raise self._truncated(caps_len - len(self._buf))
            return NEED_DATA
        raw = bytes(self._buf[:caps_len])
        at = self._consumed
        caps = self._parse_caps(raw, at)
        self._head_tail += raw
        self._crc = 0
        self._eat(caps_len)
        header = self._header
        assert header is not None
        seq, pts, dts, duration, offset, bflags, _ = self._meta
        self._pending = header.length
        self._state = _PAYLOAD
        return FrameStart(header, self._frame_at, seq, pts, dts, duration, offset, bflags, caps)

    def _parse_caps(self, raw: bytes, at: int) -> Caps | None:
        if not raw:
            return None
        if raw == self._caps_cache[0]:
            return self._caps_cache[1]
        try:
            caps = Caps.from_string(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise self._fail(
                f"caps at byte {at} are not utf-8 (byte {at + e.start})", at + e.start, "bad caps"
            ) from e
        except (ParseError, ValueError) as e:
            raise self._fail(f"caps at byte {at} do not parse: {e}", at, "bad caps") from e
        self._caps_cache = (raw, caps)
        return caps

    def _finish(self) -> Event:
        header = self._header
        assert header is not None
        self._state = _HEADER
        if self._defer:
            self._defer = False
            end = FrameEnd(header.crc, DeferredCrc(header.crc, self._head_tail, self._frame_at))
        else:
            crc = crc32(self._head_tail, self._crc)
            if crc != header.crc:
                self._state = _DEAD
                self._error = _crc_mismatch(self._frame_at, header.crc, crc)
                raise self._error
            end = FrameEnd(header.crc)
        if header.flags & FLAG_EOS:
            self.eos = True
        else:
            self.frames += 1
        return end
