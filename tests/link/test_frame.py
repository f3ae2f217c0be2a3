"""The STRM codec: round trips, strict rejection with byte offsets, and fuzzing."""

from __future__ import annotations

import contextlib
import pickle
import random
import struct
import time
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallax.caps import Caps
from parallax.link import (
    CLOSED,
    FLAG_EOS,
    HEADER,
    MAGIC,
    MAX_CAPS,
    NEED_DATA,
    PREFIX,
    FrameDecoder,
    FrameEnd,
    FrameError,
    FrameStart,
    PayloadData,
    encode_eos,
    encode_frame,
    encode_head,
    parse_header,
)

CAPS = b"tensor,dtype=float32"


def decode_all(
    data: bytes, chunks: list[int] | None = None, *, max_length: int = 1 << 26, eos: bool = False
) -> list[object]:
    """Feed `data` (in chunks of the given sizes, cycling) then EOF; return every event,
    payloads joined per frame as bytes. Unless `eos`, the stream may end without its EOS
    frame (most tests here are about frames, not about how a stream ends)."""
    dec = FrameDecoder(max_length=max_length, require_eos=eos)
    out: list[object] = []
    pos, i = 0, 0
    payload = bytearray()
    while True:
        ev = dec.next_event()
        if ev is NEED_DATA:
            size = chunks[i % len(chunks)] if chunks else len(data)
            i += 1
            piece = data[pos : pos + max(size, 1)]
            pos += len(piece)
            dec.receive_data(piece)
        elif ev is CLOSED:
            return out
        elif isinstance(ev, PayloadData):
            payload += ev.data
        elif isinstance(ev, FrameEnd):
            out.append(bytes(payload))
            payload.clear()
        else:
            out.append(ev)


def test_round_trip_metadata_and_caps() -> None:
    frames = (
        encode_frame(
            b"hello",
            sequence=7,
            pts=1000,
            dts=900,
            duration=40,
            offset=123,
            buffer_flags=3,
            caps=CAPS,
        )
        + encode_frame(b"")
        + encode_eos()
    )
    events = decode_all(frames)
    start = events[0]
    assert isinstance(start, FrameStart)
    assert (start.sequence, start.pts, start.dts, start.duration) == (7, 1000, 900, 40)
    assert (start.buffer_offset, start.buffer_flags, start.length) == (123, 3, 5)
    assert start.caps == Caps.from_string(CAPS.decode())
    assert events[1] == b"hello"
    assert isinstance(events[2], FrameStart) and events[2].caps is None
    assert events[3] == b""
    assert isinstance(events[4], FrameStart) and events[4].eos
    assert len(events) == 6


def test_header_layout_is_little_endian() -> None:
    frame = encode_frame(b"abc")
    assert frame[:4] == MAGIC
    assert frame[4:6] == b"\x01\x00"  # version 1
    assert frame[8:12] == b"\x03\x00\x00\x00"
    # The CRC covers payload ‖ meta ‖ caps (no caps here).
    assert struct.unpack_from("<I", frame, 12)[0] == zlib.crc32(
        frame[HEADER.size : PREFIX] + b"", zlib.crc32(b"abc")
    )
    assert struct.unpack_from("<I", frame, 12)[0] == zlib.crc32(
        b"abc" + frame[HEADER.size : PREFIX]
    )
    assert len(frame) == PREFIX + 3
    eos = encode_eos()
    assert len(eos) == PREFIX and struct.unpack_from("<H", eos, 6)[0] == FLAG_EOS


def test_zero_copy_payload_path() -> None:
    payload = bytes(range(256)) * 40
    frame = encode_frame(payload, caps=CAPS)
    dec = FrameDecoder()
    dec.receive_data(frame[: PREFIX + len(CAPS) + 100])  # 100 payload bytes read ahead
    start = dec.next_event()
    assert isinstance(start, FrameStart)
    dest = bytearray(start.length)
    view = memoryview(dest)
    got = dec.take_payload(view)
    assert got == 100
    rest = frame[PREFIX + len(CAPS) + 100 :]
    view[got:] = rest  # as if recv_into'd straight from the socket
    dec.payload_received(view[got:])
    assert isinstance(dec.next_event(), FrameEnd)
    assert bytes(dest) == payload
    assert dec.offset == len(frame)


