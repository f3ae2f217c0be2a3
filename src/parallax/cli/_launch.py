"""`parallax launch PIPELINE`: run a pipeline to EOS as gst-launch-1.0 does, printing
what happens on the way and a summary at the end."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any, TextIO

from parallax._errors import MissingExtra, ParallaxError
from parallax.pipeline import Message, MessageType, MetricsServer, Pipeline, parse_launch

from ._progress import Progress
from ._report import Report
from ._signals import Interrupts
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
    """Play `pipeline` to EOS with what `args` asks for; returns the exit status
    (0 EOS, 1 error, 128 + the signal's number when a signal stopped it: docs/cli.md).

    Raises:
        BrokenPipeError: stdout's reader went away (the caller exits quietly).
    """
    report = Report(pipeline, out, quiet=args.quiet, verbose=args.verbose, debug=args.debug)
    with _bus_not_log():
        return _run(pipeline, args, out, report)


@contextlib.contextmanager
def _bus_not_log() -> Iterator[None]:
    """What the pipeline logs at WARNING it also posts on the bus, which `report` prints:
    a NullHandler keeps logging's last resort from printing it a second time (an
    application's own logging configuration still gets the records)."""
    logger, handler = logging.getLogger("parallax"), logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _run(pipeline: Pipeline, args: argparse.Namespace, out: TextIO, report: Report) -> int:
    if args.timing or args.metrics_port is not None:
        pipeline.enable_timing()
    server = MetricsServer(pipeline, args.metrics_port) if args.metrics_port is not None else None
    web = None
    try:
        if server is not None:
            report.say(f"Serving metrics on http://127.0.0.1:{server.port}/metrics")
        web = serve_web(pipeline, args.web, report.say)
        # A signal during play() or stop() is recorded, and acted on by _wait (so, once
        # this line is out, a signal is handled: tests wait for it).
        with Interrupts() as interrupts, Progress(pipeline, out, not args.quiet):
            report.say("Setting pipeline to PLAYING ...")
            t0 = time.monotonic()
            pipeline.play()
            outcome = _wait(pipeline, interrupts, report, eos_on_shutdown=args.eos_on_shutdown)
            elapsed = time.monotonic() - t0
            pipeline.stop()
        report.drain()
        if isinstance(outcome, int):
            report.summary(elapsed, timing=args.timing)
            return 128 + outcome
        if outcome.type is MessageType.ERROR:
            return report.error(outcome)
        report.say(f'Got EOS from pipeline "{pipeline.name}".')
        report.summary(elapsed, timing=args.timing)
        return 0
    finally:
        pipeline.stop()
        if server is not None:
            server.close()
        if web is not None:
            web.close()


POLL = 0.1
"""Seconds between looks at the signals received, while the bus is quiet: a Ctrl-C is
acted on within this (a message wakes the wait at once)."""

_SIGNAL_WORD: dict[int, str] = {signal.SIGINT: "Interrupt", signal.SIGTERM: "Terminated"}


def _wait(
    pipeline: Pipeline, interrupts: Interrupts, report: Report, *, eos_on_shutdown: bool
) -> Message | int:
    """Print bus messages as they come until EOS or an ERROR (returned), or a signal that
    stops the run (its number returned). With `eos_on_shutdown` (`-e`) the first signal
    sends EOS and the run goes on to that EOS; a second one stops it at once."""
    acted = 0
    while True:
        message = pipeline.bus.poll(MessageType.ANY, POLL)
        if message is not None:
            if message.type & (MessageType.EOS | MessageType.ERROR):
                return message
            report.message(message)
        received = interrupts.received
        if len(received) == acted:
            continue
        acted = len(received)
        signum = received[-1]
        word = _SIGNAL_WORD.get(signum, signal.Signals(signum).name)
        if eos_on_shutdown and acted == 1:
            report.say(f"{word}: EOS on shutdown enabled -- forcing EOS on the pipeline ...")
            pipeline.send_eos()
            continue
        report.say(f"{word}: stopping pipeline ...")
        return signum
