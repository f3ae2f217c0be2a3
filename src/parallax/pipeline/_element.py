"""Elements: the base class, its states and the phantom media types; the three shapes a
user subclasses (Source, Transform, Sink) are in `_shapes.py`.

Threads: an element that needs one (a source's streaming loop, a queue's output side)
starts it with `start_task` when the pipeline goes to PLAYING and the pipeline joins it
when going down; a task's exception becomes an ERROR message naming the element.

Typing: `Source[Out]`, `Transform[In, Out]` and `Sink[In]` carry phantom media types
(`Bytes`, `Text`, `Tensor`, ...) so the typed builder can reject a chain whose stage
does not accept the previous stage's output. A `Filter` is a transform that does not
change the type (identity, queue, capsfilter).
"""

from __future__ import annotations

import enum
import itertools
import threading
from abc import ABC
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from parallax._errors import FlowError, LinkError, PropertyError
from parallax.buffer import Buffer
from parallax.caps import Caps

from ._bus import Message, MessageType
from ._clock import CLOCK_TIME_NONE, Timeline
from ._events import Event, EventType
from ._pad import Pad, PadDirection, PadPresence, PadTemplate
from ._props import Property, properties_of


class State(enum.IntEnum):
    """Element and pipeline states, in GStreamer's order."""

    NULL = 0
    READY = 1
    PAUSED = 2
    PLAYING = 3


# -- phantom media types for the typed builder ------------------------------------------


class Media:
    """Root of the phantom payload types. Any element may say `Source[Media]`."""


class Bytes(Media):
    """Opaque bytes (`bytes` caps)."""


class Text(Bytes):
    """Text lines (`text/lines`); also bytes, so byte sinks accept it."""


class Tensor(Media):
    """A typed array (`tensor,dtype=...,shape=<...>`)."""


class Video(Media):
    """Raw video frames (`video/raw`)."""


In = TypeVar("In", bound=Media, contravariant=True)
Out = TypeVar("Out", bound=Media, covariant=True)


class ElementParent(Protocol):
    """What an element needs from the pipeline that holds it."""

    def post(self, message: Message) -> None: ...

    def element_eos(self, element: Element) -> None: ...

    @property
    def timeline(self) -> Timeline: ...


_name_counters: dict[str, itertools.count[int]] = {}
_name_lock = threading.Lock()


def _auto_name(factory: str) -> str:
    with _name_lock:
        counter = _name_counters.setdefault(factory, itertools.count())
        return f"{factory}{next(counter)}"


