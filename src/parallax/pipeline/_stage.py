"""Stages: the part of a pipeline that runs somewhere else (a child process, a Ray actor).

A `Boundary` element (`procqueue`) marks where a pipeline leaves this process: every
element downstream of it forms a `Stage`. The elements of a stage stay in the parent's
`Pipeline` (so names, `metrics()`, DOT and `to_launch()` show the whole graph) but are
never started there; the boundary ships the stage, as data that pickles, to the place
that runs it, feeds it buffers, and relays what comes back: metrics, EOS, and errors
that name the remote element.

    parent:  filesrc ! procqueue ─┐      (the boundary is the parent's last element)
    child:          <transport src> ! identity ! filesink   (Stage.build)

Rules, checked when the pipeline starts (`split`): a stage is everything reachable
downstream of the boundary; no element in it may also be fed from the parent side (the
stage would have two homes); elements that hand buffers to this process's Python code
(`appsink`, `appsrc`: `movable = False`) cannot be moved. A boundary inside a stage is
placed by the process that runs the stage, so stages nest.
"""

from __future__ import annotations

import pickle
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from parallax._errors import FlowError, LinkError
from parallax.buffer import Buffer
from parallax.caps import Caps

from ._bus import Message, MessageType
from ._element import Element, Media
from ._events import Event, EventType
from ._pad import Pad, PadDirection
from ._shapes import Transform

if TYPE_CHECKING:
    from ._pipeline import Pipeline

Report = dict[str, Any]
"""What a running stage sends back: {"metrics": {name: entry}} while it runs; the last
one adds "done": True, "eos": bool and "error": None or {"element", "message"}."""

REPORT_INTERVAL = 0.25
"""Seconds between a running stage's metrics reports (the CLI refreshes 4 times a second)."""


@dataclass(frozen=True)
class ElementSpec:
    """One element of a stage: its class (pickled by reference), name and properties."""

    cls: type[Element]
    name: str
    props: Mapping[str, str]


@dataclass(frozen=True)
class LinkSpec:
    """One link inside a stage, by element and pad names."""

    src: str
    src_pad: str
    sink: str
    sink_pad: str


@dataclass(frozen=True)
class Stage:
    """The elements downstream of a boundary, as data: `build()` makes them anew.

    Attributes:
        name: the stage's pipeline name, "<parent pipeline>/<boundary>".
        entry: (element, sink pad) that the boundary feeds.
        timing: whether the parent measures per-element time (the stage does too).
    """

    name: str
    elements: tuple[ElementSpec, ...]
    links: tuple[LinkSpec, ...]
    entry: tuple[str, str]
    timing: bool = False
    sinks: tuple[str, ...] = field(default=())

    def build(self, source: Element) -> Pipeline:
        """A new pipeline of the stage's elements, with `source` feeding the entry pad.

        Raises:
            PropertyError, LinkError: as building the same graph in the parent would.
        """
        from ._pipeline import Pipeline

        pipeline = Pipeline(self.name)
        pipeline.add(source)
        for spec in self.elements:
            element = spec.cls(name=spec.name)
            for key, value in spec.props.items():
                element.set_property(key, value)
            pipeline.add(element)
        for link in self.links:
            pipeline.link(
                pipeline.elements[link.src],
                pipeline.elements[link.sink],
                src_pad=link.src_pad,
                sink_pad=link.sink_pad,
            )
        entry, pad = self.entry
        pipeline.link(source, pipeline.elements[entry], sink_pad=pad)
        if self.timing:
            pipeline.enable_timing()
        return pipeline

    def element_names(self) -> list[str]:
        """The names of the stage's elements, in the parent's order."""
        return [spec.name for spec in self.elements]

    def pickled(self) -> bytes:
        """The stage as pickle bytes, for the process that runs it (`Stage.unpickled`).

        A boundary calls this before it starts anything, so a stage that cannot travel
        fails before a child process or a link exists.

        Raises:
            FlowError: an element's class does not pickle (a class defined inside a
                function, say), naming that element (`FlowError.element`) and the cause.
        """
        try:
            return pickle.dumps(self)
        except Exception as e:  # PicklingError, AttributeError or TypeError, by what fails
            for spec in self.elements:
                try:
                    pickle.dumps(spec)
                except Exception as inner:
                    raise FlowError(
                        f"{spec.name} ({spec.cls.__qualname__}) cannot be sent to another "
                        f"process: {inner} (define its class at module level)",
                        element=spec.name,
                    ) from inner
            raise FlowError(f"stage {self.name!r} cannot be sent to another process: {e}") from e

    @classmethod
    def unpickled(cls, data: bytes) -> Stage:
        """The stage that `pickled()` made `data` from.

        Raises:
            TypeError: `data` holds something else than a Stage.
            Exception: what unpickling raises (an element class the process cannot import).
        """
        stage = pickle.loads(data)
        if not isinstance(stage, cls):
            raise TypeError(f"expected a pickled Stage, got {type(stage).__name__}")
        return stage


