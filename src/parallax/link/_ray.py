"""Ray link: a pipeline stage in a Ray actor, fed buffers through Ray's object store.

Operations: `RayLink(build, name=...)` starts a `StageActor` and has it build and play the
stage around a `RaySrc`; `send(buf)` / `send_eos()` feed it; `poll()` / `wait()` read its
report (metrics, EOS, the failing element); `close()` stops the stage and kills the actor.
See docs/ray.md.

Plan:
- The payload travels as a NumPy uint8 array viewing the buffer (no copy on our side).
  Above `INLINE_MAX` bytes it is `ray.put` into the object store (the one copy) and the
  actor receives the ObjectRef, nested in a list so Ray does not resolve it, and `ray.get`s
  it itself: for a NumPy array that is a read-only view of the store's shared memory, and
  the ObjectRef kept next to it holds the object in Ray's reference counting for as long
  as the Buffer lives. Smaller payloads ride inside the call (Ray inlines arguments up to
  its max_direct_call_object_size, 100 KiB), which measured 4x faster than `ray.put` for
  4 KiB on a 2-vCPU machine; they arrive as a read-only array over the received call.
- Metadata rides with the call as a tuple: caps text, sequence, pts, dts, duration,
  offset, flags. Caps are parsed once per distinct text on the far side.
- Backpressure: each `push` returns when the buffer is in the RaySrc's bounded inbox;
  `send()` blocks while `max_inflight` pushes are unacknowledged (`ray.wait` on their
  results). At most `max_inflight` buffers are in flight and as many queued in the actor.
- The actor is threaded (`max_concurrency` = max_inflight + 4), so `report` runs while
  pushes wait for room. Threads do not keep Ray's submission order, so every push carries
  an index and the inbox admits them in index order (each in-flight push has a thread).
- One thread in the actor watches the stage's bus: at EOS or ERROR it records the report,
  closes the inbox (waiting pushes return at once, dropping their buffer) and stops the
  stage. A push that finds the stage done answers with the report, and `send()` raises
  `EndOfStream` (the stage took no more) or `FlowError` (an element failed).
- A dead actor fails its pending calls with RayActorError; that becomes `BrokenError` here.

Limits: one sender per link (the index order is per RayLink). A payload crosses the object
store once per send: a buffer already in shared memory is copied into the store. Buffers
are bytes on the far side; the caps say what they are.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError, FlowError, MissingExtra, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import EndOfStream, Media, Message, MessageType, Pipeline, Property, Source

INLINE_MAX: Final = 64 * 1024
"""Payloads up to this many bytes travel inside the push call instead of through `ray.put`
(below Ray's 100 KiB inlining limit, so Ray never puts them in the store behind our back)."""

CONTROL_THREADS: Final = 4
"""Actor threads beyond one per in-flight push: start, report (poll and wait), stop."""

STOP_TIMEOUT: Final = 10.0
"""Seconds `close()` gives the stage to stop cleanly before the actor is killed anyway."""

_TICK: Final = 0.05  # seconds between checks of a stopping stage or a blocked source
_POLL_TIMEOUT: Final = 1.0  # seconds poll() waits for the actor's answer
_WAIT_SLICE: Final = 1.0  # seconds the actor blocks per report call of wait()
_DEATH_TIMEOUT: Final = 5.0  # seconds close() waits for Ray to forget the killed actor
_PROTOCOL_OPTIONS: Final = frozenset({"max_restarts", "max_task_retries", "concurrency_groups"})

Report = dict[str, Any]
Meta = tuple[str | None, int, int, int, int, int, int]
# ^ caps text (None: no caps), sequence, pts, dts, duration, offset, flags


def _ray() -> Any:
    """The `ray` module, or MissingExtra with the install line."""
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise MissingExtra("the Ray link needs Ray: pip install 'parallax-dataflow[ray]'") from e


# -- the actor side -------------------------------------------------------------------


class _Received:
    """The memory of one received buffer: the array (a read-only view of the object store,
    or of the call that carried it) and the ObjectRef that pins the object in Ray."""

    __slots__ = ("array", "ref", "view")

    def __init__(self, array: np.ndarray[Any, Any], ref: Any) -> None:
        self.array = array
        self.ref = ref
        self.view = array.data  # a memoryview that references the array, and so the store


_EOS: Final = object()


class _Inbox:
    """The bounded queue between the actor's push threads and the RaySrc's streaming
    thread. Pushes are admitted in index order; `close()` drops what is queued and makes
    every waiting and later put return False."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[object] = deque()
        self._cond = threading.Condition()
        self._next = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, index: int, item: object) -> bool:
        """Queue `item` once every lower index is queued and there is room; False if the
        inbox closed first (the item is dropped)."""
        with self._cond:
            while not self._closed and (index != self._next or len(self._items) >= self.capacity):
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._next += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> object | None:
        """The oldest item, or None after `timeout` seconds or a wake()."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def wake(self) -> None:
        """Wake a waiting get() so a stopping source can leave."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()  # drops the arrays, and so the object-store pins
            self._cond.notify_all()


class RaySrc(Source[Media], factory="raysrc"):
    """Push the buffers a `RayLink` sends, read-only and without copying them.

    Made by `StageActor` and handed to the stage's `build` callable; buffers arrive by
    `deliver()` from the actor's threads. Each pushed Buffer views the object-store array
    it came in and keeps it (and its ObjectRef) alive for as long as the Buffer lives.
    """

    klass = "Source/Network"
    description = "Receive buffers sent by a RayLink through Ray's object store"

    caps = Property(
        Caps.any(),
        doc="caps of the stream (each buffer also carries its own)",
        parse=Caps.from_string,
    )
    max_buffers = Property(8, doc="buffers queued before the link's pushes wait", minimum=1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._inbox = _Inbox(self.max_buffers)
        # (caps text, parsed caps), swapped as one object: push threads share it
        self._caps_cache: tuple[str | None, Caps | None] = (None, None)

    def output_caps(self) -> Caps:
        return self.caps

    def start(self) -> None:
        self._inbox.capacity = self.max_buffers  # build() may have changed it

    def metrics_extra(self) -> dict[str, Any]:
        """Buffers waiting in the inbox, for `Pipeline.metrics()`."""
        return {"queued": len(self._inbox)}

    def deliver(self, index: int, array: np.ndarray[Any, Any], ref: Any, meta: Meta) -> bool:
        """Queue one received buffer (the `index`-th of the link). Blocks while the inbox is
        full; returns False if the stage ended first (the buffer is dropped)."""
        caps_text, sequence, pts, dts, duration, offset, flags = meta
        cache = self._caps_cache
        if cache[0] != caps_text:
            cache = (caps_text, None if caps_text is None else Caps.from_string(caps_text))
            self._caps_cache = cache
        buf = Buffer(
            _Received(array, ref),
            caps=cache[1],
            sequence=sequence,
            pts=pts,
            dts=dts,
            duration=duration,
            offset=offset,
            flags=flags,
            readonly=True,
        )
        return self._inbox.put(index, buf)

    def deliver_eos(self, index: int) -> bool:
        """Queue the end of the stream after every buffer before `index`."""
        return self._inbox.put(index, _EOS)

    def close_inbox(self) -> None:
        """The stage ended: drop what is queued, refuse what comes."""
        self._inbox.close()

    def create(self) -> Buffer | None:
        inbox = self._inbox
        while self._running:
            item = inbox.get(_TICK)
            if item is _EOS:
                return None
            if isinstance(item, Buffer):
                if item.caps is None:
                    item.caps = self.srcpad.caps
                return item
        return None

    def deactivate(self) -> None:
        super().deactivate()
        self._inbox.wake()


def _error_report(message: Message) -> dict[str, str]:
    err = message.error
    element = getattr(err, "element", "") or message.source
    return {"element": element, "message": str(err) if err is not None else "error"}


class StageActor:
    """The actor side of a `RayLink`: builds the stage around a `RaySrc`, plays it, and
    takes the pushes. Its methods are called through Ray, by `RayLink` only."""

    def __init__(self, name: str, max_buffers: int) -> None:
        self._name = name
        self._src = RaySrc(name=f"{name}-src", max_buffers=max_buffers)
        self._pipeline: Pipeline | None = None
        self._cond = threading.Condition()
        self._eos = False
        self._error: dict[str, str] | None = None
        self._done = False
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, build: Callable[[Source[Any]], Pipeline]) -> None:
        """Build the stage (`build(raysrc)`) and play it; errors go back to the caller."""
        pipeline = build(self._src)
        if not isinstance(pipeline, Pipeline) or self._src.parent is not pipeline:
            raise TypeError(
                f"{self._name}: build must return the Pipeline holding the raysrc it was "
                f"given, got {pipeline!r}"
            )
        pipeline.play()
        self._pipeline = pipeline
        self._watcher = threading.Thread(
            target=self._watch, args=(pipeline,), name=f"parallax:{self._name}:stage"
        )
        self._watcher.start()

    def _watch(self, pipeline: Pipeline) -> None:
        message = None
        while message is None and not self._stopping.is_set():
            message = pipeline.bus.poll(MessageType.EOS | MessageType.ERROR, _TICK)
        with self._cond:
            if message is not None:
                if message.type is MessageType.ERROR:
                    self._error = _error_report(message)
                else:
                    self._eos = True
                self._done = True
            self._cond.notify_all()
        self._src.close_inbox()
        try:
            pipeline.stop()
        except Exception as e:  # a stage that cannot stop is reported, not hidden
            with self._cond:
                if self._error is None:
                    self._error = {"element": self._name, "message": f"stop failed: {e}"}
                self._done = True
                self._cond.notify_all()

    def push(self, index: int, meta: Meta | None, payload: Any) -> Report | None:
        """Queue buffer `index` (payload: an inline array, or [ObjectRef]); `meta` None is
        EOS. None when queued; the report when the stage is done (the buffer dropped)."""
        if meta is None:
            queued = self._src.deliver_eos(index)
        elif isinstance(payload, list):
            ref = payload[0]
            queued = self._src.deliver(index, _ray().get(ref), ref, meta)
        else:
            queued = self._src.deliver(index, payload, None, meta)
        return None if queued else self.report(0.0)

    def report(self, wait: float) -> Report:
        """The stage's state, after waiting up to `wait` seconds for it to be done."""
        with self._cond:
            if wait > 0:
                self._cond.wait_for(lambda: self._done, wait)
            eos, error, done = self._eos, self._error, self._done
        pipeline = self._pipeline
        metrics = pipeline.metrics() if pipeline is not None else {}
        return {"metrics": metrics, "eos": eos, "error": error, "done": done}

    def stop(self) -> Report:
        """Stop the stage and join its threads; the final report."""
        self._stopping.set()
        self._src.close_inbox()
        watcher = self._watcher
        if watcher is not None:
            watcher.join()
        return self.report(0.0)


_actor_class: Any = None


def _stage_actor_class() -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = _ray().remote(StageActor)
    return _actor_class


# -- the parent side ------------------------------------------------------------------


class LinkState(enum.Enum):
    """Where a RayLink is: sending, after send_eos(), or closed."""

    OPEN = "open"
    EOS_SENT = "eos sent"
    CLOSED = "closed"


class RayLink:
    """Parent side: runs a pipeline stage in a Ray actor and feeds it buffers.

    Args:
        build: called in the actor with a `RaySrc`; returns the stage's Pipeline, which
            holds that source (`parse_launch(...)` plus a link, or the typed builder). Ray
            pickles it with cloudpickle, so a lambda or closure works.
        name: the stage's name, in errors and in the actor's Ray name
            (`parallax:<name>:<8 hex>`, unique).
        max_inflight: pushes that may be unacknowledged before `send()` blocks; the
            stage's raysrc queues as many again.
        actor_options: passed to Ray's `.options()` (num_cpus, resources, runtime_env,
            scheduling_strategy, namespace, ...). The link sets max_concurrency (a larger
            one is kept) and forbids restarts: a restarted actor would not have the stage.

    Ray must be reachable: call `ray.init()` first (or let Ray start or join a cluster, as
    `RAY_ADDRESS` says). The actor lives until `close()` (or until every handle to it is
    gone, when Ray kills it). An error raised in the actor by `build` or by playing the
    stage is raised here, as it was raised there (the Ray error as `__cause__`).

    Raises:
        MissingExtra: Ray is not installed.
        ValueError: max_inflight < 1, or an actor option the link must control.
        BrokenError: the actor died while starting (e.g. parallax not importable there).
    """

    def __init__(
        self,
        build: Callable[[Source[Any]], Pipeline],
        *,
        name: str,
        max_inflight: int = 8,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        ray = _ray()
        if max_inflight < 1:
            raise ValueError(f"{name}: max_inflight must be at least 1, got {max_inflight}")
        options = dict(actor_options or {})
        forbidden = sorted(_PROTOCOL_OPTIONS & options.keys())
        if forbidden:
            raise ValueError(f"{name}: actor options {forbidden} are the link's to set")
        needed = max_inflight + CONTROL_THREADS
        options["max_concurrency"] = max(int(options.get("max_concurrency", 0)), needed)
        options["max_restarts"] = 0
        options["max_task_retries"] = 0
        options.setdefault("name", f"parallax:{name}:{uuid.uuid4().hex[:8]}")
        self.name = name
        self.max_inflight = max_inflight
        self.actor_name: str = options["name"]
        self._namespace: str | None = options.get("namespace")
        self._ray = ray
        self._errors = ray.exceptions
        self._state = LinkState.OPEN
        self._pending: list[Any] = []
        self._index = 0
        self._ended: Report | None = None  # the report a push came back with
        self._last: Report = {"metrics": {}, "eos": False, "error": None, "done": False}
        self._caps: Caps | None = None
        self._caps_text: str | None = None
        actor = _stage_actor_class().options(**options).remote(name, max_inflight)
        try:
            ray.get(actor.start.remote(build))
        except BaseException as e:
            ray.kill(actor, no_restart=True)
            self._state = LinkState.CLOSED
            if isinstance(e, self._errors.RayActorError):
                raise BrokenError(f"{name}: the stage's Ray actor died while starting: {e}") from e
            if isinstance(e, self._errors.RayTaskError) and isinstance(e.cause, Exception):
                raise e.cause from e  # what build() or play() raised in the actor
            raise
        self._actor: Any = actor

    @property
    def state(self) -> LinkState:
        """OPEN, EOS_SENT or CLOSED."""
        return self._state

    @property
    def actor(self) -> Any:
        """The Ray actor handle (None once closed)."""
        return self._actor

    # -- sending -------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._state is LinkState.CLOSED:
            raise ClosedError(f"{self.name}: cannot {action}: the link is closed")
        if self._state is LinkState.EOS_SENT:
            raise StateError(f"{self.name}: cannot {action} after send_eos()")

    def send(self, buf: Buffer, *, timeout: float | None = None) -> None:
        """Send one buffer to the stage: its bytes and metadata (caps, sequence, pts, dts,
        duration, offset, flags). The bytes are copied once, into the object store (or
        into the call, when small); `buf` may be reused when this returns.

        Blocks while `max_inflight` sends are unacknowledged (the stage is slower).

        Raises:
            TimeoutError: still no room after `timeout` seconds; nothing was sent, so the
                same buffer may be sent again.
            BrokenError: the actor died (killed, or its node lost).
            FlowError: an element of the stage failed (`element` names it).
            EndOfStream: the stage reached EOS and takes no more buffers.
            ClosedError, StateError: after close() or send_eos().
        """
        self._check_open("send")
        self._make_room(timeout)
        arr = np.frombuffer(buf.view, dtype=np.uint8)  # a view of the buffer, no copy
        caps = buf.caps
        if caps is not self._caps:
            self._caps, self._caps_text = caps, None if caps is None else str(caps)
        meta: Meta = (
            self._caps_text,
            buf.sequence,
            buf.pts,
            buf.dts,
            buf.duration,
            buf.offset,
            int(buf.flags),
        )
        payload: Any = arr if arr.nbytes <= INLINE_MAX else [self._ray.put(arr)]
        self._submit(meta, payload)

    def send_eos(self, *, timeout: float | None = None) -> None:
        """End the stream: the stage gets EOS after every buffer sent before.

        Raises:
            TimeoutError, BrokenError, FlowError, EndOfStream, ClosedError, StateError:
                as `send()`.
        """
        self._check_open("send EOS")
        self._make_room(timeout)
        self._submit(None, None)
        self._state = LinkState.EOS_SENT

    def _submit(self, meta: Meta | None, payload: Any) -> None:
        self._pending.append(self._actor.push.remote(self._index, meta, payload))
        self._index += 1
        self._collect(0.0)  # notice a dead actor or a finished stage early

    def _make_room(self, timeout: float | None) -> None:
        self._raise_if_ended()
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._pending) >= self.max_inflight:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(
                    f"{self.name}: {len(self._pending)} sends still unacknowledged "
                    f"after {timeout} s"
                )
            self._collect(left)

    def _collect(self, timeout: float | None) -> None:
        """Harvest finished pushes, waiting up to `timeout` (None: forever) for one."""
        pending = self._pending
        if not pending:
            return
        ray = self._ray
        if timeout == 0:
            ready, rest = ray.wait(pending, num_returns=len(pending), timeout=0)
        else:
            ready, rest = ray.wait(pending, num_returns=1, timeout=timeout)
        if not ready:
            return
        self._pending = rest
        try:
            answers = ray.get(ready)
        except self._errors.RayActorError as e:
            raise BrokenError(f"{self.name}: the stage's Ray actor died: {e}") from e
        for answer in answers:
            if answer is not None and self._ended is None:
                self._ended = self._last = answer
        self._raise_if_ended()

    def _raise_if_ended(self) -> None:
        ended = self._ended
        if ended is None:
            return
        error = ended["error"]
        if error is not None:
            raise FlowError(
                f"{self.name}: the stage failed: {error['message']}", element=error["element"]
            )
        raise EndOfStream(f"{self.name}: the stage reached EOS and takes no more buffers")

    # -- watching ------------------------------------------------------------------

    def _report(self, wait: float, timeout: float) -> Report | None:
        actor = self._actor
        if actor is None:
            raise ClosedError(f"{self.name}: the link is closed")
        try:
            report: Report = self._ray.get(actor.report.remote(wait), timeout=timeout)
        except self._errors.GetTimeoutError:
            return None
        except self._errors.RayActorError as e:
            raise BrokenError(f"{self.name}: the stage's Ray actor died: {e}") from e
        self._last = report
        return report

    def poll(self) -> Report:
        """The stage's latest report, without waiting for anything to happen:
        `{"metrics": pipeline.metrics(), "eos": bool, "error": None or {"element": name,
        "message": text}, "done": bool}` (done: EOS or an error). If the actor does not
        answer within a second, the previous report.

        Raises:
            BrokenError: the actor died. ClosedError: after close().
        """
        report = self._report(0.0, _POLL_TIMEOUT)
        return report if report is not None else self._last

    def wait(self, timeout: float | None = None) -> Report:
        """The stage's report once it is done (EOS or an error), or after `timeout`
        seconds (None: no limit); check `report["done"]`.

        Raises:
            BrokenError: the actor died. ClosedError: after close().
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _WAIT_SLICE if deadline is None else max(deadline - time.monotonic(), 0.0)
            piece = min(left, _WAIT_SLICE)
            report = self._report(piece, piece + _POLL_TIMEOUT)
            if report is not None and report["done"]:
                return report
            if deadline is not None and time.monotonic() >= deadline:
                return report if report is not None else self._last

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Stop the stage (its threads are joined), kill the actor, and wait (a few
        seconds at most) until Ray's control store no longer knows it by name.
        Idempotent; never raises for an actor that already died."""
        actor, self._actor = self._actor, None
        self._state = LinkState.CLOSED
        self._pending = []
        if actor is None:
            return
        ray, errors = self._ray, self._errors
        # The actor may be gone (BrokenError's case) or stuck: it is killed below either way.
        with contextlib.suppress(errors.RayActorError, errors.GetTimeoutError):
            self._last = ray.get(actor.stop.remote(), timeout=STOP_TIMEOUT)
        ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + _DEATH_TIMEOUT
        while time.monotonic() < deadline:
            try:
                ray.get_actor(self.actor_name, namespace=self._namespace)
            except ValueError:
                return  # the control store has it dead; its worker process exits now
            time.sleep(_TICK / 5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RayLink {self.name!r} {self._state.value} sent={self._index}>"
