"""`parallax launch | inspect | dot`.

Errors print `str(e)` (which carries the caret for launch strings) and exit 1; `--debug`
adds the traceback. `launch` exits 0 at EOS, 1 on an error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from parallax import __version__
from parallax._errors import MissingExtra, ParallaxError
from parallax.pipeline import MessageType, MetricsServer, Pipeline, parse_launch, registry


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _totals(pipeline: Pipeline) -> tuple[int, int]:
    """Buffers and bytes the sources pushed (a tee's branches do not count twice)."""
    m = pipeline.metrics()
    sources = [e.name for e in pipeline.iterate_sources()]
    return sum(m[s]["buffers_out"] for s in sources), sum(m[s]["bytes_out"] for s in sources)


class _Progress:
    """Live progress on a terminal (rich), nothing until the summary when piped."""

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
        buffers, nbytes = _totals(self._pipeline)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        line = (
            f"{elapsed:7.2f} s  {buffers:,} buffers  {_human_bytes(nbytes)}  {_human_bytes(rate)}/s"
        )
        return "\n".join([line, *_stage_lines(self._pipeline, elapsed)])

    def _run(self) -> None:
        t0 = time.monotonic()
        with self._live:
            while not self._stop.wait(0.25):
                self._live.update(self._line(time.monotonic() - t0))

    def __enter__(self) -> _Progress:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _stage_lines(pipeline: Pipeline, elapsed: float) -> list[str]:
    """One line per part of the pipeline running elsewhere (procqueue's child): what
    reached that part's sinks, from the metrics it reports."""
    lines = []
    metrics = pipeline.metrics()
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
            f"{buffers:,} buffers  {_human_bytes(nbytes)}  {_human_bytes(rate)}/s"
        )
    return lines


def _join(argv: list[str]) -> str:
    """One launch string from argv, as gst_parse_launchv does: with several arguments, the
    shell has already split words, so a space inside one (`location="my file"`) is escaped;
    a single argument is the whole description."""
    if len(argv) == 1:
        return argv[0]
    return " ".join(a.replace("\\", "\\\\").replace(" ", "\\ ") for a in argv)


def _launch(args: argparse.Namespace, out: TextIO) -> int:
    text = _join(args.pipeline)
    pipeline = parse_launch(text)
    if args.ray:
        with _on_ray(pipeline, args.ray_address):
            return _run(pipeline, args, out)
    return _run(pipeline, args, out)


