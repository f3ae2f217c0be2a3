"""Events that travel along pads with the buffers (GStreamer's GstEvent, the few we need)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from parallax.caps import Caps


class EventType(enum.Enum):
    """What an event announces. All flow downstream, in order with the buffers."""

    STREAM_START = "stream-start"
    CAPS = "caps"
    EOS = "eos"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Event:
    """A downstream event. `caps` is set for CAPS; `data` carries CUSTOM payloads."""

    type: EventType
    caps: Caps | None = None
    data: dict[str, Any] = field(default_factory=dict)


EOS_EVENT = Event(EventType.EOS)
STREAM_START_EVENT = Event(EventType.STREAM_START)
