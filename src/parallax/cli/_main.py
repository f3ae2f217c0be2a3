"""`parallax launch | inspect | dot`: the argument parser and the dispatch.

Errors print `str(e)` (which carries the caret for launch strings) and exit 1; `--debug`
adds the traceback. The exit statuses are listed in docs/cli.md.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from parallax import __version__
from parallax._errors import ParallaxError

from ._dot import dot
from ._inspect import inspect
from ._launch import launch
from ._web import web_address


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
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        if args.command == "launch":
            return launch(args, out)
        if args.command == "inspect":
            return inspect(args, out)
        return dot(args, out)
    except ParallaxError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
