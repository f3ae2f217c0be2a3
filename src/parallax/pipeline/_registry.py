"""The element registry: factory name → element class.

Elements come from Python entry points in the group `parallax.elements` (Parallax's own
built-ins are registered the same way, in its pyproject.toml), loaded on first use, and
from `register()` for classes defined in a script.
"""

from __future__ import annotations

import difflib
import threading
from importlib.metadata import entry_points
from typing import Any

from parallax._errors import ParallaxError

from ._element import Element

ENTRY_POINT_GROUP = "parallax.elements"


class UnknownElement(ParallaxError, LookupError):
    """No element factory of that name; the message suggests the closest names."""

    def __init__(self, message: str, *, factory: str = "") -> None:
        super().__init__(message)
        self.factory = factory


_lock = threading.Lock()
_classes: dict[str, type[Element]] = {}
_entry_points: dict[str, Any] | None = None


def _discover() -> dict[str, Any]:
    global _entry_points
    if _entry_points is None:
        with _lock:
            if _entry_points is None:
                _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def register(cls: type[Element], name: str | None = None) -> type[Element]:
    """Make `cls` available to `parse_launch` as `name` (default: its `factory_name`).
    Usable as a class decorator.

    Raises:
        ValueError: the name is taken by a different class.
    """
    name = name or cls.factory_name
    with _lock:
        old = _classes.get(name)
        if old is not None and old is not cls:
            raise ValueError(
                f"element factory '{name}' is already registered by {old.__qualname__}"
            )
        _classes[name] = cls
    return cls


def names() -> list[str]:
    """Every known factory name, sorted."""
    return sorted({*_discover(), *_classes})


def get(name: str) -> type[Element]:
    """The class of factory `name`, loading its entry point on first use.

    Raises:
        UnknownElement: no such factory (with 'did you mean ...').
    """
    cls = _classes.get(name)
    if cls is not None:
        return cls
    ep = _discover().get(name)
    if ep is None:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise UnknownElement(f"unknown element '{name}'{hint}", factory=name)
    loaded = ep.load()
    if not (isinstance(loaded, type) and issubclass(loaded, Element)):
        raise UnknownElement(
            f"entry point '{name}' ({ep.value}) is not a parallax Element class", factory=name
        )
    with _lock:
        _classes.setdefault(name, loaded)
    return _classes[name]


def make(name: str, element_name: str | None = None, **props: Any) -> Element:
    """Create an element of factory `name` (like gst_element_factory_make)."""
    return get(name)(name=element_name, **props)
