"""The typed builder: chains that mypy checks, built on the same graph and executor.

    Pipeline.from_source(FileSrc("in.bin")).then(Identity()).sink(FileSink("out.bin"))

`Chain[T]` remembers the media type `T` flowing out of its last stage. `then()` takes
a `Transform[T, U]` and gives `Chain[U]`, or a `Filter` (identity, queue, capsfilter)
and keeps `T`; `sink()` takes a `Sink[T]`. A stage that does not accept `T` is a type
error (tests/pipeline/type_tests/builder.py proves it under mypy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, overload

from . import _registry
from ._element import Element, Media
from ._pipeline import Pipeline
from ._shapes import Filter, Sink, Source, Transform

T = TypeVar("T", bound=Media)
U = TypeVar("U", bound=Media)


class Chain(Generic[T]):
    """A partly built pipeline whose last stage produces `T`. Made by
    `Pipeline.from_source`; each call links one more stage and returns a new chain."""

    __slots__ = ("_last", "_pipeline")

    def __init__(self, pipeline: Pipeline, last: Element) -> None:
        self._pipeline = pipeline
        self._last = last

    @classmethod
    def _start(cls, source: Source[T]) -> Chain[T]:
        pipeline = Pipeline()
        pipeline.add(source)
        return Chain(pipeline, source)

    @overload
    def then(self, stage: Filter) -> Chain[T]: ...
    @overload
    def then(self, stage: Transform[T, U]) -> Chain[U]: ...
    def then(self, stage: Transform[T, U] | Filter) -> Chain[T] | Chain[U]:
        """Link `stage` after the last one."""
        self._pipeline.link(self._last, stage)
        return Chain(self._pipeline, stage)

    def sink(self, stage: Sink[T]) -> Pipeline:
        """Link the final stage; returns the pipeline, ready to `run()`."""
        self._pipeline.link(self._last, stage)
        return self._pipeline

    def tee(self, *branches: Callable[[Chain[T]], Pipeline]) -> Pipeline:
        """Fan out through a `tee`: each branch function receives a chain that starts at
        one of the tee's src pads (give each branch a `Queue()` for its own thread)."""
        if not branches:
            raise ValueError("tee() needs at least one branch")
        tee = _registry.make("tee")
        self._pipeline.link(self._last, tee)
        for branch in branches:
            result = branch(Chain(self._pipeline, tee))
            if result is not self._pipeline:
                raise ValueError("a tee branch must end with .sink(...) on the chain it was given")
        return self._pipeline

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline built so far."""
        return self._pipeline
