"""SlotPool loan + release against a fresh bytearray per iteration, operations per second.

One operation: `slot = pool.loan(); del slot` (the drop returns the slot to the pool)
against `b = bytearray(size); del b`. At 4 KiB the allocator's free lists make bytearray
cheap; at 1 MiB each bytearray is a fresh zeroed allocation, which is where a pool pays
off. Neither side writes into the memory after getting it.
"""

from __future__ import annotations

import platform
import time

from _common import Result, args, medians, report

from parallax.memory import SlotPool

KiB, MiB = 1 << 10, 1 << 20


def time_pool(pool: SlotPool, n: int) -> float:
    loan = pool.loan
    t0 = time.perf_counter()
    for _ in range(n):
        slot = loan()
        del slot
    return time.perf_counter() - t0


def time_bytearray(size: int, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        b = bytearray(size)
        del b
    return time.perf_counter() - t0


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    scale = 10 if opts.quick else 1
    repeats = 3 if opts.quick else 7
    python = f"Python {platform.python_version()}"
    # (label, slot size, iterations for the pool, iterations for bytearray)
    cases = [("4KiB", 4 * KiB, 500_000 // scale, 500_000 // scale)]
    cases.append(("1MiB", 1 * MiB, 500_000 // scale, 20_000 // scale))
    results = []
    for label, size, n_pool, n_bytes in cases:
        with SlotPool(size, 64, name=f"bench-{label}") as pool:
            meds = medians(
                {
                    "pool": lambda pool=pool, n=n_pool: time_pool(pool, n),
                    "bytearray": lambda size=size, n=n_bytes: time_bytearray(size, n),
                },
                repeats,
            )
        results.append(
            Result(
                f"pool-{label}-loan-release",
                n_pool / meds["pool"],
                n_bytes / meds["bytearray"],
                f"bytearray({size}) per iteration, {python}",
                "ops/s",
                repeats,
            )
        )
    report("SlotPool(size, 64): loan + release vs a fresh bytearray", results)


if __name__ == "__main__":
    main()
