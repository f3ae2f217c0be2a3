"""The `parallax` command: launch, inspect, dot (like gst-launch-1.0 and gst-inspect-1.0).

Modules, one concept each:
  _main.py      the argument parser and the dispatch to a subcommand
  _launch.py    `parallax launch`: run a pipeline to EOS
  _report.py    what `launch` prints as it runs: warnings, caps lines, the summary
  _signals.py   Ctrl-C and SIGTERM during `launch` (-e: EOS first; exit 130/143)
  _progress.py  the live progress line, per-stage lines and totals of a run
  _inspect.py   `parallax inspect`: list elements or describe one
  _dot.py       `parallax dot`: print a pipeline as DOT or JSON
  _web.py       `launch --web`: the live view in the browser, for the length of a run
"""

from ._main import main as main

__all__ = ["main"]

main.__module__ = __name__  # tracebacks and reprs name the public module