def test_bytes_needed_never_reads_into_payload() -> None:
    dec = FrameDecoder()
    assert dec.bytes_needed == PREFIX
    frame = encode_frame(b"x" * 10, caps=CAPS)
    dec.receive_data(frame[:PREFIX])
    assert dec.next_event() is NEED_DATA
    assert dec.bytes_needed == len(CAPS)
    dec.receive_data(frame[PREFIX : PREFIX + len(CAPS)])
    assert isinstance(dec.next_event(), FrameStart)
    assert dec.bytes_needed == 0 and dec.pending_payload == 10


def _expect(data: bytes, reason: str, offset: int, **kw: Any) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_all(data, **kw)
    assert info.value.reason == reason
    assert info.value.offset == offset
    assert f"byte {offset}" in str(info.value) or f"byte {info.value.offset}" in str(info.value)
    return info.value


def test_bad_magic_names_offset() -> None:
    good = encode_frame(b"12345")
    bad = b"XTRM" + good[4:]
    _expect(good + bad, "bad magic", len(good))


def test_unknown_version_and_flags() -> None:
    good = encode_frame(b"a")
    _expect(good[:4] + b"\x02\x00" + good[6:], "unknown version", 4)
    _expect(good[:6] + b"\x02\x00" + good[8:], "unknown flags", 6)


def test_length_over_maximum_rejected_before_payload() -> None:
    head = encode_head(1 << 30, payload_crc=0)
    dec = FrameDecoder()
    dec.receive_data(head)  # no payload at all: the length alone is enough to refuse
    with pytest.raises(FrameError) as info:
        dec.next_event()
    assert info.value.reason == "too long" and info.value.offset == 8
    assert "max 67,108,864" in str(info.value)
    _expect(encode_frame(b"x" * 100), "too long", 8, max_length=99)


def test_crc_mismatch() -> None:
    first = encode_frame(b"ok")
    frame = bytearray(encode_frame(b"payload"))
    frame[-1] ^= 0xFF
    err = _expect(first + bytes(frame), "crc mismatch", len(first) + 12)
    assert f"frame at byte {len(first)}" in str(err)


def test_truncated_frame() -> None:
    frame = encode_frame(b"0123456789", caps=CAPS)
    for cut in (1, HEADER.size, PREFIX, PREFIX + 3, len(frame) - 1):
        _expect(frame[:cut], "truncated", cut)


def test_caps_bounded_and_checked() -> None:
    head = bytearray(encode_frame(b""))
    struct.pack_into("<H", head, PREFIX - 2, MAX_CAPS + 1)  # a frame no encoder would make
    err = _expect(bytes(head) + b"x" * (MAX_CAPS + 1), "caps too long", PREFIX - 2)
    assert f"caps of {MAX_CAPS + 1:,} bytes" in str(err) and f"max {MAX_CAPS:,}" in str(err)
    _expect(encode_frame(b"", caps=b"\xff\xfe"), "bad caps", PREFIX)
    _expect(encode_frame(b"", caps=b"((("), "bad caps", PREFIX)


def test_eos_frame_must_be_empty() -> None:
    head = bytearray(encode_head(3, payload_crc=zlib.crc32(b"abc"), flags=FLAG_EOS)) + b"abc"
    _expect(bytes(head), "eos with payload", 8)


def test_decoder_stays_failed() -> None:
    dec = FrameDecoder()
    dec.receive_data(b"Z" * PREFIX)
    with pytest.raises(FrameError):
        dec.next_event()
    with pytest.raises(FrameError):
        dec.next_event()
    with pytest.raises(FrameError):
        dec.receive_data(b"more")


def test_frame_error_pickles() -> None:
    err = FrameError("bad magic at byte 5", offset=5, reason="bad magic")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.offset, back.reason, str(back)) == (
        FrameError,
        5,
        "bad magic",
        "bad magic at byte 5",
    )
    assert isinstance(back, ValueError)


