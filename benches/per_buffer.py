"""Per-buffer overhead: small buffers through a short chain, buffers per second.

Scenarios (N buffers of 4 KiB, nothing written into them):
- `fakesrc ! identity ! fakesink` against the same `gst-launch-1.0` pipeline;
- the same with a `queue` after fakesrc (a second streaming thread), against GStreamer;
- ours against a bare Python floor: a two-call chain creating one small `__slots__`
  object per buffer, what any pure-Python push model pays at the least.

It also prints nanoseconds per element per buffer: total time / N / elements, for both,
and ours per element from a timed run (`enable_timing()`: `proc_ns / buffers_in`, the
time spent in the element itself; the source has no sink pad, so it is not timed). The
timed figures carry the instrumentation's own cost: the part of an element's timing
wrapper that runs outside its clock is charged to the element upstream of it, so they
add up to more than the untimed run and are for comparing elements, not for totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from _common import (
    GST_MISSING,
    Result,
    args,
    gst_fns,
    gst_name,
    gst_seconds,
    medians,
    report,
    table,
    time_parallax,
)

import parallax

CHAIN = "fakesrc num-buffers={n} sizetype=fixed sizemax=4096 ! identity ! fakesink"
QUEUED = "fakesrc num-buffers={n} sizetype=fixed sizemax=4096 ! queue ! identity ! fakesink"


class _Buf:
    __slots__ = ("offset", "sequence")

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence
        self.offset = sequence


def _sink(buf: _Buf) -> None:
    pass


def _filter(buf: _Buf) -> None:
    _sink(buf)


def python_floor(n: int) -> float:
    """Seconds for n iterations of: make a small object, push it through two calls."""
    push = _filter
    t0 = time.perf_counter()
    for seq in range(n):
        push(_Buf(seq))
    return time.perf_counter() - t0


def per_element_ns(launch: str) -> dict[str, float]:
    """From a timed run: ns per buffer spent in each timed element (`proc_ns/buffers_in`)."""
    pipeline = parallax.parse_launch(launch)
    pipeline.enable_timing()
    pipeline.run()
    return {
        m["factory"]: m["proc_ns"] / m["buffers_in"]
        for m in pipeline.metrics().values()
        if "proc_ns" in m and m["buffers_in"]
    }


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    n = 20_000 if opts.quick else 200_000
    repeats = 3 if opts.quick else 7
    launches = {"chain": CHAIN.format(n=n), "queue": QUEUED.format(n=n)}
    elements = {"chain": 3, "queue": 4}
    peer_name = gst_name()

    fns: dict[str, Callable[[], float]] = {
        key: (lambda launch=launch: time_parallax(launch)) for key, launch in launches.items()
    }
    fns["floor"] = lambda: python_floor(n)
    if peer_name:
        fns |= gst_fns({f"gst-{key}": launch for key, launch in launches.items()})
    meds = medians(fns, repeats)
    gst = {key: gst_seconds(meds, f"gst-{key}") for key in launches} if peer_name else {}

    results = [
        Result(
            f"fakesrc-identity-fakesink-4KiB-{n // 1000}k",
            n / meds["chain"],
            n / gst["chain"] if gst else None,
            peer_name or GST_MISSING,
            "buffers/s",
            repeats,
        ),
        Result(
            f"fakesrc-queue-identity-fakesink-4KiB-{n // 1000}k",
            n / meds["queue"],
            n / gst["queue"] if gst else None,
            peer_name or GST_MISSING,
            "buffers/s",
            repeats,
        ),
        Result(
            f"fakesrc-identity-fakesink-vs-python-floor-{n // 1000}k",
            n / meds["chain"],
            n / meds["floor"],
            "python two-call floor",
            "buffers/s",
            repeats,
        ),
    ]

    # ns per element per buffer: whole-run time spread evenly, and ours measured per element.
    rows = []
    for key, launch in launches.items():
        timed = per_element_ns(launch)
        per_elem = ", ".join(f"{name} {ns:.0f}" for name, ns in timed.items())
        ours = meds[key] / n / elements[key] * 1e9
        peer = f"{gst[key] / n / elements[key] * 1e9:.0f}" if gst else "-"
        rows.append([key, str(elements[key]), f"{ours:.0f}", peer, per_elem])
    floor = meds["floor"] / n * 1e9
    rows.append(["python floor", "-", f"{floor:.0f} per buffer", "-", "-"])
    notes = [
        "",
        "# ns per element per buffer (total time / N / elements; timed run: proc_ns/buffers_in)",
        *table(["pipeline", "elements", "ours", "gst", "ours per element, timed run"], rows),
    ]
    report(f"per-buffer overhead: {n:,} buffers of 4 KiB", results, notes)


if __name__ == "__main__":
    main()
