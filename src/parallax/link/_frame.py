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
sent from where it lies); `FrameDecoder` (_frame_decoder.py) parses a stream
incrementally in h11's style —
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

from parallax._errors import ParallaxError
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
