"""The `parallax` command: launch, inspect, dot (like gst-launch-1.0 and gst-inspect-1.0).

Modules, one concept each:
  _main      the argument parser and the dispatch to a subcommand
  _launch    `parallax launch`: run a pipeline to EOS, print what happens
  _progress  the live progress line, per-stage lines and totals of a run
  _inspect   `parallax inspect`: list elements or describe one
  _dot       `parallax dot`: print a pipeline as DOT or JSON
  _web       `launch --web`: the live view in the browser, for the length of a run
"""

from ._main import main as main

__all__ = ["main"]

main.__module__ = __name__  # tracebacks and reprs name the public module
