"""`procqueue`: the rest of the pipeline runs in a child process, fed by shared memory.

    parallax launch "filesrc location=big.bin ! procqueue ! identity ! filesink location=out"

Everything downstream of the procqueue (its `Stage`) is rebuilt in a child Python process
that this element starts, feeds and supervises; the two halves are joined by the
shared-memory link (`parallax.link.Publisher` here, an `ipcsrc` there): each buffer is
copied once into a slot of the procqueue's sealed memfd pool and read in place by the
child. The child reports metrics 4 times a second, EOS and errors (naming its element)
over a socketpair; `pipeline.metrics()` and `parallax launch` show both processes.

Faults: a child that dies (kill -9 included) is an error naming the procqueue within a
poll interval; if the parent dies the child's link breaks and it exits. Stopping sends
EOS, waits a second for the child to finish, then kills it. Ctrl-C reaches the whole
process group, so the child ignores SIGINT and lets the parent stop it.

Element classes travel by reference (pickle), so the child imports the modules they come
from; a class defined in the main script is found by re-running that script as
`__mp_main__`, the way `multiprocessing`'s spawn start method does (guard the script's
work with `if __name__ == "__main__":`).
"""

from __future__ import annotations

import enum
import itertools
import os
import signal
import subprocess
import sys
import threading
from multiprocessing import spawn
from multiprocessing.connection import Connection, Pipe
from typing import Any

from parallax._errors import BrokenError, ClosedError, FlowError, ParallaxError
from parallax.buffer import Buffer
from parallax.link import Publisher
from parallax.pipeline import (
    FLUSH_POLL,
    REPORT_INTERVAL,
    Boundary,
    EndOfStream,
    Property,
    Report,
    Stage,
    run_stage,
)

from ._ipc import IpcSrc, publish

STOP_TIMEOUT = 1.0
"""Seconds the child gets to finish after EOS when the pipeline stops, before a kill."""

_CHILD = "from parallax.elements._procqueue import child_main; child_main()"
_ids = itertools.count()


class Placement(enum.Enum):
    """Where a procqueue runs its stage."""

    PROCESS = "process"  # a child Python process on this machine, shared memory between
    RAY = "ray"  # a Ray actor, on any node of the Ray cluster; Ray's object store between


