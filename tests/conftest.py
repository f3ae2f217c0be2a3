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


def _describe(fds: set[str]) -> list[str]:
    out = []
    for fd in sorted(fds, key=int):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            out.append(f"{fd} (closed meanwhile)")
    return out


def _children() -> set[int]:
    """Every child process of this one (subprocess and multiprocessing alike), zombies
    included: a child that was never waited for is a leak too."""
    pids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(pid) for pid in f.read().split())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return pids


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail any test that leaks file descriptors, threads, or child processes."""
    fds, threads, children = _fds(), set(threading.enumerate()), _children()
    yield
    gc.collect()
    # A thread that was told to stop may need a moment to leave; give it a bounded one.
    deadline = time.monotonic() + 2.0
    while (set(threading.enumerate()) - threads or _children() - children) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    leaked_threads = set(threading.enumerate()) - threads
    assert not leaked_threads, f"test leaked threads: {sorted(t.name for t in leaked_threads)}"
    leaked_fds = _fds() - fds
    # Listing /proc/self/fd opens one fd of its own; it is closed by the time we compare.
    assert not leaked_fds, f"test leaked file descriptors: {_describe(leaked_fds)}"
    assert not multiprocessing.active_children(), "test leaked child processes"
    leaked_children = _children() - children
    assert not leaked_children, f"test leaked child processes: {sorted(leaked_children)}"
