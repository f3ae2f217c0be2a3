"""The lines `parallax launch` prints, in gst-launch-1.0's manner: progress words and the
summary on stdout (unless `-q`), bus messages as they arrive — WARNING lines on stderr,
with `-v` each link's caps as it negotiates — and the one ERROR line on stderr."""

from __future__ import annotations

import errno
import select
import sys
import traceback
from typing import TextIO

from parallax.pipeline import Message, MessageType, Pipeline

from ._progress import human_bytes, stage_lines, totals


class Report:
    """Prints for one run of `pipeline`: to `out` what a user asked to see, to stderr
    warnings and errors."""

    def __init__(
        self, pipeline: Pipeline, out: TextIO, *, quiet: bool, verbose: bool, debug: bool
    ) -> None:
        self._pipeline, self._out = pipeline, out
        self._quiet, self._verbose, self._debug = quiet, verbose, debug

    def say(self, line: str) -> None:
        """A progress line on `out` (nothing with `-q`)."""
        if not self._quiet:
            print(line, file=self._out, flush=True)

    def message(self, message: Message) -> None:
        """Print what a bus message means to a user, if anything: a WARNING always (as
        gst-launch does, also with `-q`), a pad's new caps with `-v`."""
        if message.type is MessageType.WARNING:
            text = message.data.get("text") or message.error
            print(f"WARNING: from element {message.source}: {text}", file=sys.stderr, flush=True)
        elif (
            message.type is MessageType.PROPERTY_NOTIFY
            and self._verbose
            and message.data.get("property") == "caps"
        ):
            pad = f"{message.source}:{message.data.get('pad')}"
            self.say(f"/{self._pipeline.name}/{pad}: caps = {message.data.get('value')}")

    def drain(self) -> None:
        """Print the WARNINGs still queued (those posted while stopping: a thread left
        behind); the rest are of no use once the pipeline is stopped."""
        for message in self._pipeline.bus.messages(MessageType.WARNING):
            self.message(message)

    def error(self, message: Message) -> int:
        """Print the ERROR that stopped the pipeline; returns the exit status (1).

        Raises:
            BrokenPipeError: the error is stdout's reader having gone (`| head`): the
                caller exits quietly, as for its own writes.
        """
        err = message.error
        if err is not None and _is_broken_stdout(err):
            raise BrokenPipeError(errno.EPIPE, "stdout is closed") from err
        source = getattr(err, "element", "") or message.source
        print(f"ERROR: from element {source}: {err}", file=sys.stderr)
        for note in getattr(err, "__notes__", ()):
            print(f"  {note}", file=sys.stderr)
        if self._debug and err is not None:
            traceback.print_exception(err)
        return 1

    def summary(self, elapsed: float, *, timing: bool) -> None:
        """`Execution ended after ...`: what the sources pushed, the stages elsewhere, and
        with `--timing` each element's ns per buffer."""
        metrics = self._pipeline.metrics()  # one collection for every line below
        buffers, nbytes = totals(self._pipeline, metrics)
        rate = nbytes / elapsed if elapsed > 0 else 0.0
        self.say(
            f"Execution ended after {elapsed:.3f} s: {buffers:,} buffer{'s' * (buffers != 1)}, "
            f"{human_bytes(nbytes)} ({nbytes:,} bytes), {human_bytes(rate)}/s"
        )
        for line in stage_lines(self._pipeline, elapsed, metrics):
            self.say(line)
        if timing:
            for name, entry in metrics.items():
                if "proc_ns" in entry and entry["buffers_in"]:
                    per = entry["proc_ns"] / entry["buffers_in"]
                    self.say(f"  {name}: {per:,.0f} ns/buffer")


def _is_broken_stdout(err: BaseException) -> bool:
    """Did `err` come from writing to stdout after its reader went away? A BrokenPipeError
    in its causes, and stdout's pipe is broken now (a TCP peer's EPIPE is a real error)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, BrokenPipeError):
            return stdout_is_broken()
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def stdout_is_broken() -> bool:
    """True if fd 1 is a pipe whose read end is closed: poll(2) reports POLLERR for it."""
    poller = select.poll()
    try:
        poller.register(1, select.POLLOUT)
    except (OSError, ValueError):
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))
