"""What a stop reports: the one error when several elements fail to stop, and where a
streaming thread that did not leave is blocked (`Pipeline.stop`, docs/errors.md#stopping).
"""

from __future__ import annotations

import sys
import sysconfig
import threading

from parallax._errors import FlowError


def describe(error: BaseException) -> str:
    return str(error) if isinstance(error, FlowError) else f"{type(error).__name__}: {error}"


def stop_error(pipeline: str, failures: list[tuple[str, Exception]]) -> Exception:
    """The one error for the elements whose `stop()` failed: that error itself when one
    did; else a FlowError naming each, whose `__cause__` is an ExceptionGroup of them
    (tracebacks included), so that `except FlowError` still catches it."""
    if len(failures) == 1:
        return failures[0][1]
    parts = []
    for name, err in failures:
        text = describe(err)
        parts.append(text if text.startswith(f"{name}:") else f"{name}: {text}")
    error = FlowError(
        f"{pipeline}: {len(failures)} elements failed to stop: " + "; ".join(parts),
        element=failures[0][0],
    )
    error.__cause__ = ExceptionGroup(f"{pipeline}: stop() failed", [err for _, err in failures])
    return error


def where_blocked(thread_name: str) -> str:
    """`, blocked in fn (file:line)`: where that live thread is, in the innermost frame
    outside the standard library (the element's code that called `Event.wait`, say)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    for thread in threading.enumerate():
        if thread.name == thread_name and thread.ident is not None:
            frame = sys._current_frames().get(thread.ident)
            while frame is not None and frame.f_back is not None:
                if not frame.f_code.co_filename.startswith(stdlib):
                    break
                frame = frame.f_back
            if frame is not None:
                code = frame.f_code
                return f", blocked in {code.co_name} ({code.co_filename}:{frame.f_lineno})"
    return ""
