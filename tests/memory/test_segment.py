"""Segments: every kind, their lifetimes, sealing, huge-page fallbacks and bad input."""

from __future__ import annotations

import errno
import fcntl
import gc
import mmap
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from parallax._errors import ClosedError, HugePagesUnavailable, StateError
from parallax.memory import (
    FileSegment,
    HeapSegment,
    HugePageSegment,
    MemfdSegment,
    MemoryType,
    Segment,
    _hugepage,
)


def assert_closed(fd: int) -> None:
    with pytest.raises(OSError, match="Bad file descriptor") as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


# -- common behaviour ---------------------------------------------------------------------


def test_heap_segment_basics() -> None:
    with HeapSegment(10_000, name="scratch") as seg:
        assert seg.size == len(seg) == 10_000
        assert seg.memory_type is MemoryType.HEAP
        assert seg.name == "scratch"
        assert not seg.readonly
        assert not seg.closed
        view = seg.view
        assert len(view) == 10_000
        assert not view.readonly
        view[:3] = b"abc"
        assert seg.mmap[:3] == b"abc"
        del view
    assert seg.closed


def test_close_is_idempotent_and_use_after_close_raises() -> None:
    seg = HeapSegment(4096)
    seg.close()
    seg.close()
    with pytest.raises(ClosedError, match="closed"):
        _ = seg.view
    with pytest.raises(ClosedError):
        _ = seg.mmap


def test_close_with_a_live_view_is_a_state_error_and_can_be_retried() -> None:
    seg = MemfdSegment(8192, name="busy")
    view = seg.view
    with pytest.raises(StateError, match=r"MemfdSegment 'busy' \(8,192 bytes\)") as info:
        seg.close()
    assert isinstance(info.value.__cause__, BufferError)
    assert not seg.closed
    os.fstat(seg.fd)  # the fd is still the segment's, not leaked or closed
    del view
    seg.close()
    assert seg.closed


def test_release_with_a_live_view_closes_now_and_unmaps_with_the_last_view() -> None:
    seg = MemfdSegment(8192, name="released")
    view = seg.view
    fd = seg.fd
    seg.release()  # no StateError: the view keeps the mapping, the segment lets go
    assert seg.closed
    view[0] = 7  # the mapping is still there for the view's owner
    assert view[0] == 7
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    del view
    seg.release()  # idempotent


def test_numpy_views_block_close_too() -> None:
    seg = HeapSegment(4096)
    arr = np.frombuffer(seg.view, np.uint8)
    with pytest.raises(StateError):
        seg.close()
    del arr
    seg.close()


def test_forgotten_segment_releases_its_fd() -> None:
    before = len(os.listdir("/proc/self/fd"))
    seg = MemfdSegment(4096)
    assert len(os.listdir("/proc/self/fd")) > before
    del seg
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_forgotten_segment_with_a_live_view_stays_mapped_until_the_view_goes() -> None:
    seg = MemfdSegment(4096)
    view = seg.view
    view[0] = 7
    del seg  # the finalizer closes the fd; the mapping must survive for the view
    gc.collect()
    assert view[0] == 7
    view[1] = 8
    del view


def test_segment_base_class_is_not_constructible() -> None:
    with pytest.raises(TypeError, match="base class"):
        Segment(
            mmap.mmap(-1, 4096), size=4096, memory_type=MemoryType.HEAP, name="x", readonly=False
        )


@pytest.mark.parametrize("size", [0, -1])
@pytest.mark.parametrize("kind", [HeapSegment, MemfdSegment, HugePageSegment])
def test_non_positive_sizes_are_refused(kind: Callable[[int], Segment], size: int) -> None:
    with pytest.raises(ValueError, match=f"positive number of bytes, got {size}"):
        kind(size)


def test_repr_names_kind_and_state() -> None:
    seg = HeapSegment(4096, name="h")
    assert repr(seg) == "<HeapSegment 'h' size=4,096 read-write>"
    seg.close()
    assert "closed" in repr(seg)


# -- memfd --------------------------------------------------------------------------------