def _downstream(boundary: Element) -> list[Element]:
    seen: dict[str, Element] = {}
    stack = [p.peer.element for p in boundary.src_pads if p.peer is not None]
    while stack:
        element = stack.pop()
        if element.name not in seen:
            seen[element.name] = element
            stack.extend(p.peer.element for p in element.src_pads if p.peer is not None)
    return list(seen.values())


def split(order: Iterable[Element], *, name: str, timing: bool) -> dict[str, Boundary]:
    """Give each outermost boundary in `order` (upstream first) its stage.

    Returns: the name of every element that runs elsewhere → the boundary that owns it.

    Raises:
        LinkError: a stage element is also fed from this side, or cannot move.
    """
    from ._export import props_text

    placed: dict[str, Boundary] = {}
    for boundary in order:
        if not isinstance(boundary, Boundary) or boundary.name in placed:
            continue
        members = _downstream(boundary)
        inside = {e.name for e in members}
        for element in members:
            if not element.movable:
                raise LinkError(
                    f"{element.name} ({element.factory_name}) cannot run in {boundary.name}'s "
                    f"{boundary.placement_label}: it hands buffers to this process "
                    f"(put it upstream of {boundary.name})"
                )
            for pad in element.sink_pads:
                feeder = pad.peer.element if pad.peer is not None else None
                if feeder is not None and feeder is not boundary and feeder.name not in inside:
                    raise LinkError(
                        f"{element.name} is downstream of {boundary.name} but is also fed by "
                        f"{feeder.name}, which runs in this process: a stage has one entry"
                    )
            placed[element.name] = boundary
        entries = [p.peer for p in boundary.src_pads if p.peer is not None]
        if not entries:
            raise LinkError(f"{boundary.name}: nothing is linked downstream")
        entry_pad = entries[0]
        boundary._stage = Stage(
            name=f"{name}/{boundary.name}",
            elements=tuple(ElementSpec(type(e), e.name, props_text(e)) for e in members),
            links=tuple(
                LinkSpec(p.element.name, p.name, p.peer.element.name, p.peer.name)
                for e in members
                for p in e.src_pads
                if p.peer is not None
            ),
            entry=(entry_pad.element.name, entry_pad.name),
            timing=timing,
            sinks=tuple(e.name for e in members if e.sink_pads and not e.src_pads),
        )
    return placed


def run_stage(
    stage: Stage,
    source: Element,
    report: Callable[[Report], None],
    *,
    stopping: Callable[[], bool] = lambda: False,
    interval: float = REPORT_INTERVAL,
) -> bool:
    """Build and play `stage` fed by `source` until EOS or an error, reporting metrics
    every `interval` seconds and a final report. Returns True at EOS.

    Runs on the remote side (the child process, the Ray actor). Errors from building or
    streaming become the final report's "error"; they are not raised.
    """
    error: dict[str, str] | None = None
    eos = False
    pipeline = None
    try:
        pipeline = stage.build(source)
        pipeline.play()
        while not stopping():
            message = pipeline.wait(interval)
            report({"metrics": pipeline.metrics()})
            if message is None:
                continue
            if message.type is MessageType.ERROR:
                error = _error_dict(message.error, message.source)
            else:
                eos = True
            break
    except Exception as e:  # building or starting failed: report it, naming the element
        error = _error_dict(e, stage.entry[0])
    finally:
        if pipeline is not None:
            try:
                pipeline.stop()
            except Exception as e:
                error = error or _error_dict(e, stage.entry[0])
    metrics = pipeline.metrics() if pipeline is not None else {}
    report({"metrics": metrics, "done": True, "eos": eos, "error": error})
    return eos


