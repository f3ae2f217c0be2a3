"""HELLO, the shared-memory link's greeting: round trip, every refusal, and a fuzz."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax.link._hello import HELLO, MAX_SLOTS, Hello, decode_hello, encode_hello


def test_round_trip() -> None:
    hello = Hello(slots=3, slot_size=100, size=4096, offsets=(0, 128, 256))
    data = encode_hello(hello)
    assert len(data) == HELLO.size + 3 * 8
    assert decode_hello(data) == hello


def _raw(slots: int, slot_size: int, size: int, offsets: list[int], **kw: object) -> bytes:
    kind, magic, version = kw.get("kind", 1), kw.get("magic", b"PLXS"), kw.get("version", 2)
    head = HELLO.pack(kind, magic, version, 0, slots, slot_size, size)
    return head + struct.pack(f"<{len(offsets)}Q", *offsets)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01PLXS", r"a HELLO: 5 bytes, expected 32 at least \(cut short at byte 5\)"),
        (_raw(1, 8, 64, [0], kind=5), r"not a HELLO \(kind 5"),
        (_raw(1, 8, 64, [0], magic=b"PLXR"), "magic: expected b'PLXS' .*got b'PLXR' at byte 4"),
        (_raw(1, 8, 64, [0], version=3), "version: expected 2, got 3 at byte 8"),
        (_raw(0, 8, 64, []), "a pool of 0 x 8 bytes"),
        (_raw(MAX_SLOTS + 1, 8, 1 << 20, []), "a pool of 4097 x 8 bytes"),
        (_raw(1, 0, 64, [0]), "a pool of 1 x 0 bytes"),
        (_raw(2, 8, 64, [0]), "a HELLO of 40 bytes; 2 slots make it 48"),
        (_raw(2, 8, 64, [0, 60]), "slot 1 at byte 60 ends past the 64-byte segment"),
        (_raw(1, 8, 64, [2**64 - 1]), "slot 0 at byte 18,446,744,073,709,551,615 ends past"),
    ],
)
def test_a_bad_hello_is_refused_with_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_hello(data)


@given(st.binary(max_size=HELLO.size + 64))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        hello = decode_hello(data)
        assert all(o + hello.slot_size <= hello.size for o in hello.offsets)


@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(1, 1 << 20),
            st.integers(0, 1 << 30),
            st.lists(st.integers(0, 1 << 30), min_size=n, max_size=n),
        )
    )
)
def test_decode_checks_every_slot_against_the_segment(
    fields: tuple[int, int, int, list[int]],
) -> None:
    slots, slot_size, size, offsets = fields
    data = _raw(slots, slot_size, size, offsets)
    if all(o + slot_size <= size for o in offsets):
        assert decode_hello(data) == Hello(slots, slot_size, size, tuple(offsets))
    else:
        with pytest.raises(ValueError, match="ends past"):
            decode_hello(data)
