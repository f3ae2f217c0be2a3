"""`parallax dot PIPELINE`: parse and link a pipeline without running it, print DOT or JSON."""

from __future__ import annotations

import argparse
from typing import TextIO

from parallax.pipeline import parse_launch

from ._launch import join_argv


def dot(args: argparse.Namespace, out: TextIO) -> int:
    """Print the pipeline as Graphviz DOT (or JSON with `--json`); returns the exit status."""
    pipeline = parse_launch(join_argv(args.pipeline))
    out.write(pipeline.to_json() + "\n" if args.json else pipeline.to_dot())
    return 0
