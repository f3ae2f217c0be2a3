"""`parallax._wire.WireHeader`, the one helper for hand-written binary headers: round
trips at any offset, and a wrong magic, a wrong version and a short or long buffer each
refused with the caller's error naming the field and the byte offset; declarations that
cannot work are refused; every record of the package has its own magic, in docs/wire.md.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax import _wire
from parallax._wire import HeaderFault, WireHeader

DOCS = Path(__file__).resolve().parents[1] / "docs" / "wire.md"


class _Refused(Exception):
    """The caller's error class in these tests: it keeps the fault it was made from."""

    def __init__(self, fault: HeaderFault) -> None:
        super().__init__(fault.message)
        self.fault = fault


# Layouts as the package has them: magic then version (STRM, the GPU handles), a kind
# byte and padding before the magic (HELLO), no version (the GPU buffer record), and a
# big-endian one with a 2-byte magic and a u32 version.
FIRST = WireHeader("a test record", "<4sHIq", magic=b"TWR1", version=3, error=_Refused)
INNER = WireHeader("an inner test record", "<B3x4sBQ", magic=b"TWR2", version=7, error=_Refused)
BARE = WireHeader("a bare test record", "<4sIQ", magic=b"TWR3", error=_Refused)
BIG = WireHeader("a big test record", ">2sIh", magic=b"TW", version=70000, error=_Refused)
PLAIN = WireHeader("a plain test record", "<4sB", magic=b"TWR4", version=1)  # ValueError
TEST_MAGICS = {b"TWR1", b"TWR2", b"TWR3", b"TWR4", b"TW", b"TWX1"}

_U8, _U16, _U32 = st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
_I16, _I64 = st.integers(-(1 << 15), (1 << 15) - 1), st.integers(-(1 << 63), (1 << 63) - 1)
_U64 = st.integers(0, (1 << 64) - 1)
RECORDS: dict[str, tuple[WireHeader, Any]] = {
    "first": (FIRST, st.tuples(_U32, _I64)),
    "inner": (INNER, st.tuples(_U8, _U64)),
    "bare": (BARE, st.tuples(_U32, _U64)),
    "big": (BIG, st.tuples(_I16)),
}
VERSION_CODES: dict[str, str] = {"first": "<H", "inner": "<B", "big": ">I"}  # BARE: none


@st.composite
def _record(draw: st.DrawFn) -> tuple[WireHeader, tuple[Any, ...]]:
    header, fields = RECORDS[draw(st.sampled_from(sorted(RECORDS)))]
    return header, draw(fields)


def _fault(call: Any, *args: Any, **kwargs: Any) -> HeaderFault:
    with pytest.raises(_Refused) as info:
        call(*args, **kwargs)
    return info.value.fault


@given(_record(), st.binary(max_size=20), st.binary(max_size=20), st.integers(0, 1 << 40))
def test_a_record_round_trips_at_any_offset(
    record: tuple[WireHeader, tuple[Any, ...]], before: bytes, after: bytes, at: int
) -> None:
    header, fields = record
    raw = header.pack(*fields)
    assert len(raw) == header.size and header.matches(raw)
    assert header.unpack(raw) == fields
    assert header.unpack_from(before + raw + after, len(before)) == fields
    assert header.unpack_from(memoryview(bytearray(before + raw)), len(before), at=at) == fields
    assert header.fault(raw, exact=True) is None
    header.check(before + raw + after, len(before))  # no error


def test_pack_puts_the_magic_and_version_where_the_layout_says() -> None:
    assert FIRST.pack(5, -1) == struct.pack("<4sHIq", b"TWR1", 3, 5, -1)
    assert INNER.pack(9, 1) == struct.pack("<B3x4sBQ", 9, b"TWR2", 7, 1)
    assert BARE.pack(1, 2) == struct.pack("<4sIQ", b"TWR3", 1, 2)
    assert BIG.pack(-2) == b"TW" + struct.pack(">Ih", 70000, -2)
    assert (INNER.magic_offset, INNER.version_offset, BARE.version_offset) == (4, 8, None)


