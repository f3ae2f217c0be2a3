"""`Pipeline`: owns elements, links them into a DAG, drives states, and runs to EOS.

Execution follows GStreamer's push model (DESIGN.md): each source's streaming thread
pushes buffers through synchronous chain calls; other threads exist only where an
element starts one (a `queue`). The pipeline starts them going to PLAYING and joins
every one of them going down, so a stopped pipeline owns no thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar

from parallax._errors import FlowError, LinkError, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps

from ._bus import Bus, Message, MessageType
from ._clock import Clock, Timeline
from ._element import Element, Media, State
from ._graph import Graph
from ._poll import FLUSH_POLL
from ._shapes import Source
from ._stage import Boundary, split
from ._stop import describe, stop_error, where_blocked
from ._tracing import span

if TYPE_CHECKING:
    from ._builder import Chain
    from ._web import WebServer

log = logging.getLogger("parallax.pipeline")
_T = TypeVar("_T", bound=Media)

STOP_TIMEOUT = 1.0
"""Seconds each element gets to leave its streaming threads on stop (the spine issue:
'stop/Ctrl-C flushes and joins every thread within a second')."""


class Pipeline(Graph):
    """A graph of linked elements and the states it runs through.

    Use it as a context manager, or call `close()` (= set_state(NULL)): a playing
    pipeline owns threads and open files.
    """

    def __init__(self, name: str = "pipeline0") -> None:
        self.name = name
        self.elements: dict[str, Element] = {}
        self.bins: list[dict[str, Any]] = []
        self.bus = Bus()
        self.state = State.NULL
        self._eos_sinks: set[str] = set()
        self._eos_lock = threading.Lock()
        self._timing = False
        self._placed: dict[str, Boundary] = {}  # elements that run elsewhere -> their boundary
        self._timeline = Timeline(Clock())

    # -- typed builder entry -----------------------------------------------------------

    @staticmethod
    def from_source(source: Source[_T]) -> Chain[_T]:
        """Start a typed chain: `Pipeline.from_source(src).then(t).sink(s)` (see `Chain`)."""
        from ._builder import Chain

        return Chain._start(source)

    # -- states --------------------------------------------------------------------

    def set_state(self, target: State) -> None:
        """Move through every intermediate state to `target`.

        Going down always ends in `target`: a streaming thread that does not leave within
        STOP_TIMEOUT is left running and reported as a WARNING on the bus (Python cannot
        stop a thread), and every element gets its `stop()` even when another's fails.

        Raises:
            StateError, FlowError, LinkError: a transition up failed; the pipeline is
                brought back to NULL first, so nothing stays open, and what failed on the
                way down is attached to that error as a note (`__notes__`).
            Exception: going to NULL, the one element `stop()` that failed; when several
                failed, one FlowError naming each, its `__cause__` an ExceptionGroup of
                them. The pipeline is in NULL either way.
        """
        try:
            while self.state != target:
                step = State(self.state + (1 if target > self.state else -1))
                log.debug("%s: %s -> %s", self.name, self.state.name, step.name)
                with span("state", pipeline=self.name, old=self.state.name, new=step.name):
                    self._transition(self.state, step)
                old, self.state = self.state, step
                self.post(Message(MessageType.STATE_CHANGED, self.name, {"old": old, "new": step}))
        except BaseException as error:
            if target != State.NULL:
                self._teardown(error)
            raise

    def _teardown(self, error: BaseException) -> None:
        """Back to NULL after `error` broke a transition up. What fails on the way down
        becomes a note on `error`: the first failure stays the one raised."""
        for down in (State.PAUSED, State.READY, State.NULL):
            if self.state > down:
                try:
                    self._transition(self.state, down)
                except Exception as also:
                    error.add_note(f"stopping after it failed too: {describe(also)}")
                self.state = down

    def _transition(self, old: State, new: State) -> None:
        if (old, new) == (State.NULL, State.READY):
            self._check_complete()
            self._placed = split(self.topological(), name=self.name, timing=self._timing)
        # Elements placed in another process by a boundary keep their state here (so
        # their properties are frozen while they run) but are driven over there.
        order = [e for e in self.topological() if e.name not in self._placed]
        for name in self._placed:
            self.elements[name].state = new
        if (old, new) == (State.NULL, State.READY):
            started: list[Element] = []
            try:
                for e in reversed(order):
                    started.append(e)  # its stop() is owed even if its start() fails
                    e.start()
                    e.state = State.READY
            except BaseException as error:
                # Every element that started gets its stop(), the one that failed first
                # (what its start() opened before failing); a stop() that fails here is
                # a note on the error that is raised, not a replacement for it.
                for e in reversed(started):
                    try:
                        e.stop()
                    except Exception as also:
                        error.add_note(f"rolling back, {e.name}.stop() failed: {describe(also)}")
                    e.state = State.NULL
                for name in self._placed:
                    self.elements[name].state = State.NULL
                self._placed = {}
                raise
        elif (old, new) == (State.READY, State.PAUSED):
            self._timeline.reset()  # a new stream starts at running time 0
            self._eos_sinks.clear()
            for e in order:
                for pad in e.pads.values():
                    pad.eos = False  # a pipeline may run again after EOS
                e.state = State.PAUSED
        elif (old, new) == (State.PAUSED, State.PLAYING):
            if self._timing:
                from ._metrics import instrument

                instrument(self)
            self._timeline.play()  # base time: now, less the running time already played
            # Downstream first, so every thread's consumer exists before data arrives.
            for e in reversed(order):
                e.state = State.PLAYING
                e.activate()
        elif (old, new) == (State.PLAYING, State.PAUSED):
            self._timeline.pause()  # the running time stops; clock waits wait on
            for e in order:
                if isinstance(e, Source):
                    e.pause()
                e.state = State.PAUSED
        elif (old, new) == (State.PAUSED, State.READY):
            for e in order:
                e.deactivate()
            for e in order:
                for thread in e.join_tasks(STOP_TIMEOUT):
                    self._left_behind(e, thread)
            for e in order:
                e.state = State.READY
        elif (old, new) == (State.READY, State.NULL):
            failures: list[tuple[str, Exception]] = []
            for e in order:
                try:
                    e.stop()
                except Exception as err:  # every element must get its stop()
                    failures.append((e.name, err))
                e.state = State.NULL
            if failures:
                self.state = State.NULL  # every element had its stop(): nothing stays open
                raise stop_error(self.name, failures)

    def _left_behind(self, element: Element, thread: str) -> None:
        """Report a streaming thread that did not leave within STOP_TIMEOUT (blocked in an
        element's code, which no flush reaches): a WARNING on the bus and the log."""
        text = (
            f"{element.name}: thread '{thread}' did not stop within {STOP_TIMEOUT} s"
            f"{where_blocked(thread)}; it is left running"
        )
        log.warning("%s: %s", self.name, text)
        self.post(Message(MessageType.WARNING, element.name, {"text": text, "thread": thread}))

    def _check_complete(self) -> None:
        if not self.elements:
            raise StateError(f"{self.name}: the pipeline is empty")
        for e in self.elements.values():
            for pad in e.pads.values():
                if pad.peer is None:
                    raise LinkError(f"{pad.full_name} is not linked")

    def play(self) -> None:
        """Go to PLAYING (sources start pushing)."""
        self.set_state(State.PLAYING)

    def pause(self) -> None:
        """Go to PAUSED (sources park after the buffer they are pushing)."""
        self.set_state(State.PAUSED)

    def send_eos(self) -> None:
        """End the stream cleanly: each source pushes EOS after the buffer it is pushing,
        and the EOS drains through every element to the sinks, so `wait()` returns EOS
        when files are complete (GStreamer: sending an EOS event to the pipeline; what
        `parallax launch -e` does on Ctrl-C). The state does not change: `stop()` after.
        Safe from any thread.

        Raises:
            StateError: the pipeline is not PAUSED or PLAYING (nothing streams).
        """
        if self.state < State.PAUSED:
            raise StateError(f"{self.name}: cannot send EOS in state {self.state.name}")
        for e in self.elements.values():
            if isinstance(e, Source) and e.name not in self._placed:
                e.send_eos()

    def stop(self) -> None:
        """Go to NULL: flush, join every thread (within a second each), close resources.

        A thread still busy after that is left running and named in a WARNING message;
        see `set_state` for the errors."""
        self.set_state(State.NULL)

    close = stop

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -------------------------------------------------------------------

    # -- the clock (docs/pipelines.md#the-clock) -----------------------------------------

    @property
    def clock(self) -> Clock:
        """The pipeline's clock (monotonic ns): `clock.time()` is the clock time."""
        return self._timeline.clock

    @property
    def base_time(self) -> int:
        """The clock time at which the running time was 0: set going to PLAYING, moved
        forward by each pause; -1 (CLOCK_TIME_NONE) before the first PLAYING."""
        return self._timeline.base_time

    def running_time(self) -> int:
        """Nanoseconds spent PLAYING in this run: `clock.time() - base_time` while
        playing; it stands still while PAUSED."""
        return self._timeline.running_time()

    @property
    def timeline(self) -> Timeline:
        """The base time on the clock, as elements use it (`Element.wait_running_time`)."""
        return self._timeline

    def post(self, message: Message) -> None:
        """Elements post here; the message lands on the bus."""
        self.bus.post(message)

    def element_eos(self, element: Element) -> None:
        """A sink reached EOS; when all have, the pipeline posts EOS."""
        with self._eos_lock:
            self._eos_sinks.add(element.name)
            done = self._eos_sinks >= self._terminals()
        if done:
            self.post(Message(MessageType.EOS, self.name))

    def _terminals(self) -> set[str]:
        # What must reach EOS here: this process's sinks, and each boundary (which does
        # once its stage's sinks have, over there).
        return {
            e.name
            for e in self.elements.values()
            if e.name not in self._placed
            and ((e.sink_pads and not e.src_pads) or isinstance(e, Boundary))
        }

    @property
    def placed(self) -> dict[str, Boundary]:
        """Each element that runs elsewhere → the boundary that placed it (as of the last
        start; their metrics stay readable after stop)."""
        return dict(self._placed)

    def boundaries(self) -> list[Boundary]:
        """The boundaries this process drives (outermost ones), upstream first."""
        return [
            e for e in self.topological() if isinstance(e, Boundary) and e.name not in self._placed
        ]

    def wait(self, timeout: float | None = None) -> Message | None:
        """Wait for EOS or an ERROR on the bus; returns that message (None on timeout)."""
        return self.bus.poll(MessageType.EOS | MessageType.ERROR, timeout)

    def run(self, timeout: float | None = None) -> None:
        """Play to EOS, then stop. Ctrl-C stops cleanly and re-raises.

        Raises:
            FlowError: an element failed; `element` names it, `__cause__` is the error.
            TimeoutError: no EOS within `timeout` seconds (the pipeline is stopped).
        """
        with span("run", pipeline=self.name, elements=len(self.elements)):
            try:
                self.play()
                message = self.wait(timeout)
            finally:
                self.stop()
        if message is None:
            raise TimeoutError(f"{self.name}: no EOS within {timeout} s")
        if message.type is MessageType.ERROR:
            log.debug("%s: stopped by an error: %s", self.name, message.error)
            raise _as_raisable(message)

    def pull(self, name: str, timeout: float | None = None) -> Iterator[Buffer]:
        """Yield the buffers reaching appsink `name` until EOS, playing the pipeline if
        it is not yet; a pipeline started here is stopped when the iteration ends.

        Raises:
            KeyError: no element `name`; TypeError: it is not an appsink.
            FlowError: an element failed while streaming.
        """
        sink = self.get_by_name(name)
        pull = getattr(sink, "pull", None)
        if pull is None:
            raise TypeError(f"{name} is a {sink.factory_name}, not an appsink: it cannot be pulled")
        return self._pull(name, sink, pull, timeout)

    def _pull(self, name: str, sink: Element, pull: Any, timeout: float | None) -> Iterator[Buffer]:
        started = self.state != State.PLAYING
        if started:
            self.play()
        try:
            while True:
                buf = pull(FLUSH_POLL)  # between pulls: the bus's errors, EOS, `timeout`
                if buf is not None:
                    yield buf
                    continue
                err = self.bus.pop(MessageType.ERROR)
                if err is not None:
                    raise _as_raisable(err)
                if getattr(sink, "is_eos", False):
                    return
                if timeout is not None:
                    timeout -= FLUSH_POLL
                    if timeout <= 0:
                        raise TimeoutError(f"{self.name}: no buffer from {name}")
        finally:
            if started:
                self.stop()

    # -- introspection -------------------------------------------------------------

    def negotiated_caps(self) -> list[tuple[str, Caps | None]]:
        """(pad, caps) for every linked src pad, as `parallax launch -v` prints them."""
        return [(src.full_name, src.caps) for src, _ in self.links()]

    def enable_timing(self, on: bool = True) -> None:
        """Measure per-element processing time from the next PLAYING (costs ≈ 0.3 µs a
        buffer per element)."""
        self._timing = on

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per element: buffers/bytes in and out, processing time (when timing is on),
        and element extras such as a queue's fill level."""
        from ._metrics import collect

        return collect(self)

    def serve_web(self, address: str = "127.0.0.1:0") -> WebServer:
        """Serve the live view of this pipeline (graph, placement, rates, errors) in the
        browser at the returned server's `url`; `/api/pipeline` has the same as JSON.

        `address` is `PORT`, `HOST:PORT` or `[IPV6]:PORT` (no host: loopback; port 0: any
        free one). The caller owns the server: `close()` it, or use `with`.

        Raises:
            ParseError: a malformed address. OSError: it cannot be bound.
        """
        from ._web import WebServer

        return WebServer(self, address)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from ._export import to_dot

        return to_dot(self)

    def to_launch(self) -> str:
        """A launch string that `parse_launch` rebuilds this graph from."""
        from ._export import to_launch

        return to_launch(self)

    def to_json(self) -> str:
        """The graph as JSON: elements with properties and pads, links with caps."""
        from ._export import to_json

        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """Rebuild a pipeline from `to_json` output (elements come from the registry)."""
        from ._export import from_json

        return from_json(text)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} {self.state.name} {len(self.elements)} elements>"


def _as_raisable(message: Message) -> BaseException:
    err = message.error
    if err is None:
        return FlowError(
            f"{message.source}: {message.data.get('text', 'error')}", element=message.source
        )
    return err
