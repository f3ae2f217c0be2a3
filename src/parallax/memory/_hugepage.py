"""`HugePageSegment`: a segment on huge pages, hugetlbfs first, transparent huge pages
next, and a clear `HugePagesUnavailable` when neither can be had (PLATFORM.md: this
machine has no reserved pages, and THP is `madvise` for anonymous memory).
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Final, Literal

from parallax._errors import ClosedError, HugePagesUnavailable

from ._segment import MAP_HUGETLB, MemoryType, Segment, _check_size

_MEMINFO: Final = "/proc/meminfo"
_THP_ENABLED: Final = "/sys/kernel/mm/transparent_hugepage/enabled"
_NR_HUGEPAGES: Final = "/proc/sys/vm/nr_hugepages"


HugePageMode = Literal["auto", "hugetlb", "thp"]


def _meminfo() -> dict[str, int]:
    """/proc/meminfo's huge-page lines: sizes in bytes, counts as counts."""
    out: dict[str, int] = {}
    with open(_MEMINFO, encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key.startswith(("HugePages_", "Hugepagesize")):
                parts = rest.split()
                value = int(parts[0])
                out[key] = value * 1024 if parts[1:] == ["kB"] else value
    return out


def _thp_setting() -> str:
    """The bracketed word of the THP 'enabled' file ('always', 'madvise' or 'never')."""
    try:
        with open(_THP_ENABLED, encoding="ascii") as f:
            text = f.read()
    except OSError:
        return "unsupported"
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else text.strip()


def _map_hugetlb(size: int, name: str) -> tuple[mmap.mmap, int]:
    """Map `size` bytes (a multiple of the huge page size) of hugetlbfs memory.

    A memfd with MFD_HUGETLB first (shareable by fd); if the kernel has no hugetlb
    memfds (EINVAL), an anonymous MAP_HUGETLB mapping with fd -1. Raises OSError
    (typically ENOMEM: no huge pages reserved); nothing is leaked.
    """
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | os.MFD_HUGETLB)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | MAP_HUGETLB), -1
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED), fd
    except BaseException:
        os.close(fd)
        raise


def _map_thp(size: int) -> mmap.mmap:
    """Anonymous memory advised MADV_HUGEPAGE; raises OSError if THP is off ('never')."""
    setting = _thp_setting()
    if setting not in ("always", "madvise"):
        raise OSError(
            errno.EOPNOTSUPP,
            f"transparent huge pages are {setting!r} in {_THP_ENABLED}",
        )
    mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    try:
        mm.madvise(mmap.MADV_HUGEPAGE)
    except BaseException:
        mm.close()
        raise
    return mm


class HugePageSegment(Segment):
    """Memory on huge pages: hugetlbfs (reserved, shareable by fd) or transparent (THP).

    Owns its mapping (and fd): `close()` it, or use `with`. `mode` says which kind was
    obtained. THP is advice: the kernel backs aligned 2 MiB ranges with huge pages when
    it can, and small pages otherwise.
    """

    def __init__(self, size: int, *, name: str = "hugepages", mode: HugePageMode = "auto") -> None:
        """Map at least `size` bytes, rounded up to a whole number of huge pages.

        `mode`: "hugetlb" (reserved pages, /proc/sys/vm/nr_hugepages), "thp"
        (anonymous memory + madvise(MADV_HUGEPAGE)), or "auto": hugetlb, then THP.

        Raises:
            ValueError: `size` is not positive or `mode` is unknown.
            HugePagesUnavailable: no mode asked for could be had; the message says what to
                configure, and `__cause__` is the OS error.
        """
        size = _check_size(size, "HugePageSegment size")
        if mode not in ("auto", "hugetlb", "thp"):
            raise ValueError(
                f"HugePageSegment mode must be 'auto', 'hugetlb' or 'thp', got {mode!r}"
            )
        info = _meminfo()
        page = info.get("Hugepagesize", 2 << 20)
        size = -(-size // page) * page
        reasons: list[str] = []
        last: OSError | None = None
        fd = -1
        got: Literal["hugetlb", "thp"] | None = None
        mm: mmap.mmap | None = None
        if mode in ("auto", "hugetlb"):
            try:
                mm, fd = _map_hugetlb(size, name)
                got = "hugetlb"
            except OSError as e:
                last = e
                needed = size // page
                free = info.get("HugePages_Free", 0)
                total = info.get("HugePages_Total", 0)
                reasons.append(
                    f"hugetlbfs: {e} ({needed} pages of {page // 1024} kB needed, {free} of "
                    f"{total} reserved pages free; as root: "
                    f"echo {total + needed - min(free, needed)} > {_NR_HUGEPAGES})"
                )
        if mm is None and mode in ("auto", "thp"):
            try:
                mm = _map_thp(size)
                got = "thp"
            except OSError as e:
                last = e
                reasons.append(
                    f"transparent huge pages: {e} (as root: echo madvise > {_THP_ENABLED})"
                )
        if mm is None or got is None:
            raise HugePagesUnavailable(
                f"cannot map {size:,} bytes of huge pages for {name!r} (mode {mode!r}): "
                + "; ".join(reasons)
            ) from last
        self._mode: Literal["hugetlb", "thp"] = got
        self._page_size: int = page
        super().__init__(
            mm, size=size, memory_type=MemoryType.HUGEPAGE, name=name, readonly=False, fd=fd
        )

    @property
    def mode(self) -> Literal["hugetlb", "thp"]:
        """Which kind of huge pages was obtained."""
        return self._mode

    @property
    def page_size(self) -> int:
        """The system's huge page size in bytes (Hugepagesize in /proc/meminfo)."""
        return self._page_size

    @property
    def fd(self) -> int | None:
        """The hugetlbfs memfd (owned by the segment), or None for THP or MAP_HUGETLB.

        Raises:
            ClosedError: the segment is closed.
        """
        if not self._finalizer.alive:
            raise ClosedError(f"{self._describe()} is closed: its fd is gone")
        return self._fd if self._fd >= 0 else None
