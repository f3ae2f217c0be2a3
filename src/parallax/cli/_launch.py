"""`parallax launch PIPELINE`: run a pipeline to EOS as gst-launch-1.0 does, printing
what happens on the way and a summary at the end."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any, TextIO

from parallax._errors import MissingExtra, ParallaxError
from parallax.pipeline import MessageType, MetricsServer, Pipeline, parse_launch

from ._progress import Progress, human_bytes, stage_lines, totals
from ._web import serve_web


def join_argv(argv: list[str]) -> str:
    """One launch string from argv, as gst_parse_launchv does: with several arguments, the
    shell has already split words, so a space inside one (`location="my file"`) is escaped;
    a single argument is the whole description."""
    if len(argv) == 1:
        return argv[0]
    return " ".join(a.replace("\\", "\\\\").replace(" ", "\\ ") for a in argv)


def launch(args: argparse.Namespace, out: TextIO) -> int:
    """Parse `args.pipeline` and run it; returns the exit status."""
    text = join_argv(args.pipeline)
    pipeline = parse_launch(text)
    if args.ray:
        with _on_ray(pipeline, args.ray_address):
            return run(pipeline, args, out)
    return run(pipeline, args, out)


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


def run(pipeline: Pipeline, args: argparse.Namespace, out: TextIO) -> int:
    """Play `pipeline` to EOS with what `args` asks for; returns the exit status."""

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=out, flush=True)

    if args.timing or args.metrics_port is not None:
        pipeline.enable_timing()
    server = MetricsServer(pipeline, args.metrics_port) if args.metrics_port is not None else None
    web = None
    try:
        if server is not None:
            say(f"Serving metrics on http://127.0.0.1:{server.port}/metrics")
        web = serve_web(pipeline, args.web, say)
        say("Setting pipeline to PLAYING ...")
        t0 = time.monotonic()
        with Progress(pipeline, out, not args.quiet):
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
        buffers, nbytes = totals(pipeline)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        say(f'Got EOS from pipeline "{pipeline.name}".')
        say(
            f"Execution ended after {elapsed:.3f} s: {buffers:,} buffer{'s' * (buffers != 1)}, "
            f"{human_bytes(nbytes)} ({nbytes:,} bytes), {human_bytes(rate)}/s"
        )
        for line in stage_lines(pipeline, elapsed):
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
        if web is not None:
            web.close()
