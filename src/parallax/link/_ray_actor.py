"""`StageActor`: the actor side of a `RayLink`. It builds the stage around a `raysrc`,
plays it, takes the pushes, and answers reports; its methods are called through Ray, by
`RayLink` only (`_ray.py`).

One thread in the actor watches the stage's bus: at EOS or ERROR it records the report,
closes the inbox (waiting pushes return at once, dropping their buffer) and stops the
stage. A push that finds the stage done answers with the report.

Every node that may run a stage must import this module by name
(`parallax.link._ray_actor.StageActor`): Ray pickles the class by reference.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from parallax._errors import MissingExtra
from parallax.pipeline import Message, MessageType, Pipeline, Source, wait_or_flush

from ._ray_src import Meta, RaySrc

Report = dict[str, Any]


def ray_module() -> Any:
    """The `ray` module, or MissingExtra with the install line."""
    try:
        return importlib.import_module("ray")
    except ImportError as e:
        raise MissingExtra("the Ray link needs Ray: pip install 'parallax-dataflow[ray]'") from e


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
        message = wait_or_flush(
            lambda t: pipeline.bus.poll(MessageType.EOS | MessageType.ERROR, t),
            self._stopping.is_set,
        )
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
            queued = self._src.deliver(index, ray_module().get(ref), ref, meta)
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


def stage_actor_class() -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray_module().remote(StageActor)
    return _actor_class
