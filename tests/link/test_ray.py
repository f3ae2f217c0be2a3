"""The Ray link: a stage in a Ray actor, fed through the object store, on a local ray.init().

Ray starts long-lived processes and, in this process, threads and sockets of its own. The
module-scoped `ray_cluster` fixture starts Ray, and runs one link end to end so Ray's
lazily made threads and connections exist, before any test's leak baseline is taken
(pytest sets up wider-scoped fixtures first); it shuts Ray down after the module's last
test. A killed actor's connection closes a moment after Ray reports the actor dead, so
`_ray_settled` waits (at most 3 s) for this process's fds to return to where the test
began before the leak check looks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import parallax
from parallax._errors import BrokenError, ClosedError, FlowError, MissingExtra, StateError
from parallax.buffer import Buffer, BufferFlags
from parallax.caps import Caps
from parallax.link import RayLink
from parallax.link._ray import INLINE_MAX
from parallax.pipeline import EndOfStream, Media, Pipeline, Property, Sink, Source

ray_test = pytest.mark.ray
INSTALL = "needs Ray: pip install 'parallax-dataflow[ray]'"


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _settle(baseline: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _fds() <= baseline and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray for this module: 2 CPUs, no dashboard, no log forwarding."""
    try:
        import ray
    except ImportError:
        pytest.skip(INSTALL)
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            object_store_memory=128 << 20,
        )
    # The test stages below are defined in this module, which Ray's workers cannot import.
    pickler: Any = ray.cloudpickle  # untyped
    pickler.register_pickle_by_value(sys.modules[__name__])
    before = _fds()
    with RayLink(_recording, name="warm-up") as link:  # Ray's lazy threads and sockets
        link.send(Buffer(np.zeros(INLINE_MAX + 1, np.uint8)))
        link.send(Buffer(b"small"))
        link.send_eos()
        assert link.wait(10)["eos"]
    _settle(before, 3.0)
    yield ray
    pickler.unregister_pickle_by_value(sys.modules[__name__])
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_settled() -> Iterator[None]:
    """Set up after (torn down before) the leak check: give a killed actor's connection
    its moment to close."""
    before = _fds()
    yield
    _settle(before, 3.0)


# -- stages (run in the actor) ----------------------------------------------------------