def _error_dict(error: BaseException | None, fallback: str) -> dict[str, str]:
    element = getattr(error, "element", "") or fallback
    return {"element": element, "message": str(error) if error else "error"}


class Boundary(Transform[Media, Media]):
    """Base of elements whose downstream runs elsewhere (see the module docstring).

    The pipeline calls `launch()` with the stage at NULL → READY (after `split`), feeds
    buffers to `send()` and EOS to `finish()`, and `shutdown()` at READY → NULL.
    A subclass runs its reports through `on_report()` from any thread.
    """

    klass = "Generic/Boundary"
    passthrough_caps = True  # caps queries reach the stage's elements, which exist here
    placement_label: ClassVar[str] = "other process"

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._stage: Stage | None = None
        self._remote: dict[str, dict[str, Any]] = {}
        self._done = threading.Event()
        self._eos_sent = False
        self.where = ""  # e.g. "pid 1234", for progress lines and errors

    # -- what a subclass implements -------------------------------------------------

    @abstractmethod
    def launch(self, stage: Stage) -> None:
        """Start the remote side (READY). Raise FlowError naming this element on failure."""

    @abstractmethod
    def send(self, buf: Buffer) -> None:
        """Hand one buffer to the remote side (blocking while it is full)."""

    @abstractmethod
    def finish(self) -> None:
        """Tell the remote side the stream ended."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the remote side and release everything `launch` made. Idempotent."""

    # -- the element ------------------------------------------------------------------

    @property
    def stage(self) -> Stage | None:
        """The stage this boundary runs (set when the pipeline starts)."""
        return self._stage

    def start(self) -> None:
        stage = self._stage
        if stage is None:
            raise FlowError(
                f"{self.name}: not placed (is it in a started pipeline?)", element=self.name
            )
        self._remote = {}
        self._done.clear()
        self._eos_sent = False
        self.launch(stage)

    def stop(self) -> None:
        self.shutdown()

    def transform(self, buf: Buffer) -> Buffer | None:
        self.send(buf)
        return None

    def handle_event(self, pad: Pad, event: Event) -> None:
        # Nothing is forwarded here: the stage's elements live on the remote side, where
        # the transport's source makes their events. Caps are kept for to_dot/-v.
        if event.type is EventType.CAPS:
            pad.caps = event.caps
            for src in self.src_pads:
                src.caps = event.caps
                # announced as a pad push would (launch -v prints it), though no event
                # crosses here: the stage's own links negotiate over there
                self.post(
                    MessageType.PROPERTY_NOTIFY, pad=src.name, property="caps", value=event.caps
                )
        elif event.type is EventType.EOS:
            pad.eos = True
            if not self._eos_sent:
                self._eos_sent = True
                self.finish()

    def on_report(self, report: Report) -> None:
        """Take in one report from the remote side (any thread)."""
        self._remote = report.get("metrics", self._remote)
        if not report.get("done"):
            return
        self._done.set()
        error = report.get("error")
        if error is not None:
            element = error.get("element") or self.name
            text = str(error.get("message", "error")).removeprefix(f"{element}: ")
            err = FlowError(
                f"{element} (in {self.name}'s {self.placement_label} {self.where}): {text}",
                element=element,
            )
            if self.parent is not None:
                self.parent.post(Message(MessageType.ERROR, element, {"error": err}))
        elif report.get("eos") and self.parent is not None:
            self.parent.element_eos(self)

    def lost(self, why: str) -> None:
        """The remote side vanished without a final report: an error naming this element."""
        if not self._done.is_set():
            self._done.set()
            self.post_error(
                FlowError(
                    f"{self.name}: {self.placement_label} {self.where} {why}", element=self.name
                )
            )

    @property
    def done(self) -> bool:
        """True once the remote side sent its final report (or was lost)."""
        return self._done.is_set()

    def remote_metrics(self) -> dict[str, dict[str, Any]]:
        """The latest metrics of the stage's elements (by name), as the remote side sent them."""
        return self._remote

    def wait_done(self, timeout: float) -> bool:
        """Wait for the final report; False after `timeout` s."""
        return self._done.wait(timeout)

    def query_caps(self, pad: Pad) -> Caps:
        if pad.direction is PadDirection.SRC:
            return Caps.any()
        return super().query_caps(pad)
