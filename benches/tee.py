"""tee fan-out: 1 MiB buffers to 4 fakesinks against 1, buffers per second.

The tee hands the same read-only buffer to every branch, so 4 branches should cost about
what 1 does: the ratio (4-branch rate / 1-branch rate) measures what a branch adds, and
the target is >= 0.9. The second scenario sets our 4-branch tee beside GStreamer's, for
reference; GStreamer's own 4-to-1 ratio is printed as a note. GStreamer's fakesinks get
`async=false` (see main()); its fakesrc allocates a fresh 1 MiB buffer per push where
ours loans a pool slot, and neither writes into it.
"""

from __future__ import annotations

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
    time_parallax,
)

SRC = "fakesrc num-buffers={n} sizetype=fixed sizemax=1048576"


def fan_out(n: int, branches: int, sink: str = "fakesink") -> str:
    return f"{SRC.format(n=n)} ! tee name=t ! {sink}" + f" t. ! {sink}" * (branches - 1)


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    n = 10_000 if opts.quick else 100_000
    repeats = 3 if opts.quick else 7
    launches = {"tee4": fan_out(n, 4), "tee1": fan_out(n, 1)}
    peer_name = gst_name()

    fns: dict[str, Callable[[], float]] = {
        key: (lambda launch=launch: time_parallax(launch)) for key, launch in launches.items()
    }
    if peer_name:
        # GStreamer's sinks preroll: without queues, the first fakesink to get a buffer
        # blocks the tee's (only) thread in PAUSED and the others never preroll, so the
        # pipeline hangs. async=false stops them prerolling; nothing else changes.
        fns |= gst_fns(
            {
                "gst-tee4": fan_out(n, 4, "fakesink async=false"),
                "gst-tee1": fan_out(n, 1, "fakesink async=false"),
            }
        )
    meds = medians(fns, repeats)

    results = [
        Result(
            f"tee-1MiB-4-branches-vs-1-{n // 1000}k",
            n / meds["tee4"],
            n / meds["tee1"],
            "parallax tee, 1 branch",
            "buffers/s",
            repeats,
        ),
        Result(
            f"tee-1MiB-4-branches-{n // 1000}k",
            n / meds["tee4"],
            n / gst_seconds(meds, "gst-tee4") if peer_name else None,
            peer_name or GST_MISSING,
            "buffers/s",
            repeats,
        ),
    ]
    notes = []
    if peer_name:
        # Context for the first ratio: what a branch costs GStreamer, relative to its 1-branch rate.
        gst4, gst1 = gst_seconds(meds, "gst-tee4"), gst_seconds(meds, "gst-tee1")
        notes.append(
            f"# for reference, GStreamer 4 branches / 1 branch: {n / gst4:,.0f} / "
            f"{n / gst1:,.0f} buffers/s = {gst1 / gst4:.2f}"
        )
    report(f"tee fan-out: {n:,} buffers of 1 MiB", results, notes)


if __name__ == "__main__":
    main()
