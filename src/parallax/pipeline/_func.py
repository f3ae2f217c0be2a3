"""Elements from plain functions: `@transform`, `@sink`, `@source`.

    @parallax.transform("upper")
    def upper(buf: Buffer) -> Buffer:
        return Buffer(bytes(buf.view).upper(), caps=buf.caps)

The decorator returns an element class, registered under the name, so it works in
launch strings (`fakesrc ! upper ! fakesink`) as well as from Python (`upper()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from parallax.buffer import Buffer

from . import _registry
from ._element import Media, Sink, Source, Transform

BufferLike = Buffer | bytes | bytearray | memoryview


def _as_buffer(item: BufferLike, sequence: int) -> Buffer:
    if isinstance(item, Buffer):
        return item
    return Buffer(item, sequence=sequence)


def transform(
    factory: str, *, register: bool = True
) -> Callable[[Callable[[Buffer], Buffer | None]], type[Transform[Media, Media]]]:
    """Make a Transform element class from `fn(buf) -> Buffer | None` (None drops)."""

    def wrap(fn: Callable[[Buffer], Buffer | None]) -> type[Transform[Media, Media]]:
        def transform(self: Transform[Media, Media], buf: Buffer) -> Buffer | None:
            return fn(buf)

        cls = type(
            fn.__name__,
            (Transform,),
            {
                "factory_name": factory,
                "description": fn.__doc__ or "",
                "transform": transform,
                "__module__": fn.__module__,
                "__qualname__": fn.__qualname__,
            },
        )
        if register:
            _registry.register(cls, factory)
        return cls

    return wrap


def sink(
    factory: str, *, register: bool = True
) -> Callable[[Callable[[Buffer], Any]], type[Sink[Media]]]:
    """Make a Sink element class from `fn(buf)`."""

    def wrap(fn: Callable[[Buffer], Any]) -> type[Sink[Media]]:
        def render(self: Sink[Media], buf: Buffer) -> None:
            fn(buf)

        cls = type(
            fn.__name__,
            (Sink,),
            {
                "factory_name": factory,
                "description": fn.__doc__ or "",
                "render": render,
                "__module__": fn.__module__,
                "__qualname__": fn.__qualname__,
            },
        )
        if register:
            _registry.register(cls, factory)
        return cls

    return wrap


def source(
    factory: str, *, register: bool = True
) -> Callable[[Callable[[], Iterable[BufferLike]]], type[Source[Media]]]:
    """Make a Source element class from a generator function yielding buffers or bytes."""

    def wrap(fn: Callable[[], Iterable[BufferLike]]) -> type[Source[Media]]:
        def start(self: Source[Media]) -> None:
            self.__dict__["_items"] = iter(fn())

        def create(self: Source[Media]) -> Buffer | None:
            items: Iterator[BufferLike] = self.__dict__["_items"]
            item = next(items, None)
            if item is None:
                return None
            self.sequence += 1
            return _as_buffer(item, self.sequence - 1)

        cls = type(
            fn.__name__,
            (Source,),
            {
                "factory_name": factory,
                "description": fn.__doc__ or "",
                "start": start,
                "create": create,
                "__module__": fn.__module__,
                "__qualname__": fn.__qualname__,
            },
        )
        if register:
            _registry.register(cls, factory)
        return cls

    return wrap
