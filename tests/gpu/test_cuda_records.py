"""The CUDA wire records, without a GPU: `CudaHandle` (magic PXCU) and the shared-memory
link's `CudaBufferRecord` (magic PXCB). Each decoder refuses the other's bytes naming the
magic it got, and any input decodes or raises the one documented error."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax.gpu import CudaBufferRecord, CudaHandle, HandleError, HandleKind
from parallax.gpu._cuda_handle import MAGIC as HANDLE_MAGIC
from parallax.gpu._cuda_record import MAGIC as RECORD_MAGIC

UUID = bytes(range(16))


def _handle(size: int = 4096) -> CudaHandle:
    return CudaHandle(HandleKind.MEMORY_IPC, UUID, 1234, size, 1 << 21, b"\x07" * 64)


def test_the_two_records_have_distinct_magics() -> None:
    assert HANDLE_MAGIC == b"PXCU" and RECORD_MAGIC == b"PXCB"
    record = CudaBufferRecord(0, 16, 100, _handle())
    assert record.to_bytes()[:4] == RECORD_MAGIC
    assert record.handle.to_bytes()[:4] == HANDLE_MAGIC


def test_records_round_trip() -> None:
    handle = _handle()
    assert CudaHandle.from_bytes(handle.to_bytes()) == handle
    record = CudaBufferRecord(3, 16, 100, handle)
    assert CudaBufferRecord.from_bytes(record.to_bytes()) == record
    assert CudaBufferRecord.from_bytes(memoryview(record.to_bytes())) == record
    assert record.key == handle.to_bytes()
    assert CudaBufferRecord.is_record(record.to_bytes())
    assert not CudaBufferRecord.is_record(handle.to_bytes())


def test_a_buffer_record_fed_to_the_handle_decoder_is_refused_naming_its_magic() -> None:
    raw = CudaBufferRecord(0, 0, 10, _handle()).to_bytes()
    with pytest.raises(
        HandleError, match=r"magic: expected b'PXCU' \(a CUDA handle\), got b'PXCB'"
    ) as info:
        CudaHandle.from_bytes(raw)
    assert info.value.field == "magic"
    assert "at byte 0, the magic of a GPU buffer record" in str(info.value)


def test_a_handle_fed_to_the_record_decoder_is_refused_naming_its_magic() -> None:
    raw = _handle().to_bytes()
    with pytest.raises(
        HandleError, match=r"expected b'PXCB' \(a GPU buffer record\), got b'PXCU'"
    ) as info:
        CudaBufferRecord.from_bytes(raw)
    assert info.value.field == "magic"
    assert "at byte 0, the magic of a CUDA handle" in str(info.value)


def test_bad_records_name_what_is_wrong() -> None:
    good = CudaBufferRecord(0, 0, 10, _handle()).to_bytes()
    with pytest.raises(HandleError, match="12 bytes, expected 24"):
        CudaBufferRecord.from_bytes(RECORD_MAGIC + b"\x00" * 8)
    with pytest.raises(HandleError, match="CUDA handle: 107 bytes, expected 108"):
        CudaBufferRecord.from_bytes(good[:-1])  # a truncated handle
    with pytest.raises(HandleError, match="magic: expected b'PXCU'"):
        CudaBufferRecord.from_bytes(good[:24] + b"XXXX" + good[28:])  # the inner handle's
    with pytest.raises(
        HandleError, match=r"size: the record names bytes 4000\.\.5000 of a 4096-byte"
    ) as info:
        CudaBufferRecord(0, 4000, 1000, _handle())
    assert info.value.field == "size"
    with pytest.raises(HandleError, match="start: expected") as info:
        CudaBufferRecord(0, -1, 10, _handle())
    assert info.value.field == "start"
    with pytest.raises(HandleError, match="device: expected"):
        CudaBufferRecord(True, 0, 10, _handle())  # a bool is no ordinal
    with pytest.raises(HandleError, match="handle: expected a CudaHandle"):
        CudaBufferRecord(0, 0, 10, b"PXCU")  # type: ignore[arg-type]


def test_bad_handles_name_the_field() -> None:
    raw = bytearray(_handle().to_bytes())
    raw[4] = 9  # version
    with pytest.raises(HandleError, match="version: expected 1, got 9"):
        CudaHandle.from_bytes(bytes(raw))
    raw[4], raw[5] = 1, 77  # kind
    with pytest.raises(HandleError, match="kind: unknown kind 77"):
        CudaHandle.from_bytes(bytes(raw))
    with pytest.raises(HandleError, match="CUDA handle: 3 bytes"):
        CudaHandle.from_bytes(b"PXC")


@given(st.binary(max_size=160))
def test_any_bytes_decode_or_raise_handle_error(raw: bytes) -> None:
    with contextlib.suppress(HandleError):
        CudaBufferRecord.from_bytes(raw)
    with contextlib.suppress(HandleError):
        CudaHandle.from_bytes(raw)


@given(st.binary(min_size=128, max_size=128))
def test_any_record_body_decodes_or_raises_handle_error(body: bytes) -> None:
    with contextlib.suppress(HandleError):
        CudaBufferRecord.from_bytes(RECORD_MAGIC + body)