class Element(ABC):  # noqa: B024  (no abstract method here: subclasses pick the shape)
    """Base of every element.

    Class attributes describe the element (`factory_name`, `klass`, `description`,
    `pad_templates`); `Property` descriptors declare its properties. An element is made
    in state NULL; the pipeline drives `start` (resources), `activate` (threads),
    `deactivate` and `stop`. Override those, not `set_state`.
    """

    factory_name: ClassVar[str] = ""
    klass: ClassVar[str] = "Generic"
    description: ClassVar[str] = ""
    pad_templates: ClassVar[tuple[PadTemplate, ...]] = ()
    movable: ClassVar[bool] = True
    """False for elements that hand buffers to this process's Python code (appsink):
    they cannot run in a stage placed in another process (`procqueue`)."""

    def __init_subclass__(cls, factory: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if factory is not None:
            cls.factory_name = factory
        elif "factory_name" not in vars(cls):
            cls.factory_name = cls.__name__.lower()

    def __init__(self, name: str | None = None, **props: Any) -> None:
        self.name = name if name is not None else _auto_name(self.factory_name or "element")
        self.pads: dict[str, Pad] = {}
        self.parent: ElementParent | None = None
        self.state = State.NULL
        self._tasks: list[threading.Thread] = []
        self._flushing = False
        for template in self.pad_templates:
            if template.presence is PadPresence.ALWAYS:
                self._add_pad(template.name, template)
        for key, value in props.items():
            self.set_property(key, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.state.name}>"

    # -- properties ----------------------------------------------------------------

    @classmethod
    def properties(cls) -> Sequence[Property[Any]]:
        """The element's properties, by GStreamer name (`num-buffers`)."""
        return properties_of(cls)

    @classmethod
    def find_property(cls, name: str) -> Property[Any] | None:
        """The property called `name` (GStreamer `num-buffers` or Python `num_buffers`)."""
        want = name.replace("_", "-")
        for prop in cls.properties():
            if prop.name == want:
                return prop
        return None

    def set_property(self, name: str, value: Any) -> None:
        """Set a property from a Python value or from launch text (a `str`).

        Raises:
            PropertyError: unknown property (with the closest names), a bad value, or a
                change while playing that the property does not allow.
        """
        prop = self.find_property(name)
        if prop is None:
            known = ", ".join(p.name for p in self.properties())
            raise PropertyError(
                f"{self.name}: no property '{name}' on {self.factory_name} (it has: {known})",
                element=self.name,
                prop=name,
                value=value,
            )
        self._check_property_change(prop)
        if isinstance(value, str) and (prop.kind is not str or prop.parse is not None):
            value = prop.from_string(value, element=self.name)
        else:
            value = prop.validate(value, element=self.name)
        self.__dict__[prop.attr] = value

    def _check_property_change(self, prop: Property[Any]) -> None:
        """Refuse a change of a non-`mutable` property once streaming may have read it."""
        if self.__dict__.get("state", State.NULL) >= State.PAUSED and not prop.mutable:
            raise PropertyError(
                f"{self.name}: property '{prop.name}' cannot change in state {self.state.name}",
                element=self.name,
                prop=prop.name,
            )

    def get_property(self, name: str) -> Any:
        """The value of a property, by GStreamer or Python name."""
        prop = self.find_property(name)
        if prop is None:
            raise PropertyError(f"{self.name}: no property '{name}'", element=self.name, prop=name)
        return getattr(self, prop.attr)

    # -- pads ----------------------------------------------------------------------

    def _add_pad(self, name: str, template: PadTemplate) -> Pad:
        pad = Pad(self, name, template)
        if template.direction is PadDirection.SINK:
            pad.set_chain_function(self._chain_for(pad))
        self.pads[name] = pad
        return pad

    def _chain_for(self, pad: Pad) -> Callable[[Buffer], None]:
        """The chain function for a new sink pad. Default: `self.chain` for every pad."""
        return self.chain

    def chain(self, buf: Buffer) -> None:
        """Handle a buffer arriving on a sink pad. Elements with sink pads override it."""
        raise FlowError(f"{self.name}: {type(self).__name__} takes no buffers", element=self.name)

    @property
    def src_pads(self) -> list[Pad]:
        """The element's src pads, in creation order."""
        return [p for p in self.pads.values() if p.direction is PadDirection.SRC]

    @property
    def sink_pads(self) -> list[Pad]:
        """The element's sink pads, in creation order."""
        return [p for p in self.pads.values() if p.direction is PadDirection.SINK]

    def get_pad(self, name: str) -> Pad:
        """The pad called `name`, making a request pad if a template allows it.

        Raises:
            LinkError: no such pad and no template that could make it.
        """
        pad = self.pads.get(name)
        if pad is not None:
            return pad
        for template in self.pad_templates:
            if template.presence is PadPresence.REQUEST and template.matches(name):
                return self.request_pad(template, name)
        names = ", ".join(
            [*self.pads, *(t.name for t in self.pad_templates if t.presence is PadPresence.REQUEST)]
        )
        raise LinkError(f"{self.name} has no pad '{name}' (pads: {names})")

    def request_pad(self, template: PadTemplate, name: str | None = None) -> Pad:
        """Make a pad from a REQUEST template (`src_%u` → `src_0`, `src_1`, ...).

        With no `name`, or the template's own (`src_%u`, as gst_element_request_pad_simple
        takes it), the pad takes the next index of a per-template counter that no pad has
        yet (gsttee.c keeps such a counter): the counter only moves forward, so n requests
        cost O(n), not O(n²).

        Raises:
            LinkError: a pad called `name` exists.
        """
        if name is None or name == template.name:
            prefix, percent, suffix = template.name.partition("%u")
            if not percent:  # a one-pad request template
                name = template.name
            else:
                # Template name -> next index; made on the first request, so elements
                # without request pads carry none.
                counters: dict[str, int] = self.__dict__.setdefault("_request_counters", {})
                i = counters.get(template.name, 0)
                name = f"{prefix}{i}{suffix}"
                while name in self.pads:
                    i += 1
                    name = f"{prefix}{i}{suffix}"
                counters[template.name] = i + 1
        if name in self.pads:
            raise LinkError(f"{self.name} already has a pad '{name}'")
        return self._add_pad(name, template)

    def free_pad(self, direction: PadDirection, caps: Caps | None = None) -> Pad | None:
        """An unlinked pad of `direction` (requesting one if needed) whose template caps
        intersect `caps`; None if there is none."""
        for pad in self.pads.values():
            if (pad.direction is direction and pad.peer is None) and (
                caps is None or pad.template.caps.can_intersect(caps)
            ):
                return pad
        for template in self.pad_templates:
            if (template.direction is direction and template.presence is PadPresence.REQUEST) and (
                caps is None or template.caps.can_intersect(caps)
            ):
                return self.request_pad(template)
        return None

    # -- caps ----------------------------------------------------------------------

    def query_caps(self, pad: Pad) -> Caps:
        """Caps `pad` can handle. Default: its template caps; a sink pad of an element
        whose output equals its input (`passthrough_caps`) also asks downstream."""
        caps = pad.template.caps
        if pad.direction is PadDirection.SINK and self.passthrough_caps:
            for src in self.src_pads:
                caps = caps.intersect(src.peer_query_caps())
        return caps

    passthrough_caps: ClassVar[bool] = False

    # -- events --------------------------------------------------------------------

    def handle_event(self, pad: Pad, event: Event) -> None:
        """An event arrived on sink pad `pad`. Default: remember caps, and forward each
        event to every src pad — EOS only once all sink pads have it."""
        if event.type is EventType.CAPS:
            pad.caps = event.caps
        elif event.type is EventType.EOS:
            pad.eos = True
            if not all(p.eos for p in self.sink_pads):
                return
            self.on_eos()
        self.forward_event(event)

    def forward_event(self, event: Event) -> None:
        """Send `event` out of every linked src pad."""
        for src in self.src_pads:
            if event.type is EventType.CAPS:
                src.caps = event.caps
            if src.peer is not None:
                src.push_event(event)

    def on_eos(self) -> None:
        """All sink pads reached EOS. Sinks tell the pipeline; override to flush state."""
        if not self.src_pads and self.parent is not None:
            self.parent.element_eos(self)

    # -- messages ------------------------------------------------------------------

    def post(self, type: MessageType, **data: Any) -> None:
        """Post a message on the pipeline's bus (dropped if the element has no pipeline)."""
        if self.parent is not None:
            self.parent.post(Message(type, self.name, data))

    def post_error(self, error: BaseException) -> None:
        """Report a failure: an ERROR message whose error names this element."""
        if not isinstance(error, FlowError):
            flow = FlowError(f"{self.name}: {type(error).__name__}: {error}", element=self.name)
            flow.__cause__ = error
            error = flow
        self.post(MessageType.ERROR, error=error)

    def post_warning(self, text: str) -> None:
        """Report a problem that does not stop the pipeline."""
        self.post(MessageType.WARNING, text=text)

    # -- clock (docs/pipelines.md#the-clock) ----------------------------------------

    def running_time(self) -> int:
        """The pipeline's running time in ns; CLOCK_TIME_NONE outside a pipeline."""
        return CLOCK_TIME_NONE if self.parent is None else self.parent.timeline.running_time()

    def wait_running_time(
        self, running_time: int, cancelled: Callable[[], bool] | None = None
    ) -> int | None:
        """Block until the pipeline's running time (PAUSED does not count) reaches
        `running_time`, or `cancelled()` (default: this element flushes, as on stop).
        Returns the jitter in ns (>= 0), or None if cancelled; 0 outside a pipeline."""
        if self.parent is None:
            return 0
        return self.parent.timeline.wait(running_time, cancelled or self._is_flushing)

    def _is_flushing(self) -> bool:
        return self._flushing

    def _interrupt_clock(self) -> None:
        if self.parent is not None:  # clock waiters re-check why they wait
            self.parent.timeline.clock.interrupt()

    # -- lifecycle (the pipeline calls these) --------------------------------------

    def start(self) -> None:
        """NULL → READY: open resources (files, sockets). Errors here abort the start."""

    def stop(self) -> None:
        """READY → NULL: release what `start` opened. Must be safe to call twice."""

    def activate(self) -> None:
        """PAUSED → PLAYING: start streaming tasks."""
        self._flushing = False

    def deactivate(self) -> None:
        """PLAYING → PAUSED/NULL: flush (unblock every wait) so tasks can leave."""
        self._flushing = True
        self._interrupt_clock()  # a clock wait (sync) gives up at once

    @property
    def flushing(self) -> bool:
        """True while the element is being stopped: a waiting loop should give up."""
        return self._flushing

    def start_task(self, target: Callable[[], None], label: str = "") -> None:
        """Run `target` in a thread owned by this element; its exception becomes an ERROR."""

        def run() -> None:
            try:
                target()
            except BaseException as e:  # reported, not swallowed: the pipeline raises it
                self.post_error(e)

        suffix = f":{label}" if label else ""
        thread = threading.Thread(target=run, name=f"parallax:{self.name}{suffix}", daemon=True)
        self._tasks.append(thread)
        thread.start()

    def join_tasks(self, timeout: float) -> list[str]:
        """Join this element's threads; returns the names of those that did not stop."""
        stuck = []
        for thread in self._tasks:
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    stuck.append(thread.name)
        self._tasks = [t for t in self._tasks if t.is_alive()]
        return stuck