@given(_record(), st.binary(min_size=4, max_size=4), st.binary(max_size=8), st.integers(0, 999))
def test_a_wrong_magic_is_refused_naming_its_offset(
    record: tuple[WireHeader, tuple[Any, ...]], magic: bytes, before: bytes, at: int
) -> None:
    header, fields = record
    magic = magic[: len(header.magic)]
    raw = bytearray(header.pack(*fields))
    raw[header.magic_offset : header.magic_offset + len(magic)] = magic
    if magic == header.magic:
        assert header.unpack(raw) == fields
        return
    fault = _fault(header.unpack_from, before + raw, len(before), at=at)
    assert (fault.field, fault.offset) == ("magic", at + header.magic_offset)
    assert (fault.found, fault.expected, fault.record) == (magic, header.magic, header.record)
    assert (
        f"magic: expected {header.magic!r} ({header.record}), got {magic!r} at byte "
        f"{at + header.magic_offset}" in fault.message
    )
    # The magic is checked first: a stranger's bytes are named as such even when short.
    short = bytes(raw[: header.magic_offset + len(magic)])
    assert _fault(header.unpack, short).field == "magic"


@given(st.sampled_from(sorted(VERSION_CODES)), st.data(), st.integers(0, 0xFFFFFFFF))
def test_a_wrong_version_is_refused_naming_its_offset(
    name: str, data: st.DataObject, version: int
) -> None:
    header, fields_strategy = RECORDS[name]
    fields, at = data.draw(fields_strategy), data.draw(st.integers(0, 999))
    assert header.version_offset is not None
    raw = bytearray(header.pack(*fields))
    code = VERSION_CODES[name]
    width = struct.calcsize(code)
    version %= 1 << (8 * width)
    raw[header.version_offset : header.version_offset + width] = struct.pack(code, version)
    if version == header.version:
        assert header.unpack(raw) == fields
        return
    fault = _fault(header.unpack, raw, at=at)
    assert (fault.field, fault.offset) == ("version", at + header.version_offset)
    assert (fault.found, fault.expected) == (version, header.version)
    assert fault.message == (
        f"version: expected {header.version}, got {version} at byte "
        f"{at + header.version_offset} ({header.record})"
    )


@given(_record(), st.data(), st.integers(0, 999))
def test_a_short_buffer_is_refused_naming_where_it_ends(
    record: tuple[WireHeader, tuple[Any, ...]], data: st.DataObject, at: int
) -> None:
    header, fields = record
    raw = header.pack(*fields)
    n = data.draw(st.integers(0, header.size - 1))
    for fault in (
        _fault(header.unpack, raw[:n], at=at),
        _fault(header.unpack_from, b"pad" + raw[:n], 3, at=at),
    ):
        assert (fault.field, fault.offset, fault.found, fault.expected) == (
            "length",
            at + n,
            n,
            header.size,
        )
        assert f"{header.record}: {n} bytes, expected {header.size}" in fault.message
        assert f"cut short at byte {at + n}" in fault.message


@given(_record(), st.binary(min_size=1, max_size=9))
def test_unpack_wants_the_exact_size_and_unpack_from_a_prefix(
    record: tuple[WireHeader, tuple[Any, ...]], extra: bytes
) -> None:
    header, fields = record
    raw = header.pack(*fields) + extra
    fault = _fault(header.unpack, raw, at=10)
    assert (fault.field, fault.offset, fault.found) == ("length", 10 + header.size, len(raw))
    assert f"{len(extra):,} extra from byte {10 + header.size}" in fault.message
    assert header.unpack_from(raw) == fields


@given(st.sampled_from(sorted(RECORDS)), st.binary(max_size=40), st.integers(0, 8))
def test_any_bytes_decode_or_raise_the_callers_error(name: str, raw: bytes, offset: int) -> None:
    header = RECORDS[name][0]
    hidden = 1 if header.version is None else 2  # the magic, and the version if any
    for exact, start in ((True, 0), (False, offset)):
        fault = header.fault(raw, start, exact=exact)
        try:
            fields = header.unpack(raw) if exact else header.unpack_from(raw, start)
        except _Refused as e:
            refused: HeaderFault | None = e.fault
        else:
            refused = None
            assert len(fields) == len(header.struct.unpack_from(raw, start)) - hidden
        assert refused == fault  # a decoder raises exactly what fault() finds, or returns


