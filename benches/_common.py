"""Shared helpers for the benchmarks in this folder (STYLE.md section 10).

Each `benches/<scenario>.py` runs Parallax and its peer in one invocation, on the same
data: a warm-up round that is not counted, then `n` rounds in which every measurement
(ours and the peer's) runs once, interleaved, reporting each one's median. It prints a human table (scenario | ours | peer | ratio) and, as its last lines,
one JSON object per scenario:

    {"scenario": ..., "ours": ..., "peer": ..., "peer_name": ..., "unit": ...,
     "ratio": ..., "n": ..., "stat": "median"}

`ratio` above 1 means Parallax is better: ours / peer for rates (every unit here is a
rate). A missing peer is reported with `peer: null, ratio: null`, never skipped.

How each side is timed:
- Parallax: inside this process, `time.perf_counter()` around `Pipeline.run()` only
  (state changes, streaming threads, EOS and stop included); `parse_launch()` happens
  before the clock starts, in every benchmark.
- GStreamer: `gst-launch-1.0 -q <same pipeline>` as a subprocess, timed around the
  whole process, minus the median start-up cost of a trivial pipeline
  (`fakesrc num-buffers=1 ! fakesink`) measured in the same run. What is left is the
  streaming time plus the (small) difference in parse and state-change cost between the
  two pipelines.

Running this module directly prints the machine and peer this run would report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

GST = "gst-launch-1.0"
GST_MISSING = f"{GST} (missing: apt-get install gstreamer1.0-tools)"
GST_TRIVIAL = "fakesrc num-buffers=1 ! fakesink"
GST_TIMEOUT = 60.0


@dataclass
class Result:
    """One scenario: our median, the peer's median (None: peer missing), both in `unit`."""

    scenario: str
    ours: float
    peer: float | None
    peer_name: str
    unit: str
    n: int

    @property
    def ratio(self) -> float | None:
        """ours / peer (every unit here is a rate: higher is better)."""
        if self.peer is None or self.peer == 0:
            return None
        return self.ours / self.peer

    def as_json(self) -> str:
        ratio = self.ratio
        return json.dumps(
            {
                "scenario": self.scenario,
                "ours": _round(self.ours),
                "peer": None if self.peer is None else _round(self.peer),
                "peer_name": self.peer_name,
                "unit": self.unit,
                "ratio": None if ratio is None else round(ratio, 3),
                "n": self.n,
                "stat": "median",
            }
        )


class TimeResult(Result):
    """A time (lower is better): ratio = peer / ours, so that above 1 still means ours wins."""

    @property
    def ratio(self) -> float | None:
        if self.peer is None or self.ours == 0:
            return None
        return self.peer / self.ours


def _round(x: float) -> float:
    """Three significant figures, enough for a noisy machine."""
    return float(f"{x:.3g}")


def args(description: str) -> argparse.Namespace:
    """The command line every benchmark takes: `--quick` for a short smoke run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)"
    )
    return parser.parse_args()


def median_time(fn: Callable[[], float | None], repeats: int, warmup: int = 1) -> float:
    """Median seconds of `fn()` over `repeats` runs, after `warmup` uncounted ones."""
    return medians({"fn": fn}, repeats, warmup)["fn"]


def medians(
    fns: Mapping[str, Callable[[], float | None]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds of each `fn()`, the functions run round-robin (interleaved).

    Interleaving puts ours and the peer's runs side by side in time, so a burst of noise
    on this shared machine hits both rather than one. Each `fn` either times itself and
    returns seconds (to leave set-up out of the clock), or returns None and is timed here
    around the whole call. `warmup` rounds run first and are not counted.
    """
    samples: dict[str, list[float]] = {key: [] for key in fns}
    for round_ in range(warmup + repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            took = fn()
            if round_ >= warmup:
                samples[key].append(time.perf_counter() - t0 if took is None else took)
    return {key: statistics.median(s) for key, s in samples.items()}


def time_parallax(launch: str) -> float:
    """Seconds for `parse_launch(launch).run()`, parse excluded."""
    import parallax

    pipeline = parallax.parse_launch(launch)
    t0 = time.perf_counter()
    pipeline.run()
    return time.perf_counter() - t0


# -- GStreamer ---------------------------------------------------------------------------


def gst_name() -> str | None:
    """'gst-launch-1.0 1.22.0', or None when gst-launch-1.0 is not installed."""
    exe = shutil.which(GST)
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    # First line: "gst-launch-1.0 version 1.22.0".
    return f"{GST} {out.split()[2]}"


def time_gst(launch: str) -> float:
    """Seconds for a whole `gst-launch-1.0 -q <launch>` process (start-up included)."""
    t0 = time.perf_counter()
    # A timeout, so that a pipeline that never reaches EOS fails the benchmark, not hangs.
    subprocess.run(
        [GST, "-q", *launch.split()], check=True, stdout=subprocess.DEVNULL, timeout=GST_TIMEOUT
    )
    return time.perf_counter() - t0


STARTUP = "gst-startup"
"""The key under which `gst_fns` times the trivial pipeline."""


def gst_fns(launches: Mapping[str, str]) -> dict[str, Callable[[], float]]:
    """Functions for `medians` timing each GStreamer launch, plus its start-up cost.

    The start-up cost (exec, plugin registry, parse, state changes) is that of a pipeline
    that does nothing, `fakesrc num-buffers=1 ! fakesink`, measured in the same run and
    interleaved with the others; `gst_seconds` subtracts it.
    """
    fns = {key: (lambda launch=launch: time_gst(launch)) for key, launch in launches.items()}
    fns[STARTUP] = lambda: time_gst(GST_TRIVIAL)
    return fns


def gst_seconds(meds: Mapping[str, float], key: str) -> float:
    """Median streaming seconds of GStreamer launch `key`: its process minus start-up."""
    # Never less than 1 us: the subtraction must not invent infinite speed.
    return max(meds[key] - meds[STARTUP], 1e-6)


# -- Reporting ---------------------------------------------------------------------------


def machine() -> str:
    """One line: CPU model, cores, Python, and GStreamer (or its absence)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{gst_name() or GST_MISSING}"
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.3g}" if x < 1000 else f"{x:,.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a plain aligned table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = []
    for i, row in enumerate([headers, *rows]):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def report(title: str, results: Sequence[Result], notes: Sequence[str] = ()) -> None:
    """The human table, any `notes` lines, then one JSON line per scenario, last."""
    print(f"# {title}")
    print(f"# {machine()}")
    rows = []
    for r in results:
        ratio = r.ratio
        rows.append(
            [
                r.scenario,
                f"{_fmt(r.ours)} {r.unit}",
                f"{_fmt(r.peer)} {r.unit}" if r.peer is not None else "- (missing)",
                f"{ratio:.2f}" if ratio is not None else "-",
                r.peer_name,
            ]
        )
    for line in [*table(["scenario", "ours", "peer", "ratio", "peer_name"], rows), *notes]:
        print(line)
    print()
    sys.stdout.flush()
    for r in results:
        print(r.as_json())


if __name__ == "__main__":
    print(machine())
