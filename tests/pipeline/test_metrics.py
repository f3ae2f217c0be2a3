"""Counters, timing and the Prometheus endpoint."""

from __future__ import annotations

import urllib.request

import parallax
from parallax.pipeline import MetricsServer


def test_counters_per_element() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=10 sizetype=fixed sizemax=10 ! queue name=q ! fakesink name=s"
    )
    p.run(timeout=10)
    m = p.metrics()
    assert m["s"]["buffers_in"] == 10 and m["s"]["bytes_in"] == 100
    assert m["q"]["buffers_out"] == 10
    assert "level_buffers" in m["q"]


def test_timing_is_exclusive_per_element() -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=20 ! identity name=slow sleep-time=2000 ! fakesink name=s"
    )
    p.enable_timing()
    p.run(timeout=10)
    m = p.metrics()
    assert m["slow"]["proc_ns"] >= 20 * 2_000_000 * 0.9
    assert m["s"]["proc_ns"] < m["slow"]["proc_ns"] / 10


def test_prometheus_endpoint_serves_counters() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=7 ! fakesink name=s")
    p.run(timeout=10)
    with (
        MetricsServer(p, 0) as server,
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r,
    ):
        text = r.read().decode()
    assert 'parallax_buffers_in_total{element="s"} 7.0' in text
