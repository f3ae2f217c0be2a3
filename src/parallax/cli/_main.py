"""`parallax launch | inspect | dot`: the argument parser and the dispatch.

Errors print `str(e)` (which carries the caret for launch strings) and exit 1; `--debug`
adds the traceback. Every exit status is listed in docs/cli.md: 0, 1, 2 (usage), 130
and 143 (stopped by SIGINT, SIGTERM), 141 (stdout's reader went away, as `| head`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from parallax import __version__
from parallax._errors import ParallaxError

from . import _dot, _inspect, _launch
from ._report import stdout_is_broken
from ._web import web_address


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an argument it does not know is a usage error that shows
    the subcommand's usage (argparse would pass it up to the top-level parser, whose
    usage says nothing of the subcommand's options)."""

    def parse_known_args(  # type: ignore[override]  # narrower than typeshed's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="parallax", description="Zero-copy dataflow pipelines.")
    parser.add_argument("--version", action="version", version=f"parallax {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)
    launch = sub.add_parser("launch", help="run a pipeline to EOS (like gst-launch-1.0)")
    launch.add_argument("pipeline", nargs="+", help="the pipeline description")
    launch.add_argument("-v", "--verbose", action="store_true", help="print negotiated caps")
    launch.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    launch.add_argument(
        "-e",
        "--eos-on-shutdown",
        action="store_true",
        help="on Ctrl-C or SIGTERM, send EOS and stop when it has reached every sink",
    )
    launch.add_argument(
        "--timing", action="store_true", help="measure and print ns per buffer per element"
    )
    launch.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (0: any)"
    )
    launch.add_argument(
        "--web",
        type=web_address,
        metavar="ADDRESS",
        help="serve the live view in the browser on [HOST:]PORT (default host 127.0.0.1)",
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
    """Run the command; returns the exit status (a usage error exits 2 via argparse)."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    command = {"launch": _launch.launch, "inspect": _inspect.inspect, "dot": _dot.dot}
    try:
        status = command[args.command](args, out)
        out.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return status
    except ParallaxError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        for note in getattr(e, "__notes__", ()):
            print(f"  {note}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
    except BrokenPipeError:
        # `parallax inspect | head -1`: the reader is gone. Exit quietly with the status
        # a shell sees from a GNU tool killed by SIGPIPE; the Python docs' recipe points
        # stdout at /dev/null so that the final flush at exit does not complain.
        if stdout_is_broken():
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # a Ctrl-C outside a run (parsing, importing a plugin)
        return 128 + signal.SIGINT
