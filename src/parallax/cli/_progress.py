"""What `parallax launch` shows while a pipeline runs and after: the live line on a
terminal, the per-stage lines of parts running elsewhere, and the totals."""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

from parallax.pipeline import Pipeline


def human_bytes(n: float) -> str:
    """`n` bytes in binary units: `1000.0 KiB`, `12 B`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


Metrics = dict[str, dict[str, Any]]


def totals(pipeline: Pipeline, m: Metrics) -> tuple[int, int]:
    """Buffers and bytes the sources pushed (a tee's branches do not count twice), from
    `m`, one `pipeline.metrics()`."""
    sources = [e.name for e in pipeline.iterate_sources()]
    return sum(m[s]["buffers_out"] for s in sources), sum(m[s]["bytes_out"] for s in sources)


def stage_lines(pipeline: Pipeline, elapsed: float, metrics: Metrics) -> list[str]:
    """One line per part of the pipeline running elsewhere (procqueue's child): what
    reached that part's sinks, from the metrics it reports (in `metrics`)."""
    lines = []
    for boundary in pipeline.boundaries():
        stage = boundary.stage
        if stage is None:
            continue
        sinks = [metrics.get(name, {}) for name in stage.sinks]
        buffers = sum(m.get("buffers_in", 0) for m in sinks)
        nbytes = sum(m.get("bytes_in", 0) for m in sinks)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        lines.append(
            f"  └ {boundary.name} → {boundary.placement_label} {boundary.where}: "
            f"{buffers:,} buffers  {human_bytes(nbytes)}  {human_bytes(rate)}/s"
        )
    return lines


class Progress:
    """Live progress on a terminal (rich), nothing until the summary when piped.

    Owns one thread while entered (joined on exit)."""

    def __init__(self, pipeline: Pipeline, out: TextIO, enabled: bool) -> None:
        self._pipeline, self._out = pipeline, out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        if enabled and out.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=out), refresh_per_second=4, transient=True)
            self._thread = threading.Thread(target=self._run, name="parallax:progress", daemon=True)

    def _line(self, elapsed: float) -> str:
        metrics = self._pipeline.metrics()  # one collection for the whole line
        buffers, nbytes = totals(self._pipeline, metrics)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        line = (
            f"{elapsed:7.2f} s  {buffers:,} buffers  {human_bytes(nbytes)}  {human_bytes(rate)}/s"
        )
        return "\n".join([line, *stage_lines(self._pipeline, elapsed, metrics)])

    def _run(self) -> None:
        t0 = time.monotonic()
        with self._live:
            while not self._stop.wait(0.25):
                self._live.update(self._line(time.monotonic() - t0))

    def __enter__(self) -> Progress:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
