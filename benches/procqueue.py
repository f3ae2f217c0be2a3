"""`procqueue`: a pipeline's downstream half in a child process, ours against multiprocessing.

Ours: `fakesrc sizetype=fixed sizemax=SIZE num-buffers=N ! procqueue ! fakesink`, timed
around `run()` (`parse_launch()` is not timed): the child's start-up (`python -c`, import
parallax, rebuild the stage behind an `ipcsrc`, connect), N buffers each copied once into
a slot of the procqueue's memfd pool and read in place by the child, EOS, and the child's
exit. fakesrc does not fill its buffers (filltype=nothing), so the one copy into the slot
is the only write per buffer.

Peers, the same work written the way a `multiprocessing` user writes it (spawn context,
timed from `Process.start()` to the child's exit after `join()`, so the child's start-up
is inside the clock, as for ours):
- `queue`: the child `get()`s `bytes` payloads from a `multiprocessing.Queue(maxsize=16)`
  until a `None` sentinel; the parent `put()`s N payloads, each a fresh `bytes` made from a
  slice of one preallocated `bytearray` (one copy, as a producer fills its buffer; the
  Queue then pickles it and sends it down a pipe, and the child unpickles it).
- `shm`: the hand-rolled zero-copy version: one `multiprocessing.shared_memory` block of
  16 slots, a `Queue(maxsize=16)` of filled slot indices to the child and a `Queue` of
  free indices back; the parent copies each payload once into a free slot (from the same
  `bytearray`), the child reads byte 0 in place and gives the index back.

Start-up is also measured on its own: the same three with N = 1 buffer of 4 KiB (ours:
the procqueue child; peers: a bare spawn child), reported in ms (ratio = peer / ours).

Every measurement runs once per round, round-robin (`_common.medians`), after one warm-up
round that is not counted; each figure is the median of n rounds. Rates are N / the whole
timed run (start-up included); the per-measurement table also gives the rate with the
median start-up subtracted ("steady"). n = 3; `--quick` moves a tenth of the buffers
(2,000 x 1 MiB, 50,000 x 4 KiB). The full run takes about 4.5 minutes, most of it the
Queue peer at 1 MiB (≈ 40 s a round).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from multiprocessing import shared_memory

from _common import Result, TimeResult, args, medians, report, table

MiB = 1 << 20
KiB = 1 << 10
SLOTS = 16
TIMEOUT = 120.0  # seconds any one wait may take before the run is declared hung

_CTX = mp.get_context("spawn")


# -- Parallax ------------------------------------------------------------------------------


def time_ours(size: int, n: int) -> float:
    """Seconds for `run()` of fakesrc ! procqueue ! fakesink (parse excluded)."""
    import parallax

    pipeline = parallax.parse_launch(
        f"fakesrc sizetype=fixed sizemax={size} num-buffers={n} ! procqueue ! fakesink"
    )
    t0 = time.perf_counter()
    pipeline.run(timeout=TIMEOUT)  # stops the pipeline, and so its child, on every path
    return time.perf_counter() - t0


# -- multiprocessing.Queue of bytes ------------------------------------------------------------


def queue_child(q) -> None:
    get = q.get
    while get(timeout=TIMEOUT) is not None:
        pass


def time_queue(size: int, n: int) -> float:
    """Seconds from starting a spawn child to its exit, N `bytes` through a Queue."""
    view = memoryview(bytearray(size))
    q = _CTX.Queue(maxsize=SLOTS)
    proc = _CTX.Process(target=queue_child, args=(q,), daemon=True)
    ok = False
    try:
        t0 = time.perf_counter()
        proc.start()
        put = q.put
        for _ in range(n):
            put(bytes(view[:size]), timeout=TIMEOUT)
        put(None, timeout=TIMEOUT)
        proc.join(TIMEOUT)
        took = time.perf_counter() - t0
        ok = proc.exitcode == 0
    finally:
        _reap(proc)
        if not ok:
            q.cancel_join_thread()  # do not wait to flush to a child that is gone
        q.close()
        q.join_thread()
    if not ok:
        raise RuntimeError(f"queue child exited {proc.exitcode}")
    return took


# -- multiprocessing.shared_memory + Queues of indices ---------------------------------------


def shm_child(name: str, size: int, full, free) -> None:
    shm = shared_memory.SharedMemory(name=name)
    view = shm.buf
    try:
        get, give = full.get, free.put
        while (i := get(timeout=TIMEOUT)) is not None:
            view[i * size]  # read in place
            give(i)
    finally:
        del view
        shm.close()


def time_shm(size: int, n: int) -> float:
    """Seconds from starting a spawn child to its exit, N payloads through shared memory."""
    src = memoryview(bytearray(size))
    shm = shared_memory.SharedMemory(create=True, size=SLOTS * size)
    full, free = _CTX.Queue(maxsize=SLOTS), _CTX.Queue()
    for i in range(SLOTS):
        free.put(i)
    proc = _CTX.Process(target=shm_child, args=(shm.name, size, full, free), daemon=True)
    view = shm.buf
    ok = False
    try:
        t0 = time.perf_counter()
        proc.start()
        take, put = free.get, full.put
        for _ in range(n):
            i = take(timeout=TIMEOUT)
            view[i * size : (i + 1) * size] = src
            put(i, timeout=TIMEOUT)
        put(None, timeout=TIMEOUT)
        proc.join(TIMEOUT)
        took = time.perf_counter() - t0
        ok = proc.exitcode == 0
    finally:
        _reap(proc)
        for q in (full, free):
            if not ok:
                q.cancel_join_thread()
            q.close()
            q.join_thread()
        del view
        shm.close()
        shm.unlink()
    if not ok:
        raise RuntimeError(f"shm child exited {proc.exitcode}")
    return took


def _reap(proc) -> None:
    """Join a child that has been started, killing it if it is still alive."""
    if proc.pid is None:
        return
    proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join()


# -- main ------------------------------------------------------------------------------------


KINDS: dict[str, Callable[[int, int], float]] = {
    "ours": time_ours,
    "queue": time_queue,
    "shm": time_shm,
}


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    python = "Python " + ".".join(map(str, sys.version_info[:3]))
    peers = {
        "queue": f"multiprocessing.Queue of bytes, spawn ({python})",
        "shm": f"multiprocessing.shared_memory + Queues of indices, spawn ({python})",
    }
    if opts.quick:
        sizes = {"1MiB": (MiB, 2_000), "4KiB": (4 * KiB, 50_000)}
        repeats = 3
    else:
        sizes = {"1MiB": (MiB, 20_000), "4KiB": (4 * KiB, 500_000)}
        repeats = 3
    startup_size = 4 * KiB

    fns: dict[str, Callable[[], float]] = {}
    for kind, fn in KINDS.items():
        fns[f"{kind}-startup"] = lambda fn=fn: fn(startup_size, 1)
        for label, (size, n) in sizes.items():
            fns[f"{kind}-{label}"] = lambda fn=fn, size=size, n=n: fn(size, n)
    meds = medians(fns, repeats, warmup=1)

    results: list[Result] = []
    rows = []
    for label, (size, n) in sizes.items():
        ours = n / meds[f"ours-{label}"]
        for kind in ("queue", "shm"):
            peer = n / meds[f"{kind}-{label}"]
            results.append(
                Result(
                    f"procqueue-{label}-x{n}-vs-{kind}",
                    ours,
                    peer,
                    peers[kind],
                    "buffers/s",
                    repeats,
                )
            )
        for kind in KINDS:
            took, start = meds[f"{kind}-{label}"], meds[f"{kind}-startup"]
            steady = n / max(took - start, 1e-6)
            rows.append(
                [
                    label,
                    str(n),
                    kind,
                    f"{took:.3f}",
                    f"{n / took:,.0f}",
                    f"{n * size / took / 1e9:.2f}",
                    f"{steady:,.0f}",
                    f"{steady * size / 1e9:.2f}",
                ]
            )
    ours_start = meds["ours-startup"] * 1e3
    for kind in ("queue", "shm"):
        results.append(
            TimeResult(
                f"procqueue-startup-vs-{kind}",
                ours_start,
                meds[f"{kind}-startup"] * 1e3,
                peers[kind],
                "ms",
                repeats,
            )
        )
    notes = [
        "",
        "# per measurement (medians; rates over the whole run, start-up included;",
        "# steady = N / (run - median start-up of the same kind); GB/s = 1e9 bytes/s)",
        *table(
            ["size", "N", "kind", "run s", "buffers/s", "GB/s", "steady buf/s", "steady GB/s"],
            rows,
        ),
        "",
        "# start-up: the same run with N = 1 buffer of 4 KiB (child start, connect, EOS, exit): "
        + ", ".join(f"{kind} {meds[f'{kind}-startup'] * 1e3:.0f} ms" for kind in KINDS),
    ]
    report(f"procqueue vs multiprocessing, n = {repeats} interleaved rounds", results, notes)


if __name__ == "__main__":
    main()
