"""filesrc throughput: reading a page-cached file in 1 MiB blocks into a fakesink.

Ours in both modes against GStreamer's filesrc, on the same file:
- `mmap=false`: `os.preadv` into shared-memory pool slots (one copy, the kernel's, as
  GStreamer's filesrc makes);
- `mmap=true`: read-only windows of a mapping of the file, no copy at all. fakesink does
  not touch the bytes, so this measures the per-buffer cost only; a consumer that reads
  them pays the page-table walk (and the copy, if it copies) there instead.

The full run reads a 1 GiB file kept in ./bench-data/ (git-ignored; written once, reused
by later runs, never deleted). `--quick` reads a 64 MiB file in a temporary directory and
deletes it afterwards. Either way the file is read once first, so it is in the page cache.
Unit: GB/s (10^9 bytes per second).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import (
    GST_MISSING,
    Result,
    args,
    gst_fns,
    gst_name,
    gst_seconds,
    medians,
    report,
    time_parallax,
)

MiB = 1 << 20
DATA_DIR = Path(__file__).resolve().parent.parent / "bench-data"


def make_file(path: Path, size: int) -> None:
    """Write `size` random bytes to `path` unless it already holds that many."""
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    os.replace(partial, path)  # a file under the final name is always complete


def page_cache(path: Path) -> None:
    """Read the file once so that every timed run reads from the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 * MiB)
        while f.readinto(buf):
            pass


def bench(path: Path, label: str, repeats: int) -> list[Result]:
    size = path.stat().st_size
    peer_name = gst_name()
    modes = {"readinto": "false", "mmap": "true"}
    fns: dict[str, Callable[[], float]] = {
        mode: (
            lambda mmap=mmap: time_parallax(
                f"filesrc location={path} blocksize=1M mmap={mmap} ! fakesink"
            )
        )
        for mode, mmap in modes.items()
    }
    if peer_name:
        fns |= gst_fns({"gst": f"filesrc location={path} blocksize=1048576 ! fakesink"})
    meds = medians(fns, repeats)
    peer = size / gst_seconds(meds, "gst") / 1e9 if peer_name else None
    return [
        Result(
            f"filesrc-{label}-1MiB-{mode}",
            size / meds[mode] / 1e9,
            peer,
            peer_name or GST_MISSING,
            "GB/s",
            repeats,
        )
        for mode in modes
    ]


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    if opts.quick:
        with tempfile.TemporaryDirectory(prefix="parallax-bench-") as tmp:
            path = Path(tmp) / "filesrc-64MiB.bin"
            make_file(path, 64 * MiB)
            page_cache(path)
            results = bench(path, "64MiB", repeats=3)
    else:
        path = DATA_DIR / "filesrc-1GiB.bin"
        make_file(path, 1024 * MiB)
        page_cache(path)
        results = bench(path, "1GiB", repeats=7)
    report("filesrc: page-cached file, 1 MiB blocks, into fakesink", results)


if __name__ == "__main__":
    main()
