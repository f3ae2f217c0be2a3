"""Buffer: zero-copy views, read-only after push, sub-buffers, NumPy and DLPack."""

from __future__ import annotations

import numpy as np
import pytest

from parallax.buffer import Buffer, BufferFlags, Metadata
from parallax.memory import HeapSegment, SlotPool


def test_bytes_like_are_viewed_not_copied() -> None:
    data = bytearray(b"hello world")
    buf = Buffer(data)
    data[0] = ord("H")
    assert buf.to_bytes() == b"Hello world"
    assert len(buf) == buf.size == 11


def test_window_and_sub_share_memory() -> None:
    data = bytearray(range(10))
    buf = Buffer(data, start=2, size=6)
    sub = buf.sub(1, 3)
    assert sub.to_bytes() == bytes([3, 4, 5])
    sub.view[0] = 99
    assert data[3] == 99
    assert buf[1:4].to_bytes() == bytes([99, 4, 5])


@pytest.mark.parametrize(("start", "size"), [(-1, 2), (0, 11), (5, 6), (0, -1)])
def test_window_outside_memory_is_a_precise_error(start: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside the 10-byte memory"):
        Buffer(bytearray(10), start=start, size=size)


def test_sub_outside_buffer_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside this 4-byte buffer"):
        Buffer(bytes(4)).sub(2, 3)


def test_wrong_kind_of_data_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not int"):
        Buffer(42)  # type: ignore[arg-type]


def test_readonly_blocks_writes_and_copy_is_writable() -> None:
    buf = Buffer(bytearray(4))
    buf.make_readonly()
    with pytest.raises(TypeError):
        buf.view[0] = 1
    copy = buf.copy()
    copy.view[0] = 7
    assert buf.to_bytes() == bytes(4)
    assert not copy.readonly


def test_numpy_view_without_copy() -> None:
    data = bytearray(8)
    buf = Buffer(data)
    arr = np.asarray(buf)
    arr[0] = 5
    assert data[0] == 5
    assert buf.array(np.uint32).shape == (2,)
    assert buf.array(np.uint16, (2, 2)).shape == (2, 2)


def test_numpy_of_readonly_buffer_is_readonly() -> None:
    buf = Buffer(bytearray(8))
    buf.make_readonly()
    assert not np.asarray(buf).flags.writeable


def test_dlpack_round_trip_shares_memory() -> None:
    data = bytearray(range(16))
    buf = Buffer(data)
    arr = np.from_dlpack(buf)
    assert arr.ctypes.data == np.asarray(buf).ctypes.data
    assert buf.__dlpack_device__() == (1, 0)


def test_buffer_on_pool_slot_keeps_slot_until_buffer_and_views_go() -> None:
    with SlotPool(64, 2, name="t") as pool:
        buf = Buffer(pool.loan(), size=10)
        view = buf.view
        assert pool.available == 1
        del buf
        assert pool.available == 1  # the view still pins the slot
        del view
        assert pool.available == 2


def test_buffer_on_segment() -> None:
    with HeapSegment(4096) as seg:
        buf = Buffer(seg, start=100, size=50)
        buf.view[0] = 1
        assert seg.view[100] == 1
        del buf


def test_metadata_snapshot_and_repr() -> None:
    buf = Buffer(b"x", sequence=3, pts=10, flags=BufferFlags.DISCONT)
    assert buf.metadata == Metadata(sequence=3, pts=10, flags=BufferFlags.DISCONT)
    assert "#3" in repr(buf) and "pts=10" in repr(buf)


def test_step_slices_are_refused() -> None:
    with pytest.raises(TypeError, match="sliced"):
        Buffer(b"abcd")[::2]


def test_owner_and_owner_offset_name_the_memory_under_a_sub_buffer() -> None:
    data = bytearray(b"0123456789")
    buf = Buffer(data)
    sub = buf.sub(3, 4)
    assert sub.owner is buf.owner
    assert (buf.owner_offset, sub.owner_offset) == (0, 3)
    assert bytes(sub.view) == b"3456"


def test_copy_metadata_from_takes_times_offset_and_flags_not_sequence_or_caps() -> None:
    src = Buffer(b"ab", sequence=9, pts=10, dts=11, duration=12, offset=13)
    out = Buffer(b"xy", sequence=1)
    out.copy_metadata_from(src)
    assert (out.pts, out.dts, out.duration, out.offset) == (10, 11, 12, 13)
    assert out.sequence == 1 and out.flags == src.flags
