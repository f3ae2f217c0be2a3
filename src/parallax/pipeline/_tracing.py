"""Optional OpenTelemetry spans around pipeline-level work (never per buffer).

With `opentelemetry-api` installed (`pip install 'parallax-dataflow[otel]'`) and an SDK
configured by the application, each state change and each `run()` is a span named
`parallax.<what>` carrying the pipeline's name; an error ends its span with the
exception recorded. Without it these are no-ops costing one function call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_tracer: Any = None
_checked = False


def _get_tracer() -> Any:
    global _tracer, _checked
    if not _checked:
        _checked = True
        try:
            from opentelemetry import trace
        except ImportError:  # the extra is optional: no spans then
            _tracer = None
        else:
            _tracer = trace.get_tracer("parallax")
    return _tracer


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A span `parallax.<name>` if OpenTelemetry is installed, else nothing."""
    tracer = _get_tracer()
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(f"parallax.{name}", attributes=attributes):
        yield
