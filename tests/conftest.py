"""Fixtures shared by every test: the leak check runs around each one."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator

import pytest


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail any test that leaks file descriptors, threads, or child processes."""
    fds, threads = _fds(), set(threading.enumerate())
    yield
    gc.collect()
    # A thread that was told to stop may need a moment to leave; give it a bounded one.
    deadline = time.monotonic() + 2.0
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked_threads = set(threading.enumerate()) - threads
    assert not leaked_threads, f"test leaked threads: {sorted(t.name for t in leaked_threads)}"
    leaked_fds = _fds() - fds
    # Listing /proc/self/fd opens one fd of its own; it is closed by the time we compare.
    assert not leaked_fds, f"test leaked file descriptors: {sorted(leaked_fds)}"
    assert not multiprocessing.active_children(), "test leaked child processes"
