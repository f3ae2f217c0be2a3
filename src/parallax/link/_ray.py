"""Ray link: a pipeline stage in a Ray actor, fed buffers through Ray's object store.

Operations: `RayLink(build, name=...)` starts a `StageActor` (`_ray_actor.py`) and has it
build and play the stage around a `raysrc` (`_ray_src.py`, internal); `send(buf)` /
`send_eos()` feed it; `poll()` / `wait()` read its report (metrics, EOS, the failing
element); `close()` stops the stage and kills the actor.
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
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Self

import numpy as np

from parallax._errors import BrokenError, ClosedError, FlowError, StateError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.pipeline import EndOfStream, Pipeline, Source

from ._ray_actor import Report, ray_module, stage_actor_class
from ._ray_src import Meta

INLINE_MAX: Final = 64 * 1024
"""Payloads up to this many bytes travel inside the push call instead of through `ray.put`
(below Ray's 100 KiB inlining limit, so Ray never puts them in the store behind our back)."""

CONTROL_THREADS: Final = 4
"""Actor threads beyond one per in-flight push: start, report (poll and wait), stop."""

STOP_TIMEOUT: Final = 10.0
"""Seconds `close()` gives the stage to stop cleanly before the actor is killed anyway."""

_POLL_TIMEOUT: Final = 1.0  # seconds poll() waits for the actor's answer
_WAIT_SLICE: Final = 1.0  # seconds the actor blocks per report call of wait()
_DEATH_TIMEOUT: Final = 5.0  # seconds close() waits for Ray to forget the killed actor
_DEATH_POLL: Final = 0.01  # seconds between asking Ray whether it forgot it (a local call)
_PROTOCOL_OPTIONS: Final = frozenset({"max_restarts", "max_task_retries", "concurrency_groups"})


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
        ray = ray_module()
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
        actor = stage_actor_class().options(**options).remote(name, max_inflight)
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
            time.sleep(_DEATH_POLL)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RayLink {self.name!r} {self._state.value} sent={self._index}>"