@contextlib.contextmanager
def _on_ray(pipeline: Pipeline, address: str | None) -> Iterator[None]:
    """Place every procqueue's stage on Ray, joined (or started) for this run."""
    boundaries = [e for e in pipeline if e.find_property("placement") is not None]
    if not boundaries:
        raise ParallaxError("--ray: the pipeline has no procqueue to place on Ray")
    for element in boundaries:
        element.set_property("placement", "ray")
    try:
        ray: Any = importlib.import_module("ray")  # optional; untyped for mypy either way
    except ImportError as e:
        raise MissingExtra("--ray needs Ray: pip install 'parallax-dataflow[ray]'") from e
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _run(pipeline: Pipeline, args: argparse.Namespace, out: TextIO) -> int:

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=out, flush=True)

    if args.timing or args.metrics_port is not None:
        pipeline.enable_timing()
    server = MetricsServer(pipeline, args.metrics_port) if args.metrics_port is not None else None
    try:
        if server is not None:
            say(f"Serving metrics on http://127.0.0.1:{server.port}/metrics")
        say("Setting pipeline to PLAYING ...")
        t0 = time.monotonic()
        with _Progress(pipeline, out, not args.quiet):
            try:
                pipeline.play()
                message = pipeline.wait()
            except KeyboardInterrupt:
                say("Interrupt: stopping pipeline ...")
                pipeline.stop()
                return 130
        elapsed = time.monotonic() - t0
        if args.verbose:
            for pad, caps in pipeline.negotiated_caps():
                say(f"/{pipeline.name}/{pad}: caps = {caps}")
        pipeline.stop()
        if args.verbose:
            for m in pipeline.bus.messages(MessageType.WARNING):
                say(f"WARNING from {m.source}: {m.data.get('text')}")
        assert message is not None
        if message.type is MessageType.ERROR:
            err = message.error
            source = getattr(err, "element", "") or message.source
            print(f"ERROR: from element {source}: {err}", file=sys.stderr)
            if args.debug and err is not None:
                traceback.print_exception(err)
            return 1
        buffers, nbytes = _totals(pipeline)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        say(f'Got EOS from pipeline "{pipeline.name}".')
        say(
            f"Execution ended after {elapsed:.3f} s: {buffers:,} buffer{'s' * (buffers != 1)}, "
            f"{_human_bytes(nbytes)} ({nbytes:,} bytes), {_human_bytes(rate)}/s"
        )
        for line in _stage_lines(pipeline, elapsed):
            say(line)
        if args.timing:
            for name, entry in pipeline.metrics().items():
                if "proc_ns" in entry and entry["buffers_in"]:
                    per = entry["proc_ns"] / entry["buffers_in"]
                    say(f"  {name}: {per:,.0f} ns/buffer")
        return 0
    finally:
        pipeline.stop()
        if server is not None:
            server.close()


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    if not args.element:
        for name in registry.names():
            cls = registry.get(name)
            print(f"{name:>14}: {cls.description}", file=out)
        print(f"\nTotal count: {len(registry.names())} elements", file=out)
        return 0
    cls = registry.get(args.element)
    print(f"Factory Details:\n  Name: {args.element}\n  Klass: {cls.klass}", file=out)
    print(f"  Description: {cls.description}", file=out)
    print(f"  Class: {cls.__module__}.{cls.__qualname__}\n\nPad Templates:", file=out)
    for t in cls.pad_templates:
        print(f"  {t.direction.value.upper()} template: '{t.name}'", file=out)
        print(f"    Availability: {t.presence.value}\n    Capabilities: {t.caps}", file=out)
    print("\nElement Properties:", file=out)
    for prop in cls.properties():
        default = prop.to_string(prop.default)
        print(f"  {prop.name:<20}: {prop.doc}", file=out)
        print(f"  {'':<20}  {prop.expects()}. Default: {default}", file=out)
    return 0


def _dot(args: argparse.Namespace, out: TextIO) -> int:
    pipeline = parse_launch(_join(args.pipeline))
    out.write(pipeline.to_json() + "\n" if args.json else pipeline.to_dot())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="parallax", description="Zero-copy dataflow pipelines.")
    parser.add_argument("--version", action="version", version=f"parallax {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    launch = sub.add_parser("launch", help="run a pipeline to EOS (like gst-launch-1.0)")
    launch.add_argument("pipeline", nargs="+", help="the pipeline description")
    launch.add_argument("-v", "--verbose", action="store_true", help="print negotiated caps")
    launch.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    launch.add_argument(
        "--timing", action="store_true", help="measure and print ns per buffer per element"
    )
    launch.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (0: any)"
    )
    launch.add_argument(
        "--ray",
        action="store_true",
        help="run each procqueue's downstream part as a Ray actor (placement=ray)",
    )
    launch.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --ray: the cluster to join (default: $RAY_ADDRESS, else a local Ray)",
    )
    inspect = sub.add_parser(
        "inspect", help="list elements, or describe one (like gst-inspect-1.0)"
    )
    inspect.add_argument("element", nargs="?")
    dot = sub.add_parser("dot", help="parse and link a pipeline and print it as DOT")
    dot.add_argument("pipeline", nargs="+")
    dot.add_argument("--json", action="store_true", help="print JSON instead of DOT")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        if args.command == "launch":
            return _launch(args, out)
        if args.command == "inspect":
            return _inspect(args, out)
        return _dot(args, out)
    except ParallaxError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
