"""The one error tree of Parallax.

Every exception Parallax raises on purpose derives from `ParallaxError`, and most also
derive from the builtin that fits, so `except ValueError` still works::

    ParallaxError
    ├── ParseError(ValueError)        a pipeline or caps string is malformed (column)
    ├── PropertyError(ValueError)     a property name or value is wrong (element, property)
    ├── LinkError                     two pads cannot link (pads, caps)
    ├── StateError(RuntimeError)      an operation is not allowed in the current state
    ├── FlowError(RuntimeError)       an element failed while streaming (element)
    ├── PoolExhausted(MemoryError)    no free slot in a pool (pool, slots)
    ├── BudgetExceeded(MemoryError)   an arena region is over its budget (region, sizes)
    ├── StaleReference(RuntimeError)  a view into a region that was reset (region, generation)
    ├── HugePagesUnavailable(OSError) neither hugetlbfs nor transparent huge pages can be had
    ├── MissingExtra(ImportError)     an optional dependency is not installed (install line)
    ├── PlatformNotSupported          the feature does not exist on this OS
    ├── ClosedError(RuntimeError)     *you* closed it, then used it
    ├── BrokenError(RuntimeError)     the peer went away (the OS error as __cause__)
    ├── UnknownElement(LookupError)   no element factory of that name (factory)
    ├── EndOfStream                   not a failure: a chain wants no more buffers (EOS)
    ├── FrameError(ValueError)        a malformed STRM frame (offset, reason)
    ├── DescriptorError(ValueError)   a texture descriptor is invalid (field, value)
    ├── HandleError(ValueError)       an exported GPU handle is malformed or does not fit
    ├── VulkanError(RuntimeError)     a Vulkan call failed (function, result)
    ├── CudaError(RuntimeError)       a CUDA driver call failed (function, result)
    └── CudaMemoryError(BufferError)  host access to a buffer in GPU memory (device)

The first thirteen are importable from `parallax`; the others from their package:
`parallax.pipeline` (`UnknownElement`, `EndOfStream`), `parallax.link` (`FrameError`),
`parallax.gpu` (the last five; `CudaMemoryError` also from `parallax.elements`).
`EndOfStream` is the one that reports no failure: GStreamer's GST_FLOW_EOS, raised by a
chain function that wants no more buffers (catch it before `ParallaxError`).

Messages name the element, property, pad, column or byte and what was expected; the
same facts are attributes, and every error pickles so it can cross a process boundary.
tests/test_errors.py checks that every exception class in the package is drawn here, under
the base it derives from.
"""

from __future__ import annotations

from typing import Any, Final


class ParallaxError(Exception):
    """Root of all errors raised by Parallax.

    Any error may be *located* in a launch string (`text`, 1-based `column`); then its
    message shows that line with a caret under the column.
    """

    text: str | None = None
    column: int | None = None

    def locate(self, text: str, column: int) -> ParallaxError:
        """Attach where in `text` the error is; returns self, for `raise err.locate(...)`."""
        self.text, self.column = text, column
        return self

    def __str__(self) -> str:
        message = super().__str__()
        if self.text is None or self.column is None:
            return message
        return _with_caret(message, self.text, self.column)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (links, child pipelines): keep their attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement


def _rebuild(cls: type[ParallaxError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    # Without calling __init__ (its keyword arguments are in `state`). `cls.__new__` can be
    # the wrong one: for `PoolExhausted(ParallaxError, MemoryError)` it finds
    # MemoryError.__new__, which CPython refuses for a class laid out as an Exception
    # ("not safe"). The builtin that `cls` is laid out as is the first non-heap type on
    # its `__base__` chain (Exception there, OSError for HugePagesUnavailable).
    base: Any = cls  # a class object; typeshed cannot call `type.__new__` this way
    while base.__flags__ & _HEAPTYPE:
        base = base.__base__
    err = base.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class ParseError(ParallaxError, ValueError):
    """A pipeline or caps string is malformed. `column` is 1-based into `text`."""

    text: str
    column: int

    def __init__(self, message: str, text: str, column: int) -> None:
        super().__init__(message)
        self.message, self.text, self.column = message, text, column


def _with_caret(message: str, text: str, column: int) -> str:
    # Show the line the column falls on, with a caret under the offending character.
    start = text.rfind("\n", 0, max(column - 1, 0)) + 1
    end = text.find("\n", start)
    line = text[start : end if end >= 0 else len(text)]
    caret = " " * max(column - 1 - start, 0) + "^"
    return f"{message} at column {column}\n  {line}\n  {caret}"


class PropertyError(ParallaxError, ValueError):
    """A property does not exist, or its value is of the wrong type or out of range."""

    def __init__(
        self, message: str, *, element: str = "", prop: str = "", value: object = None
    ) -> None:
        super().__init__(message)
        self.element, self.prop, self.value = element, prop, value


class LinkError(ParallaxError):
    """Two pads cannot be linked: unknown pad, already linked, or caps that do not intersect."""


class StateError(ParallaxError, RuntimeError):
    """An operation is not allowed in the object's current state."""


class FlowError(ParallaxError, RuntimeError):
    """An element failed while streaming. `element` names it; the original error is `__cause__`."""

    def __init__(self, message: str, *, element: str = "") -> None:
        super().__init__(message)
        self.element = element


class PoolExhausted(ParallaxError, MemoryError):
    """Every slot of a pool is on loan."""

    def __init__(self, message: str, *, pool: str = "", slots: int = 0) -> None:
        super().__init__(message)
        self.pool, self.slots = pool, slots


class BudgetExceeded(ParallaxError, MemoryError):
    """An allocation does not fit in what is left of an arena region's budget."""

    def __init__(
        self, message: str, *, region: str = "", requested: int = 0, free: int = 0
    ) -> None:
        super().__init__(message)
        self.region, self.requested, self.free = region, requested, free


class StaleReference(ParallaxError, RuntimeError):
    """A view into an arena region was used after the region was reset."""

    def __init__(self, message: str, *, region: str = "", generation: int = 0) -> None:
        super().__init__(message)
        self.region, self.generation = region, generation


class HugePagesUnavailable(ParallaxError, OSError):
    """Huge pages were asked for, and neither hugetlbfs pages nor THP can be had."""


class MissingExtra(ParallaxError, ImportError):
    """An optional dependency is missing; the message says what to install."""


class PlatformNotSupported(ParallaxError):
    """The feature exists in the API but not on this platform (e.g. Metal on Linux)."""


class ClosedError(ParallaxError, RuntimeError):
    """The object was closed by its owner and then used."""


class BrokenError(ParallaxError, RuntimeError):
    """The other side went away; the OS error, if any, is `__cause__`."""
