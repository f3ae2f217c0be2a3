"""Checked by mypy (tests/pipeline/test_builder.py runs it), never executed.

Each line marked `type: ignore[...]` must be rejected by mypy: with warn_unused_ignores,
mypy fails if it ever accepts one of them.
"""

from __future__ import annotations

from parallax.buffer import Buffer
from parallax.elements import FakeSink, FakeSrc, FileSink, FileSrc, Identity, Queue
from parallax.pipeline import Bytes, Pipeline, Sink, Tensor, Text, Transform


class Lines(Transform[Bytes, Text]):
    def transform(self, buf: Buffer) -> Buffer | None:
        return buf


class TensorSink(Sink[Tensor]):
    def render(self, buf: Buffer) -> None:
        return None


class ToTensor(Transform[Bytes, Tensor]):
    def transform(self, buf: Buffer) -> Buffer | None:
        return buf


def good() -> list[Pipeline]:
    return [
        Pipeline.from_source(FileSrc("in.bin")).then(Identity()).sink(FileSink("out.bin")),
        Pipeline.from_source(FileSrc("in.bin")).then(Lines()).then(Queue()).sink(FileSink("o")),
        Pipeline.from_source(FileSrc("in.bin")).then(ToTensor()).sink(TensorSink()),
        Pipeline.from_source(FakeSrc()).sink(FakeSink()),
    ]


def bad() -> list[Pipeline]:
    return [
        Pipeline.from_source(FileSrc("in.bin")).sink(TensorSink()),  # type: ignore[arg-type]
        Pipeline.from_source(FileSrc("in.bin")).then(ToTensor()).sink(FileSink("o")),  # type: ignore[arg-type]
        Pipeline.from_source(FileSrc("in.bin")).then(ToTensor()).then(Lines()).sink(FileSink("o")),  # type: ignore[arg-type]
    ]
