"""What the live view shows: a running pipeline's graph, layout, metrics, rates and messages.

`LiveView.snapshot()` is the JSON document that `/api/pipeline` serves and the page draws
(the shape is in docs/cli.md, "Live view in the browser"):

- the graph as `to_dict` exports it (elements with pads and negotiated caps, links with
  caps, bins), and for each element its place in a left-to-right layered layout
  (`layout`), the process it runs in (this one, or a boundary's child process or Ray
  actor: `Pipeline.placed`, `Boundary.where`), its counters (`Pipeline.metrics()`, with
  the elements' extras such as a queue's fill), its rates and their recent history, and
  how many errors and warnings it posted;
- the pipeline's state, whether EOS was seen, and the last errors and warnings.

Rates come from samples taken at most once per `interval` (the server calls `tick()`
between requests, and a request ticks too), so any number of open pages share one set
of samples and see the same rates. Messages are observed with a bus listener
(`Bus.add_listener`), never taken off the bus: `Pipeline.wait()` still gets its EOS and
ERROR. Counters are read live on each snapshot; they are plain integers that streaming
threads add to, read here without a lock (a value may be a buffer behind, never torn).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._bus import Message, MessageType
from ._export import to_dict

if TYPE_CHECKING:
    from ._element import Element
    from ._pipeline import Pipeline
    from ._stage import Boundary

SNAPSHOT_VERSION = 1

INTERVAL = 1.0
"""Seconds between rate samples: the page redraws about once a second (the issue)."""

HISTORY = 60
"""Samples kept per element for its rate plot: one minute at `INTERVAL`."""

MESSAGES = 100
"""Errors and warnings kept for the page (the newest; counts per element are kept whole)."""

_SEEN = MessageType.ERROR | MessageType.WARNING | MessageType.EOS


def layout(pipeline: Pipeline) -> dict[str, tuple[int, float]]:
    """Each element's (column, row) in a left-to-right layered drawing.

    Columns: one more than the furthest upstream element's (sources in column 0), so
    every link points right. Rows: a depth-first walk from the sources gives each branch
    a lane of its own (a chain stays in its lane; a tee's second and later branches open
    new lanes below, in pad order, so branches never cross); then, right to left, an
    element is centred on the lanes of the elements its walk reached first, so a tee sits
    in the middle of its branches. Two elements of one column never share a row: their
    subtrees own disjoint ranges of lanes.
    """
    order = pipeline.topological()
    column: dict[str, int] = {}
    for element in order:
        feeders = [p.peer.element.name for p in element.sink_pads if p.peer is not None]
        column[element.name] = 1 + max((column[f] for f in feeders), default=-1)
    lane: dict[str, int] = {}
    owned: dict[str, list[str]] = {}  # the tree the walk makes: who reached whom first
    lanes = 0
    for root in order:
        if root.name in lane:
            continue
        stack: list[tuple[Element, int | None]] = [(root, None)]
        while stack:
            element, at = stack.pop()
            if at is None:  # a new branch: the lane after all that earlier ones use
                at, lanes = lanes, lanes + 1
            lane[element.name] = at
            kids: list[Element] = []
            for pad in element.src_pads:
                kid = pad.peer.element if pad.peer is not None else None
                if kid is not None and kid.name not in lane:
                    lane[kid.name] = at  # claimed: reached first from here
                    kids.append(kid)
            owned[element.name] = [k.name for k in kids]
            # The first branch continues this lane and is walked first (LIFO), so a later
            # branch's lane is taken only when the earlier ones are done.
            stack.extend((kid, None if i else at) for i, kid in reversed(list(enumerate(kids))))
    row: dict[str, float] = {}
    for element in reversed(order):
        below = owned.get(element.name, [])
        row[element.name] = (
            sum(row[k] for k in below) / len(below) if below else float(lane[element.name])
        )
    return {name: (column[name], row[name]) for name in column}


class LiveView:
    """Samples one pipeline's metrics and observes its bus, for `snapshot()`.

    Owns a listener on the pipeline's bus: `close()` removes it (or use `with`). Thread
    safe: `tick()` and `snapshot()` may be called from any threads at once.
    """

    def __init__(
        self, pipeline: Pipeline, *, interval: float = INTERVAL, history: int = HISTORY
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval}")
        self._pipeline = pipeline
        self._interval = interval
        self._history = history
        self._lock = threading.Lock()
        self._clock: Callable[[], float] = time.monotonic
        self._t0 = self._clock()
        self._last: tuple[float, dict[str, tuple[int, int]]] | None = None
        self._rates: dict[str, tuple[float, float]] = {}
        self._plots: dict[str, deque[tuple[float, float, float]]] = {}
        self._messages: deque[dict[str, Any]] = deque(maxlen=MESSAGES)
        self._errors: Counter[str] = Counter()
        self._warnings: Counter[str] = Counter()
        self._eos = False
        self._closed = False
        pipeline.bus.add_listener(self._observe)
        self.tick()

    def close(self) -> None:
        """Stop observing the bus. Idempotent."""
        if not self._closed:
            self._closed = True
            self._pipeline.bus.remove_listener(self._observe)

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the bus ---------------------------------------------------------------------

    def _observe(self, message: Message) -> None:
        # Runs on whichever thread posted: record and return, nothing that blocks.
        if not message.type & _SEEN:
            return
        if message.type is MessageType.EOS:
            self._eos = True
            return
        error = message.error
        source = getattr(error, "element", "") or message.source
        try:
            text = str(error) if error is not None else str(message.data.get("text", ""))
        except Exception as e:  # observing must never fail the thread that posts
            text = f"({type(error).__name__} whose text cannot be read: {e!r})"
        entry = {
            "type": message.type.name,
            "source": source,
            "text": text,
            "time": round(message.timestamp - self._t0, 3),
        }
        with self._lock:
            self._messages.append(entry)
            (self._errors if message.type is MessageType.ERROR else self._warnings)[source] += 1

    # -- sampling --------------------------------------------------------------------

    def tick(self, metrics: dict[str, dict[str, Any]] | None = None) -> None:
        """Take a rate sample if `interval` has passed since the last one (from `metrics`
        when the caller has just collected them; else they are collected if needed)."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last[0] < self._interval * 0.95:
                return
            if metrics is None:
                metrics = self._pipeline.metrics()
            counts = {name: _throughput(m) for name, m in metrics.items()}
            last, self._last = self._last, (now, counts)
            if last is None:
                return
            dt = now - last[0]
            for name, (buffers, nbytes) in counts.items():
                old = last[1].get(name, (0, 0))
                # A counter that went down was reset (the pipeline started again).
                rate = (max(buffers - old[0], 0) / dt, max(nbytes - old[1], 0) / dt)
                self._rates[name] = rate
                plot = self._plots.setdefault(name, deque(maxlen=self._history))
                plot.append((round(now - self._t0, 3), *rate))

    # -- the document ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The document `/api/pipeline` serves (see the module docstring)."""
        pipeline = self._pipeline
        metrics = pipeline.metrics()
        self.tick(metrics)  # one collection for the rates and the counters shown
        graph = to_dict(pipeline)
        placed = pipeline.placed
        places = layout(pipeline)
        pid = os.getpid()
        with self._lock:
            for entry in graph["elements"]:
                name = entry["name"]
                entry_metrics = metrics.get(name, {})
                buffers, nbytes = self._rates.get(name, (0.0, 0.0))
                plot = self._plots.get(name, ())
                entry.update(
                    column=places[name][0],
                    row=places[name][1],
                    process=_process(name, placed, pid),
                    metrics=entry_metrics,
                    rates={"buffers_per_s": buffers, "bytes_per_s": nbytes},
                    history={
                        "time": [t for t, _, _ in plot],
                        "buffers_per_s": [b for _, b, _ in plot],
                        "bytes_per_s": [n for _, _, n in plot],
                    },
                    fill=_fill(pipeline.elements[name], entry_metrics),
                    errors=self._errors[name],
                    warnings=self._warnings[name],
                )
            messages = list(self._messages)
            eos = self._eos
        graph["version"] = SNAPSHOT_VERSION
        graph.update(
            state=pipeline.state.name,
            eos=eos,
            time=round(self._clock() - self._t0, 3),
            interval=self._interval,
            pid=pid,
            messages=messages,
        )
        return graph


def _throughput(entry: dict[str, Any]) -> tuple[int, int]:
    """What an element handles: what reached it, or for a source what it pushed."""
    if entry.get("buffers_in") or not entry.get("buffers_out"):
        return int(entry.get("buffers_in", 0)), int(entry.get("bytes_in", 0))
    return int(entry["buffers_out"]), int(entry.get("bytes_out", 0))


def _fill(element: Element, entry: dict[str, Any]) -> float | None:
    """A queue's fill, 0..1: the `level_buffers` of its metrics extras over its
    `max-size-buffers` (GStreamer's name for the limit). None where an element holds no
    buffers, or has no limit (0)."""
    level = entry.get("level_buffers")
    if not isinstance(level, int) or element.find_property("max-size-buffers") is None:
        return None
    limit = element.get_property("max-size-buffers")
    if not isinstance(limit, int) or limit <= 0:
        return None
    return min(level / limit, 1.0)


def _process(name: str, placed: dict[str, Boundary], pid: int) -> dict[str, str]:
    boundary = placed.get(name)
    if boundary is None:
        return {"id": "main", "label": "this process", "where": f"pid {pid}"}
    return {"id": boundary.name, "label": boundary.placement_label, "where": boundary.where}
