"""The element registry: factory name → element class.

Elements come from Python entry points in the group `parallax.elements` (Parallax's own
built-ins are registered the same way, in its pyproject.toml), loaded on first use, and
from `register()` for classes defined in a script.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Final

from parallax._errors import ParallaxError

from ._element import Element

ENTRY_POINT_GROUP = "parallax.elements"

GSTREAMER_EQUIVALENTS: Final[Mapping[str, str]] = {
    # GStreamer element (not made here) -> what to use instead, and why it fits.
    "shmsink": "use ipcsink: shared memory to other processes",
    "shmsrc": "use ipcsrc: shared memory from another process",
    "ipcpipelinesink": "use procqueue: the rest of the pipeline in a child process",
    "ipcpipelinesrc": "use procqueue: the rest of the pipeline in a child process",
    "multifdsink": "use tee with one fdsink per fd",
    "multisocketsink": "use tcpserversink: it serves every client that connects",
    "queue2": "use queue: there is no disk buffering",
    "multiqueue": "use one queue per branch",
    "fakevideosink": "use fakesink",
    "fakeaudiosink": "use fakesink",
}
"""GStreamer elements that have an equivalent here under another name: the unknown-
element error names it instead of guessing from spelling."""


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
        UnknownElement: no such factory (naming the equivalent of a GStreamer element
            that has one here, else with 'did you mean ...').
    """
    cls = _classes.get(name)
    if cls is not None:
        return cls
    ep = _discover().get(name)
    if ep is None:
        raise UnknownElement(f"unknown element '{name}'{_hint(name)}", factory=name)
    loaded = ep.load()
    if not (isinstance(loaded, type) and issubclass(loaded, Element)):
        raise UnknownElement(
            f"entry point '{name}' ({ep.value}) is not a parallax Element class", factory=name
        )
    with _lock:
        _classes.setdefault(name, loaded)
    return _classes[name]


def _hint(name: str) -> str:
    """' (GStreamer's shmsink; here, use ipcsink ...)' for a GStreamer name with an equivalent,
    else ' (did you mean ...?)' with the closest names, else ''."""
    equivalent = GSTREAMER_EQUIVALENTS.get(name)
    if equivalent is not None:
        return f" (GStreamer's {name}; here, {equivalent})"
    close = difflib.get_close_matches(name, names(), n=3)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def make(name: str, element_name: str | None = None, **props: Any) -> Element:
    """Create an element of factory `name` (like gst_element_factory_make)."""
    return get(name)(name=element_name, **props)