class ProcQueue(Boundary, factory="procqueue"):
    """Run everything downstream in a child process (or a Ray actor)."""

    klass = "Generic/Boundary"
    description = "Run the downstream part of the pipeline in a child process or a Ray actor"

    placement = Property(
        Placement.PROCESS, doc="where the downstream part runs: process (a child) or ray"
    )
    slot_size = Property(
        4 << 20, doc="bytes per shared slot: the largest buffer (k/M/G suffixes)", minimum=1
    )
    slots = Property(
        16, doc="buffers in flight (shared slots, or Ray pushes)", minimum=1, maximum=4096
    )
    leaky = Property(
        False,
        doc="drop buffers while the child holds half the pool and releases nothing within "
        "50 ms, instead of waiting",
    )
    start_timeout = Property(
        30.0, doc="seconds the child may take to start and connect", minimum=0.1
    )

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self._runner: _ChildProcess | _RayActor | None = None

    @property
    def placement_label(self) -> str:  # type: ignore[override]
        return "Ray actor" if self.placement is Placement.RAY else "child process"

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (placement=process)."""
        runner = self._runner
        return runner.pid if isinstance(runner, _ChildProcess) else None

    def launch(self, stage: Stage) -> None:
        if self.placement is Placement.RAY:
            self._runner = _RayActor(self, stage)
        else:
            self._runner = _ChildProcess(self, stage)

    def send(self, buf: Buffer) -> None:
        assert self._runner is not None
        self._runner.send(buf)

    def finish(self) -> None:
        if self._runner is not None:
            self._runner.finish()

    def shutdown(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def metrics_extra(self) -> dict[str, Any]:
        """Where the stage runs, for `metrics()`."""
        return {"pid": self.pid or 0, "placement": self.placement.value}


class _ChildProcess:
    """placement=process: a child Python process fed by the shared-memory link."""

    def __init__(self, owner: ProcQueue, stage: Stage) -> None:
        self._owner = owner
        # Everything that can refuse the stage, before anything is started.
        prep = _main_preparation(owner.name, stage)
        try:
            payload = stage.pickled()
        except FlowError as e:
            raise FlowError(f"{owner.name}: {e}", element=owner.name) from e
        service = f"procqueue-{os.getpid()}-{next(_ids)}"
        self._pub: Publisher | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        try:
            self._pub = Publisher(
                service, slot_size=owner.slot_size, slots=owner.slots, leaky=owner.leaky
            )
            ours, theirs = Pipe()
            self._conn = ours
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                )
            finally:
                theirs.close()
            ours.send(prep)
            ours.send_bytes(payload)
            ours.send((service, owner.name, owner.start_timeout))
        except BaseException as e:
            self._abort()
            if isinstance(e, OSError | ValueError):
                raise FlowError(
                    f"{owner.name}: cannot start the child process: {e}", element=owner.name
                ) from e
            raise
        owner.where = f"pid {self._proc.pid}"
        self._reader = threading.Thread(
            target=self._read_reports, name=f"parallax:{owner.name}:reports", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _read_reports(self) -> None:
        conn, proc = self._conn, self._proc
        assert conn is not None
        assert proc is not None
        while True:
            try:
                report: Report = conn.recv()
            except (EOFError, OSError):
                break
            self._owner.on_report(report)
        if not self._owner.done:
            code = proc.wait()
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._owner.lost(f"{how} before its stage finished")

    def _abandoned(self) -> str | None:
        owner = self._owner
        if owner.done:
            return f"{owner.placement_label} {owner.where} stopped before taking buffers"
        return None

    def send(self, buf: Buffer) -> None:
        assert self._pub is not None
        publish(self._owner, self._pub, buf, wait=True, abandoned=self._abandoned)

    def finish(self) -> None:
        if self._pub is not None:
            self._pub.send_eos()

    def _abort(self) -> None:
        """close() while starting: the child still waits for its stage, so hang up first
        (it reads EOF and exits at once, instead of being killed after STOP_TIMEOUT)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.close()

    def close(self) -> None:
        pub, self._pub = self._pub, None
        if pub is not None:
            pub.close()  # EOS to the child if it has not had it, and the link closes
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _RayActor:
    """placement=ray: the stage in a Ray actor (`parallax.link.RayLink`), watched
    by a thread that relays its reports."""

    def __init__(self, owner: ProcQueue, stage: Stage) -> None:
        from parallax.link import RayLink

        self._owner = owner
        try:
            self._link = RayLink(stage.build, name=owner.name, max_inflight=owner.slots)
        except ParallaxError as e:
            raise (
                e
                if getattr(e, "element", None)
                else FlowError(f"{owner.name}: {e}", element=owner.name)
            ) from e
        owner.where = self._link.actor_name
        self._stop = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name=f"parallax:{owner.name}:ray", daemon=True
        )
        self._watcher.start()

    def _watch(self) -> None:
        owner = self._owner
        while not self._stop.wait(REPORT_INTERVAL):
            try:
                report = self._link.poll()
            except BrokenError as e:
                owner.lost(f"died: {e}")
                return
            except ClosedError:
                return
            owner.on_report(report)
            if report.get("done"):
                return

    def send(self, buf: Buffer) -> None:
        owner = self._owner
        while not owner.flushing and not owner.done:
            try:
                self._link.send(buf, timeout=FLUSH_POLL)
                return
            except TimeoutError:
                continue
            except EndOfStream:
                return  # the stage ended by itself; its report says so
            except FlowError:
                return  # the stage failed; the watcher reports the failing element
            except BrokenError as e:
                raise FlowError(f"{owner.name}: {e}", element=owner.name) from e

    def finish(self) -> None:
        owner = self._owner
        while not owner.flushing and not owner.done:
            try:
                self._link.send_eos(timeout=FLUSH_POLL)
                return
            except TimeoutError:
                continue
            except (EndOfStream, FlowError):
                return
            except BrokenError as e:
                owner.lost(f"died: {e}")
                return

    def close(self) -> None:
        self._stop.set()
        self._watcher.join()
        self._link.close()


def _main_preparation(name: str, stage: Stage) -> dict[str, Any] | None:
    """What the child needs to import the main script, if a stage element comes from it."""
    from_main = [s for s in stage.elements if s.cls.__module__ == "__main__"]
    if not from_main:
        return None
    main = sys.modules["__main__"]
    if getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None:
        spec = from_main[0]
        raise FlowError(
            f"{name}: {spec.name} ({spec.cls.__name__}) is defined in __main__ without a "
            "file (python -c, a REPL): the child process cannot import it; define it in a "
            "module or a script file",
            element=name,
        )
    data = spawn.get_preparation_data(name)
    keep = ("name", "sys_path", "sys_argv", "dir", "orig_dir", "init_main_from_path")
    return {k: v for k, v in data.items() if k in keep or k == "init_main_from_name"}


def child_main() -> None:
    """The child's entry point: receive the stage, run it from an ipcsrc, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (see the docstring)
    conn = Connection(int(sys.argv[1]))
    gone = threading.Event()

    def report(message: Report) -> None:
        if gone.is_set():
            return
        try:
            conn.send(message)
        except OSError:
            gone.set()  # the parent is gone; our link breaks too, so the stage ends

    try:
        prep = conn.recv()
        if prep is not None:
            spawn.prepare(prep)
        stage = Stage.unpickled(conn.recv_bytes())
        service, name, timeout = conn.recv()
    except Exception as e:  # unpickling a class the child cannot import, mostly
        report({"done": True, "eos": False, "error": {"element": "", "message": f"{e!r}"}})
        sys.exit(1)
    source = IpcSrc(name=name, service=service, timeout=timeout)
    ok = run_stage(stage, source, report, stopping=gone.is_set)
    conn.close()
    sys.exit(0 if ok else 1)