def _plasma_maps() -> list[tuple[int, int]]:
    """Address ranges of the object store's shared memory in this process."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if "plasma" in line:
                lo, hi = line.split()[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


class Recorder(Sink[Media], factory="test-ray-recorder"):
    """Records what reached it, and where its bytes live; reported by metrics_extra."""

    fail_after = Property(-1, doc="raise on the Nth buffer", minimum=-1)

    def __init__(self, name: str | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.records: list[dict[str, Any]] = []

    def render(self, buf: Buffer) -> None:
        if len(self.records) + 1 == self.fail_after:
            raise ValueError("recorder failed on purpose")
        arr = np.asarray(buf)
        address = arr.ctypes.data
        owner = buf._owner.array  # the array the actor got from Ray
        self.records.append(
            {
                "size": buf.size,
                "crc": zlib.crc32(buf.view),
                "caps": None if buf.caps is None else str(buf.caps),
                "meta": (buf.sequence, buf.pts, buf.dts, buf.duration, buf.offset, buf.flags),
                "readonly": buf.readonly and buf.view.readonly and not arr.flags.writeable,
                "same_memory": address == owner.ctypes.data and np.shares_memory(arr, owner),
                "owns_data": arr.flags.owndata or owner.flags.owndata,
                "in_object_store": any(lo <= address < hi for lo, hi in _plasma_maps()),
                "pid": os.getpid(),
            }
        )

    def metrics_extra(self) -> dict[str, Any]:
        return {"records": list(self.records)}


def _recording(src: Source[Any], *, fail_after: int = -1, launch: str = "identity") -> Pipeline:
    pipeline = parallax.parse_launch(launch, name="stage")
    first = next(iter(pipeline))
    last = pipeline.topological()[-1]
    pipeline.link(src, first)
    pipeline.link(last, Recorder(name="rec", fail_after=fail_after))
    return pipeline


def _records(report: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = report["metrics"]["rec"]["records"]
    return records


def _flood(
    link: RayLink,
    data: bytes | np.ndarray[Any, Any],
    *,
    count: int = 50,
    pause: float = 0.01,
    timeout: float | None = None,
    sent: list[int] | None = None,
) -> None:
    """Send `count` buffers of `data`, `pause` seconds apart (the tests expect a raise)."""
    for i in range(count):
        link.send(Buffer(data), timeout=timeout)
        if sent is not None:
            sent.append(i)
        time.sleep(pause)


# -- tests --------------------------------------------------------------------------------


def test_without_ray_the_link_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingExtra, match=r"pip install 'parallax-dataflow\[ray\]'"):
        RayLink(_recording, name="no-ray")


@ray_test
def test_buffers_and_their_metadata_survive_the_trip(ray_cluster: Any) -> None:
    video = Caps.from_string("video/raw,format=RGBA8,width=512,height=512")
    tensor = Caps.from_string("tensor,dtype=float32,shape=<4,4>")
    caps = [video, video, tensor, video, None, tensor]  # changes travel with the buffers
    sent = []
    with RayLink(_recording, name="meta", max_inflight=4) as link:
        for i, size in enumerate([1 << 20, 4096, 0, INLINE_MAX, INLINE_MAX + 1, 3 << 20]):
            data = np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8)
            flags = BufferFlags.DISCONT | BufferFlags.MARKER if i % 2 else BufferFlags.NONE
            buf = Buffer(
                data,
                caps=caps[i],
                sequence=100 + i,
                pts=i * 1_000_000,
                dts=i * 999_000,
                duration=1_000_000,
                offset=i * 7,
                flags=flags,
            )
            link.send(buf)
            sent.append((size, zlib.crc32(data.data), int(flags), buf.metadata))
        link.send_eos()
        report = link.wait(10)
    assert report["done"] and report["eos"] and report["error"] is None
    records = _records(report)
    assert [(r["size"], r["crc"]) for r in records] == [(s, c) for s, c, _, _ in sent]
    for r, (_, _, want_flags, meta) in zip(records, sent, strict=True):
        want = (meta.sequence, meta.pts, meta.dts, meta.duration, meta.offset, want_flags)
        assert r["meta"] == want
        assert r["readonly"]
    # A buffer sent without caps gets the raysrc's negotiated caps, as ipcsrc's do.
    assert [r["caps"] for r in records] == [str(c) if c else "bytes" for c in caps]
    counts = report["metrics"]["meta-src"]
    assert counts["buffers_out"] == 6 and counts["bytes_out"] == sum(s for s, *_ in sent)


@ray_test
def test_large_buffers_are_read_zero_copy_from_the_object_store(ray_cluster: Any) -> None:
    with RayLink(_recording, name="zero-copy") as link:
        for size in (INLINE_MAX + 1, 1 << 20, 8 << 20):
            link.send(Buffer(np.full(size, 7, np.uint8)))
        link.send(Buffer(b"x" * 4096))  # small: inline in the call, read-only too
        link.send_eos()
        report = link.wait(10)
    records = _records(report)
    assert [r["size"] for r in records] == [INLINE_MAX + 1, 1 << 20, 8 << 20, 4096]
    assert all(r["pid"] != os.getpid() for r in records)  # it did run in another process
    for r in records[:3]:
        # The pushed Buffer's memory is the array Ray handed the actor, which lies in
        # the object store's shared mapping: no copy was made on this side.
        assert r["same_memory"] and r["in_object_store"] and not r["owns_data"], r
        assert r["readonly"]
    assert records[3]["readonly"] and records[3]["same_memory"]


@ray_test
def test_a_failing_element_is_reported_with_its_name(ray_cluster: Any) -> None:
    with RayLink(lambda src: _recording(src, fail_after=3), name="fails") as link:
        with pytest.raises(FlowError, match="recorder failed on purpose") as caught:
            _flood(link, b"abc")
        assert caught.value.element == "rec"
        report = link.wait(5)
        assert report["done"] and not report["eos"]
        assert report["error"]["element"] == "rec"
        assert "ValueError: recorder failed on purpose" in report["error"]["message"]
        assert link.poll()["error"] == report["error"]
        with pytest.raises(FlowError):  # and it stays failed
            link.send(Buffer(b"abc"))


@ray_test
def test_identity_error_after_names_identity(ray_cluster: Any) -> None:
    with RayLink(lambda src: _recording(src, launch="identity error-after=2"), name="id") as link:
        for _ in range(2):
            link.send(Buffer(b"abc"))
        report = link.wait(5)
    assert report["error"] == {
        "element": "identity0",
        "message": "identity0: error-after=2 reached",
    }


@ray_test
def test_a_stage_at_eos_stops_the_sender(ray_cluster: Any) -> None:
    def build(src: Source[Any]) -> Pipeline:
        pipeline = parallax.parse_launch("fakesink name=out num-buffers=3")
        pipeline.link(src, pipeline["out"])
        return pipeline

    with RayLink(build, name="eos") as link:
        with pytest.raises(EndOfStream):
            _flood(link, b"abc")
        report = link.wait(5)
    assert report["eos"] and report["error"] is None
    assert report["metrics"]["out"]["buffers_in"] == 3


@ray_test
def test_backpressure_blocks_send_while_poll_still_answers(ray_cluster: Any) -> None:
    # 0.5 s per buffer in the stage: the link must stop taking buffers, not queue them all.
    slow = "identity sleep-time=500000"
    with RayLink(lambda src: _recording(src, launch=slow), name="slow", max_inflight=2) as link:
        sent: list[int] = []
        with pytest.raises(TimeoutError, match="unacknowledged"):
            _flood(link, b"abc", pause=0, timeout=0.2, sent=sent)
        # 2 unacknowledged + 2 in raysrc's inbox (max-buffers = max_inflight) + 1 in identity
        assert 2 <= len(sent) <= 5
        t0 = time.monotonic()
        report = link.poll()  # pushes are blocked in the actor; report still runs
        assert time.monotonic() - t0 < 0.9
        assert not report["done"] and report["metrics"]["slow-src"]["queued"] >= 1
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 3  # close() flushes the blocked pushes and the sleep


@ray_test
@pytest.mark.parametrize("how", ["ray.kill", "SIGKILL"])
def test_a_killed_actor_breaks_send_within_seconds(ray_cluster: Any, how: str) -> None:
    link = RayLink(_recording, name="killed")
    try:
        link.send(Buffer(b"before"))
        deadline = time.monotonic() + 5
        while not (records := _records(link.poll())):
            assert time.monotonic() < deadline, "the stage never got the first buffer"
            time.sleep(0.01)
        if how == "ray.kill":
            ray_cluster.kill(link.actor)
        else:  # the worker process dies under Ray, as on a lost node
            os.kill(records[0]["pid"], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(BrokenError, match="actor died"):
            _flood(link, np.zeros(1 << 20, np.uint8), count=500)
        assert time.monotonic() - t0 < 2.5
        with pytest.raises(BrokenError):
            link.poll()
    finally:
        link.close()  # an already dead actor: no error
    link.close()


@ray_test
def test_close_leaves_no_actor_and_is_idempotent(ray_cluster: Any) -> None:
    link = RayLink(_recording, name="closing")
    link.send(Buffer(b"abc"))
    assert not link.wait(0.2)["done"]  # no EOS was sent: the stage runs on
    handle, actor_name = link.actor, link.actor_name
    assert ray_cluster.get_actor(actor_name) is not None
    link.close()
    link.close()
    with pytest.raises(ValueError, match="Failed to look up actor"):
        ray_cluster.get_actor(actor_name)
    with pytest.raises(ray_cluster.exceptions.RayActorError):
        ray_cluster.get(handle.report.remote(0.0), timeout=5)
    assert link.actor is None
    with pytest.raises(ClosedError):
        link.send(Buffer(b"abc"))
    with pytest.raises(ClosedError):
        link.poll()


@ray_test
def test_send_after_send_eos_is_a_state_error(ray_cluster: Any) -> None:
    with RayLink(_recording, name="after-eos") as link:
        link.send_eos()
        with pytest.raises(StateError, match="after send_eos"):
            link.send(Buffer(b"abc"))
        assert link.wait(5)["eos"]


@ray_test
def test_build_errors_are_raised_by_the_constructor(ray_cluster: Any) -> None:
    with pytest.raises(parallax.ParseError, match="unknown element 'fakesnk'"):
        RayLink(lambda src: parallax.parse_launch("fakesnk"), name="typo")
    with pytest.raises(TypeError, match="must return the Pipeline holding the raysrc"):
        RayLink(lambda src: parallax.parse_launch("fakesrc ! fakesink"), name="no-src")
    with pytest.raises(parallax.LinkError, match="is not linked"):
        RayLink(lambda src: _add(parallax.parse_launch("fakesrc ! fakesink"), src), name="loose")


def _add(pipeline: Pipeline, element: Source[Any]) -> Pipeline:
    pipeline.add(element)
    return pipeline


def test_bad_arguments_are_refused_before_any_actor_starts() -> None:
    pytest.importorskip("ray", reason=INSTALL)
    with pytest.raises(ValueError, match="max_inflight must be at least 1"):
        RayLink(_recording, name="x", max_inflight=0)
    with pytest.raises(ValueError, match="max_restarts"):
        RayLink(_recording, name="x", actor_options={"max_restarts": 3})


# -- procqueue placement=ray: a launch string's stage as a Ray actor -------------------------


@ray_test
def test_procqueue_places_its_stage_on_ray(ray_cluster: Any) -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=30 sizetype=fixed sizemax=100k filltype=pattern-span ! "
        "procqueue name=pq placement=ray slots=4 ! identity name=work ! fakesink name=out"
    )
    p.run(timeout=60)
    m = p.metrics()
    assert m["out"]["buffers_in"] == 30
    assert m["out"]["bytes_in"] == 30 * 100 * 1024
    assert m["work"]["where"].startswith("pq: parallax:pq:")
    assert m["pq"]["placement"] == "ray"


@ray_test
def test_procqueue_on_ray_names_the_failing_element(ray_cluster: Any) -> None:
    p = parallax.parse_launch(
        "fakesrc num-buffers=50 ! procqueue placement=ray ! identity name=bad error-after=3 "
        "! fakesink"
    )
    with pytest.raises(FlowError) as info:
        p.run(timeout=60)
    assert info.value.element == "bad"
    assert "Ray actor" in str(info.value)


@ray_test
def test_cli_ray_flag_runs_procqueue_stages_on_the_cluster(ray_cluster: Any) -> None:
    import subprocess

    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parallax",
            "launch",
            "--ray",
            "fakesrc num-buffers=20 sizetype=fixed sizemax=1k ! procqueue ! fakesink",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "└ procqueue0 → Ray actor parallax:procqueue0:" in done.stdout
    assert ": 20 buffers  20.0 KiB" in done.stdout


def test_cli_ray_flag_needs_a_procqueue() -> None:
    from parallax.cli._main import main

    assert main(["launch", "--ray", "fakesrc num-buffers=1 ! fakesink"]) == 1
