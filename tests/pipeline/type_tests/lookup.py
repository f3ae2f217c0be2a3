"""Checked by mypy (tests/pipeline/test_lifecycle.py runs it), never executed.

`Pipeline.get(name, Kind)` returns a `Kind`: its methods check, others' do not. Each line
marked `type: ignore[...]` must be rejected by mypy: with warn_unused_ignores, mypy fails
if it ever accepts one of them.
"""

from __future__ import annotations

from typing import assert_type

from parallax.buffer import Buffer
from parallax.elements import AppSink, AppSrc, FakeSrc
from parallax.pipeline import Element, Pipeline, Source


def good(p: Pipeline) -> None:
    src = p.get("src", AppSrc)
    assert_type(src, AppSrc)
    src.push_buffer(b"abc")
    src.end_of_stream()
    out: Buffer | None = p.get("out", AppSink).pull(1.0)
    assert_type(p.get("fake", FakeSrc).num_buffers, int)
    assert_type(p.get("any", Element), Element)
    del out


def bad(p: Pipeline) -> None:
    p.get("src", AppSrc).pull(1.0)  # type: ignore[attr-defined]
    sink: AppSink = p.get("src", AppSrc)  # type: ignore[assignment]
    p.get_by_name("src").push_buffer(b"x")  # type: ignore[attr-defined]
    p.get("src", "appsrc")  # type: ignore[arg-type]
    # mypy refuses an abstract class for type[...] (its type-abstract rule), though it
    # works at run time: ask for the concrete class, or isinstance() get_by_name's result
    p.get("gen", Source)  # type: ignore[type-abstract]
    del sink