def test_the_default_error_is_a_value_error_and_the_fault_reads_as_its_message() -> None:
    with pytest.raises(ValueError, match=r"^version: expected 1, got 2 at byte 4 \(a plain"):
        PLAIN.unpack(b"TWR4\x02")
    fault = PLAIN.fault(b"TWR4")
    assert fault is not None and str(fault) == fault.message
    assert str(fault) == "a plain test record: 4 bytes, expected 5 at least (cut short at byte 4)"
    with pytest.raises(ValueError, match="offset -1, expected >= 0"):
        PLAIN.unpack_from(b"TWR4\x01", -1)
    assert not PLAIN.matches(b"TWR") and PLAIN.matches(b"xTWR4", 1)


def test_another_records_magic_is_named() -> None:
    fault = _fault(FIRST.unpack_from, BARE.pack(1, 2) + bytes(8))
    assert fault.message.endswith("got b'TWR3' at byte 0, the magic of a bare test record")


def test_pack_names_the_record_when_a_field_does_not_fit() -> None:
    with pytest.raises(struct.error, match="cannot pack a test record: "):
        FIRST.pack(1 << 40, 0)
    with pytest.raises(struct.error, match="cannot pack a bare test record: "):
        BARE.pack(1)  # a field missing


@pytest.mark.parametrize(
    ("fmt", "kwargs", "match"),
    [
        ("4sH", {"magic": b"TWX1"}, "must start with a byte order"),
        ("@4sH", {"magic": b"TWX1"}, "must start with a byte order"),
        ("<3sH", {"magic": b"TWX1"}, r"has no 4s field for magic b'TWX1'"),
        ("<4sH", {"magic": b""}, "has no 0s field"),
        ("<4s", {"magic": b"TWX1", "version": 1}, "no integer field after the magic"),
        ("<4s8s", {"magic": b"TWX1", "version": 1}, "no integer field after the magic"),
        ("<4sB", {"magic": b"TWX1", "version": 256}, "version 256 does not fit"),
        ("<4sH", {"magic": b"TWR1"}, r"magic b'TWR1' is already a test record's"),
        ("<4s?H", {"magic": b"TWX1"}, None),  # a good one, for contrast
    ],
)
def test_a_declaration_that_cannot_work_is_refused(
    fmt: str, kwargs: dict[str, Any], match: str | None
) -> None:
    if match is None:
        assert WireHeader("a contrast record", fmt, **kwargs).size == 7
        return
    with pytest.raises(ValueError, match=match):
        WireHeader("a refused record", fmt, **kwargs)


def test_the_same_record_may_be_declared_again() -> None:
    # A module imported twice (importlib.reload) declares its record twice: that is the
    # same record, not a second one with its magic.
    again = WireHeader("a test record", "<4sHIq", magic=b"TWR1", version=3, error=_Refused)
    assert again.unpack(FIRST.pack(1, 2)) == (1, 2)


def test_every_record_of_the_package_has_its_own_magic_listed_in_docs_wire_md() -> None:
    import parallax.gpu
    import parallax.link  # noqa: F401  (their records are declared on import)

    ours = {m: name for m, name in _wire.declared().items() if m not in TEST_MAGICS}
    assert {b"STRM", b"PXGH", b"PXGS", b"PXCU", b"PXCB"} <= set(ours)
    rows = re.findall(r"^\| `([A-Z]{4})` \| ([^|]+) \|", DOCS.read_text(), re.MULTILINE)
    listed = {magic.encode(): record.strip() for magic, record in rows}
    assert len(listed) == len(rows), "docs/wire.md lists a magic twice"
    for magic, record in ours.items():
        assert listed.get(magic) == record, f"docs/wire.md's record table: {magic!r} {record}"
    with pytest.raises(TypeError):
        _wire.declared()[b"TWZZ"] = "a record slipped in"  # type: ignore[index]
