"""The `parallax` command: launch, inspect, dot (like gst-launch-1.0 and gst-inspect-1.0)."""

from ._main import main as main

__all__ = ["main"]
