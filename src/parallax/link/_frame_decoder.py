"""`FrameDecoder`: the STRM stream parser, incremental and pure (the format, its limits and
its errors are in `_frame.py`'s docstring; docs/wire.md has the byte table).
"""

from __future__ import annotations

from typing import Final

from parallax._errors import ParseError
from parallax.caps import Caps

from ._frame import (
    _SHOWN,
    CLOSED,
    DEFAULT_MAX_LENGTH,
    FLAG_EOS,
    HEADER,
    MAGIC,
    MAX_CAPS,
    META,
    NEED_DATA,
    PREFIX,
    DeferredCrc,
    Event,
    FrameEnd,
    FrameError,
    FrameHeader,
    FrameStart,
    PayloadData,
    _crc_mismatch,
    crc32,
    parse_header,
)

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
