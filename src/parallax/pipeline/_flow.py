"""Flow signals that unwind a streaming thread without being errors."""

from __future__ import annotations


class EndOfStream(Exception):
    """Raised by a chain function that wants no more buffers (fakesink num-buffers).

    It unwinds to the streaming thread's source, which stops and sends EOS downstream,
    as GST_FLOW_EOS does in GStreamer. It is not an error.
    """
