"""OpenTelemetry spans for run() and state changes, when the SDK is installed."""

from __future__ import annotations

import logging

import pytest

import parallax
from parallax.pipeline import _tracing


def test_run_and_state_changes_are_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="pip install opentelemetry-sdk")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    monkeypatch.setattr(_tracing, "_tracer", provider.get_tracer("parallax"))
    monkeypatch.setattr(_tracing, "_checked", True)
    parallax.parse_launch("fakesrc num-buffers=3 ! fakesink", name="traced").run(timeout=5)
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert names.count("parallax.state") == 6
    run = next(s for s in spans if s.name == "parallax.run")
    assert run.attributes is not None and run.attributes["pipeline"] == "traced"
    provider.shutdown()


def test_state_changes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="parallax.pipeline"):
        parallax.parse_launch("fakesrc num-buffers=1 ! fakesink", name="logged").run(timeout=5)
    assert "logged: NULL -> READY" in caplog.text
