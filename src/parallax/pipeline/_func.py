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
from ._element import Media
from ._shapes import Sink, Source, Transform

BufferLike = Buffer | bytes | bytearray | memoryview


def _as_buffer(item: BufferLike, sequence: int) -> Buffer:
    if isinstance(item, Buffer):
        return item
    return Buffer(item, sequence=sequence)


def _element_class(
    base: type, factory: str, fn: Callable[..., Any], register: bool, **methods: Any
) -> Any:
    """A subclass of `base` named after `fn`, with `methods`, registered as `factory`."""
    namespace = {
        "factory_name": factory,
        "description": fn.__doc__ or "",
        "__module__": fn.__module__,
        "__qualname__": fn.__qualname__,
        **methods,
    }
    cls = type(fn.__name__, (base,), namespace)
    if register:
        _registry.register(cls, factory)
    return cls


def transform(
    factory: str, *, register: bool = True
) -> Callable[[Callable[[Buffer], Buffer | None]], type[Transform[Media, Media]]]:
    """Make a Transform element class from `fn(buf) -> Buffer | None` (None drops)."""

    def wrap(fn: Callable[[Buffer], Buffer | None]) -> type[Transform[Media, Media]]:
        def transform(self: Transform[Media, Media], buf: Buffer) -> Buffer | None:
            return fn(buf)

        cls: type[Transform[Media, Media]] = _element_class(
            Transform, factory, fn, register, transform=transform
        )
        return cls

    return wrap


def sink(
    factory: str, *, register: bool = True
) -> Callable[[Callable[[Buffer], Any]], type[Sink[Media]]]:
    """Make a Sink element class from `fn(buf)`."""

    def wrap(fn: Callable[[Buffer], Any]) -> type[Sink[Media]]:
        def render(self: Sink[Media], buf: Buffer) -> None:
            fn(buf)

        cls: type[Sink[Media]] = _element_class(Sink, factory, fn, register, render=render)
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

        cls: type[Source[Media]] = _element_class(
            Source, factory, fn, register, start=start, create=create
        )
        return cls

    return wrap
