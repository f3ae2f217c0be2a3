"""Metrics: per-element counters from the pads, optional timing, and a Prometheus endpoint.

Counting is always on (pads count buffers and bytes as they push: two integer adds).
Timing is opt-in (`Pipeline.enable_timing()`): each sink pad's chain function is wrapped
to measure *exclusive* time — time spent in the element, not in what it pushed to — with
a per-thread stack, so a queue's two threads are accounted separately.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parallax._errors import MissingExtra
from parallax.buffer import Buffer

from ._element import Element
from ._httpd import LOOPBACK, ServerThread
from ._pad import Pad
from ._shapes import Source

if TYPE_CHECKING:
    from ._pipeline import Pipeline

_local = threading.local()


def _timed(element: Element, chain: Callable[[Buffer], None]) -> Callable[[Buffer], None]:
    clock = time.perf_counter_ns

    def timed_chain(buf: Buffer) -> None:
        saved = getattr(_local, "child", 0)
        _local.child = 0
        t0 = clock()
        try:
            chain(buf)
        finally:
            dt = clock() - t0
            element.__dict__["_proc_ns"] = element.__dict__.get("_proc_ns", 0) + dt - _local.child
            _local.child = saved + dt

    timed_chain.__wrapped__ = chain  # type: ignore[attr-defined]
    return timed_chain


def instrument(pipeline: Pipeline) -> None:
    """Wrap every sink pad's chain function (once) to measure exclusive time."""
    for element in pipeline.elements.values():
        for pad in element.sink_pads:
            if not hasattr(pad._chain, "__wrapped__"):
                pad.set_chain_function(_timed(element, pad._chain))


def _pads_total(pads: list[Pad]) -> tuple[int, int]:
    return sum(p.buffers for p in pads), sum(p.bytes for p in pads)


def _zero(element: Element) -> dict[str, Any]:
    return {
        "factory": element.factory_name,
        "buffers_in": 0,
        "bytes_in": 0,
        "buffers_out": 0,
        "bytes_out": 0,
    }


def collect(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """Per element: buffers/bytes in (sink pads' peers pushed them) and out."""
    out: dict[str, dict[str, Any]] = {}
    placed = pipeline.placed
    for name, element in pipeline.elements.items():
        if name in placed:  # runs elsewhere: the boundary relays what it last heard
            boundary = placed[name]
            remote = dict(boundary.remote_metrics().get(name) or _zero(element))
            remote["where"] = f"{boundary.name}: {boundary.where}"
            out[name] = remote
            continue
        ins = [p.peer for p in element.sink_pads if p.peer is not None]
        buffers_in, bytes_in = _pads_total(ins)
        buffers_out, bytes_out = _pads_total(element.src_pads)
        entry: dict[str, Any] = {
            "factory": element.factory_name,
            "buffers_in": buffers_in,
            "bytes_in": bytes_in,
            "buffers_out": buffers_out,
            "bytes_out": bytes_out,
        }
        if "_proc_ns" in element.__dict__ and not isinstance(element, Source):
            entry["proc_ns"] = element.__dict__["_proc_ns"]
        extra = getattr(element, "metrics_extra", None)
        if extra is not None:
            entry.update(extra())
        out[name] = entry
    return out


_COUNTERS = ("buffers_in", "bytes_in", "buffers_out", "bytes_out", "proc_ns", "dropped_late")
"""What Prometheus gets per element (dropped_late: from syncing sinks, _sync.py)."""


class MetricsServer:
    """A Prometheus endpoint serving `pipeline.metrics()` at http://host:port/metrics.

    Owns an HTTP server thread: `close()` it, or use `with`.
    """

    def __init__(self, pipeline: Pipeline, port: int, host: str = LOOPBACK) -> None:
        try:
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
            from prometheus_client.exposition import make_wsgi_app
            from prometheus_client.registry import Collector, CollectorRegistry
        except ImportError as e:
            raise MissingExtra(
                "the metrics endpoint needs prometheus-client: "
                "pip install 'parallax-dataflow[metrics]'"
            ) from e
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class _Collector(Collector):
            def collect(self) -> Any:
                data = pipeline.metrics()
                for key in _COUNTERS:
                    fam = CounterMetricFamily(
                        f"parallax_{key}", f"per-element {key}", labels=["element"]
                    )
                    for name, entry in data.items():
                        if key in entry:
                            fam.add_metric([name], entry[key])
                    yield fam
                fill = GaugeMetricFamily(
                    "parallax_queue_level_buffers", "queue fill", labels=["element"]
                )
                for name, entry in data.items():
                    if "level_buffers" in entry:
                        fill.add_metric([name], entry["level_buffers"])
                yield fill

        class _Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Scrapes are not worth a log line."""

        registry = CollectorRegistry()
        registry.register(_Collector())
        server = make_server(host, port, make_wsgi_app(registry), handler_class=_Quiet)
        self.port = server.server_port
        self._serving = ServerThread(server, "parallax:metrics")

    def close(self) -> None:
        """Stop serving and join the thread. Idempotent."""
        self._serving.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
