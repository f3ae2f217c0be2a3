"""`make demo`: generate a file, run it through a real pipeline, and print what happened.

    filesrc location=<64 MiB of generated data> blocksize=1M ! tee name=t
        t. ! queue ! filesink location=<copy>
        t. ! queue ! fakesink

then check the copy is byte-identical, and show the same pipeline from Python.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

import numpy as np

import parallax
from parallax.cli import main as cli


def generate(path: str, size: int) -> None:
    """Write `size` bytes of seeded pseudo-random data (reproducible)."""
    rng = np.random.default_rng(2026)
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="parallax-demo-") as tmp:
        src, dst = os.path.join(tmp, "input.bin"), os.path.join(tmp, "copy.bin")
        generate(src, 64 << 20)
        launch = (
            f"filesrc location={src} blocksize=1M ! tee name=t "
            f"t. ! queue ! filesink location={dst}  t. ! queue ! fakesink"
        )
        print(f"$ parallax launch {launch}\n")
        status = cli(["launch", "-v", launch])
        if status != 0:
            raise SystemExit(status)
        same = digest(src) == digest(dst)
        print(f"\ncopy is byte-identical: {same} (sha256 {digest(dst)})")

        print("\nThe same from Python, pulling buffers into NumPy without copying:")
        pipeline = parallax.parse_launch(f"filesrc location={src} blocksize=1M ! appsink name=out")
        t0, total, checksum = time.perf_counter(), 0, 0
        for buf in pipeline.pull("out"):
            arr = np.asarray(buf)  # a view on the pool slot
            checksum ^= int(np.bitwise_xor.reduce(arr.view(np.uint64)))
            total += buf.size
        dt = time.perf_counter() - t0
        print(
            f"  {total / 2**20:.0f} MiB in {dt * 1000:.0f} ms ({total / dt / 1e9:.2f} GB/s), xor {checksum:#018x}"
        )
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