def test_memfd_is_shared_and_close_on_exec() -> None:
    with MemfdSegment(4096, name="shared") as seg:
        assert seg.memory_type is MemoryType.MEMFD
        assert fcntl.fcntl(seg.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        seg.view[:5] = b"hello"
        assert os.pread(seg.fd, 5, 0) == b"hello"  # same pages as the fd
        fd = seg.fd
    assert_closed(fd)
    with pytest.raises(ClosedError):
        _ = seg.fd


def test_seal_shrink_forbids_truncating_smaller() -> None:
    with MemfdSegment(8192) as seg:
        seg.seal(shrink=True, grow=False)
        with pytest.raises(PermissionError):
            os.ftruncate(seg.fd, 4096)
        os.ftruncate(seg.fd, 16384)  # growth was not sealed
        seals = fcntl.fcntl(seg.fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_SHRINK
        assert not seals & fcntl.F_SEAL_GROW


def test_seal_grow_forbids_growing() -> None:
    with MemfdSegment(8192) as seg:
        seg.seal(shrink=False, grow=True)
        with pytest.raises(PermissionError):
            os.ftruncate(seg.fd, 16384)


def test_seal_write_with_own_writable_mapping_is_a_precise_state_error() -> None:
    with MemfdSegment(4096, name="writer") as seg:
        with pytest.raises(StateError, match=r"F_SEAL_WRITE.*EBUSY.*future_write=True") as info:
            seg.seal(write=True)
        assert isinstance(info.value.__cause__, OSError)
        assert info.value.__cause__.errno == errno.EBUSY


def test_seal_future_write_keeps_our_mapping_and_stops_new_writers() -> None:
    with MemfdSegment(4096) as seg:
        seg.seal(future_write=True)
        seg.view[0] = 1  # existing writable mapping still works
        with pytest.raises(PermissionError):
            MemfdSegment.from_fd(os.dup(seg.fd), readonly=False)
        with MemfdSegment.from_fd(os.dup(seg.fd), readonly=True) as reader:
            assert reader.view[0] == 1


def test_seal_write_on_a_readonly_mapping_succeeds() -> None:
    writer = MemfdSegment(4096)
    writer.view[:2] = b"ok"
    reader = MemfdSegment.from_fd(os.dup(writer.fd), readonly=True)
    writer.close()
    with reader:
        reader.seal(write=True)
        assert fcntl.fcntl(reader.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
        assert bytes(reader.view[:2]) == b"ok"


def test_from_fd_maps_readonly_and_takes_ownership() -> None:
    with MemfdSegment(8192, name="frames") as seg:
        seg.view[:4] = b"data"
        fd = os.dup(seg.fd)
        with MemfdSegment.from_fd(fd) as peer:
            assert peer.readonly
            assert peer.size == 8192
            assert peer.name == "frames"  # from /proc/self/fd
            assert bytes(peer.view[:4]) == b"data"
            assert peer.view.readonly
            with pytest.raises(TypeError):
                peer.view[0] = 1
        assert_closed(fd)  # the segment closed the fd it was given


def test_from_fd_writable_shares_pages() -> None:
    with (
        MemfdSegment(4096) as seg,
        MemfdSegment.from_fd(os.dup(seg.fd), readonly=False, name="peer") as peer,
    ):
        peer.view[0] = 42
        assert seg.view[0] == 42
        assert peer.name == "peer"


def test_from_fd_with_a_smaller_size_maps_a_prefix() -> None:
    with MemfdSegment(8192) as seg, MemfdSegment.from_fd(os.dup(seg.fd), size=4096) as peer:
        assert peer.size == 4096


def test_from_fd_refuses_a_size_past_the_end_and_closes_the_fd() -> None:
    with MemfdSegment(4096, name="small") as seg:
        fd = os.dup(seg.fd)
        with pytest.raises(ValueError, match=r"8,192 bytes of memfd 'small'.*only 4,096"):
            MemfdSegment.from_fd(fd, size=8192)
        assert_closed(fd)  # a failed from_fd leaks nothing


def test_from_fd_of_an_empty_memfd_is_a_clear_error() -> None:
    fd = os.memfd_create("empty")
    with pytest.raises(ValueError, match=r"'empty'.*it is empty"):
        MemfdSegment.from_fd(fd)


def test_from_fd_writable_on_a_write_sealed_fd_fails_without_leaking() -> None:
    seg = MemfdSegment(4096)
    fd = os.dup(seg.fd)
    seg.close()
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    with pytest.raises(PermissionError):
        MemfdSegment.from_fd(fd, readonly=False)


# -- huge pages ---------------------------------------------------------------------------


def _hugetlb_pages_free() -> bool:
    return _hugepage._meminfo().get("HugePages_Free", 0) > 0


def test_huge_pages_either_work_or_say_what_to_configure() -> None:
    if not _hugetlb_pages_free() and _hugepage._thp_setting() not in ("always", "madvise"):
        with pytest.raises(
            HugePagesUnavailable, match=r"nr_hugepages.*transparent_hugepage"
        ) as info:
            HugePageSegment(1 << 20, name="big")
        assert isinstance(info.value.__cause__, OSError)
        return
    with HugePageSegment(1 << 20, name="big") as seg:
        assert seg.mode == ("hugetlb" if _hugetlb_pages_free() else "thp")
        assert seg.memory_type is MemoryType.HUGEPAGE
        assert seg.size % seg.page_size == 0
        assert seg.size >= 1 << 20
        seg.view[-1] = 1


def test_hugetlb_mode_works_or_explains_the_reservation() -> None:
    if _hugetlb_pages_free():
        with HugePageSegment(1, mode="hugetlb") as seg:
            assert seg.mode == "hugetlb"
        return
    with pytest.raises(
        HugePagesUnavailable, match=r"as root: echo \d+ > /proc/sys/vm/nr_hugepages"
    ) as info:
        HugePageSegment(1, mode="hugetlb")
    assert "transparent" not in str(info.value)  # THP was not asked for
    assert isinstance(info.value.__cause__, OSError)


def _fail_hugetlb(size: int, name: str) -> tuple[mmap.mmap, int]:
    raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))


def test_auto_without_any_huge_pages_raises_with_both_hints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_hugepage, "_map_hugetlb", _fail_hugetlb)
    monkeypatch.setattr(_hugepage, "_thp_setting", lambda: "never")
    with pytest.raises(HugePagesUnavailable) as info:
        HugePageSegment(3 << 20, name="frames")
    text = str(info.value)
    assert "'frames'" in text
    assert "Cannot allocate memory" in text
    assert "> /proc/sys/vm/nr_hugepages" in text
    assert "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled" in text
    assert "'never'" in text
    assert isinstance(info.value, OSError)


