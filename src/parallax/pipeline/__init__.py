"""The pipeline engine: elements, pads, caps negotiation, the graph, and its executor.

Layout:
    _props.py     typed element properties (`Property`)
    _pad.py       `Pad`, `PadTemplate`: linking and the push hot path
    _events.py    events that flow with the buffers (stream-start, caps, EOS)
    _flow.py      `EndOfStream`: a chain function's way to end the stream, not an error
    _bus.py       `Bus`, `Message`: what the application hears
    _element.py   `Element`, its states, the phantom media types
    _shapes.py    `Source`, `Transform`, `Filter`, `Sink`: the shapes a user subclasses
    _clock.py     `Clock`, `Timeline`: clock time, base time, running time, waits
    _sync.py      sinks' sync and max-lateness, sources' do-timestamp and live sync
    _async.py     `AsyncSource` (asyncio producers)
    _func.py      `@transform`, `@sink`, `@source`: elements from functions
    _alloc.py     `BufferAllocator`: sources' buffers, loaned from shared-memory pools
    _poll.py      `FLUSH_POLL`, `wait_or_flush`: how a blocked wait notices a stop
    _registry.py  factory names → classes, from entry points (`parallax.elements`)
    _lex.py       the gst-launch tokens and quoting rules (pure)
    _description.py  what a launch line describes: elements, bins, links (pure)
    _parse.py     the gst-launch grammar: tokens → `Description` (pure)
    _print.py     `Description` → a canonical launch line (pure)
    _launch.py    `parse_launch`: grammar → linked pipeline
    _graph.py     `Graph`: elements and links, a DAG (adding, linking, walk orders)
    _pipeline.py  `Pipeline`: a graph that runs: states, EOS, run/pull, the clock
    _stop.py      what a stop reports: several failures as one error, blocked threads
    _builder.py   `Chain`: the typed builder
    _export.py    DOT and JSON
    _metrics.py   counters, timing, the Prometheus endpoint
    _tracing.py   optional OpenTelemetry spans around state changes and runs
    _stage.py     `Boundary`, `Stage`: the part of a pipeline that runs elsewhere
    _httpd.py     HTTP servers a pipeline owns: addresses, the serving thread
    _view.py      `LiveView`: a running pipeline's graph, layout, rates, messages
    _web.py       `WebServer`: the live view in the browser (page in web/)
"""

import typing as _typing

from . import _registry as registry
from ._alloc import BufferAllocator as BufferAllocator
from ._async import AsyncSource as AsyncSource
from ._builder import Chain as Chain
from ._bus import Bus as Bus
from ._bus import Message as Message
from ._bus import MessageType as MessageType
from ._clock import Clock as Clock
from ._clock import Timeline as Timeline
from ._element import Bytes as Bytes
from ._element import Element as Element
from ._element import Media as Media
from ._element import State as State
from ._element import Tensor as Tensor
from ._element import Text as Text
from ._element import Video as Video
from ._events import Event as Event
from ._events import EventType as EventType
from ._flow import EndOfStream as EndOfStream
from ._func import sink as sink
from ._func import source as source
from ._func import transform as transform
from ._launch import parse_launch as parse_launch
from ._metrics import MetricsServer as MetricsServer
from ._pad import Pad as Pad
from ._pad import PadDirection as PadDirection
from ._pad import PadPresence as PadPresence
from ._pad import PadTemplate as PadTemplate
from ._pipeline import Pipeline as Pipeline
from ._poll import FLUSH_POLL as FLUSH_POLL
from ._poll import wait_or_flush as wait_or_flush
from ._props import Property as Property
from ._registry import UnknownElement as UnknownElement
from ._shapes import Filter as Filter
from ._shapes import Sink as Sink
from ._shapes import Source as Source
from ._shapes import Transform as Transform
from ._stage import REPORT_INTERVAL as REPORT_INTERVAL
from ._stage import Boundary as Boundary
from ._stage import Report as Report
from ._stage import Stage as Stage
from ._stage import run_stage as run_stage

__all__ = [
    "FLUSH_POLL",
    "REPORT_INTERVAL",
    "AsyncSource",
    "Boundary",
    "BufferAllocator",
    "Bus",
    "Bytes",
    "Chain",
    "Clock",
    "Element",
    "EndOfStream",
    "Event",
    "EventType",
    "Filter",
    "Media",
    "Message",
    "MessageType",
    "MetricsServer",
    "Pad",
    "PadDirection",
    "PadPresence",
    "PadTemplate",
    "Pipeline",
    "Property",
    "Report",
    "Sink",
    "Source",
    "Stage",
    "State",
    "Tensor",
    "Text",
    "Timeline",
    "Transform",
    "UnknownElement",
    "Video",
    "WebServer",
    "parse_launch",
    "registry",
    "run_stage",
    "sink",
    "source",
    "transform",
    "wait_or_flush",
]

if _typing.TYPE_CHECKING:
    from ._web import WebServer as WebServer


def __getattr__(name: str) -> _typing.Any:
    # The live view's server loads on first use: it brings http.server and the page
    # (≈ 13 ms of `import parallax` otherwise, for a feature most runs never open).
    if name == "WebServer":
        from ._web import WebServer

        WebServer.__module__ = __name__
        globals()[name] = WebServer
        return WebServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) or hasattr(_obj, "__code__"):  # classes and functions
        _obj.__module__ = __name__
