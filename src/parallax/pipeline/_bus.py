"""The bus: how elements and streaming threads tell the application what happened.

Any thread may `post`; the application polls or iterates. Messages are kept in order.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


class MessageType(enum.Flag):
    """Kinds of bus messages (GStreamer's GstMessageType, the ones we post)."""

    EOS = enum.auto()
    ERROR = enum.auto()
    WARNING = enum.auto()
    INFO = enum.auto()
    STATE_CHANGED = enum.auto()
    STREAM_START = enum.auto()
    ELEMENT = enum.auto()
    PROGRESS = enum.auto()
    PROPERTY_NOTIFY = enum.auto()
    ANY = (
        EOS
        | ERROR
        | WARNING
        | INFO
        | STATE_CHANGED
        | STREAM_START
        | ELEMENT
        | PROGRESS
        | PROPERTY_NOTIFY
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One bus message. `source` is the posting element's (or pipeline's) name.

    `data` carries the details: for ERROR/WARNING `error` (the exception) and `debug`,
    or `text`; for STATE_CHANGED `old`, `new`; for PROPERTY_NOTIFY `pad` (its name on
    the element), `property` and `value` — posted when a src pad's `caps` are set, as a
    link negotiates (what `parallax launch -v` prints); for ELEMENT whatever the element
    posts.
    """

    type: MessageType
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.monotonic)

    @property
    def error(self) -> BaseException | None:
        """The exception of an ERROR or WARNING message."""
        err = self.data.get("error")
        return err if isinstance(err, BaseException) else None


class Bus:
    """A thread-safe, unbounded-in-time but bounded-in-size message queue.

    Keeps the newest `capacity` messages (default 10 000: a pipeline that nobody polls
    must not grow without bound); EOS and ERROR are never dropped.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._messages: deque[Message] = deque()
        self._cond = threading.Condition()
        self._capacity = capacity
        self._listeners: tuple[Callable[[Message], None], ...] = ()

    def post(self, message: Message) -> None:
        """Queue a message and wake anyone polling."""
        with self._cond:
            if len(self._messages) >= self._capacity:
                self._drop_one()
            self._messages.append(message)
            self._cond.notify_all()
        for listener in self._listeners:
            listener(message)

    def add_listener(self, listener: Callable[[Message], None]) -> None:
        """Also hand every message posted from now on to `listener`, on the posting thread
        (it must not block); the message stays queued for `poll`. Undo: `remove_listener`."""
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[Message], None]) -> None:
        """Stop calling `listener` (a no-op if it is not listening)."""
        self._listeners = tuple(x for x in self._listeners if x != listener)

    def _drop_one(self) -> None:
        keep = MessageType.EOS | MessageType.ERROR
        for i, m in enumerate(self._messages):
            if not (m.type & keep):
                del self._messages[i]
                return

    def poll(
        self, types: MessageType = MessageType.ANY, timeout: float | None = None
    ) -> Message | None:
        """Wait up to `timeout` seconds (None: forever) for a message of `types`.

        Messages of other types that arrive before it are removed and discarded, as with
        gst_bus_poll. Returns None on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                while self._messages:
                    m = self._messages.popleft()
                    if m.type & types:
                        return m
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def pop(self, types: MessageType = MessageType.ANY) -> Message | None:
        """The oldest message of `types` without waiting, leaving the others queued."""
        with self._cond:
            for i, m in enumerate(self._messages):
                if m.type & types:
                    del self._messages[i]
                    return m
        return None

    def peek_all(self) -> list[Message]:
        """A copy of the queued messages, oldest first."""
        with self._cond:
            return list(self._messages)

    def __iter__(self) -> Iterator[Message]:
        """Drain what is queued now (does not wait)."""
        while (m := self.pop()) is not None:
            yield m

    def messages(self, types: MessageType = MessageType.ANY) -> Iterable[Message]:
        """Queued messages of `types`, removed as they are yielded (does not wait)."""
        while (m := self.pop(types)) is not None:
            yield m
