"""Flow signals that unwind a streaming thread without being errors."""

from __future__ import annotations

from parallax._errors import ParallaxError


class EndOfStream(ParallaxError):
    """Raised by a chain function that wants no more buffers (fakesink num-buffers).

    It unwinds to the streaming thread's source, which stops and sends EOS downstream,
    as GST_FLOW_EOS does in GStreamer. It reports no failure; it derives from
    `ParallaxError` only so that everything Parallax raises has one root.
    """