def test_auto_falls_back_to_thp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hugepage, "_map_hugetlb", _fail_hugetlb)
    monkeypatch.setattr(_hugepage, "_thp_setting", lambda: "madvise")
    with HugePageSegment(100) as seg:
        assert seg.mode == "thp"
        assert seg.fd is None
        assert seg.size == seg.page_size


def test_hugetlb_success_path_keeps_the_fd(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_hugetlb(size: int, name: str) -> tuple[mmap.mmap, int]:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)  # stands in for MFD_HUGETLB pages
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size), fd

    monkeypatch.setattr(_hugepage, "_map_hugetlb", fake_hugetlb)
    with HugePageSegment(5, mode="hugetlb") as seg:
        assert seg.mode == "hugetlb"
        fd = seg.fd
        assert fd is not None
        os.fstat(fd)
    assert_closed(fd)


def test_thp_mode_reports_a_disabled_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hugepage, "_thp_setting", lambda: "never")
    with pytest.raises(HugePagesUnavailable, match=r"transparent huge pages.*'never'"):
        HugePageSegment(1, mode="thp")


def test_unknown_huge_page_mode() -> None:
    with pytest.raises(ValueError, match="mode must be 'auto', 'hugetlb' or 'thp', got 'big'"):
        HugePageSegment(1, mode="big")  # type: ignore[arg-type]


# -- files --------------------------------------------------------------------------------


def test_file_segment_readonly(tmp_path: Path) -> None:
    path = tmp_path / "in.bin"
    path.write_bytes(b"0123456789")
    with FileSegment(path) as seg:
        assert seg.memory_type is MemoryType.FILE
        assert seg.readonly
        assert seg.size == 10
        assert seg.path == path
        assert bytes(seg.view) == b"0123456789"
        with pytest.raises(TypeError):
            seg.view[0] = 1
        seg.flush()  # a no-op, not an error


def test_file_segment_readwrite_persists(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    with FileSegment(path, writable=True, size=4096) as seg:
        assert seg.size == 4096
        assert not seg.readonly
        seg.view[:5] = b"hello"
        seg.flush()
    assert path.stat().st_size == 4096
    assert path.read_bytes()[:5] == b"hello"
    with FileSegment(path, writable=True) as again:
        assert bytes(again.view[:5]) == b"hello"


def test_file_segment_extends_but_never_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "grow.bin"
    path.write_bytes(b"x" * 100)
    with FileSegment(path, writable=True, size=200) as seg:
        assert seg.size == 200
    assert path.stat().st_size == 200
    with FileSegment(path, writable=True, size=50) as seg:
        assert seg.size == 50
    assert path.stat().st_size == 200


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.touch()
    with pytest.raises(ValueError, match=r"the file is empty \(0 bytes\).*size=N"):
        FileSegment(path)
    with pytest.raises(ValueError, match="empty"):
        FileSegment(path, writable=True)


def test_file_segment_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileSegment(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="needs writable=True"):
        FileSegment(tmp_path / "x.bin", size=10)
    with pytest.raises(ValueError, match="positive"):
        FileSegment(tmp_path / "x.bin", writable=True, size=0)


def test_file_segment_flush_after_close(tmp_path: Path) -> None:
    seg = FileSegment(tmp_path / "f.bin", writable=True, size=10)
    seg.close()
    with pytest.raises(ClosedError):
        seg.flush()