@given(st.binary(min_size=HEADER.size, max_size=HEADER.size))
def test_any_header_parses_or_raises_frame_error(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_header(memoryview(raw), at=0, max_length=1 << 20)


@given(st.binary(max_size=400), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_any_bytes_in_any_chunks_parse_or_raise(data: bytes, chunks: list[int]) -> None:
    with contextlib.suppress(FrameError):
        decode_all(data, chunks)


payloads = st.lists(
    st.tuples(
        st.binary(max_size=300),
        st.integers(-(1 << 63), (1 << 63) - 1),
        st.sampled_from([b"", CAPS, b"bytes"]),
    ),
    max_size=6,
)


@given(payloads, st.lists(st.integers(1, 97), min_size=1, max_size=5))
def test_valid_streams_round_trip_in_any_chunks(
    frames: list[tuple[bytes, int, bytes]], chunks: list[int]
) -> None:
    data = b"".join(encode_frame(p, pts=pts, caps=caps) for p, pts, caps in frames)
    events = decode_all(data, chunks)
    starts = [e for e in events if isinstance(e, FrameStart)]
    bodies = [e for e in events if isinstance(e, bytes)]
    assert [s.pts for s in starts] == [pts for _, pts, _ in frames]
    assert bodies == [p for p, _, _ in frames]


@settings(max_examples=200)
@given(payloads, st.data())
def test_mutated_streams_parse_or_raise(
    frames: list[tuple[bytes, int, bytes]], data: st.DataObject
) -> None:
    raw = bytearray(b"".join(encode_frame(p, pts=pts, caps=caps) for p, pts, caps in frames))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FrameError):
        decode_all(bytes(raw), [data.draw(st.integers(1, 200))])


def _fuzz(count: int, seed: int = 2) -> int:
    """Feed `count` mutated frames; returns how many were rejected. Any exception other
    than FrameError propagates (a crash)."""
    rng = random.Random(seed)
    corpus = [
        encode_frame(b"", caps=CAPS),
        encode_frame(b"x" * 40, sequence=1, pts=5, caps=b"bytes"),
        encode_frame(bytes(range(200))),
        encode_eos(),
    ]
    rejected = 0
    for _ in range(count):
        frame = bytearray(rng.choice(corpus))
        kind = rng.randrange(4)
        if kind == 0:  # flip bytes
            for _ in range(rng.randint(1, 3)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        elif kind == 1:  # truncate
            del frame[rng.randrange(len(frame)) :]
        elif kind == 2:  # overwrite a header field with an extreme value
            at = rng.choice((4, 6, 8, 12, PREFIX - 2))
            width = 4 if at in (8, 12) else 2
            frame[at : at + width] = rng.choice((b"\xff", b"\x00", b"\x7f")) * width
        else:  # insert junk
            at = rng.randrange(len(frame) + 1)
            frame[at:at] = rng.randbytes(rng.randint(1, 8))
        dec = FrameDecoder(max_length=1 << 16)
        try:
            dec.receive_data(frame)
            dec.receive_data(b"")
            while dec.next_event() is not CLOSED:
                pass
        except FrameError:
            rejected += 1
    return rejected


def test_fuzz_10k_mutated_frames() -> None:
    assert _fuzz(10_000) > 5_000


@pytest.mark.slow
def test_fuzz_1m_mutated_frames() -> None:
    t0 = time.perf_counter()
    rejected = _fuzz(1_000_000, seed=3)
    took = time.perf_counter() - t0
    print(f"fuzz: 1,000,000 mutated frames, {rejected:,} rejected, {took:.1f} s, no crash")
    assert rejected > 500_000


def test_deferred_crc_is_checked_by_the_caller() -> None:
    payload = b"p" * 1000
    frame = encode_frame(payload, caps=CAPS)
    for corrupt in (False, True):
        dec = FrameDecoder()
        dec.receive_data(frame[: PREFIX + len(CAPS)])
        start = dec.next_event()
        assert isinstance(start, FrameStart)
        dec.defer_crc()
        body = bytearray(payload)
        if corrupt:
            body[10] ^= 1
        dec.payload_received(body)
        end = dec.next_event()
        assert isinstance(end, FrameEnd) and end.deferred is not None
        if corrupt:
            with pytest.raises(FrameError) as info:
                end.deferred.verify(zlib.crc32(body))
            assert info.value.reason == "crc mismatch" and info.value.offset == 12
        else:
            end.deferred.verify(zlib.crc32(body))
        assert dec.next_event() is NEED_DATA  # the decoder goes on with the next frame


# -- how a stream ends -------------------------------------------------------------------


def test_a_stream_ends_with_its_eos_frame() -> None:
    frames = encode_frame(b"one", caps=CAPS) + encode_frame(b"two") + encode_eos()
    events = decode_all(frames, eos=True)
    assert [e for e in events if isinstance(e, bytes)] == [b"one", b"two", b""]
    dec = FrameDecoder()
    dec.receive_data(frames)
    dec.receive_data(b"")
    while dec.next_event() is not CLOSED:
        pass
    assert (dec.frames, dec.eos) == (2, True)


def test_eof_at_a_frame_boundary_without_eos_is_no_eos() -> None:
    # The sender died between two frames: by default an error, not a clean end.
    two = encode_frame(b"one", caps=CAPS) + encode_frame(b"two")
    err = _expect(two, "no eos", len(two), eos=True)
    assert f"stream ended at byte {len(two)} without an EOS frame, after 2 whole frames" in (
        str(err)
    )
    assert "after 0 whole frames" in str(_expect(b"", "no eos", 0, eos=True))
    # require_eos=False: a peer that cannot send one (`cat frames | nc`) ends cleanly.
    assert decode_all(two)[1::2] == [b"one", b"two"]


def test_data_after_eos_frame_then_eof_still_closes() -> None:
    dec = FrameDecoder()
    dec.receive_data(encode_eos())
    assert isinstance(dec.next_event(), FrameStart)
    assert isinstance(dec.next_event(), FrameEnd)
    assert dec.next_event() is NEED_DATA
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED


@pytest.mark.parametrize("probe", [b"hi\n", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\x16\x03\x01"])
def test_a_short_non_strm_probe_is_bad_magic_with_the_bytes_seen(probe: bytes) -> None:
    # `echo hi | nc host port`: fewer bytes than a header, then EOF. Bad magic (not a
    # truncated frame, not a clean end), quoting what came; refused before the EOF too.
    err = _expect(probe, "bad magic", 0, eos=True)
    assert repr(probe[:16]) in str(err) and f"{len(probe)} bytes seen" in str(err)
    dec = FrameDecoder()
    dec.receive_data(probe)
    with pytest.raises(FrameError, match="bad magic at byte 0"):
        dec.next_event()  # no EOF yet: the first bytes are enough to refuse


def test_a_strm_prefix_cut_short_is_truncated_not_bad_magic() -> None:
    for cut in (1, 3, 4, 20):
        assert "after 1 whole frame" in str(
            _expect(encode_frame(b"a") + encode_frame(b"b")[:cut], "truncated", PREFIX + 1 + cut)
        )


def test_bad_magic_quotes_at_most_16_bytes() -> None:
    junk = b"0123456789abcdefXYZ" * 4
    err = _expect(encode_frame(b"ok") + junk, "bad magic", PREFIX + 2)
    assert repr(junk[:16]) + ", ..." in str(err)


# -- the caps limit: one number on both sides --------------------------------------------

_CAPS_FIELD = b"application/x-test,note="


def _caps_of_length(n: int, fill: str) -> bytes:
    """A valid caps string of exactly `n` utf-8 bytes (`fill`: one ascii letter)."""
    return _CAPS_FIELD + fill.encode() * (n - len(_CAPS_FIELD))


@settings(max_examples=50)
@given(
    st.integers(MAX_CAPS - 64, MAX_CAPS),
    st.sampled_from("abcXYZ"),
    st.binary(max_size=64),
    st.lists(st.integers(61, 5000), min_size=1, max_size=4),
)
def test_caps_at_the_limit_round_trip(n: int, fill: str, payload: bytes, chunks: list[int]) -> None:
    caps = _caps_of_length(n, fill)
    assert len(caps) == n
    frame = encode_frame(payload, sequence=n, caps=caps) + encode_eos()
    events = decode_all(frame, chunks, eos=True)
    start = events[0]
    assert isinstance(start, FrameStart) and start.sequence == n
    assert start.caps == Caps.from_string(caps.decode())
    assert events[1] == payload


@given(st.integers(MAX_CAPS + 1, 0xFFFF), st.sampled_from("abc"))
def test_the_encoder_refuses_caps_over_the_limit(n: int, fill: str) -> None:
    with pytest.raises(FrameError) as info:
        encode_head(0, payload_crc=0, caps=_caps_of_length(n, fill))
    assert info.value.reason == "caps too long"
    assert f"caps of {n:,} bytes" in str(info.value)
    assert f"the limit is {MAX_CAPS:,} bytes" in str(info.value)


def test_the_limit_is_4096_and_the_decoder_uses_it() -> None:
    assert MAX_CAPS == 4096 == FrameDecoder.max_caps
    encode_head(0, payload_crc=0, caps=_caps_of_length(MAX_CAPS, "a"))  # the limit itself
    with pytest.raises(FrameError, match="caps of 4,097 bytes"):
        encode_frame(b"", caps=_caps_of_length(MAX_CAPS + 1, "a"))
