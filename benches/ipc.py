"""Cross-process links: buffers/s and one-way latency, ours against other IPC transports.

Producer and consumer run in two processes (multiprocessing, spawn context). Scenarios:
- 1 MiB and 4 KiB messages, buffers/s: our shared-memory link (`parallax.link.Publisher`
  / `Subscriber`: loan + one copy into the slot + send; the consumer reads one byte and
  drops the buffer; its receive() spins up to 200 us on an empty ring, then sleeps) against
  `multiprocessing.Queue` (put/get of a bytes object), pyzmq PUSH/PULL over `ipc://` with
  `copy=False` on both sides, iceoryx2's Python binding (`Slice[c_uint8]` service,
  `loan_slice_uninit` + one `ctypes.memmove` + `assume_init().send()`; the subscriber
  busy-polls `receive()`, as iceoryx2's own benchmarks do: it has no blocking receive on
  a publish-subscribe port), and GStreamer's `shmsink` / `shmsrc` (two gst-launch-1.0
  processes, where gst-launch-1.0 and the shm plugin are installed).
- 64-byte one-way latency: a ping-pong round trip / 2, ours (two services, one each way)
  against iceoryx2 (two services, busy-polling). For times, ratio = peer / ours.

GStreamer: `fakesrc num-buffers=N sizetype=fixed sizemax=SIZE filltype=nothing ! shmsink
socket-path=P wait-for-connection=true shm-size=16 x SIZE + 64 KiB sync=false` (shmsink
copies each buffer once into its shared area: the one write) and `shmsrc socket-path=P
num-buffers=N ! fakesink sync=false` (it does not read the bytes). A gst-launch-1.0 run
has no clock of its own that we can read, so the consumer process is timed whole for N
and for 2 N buffers and the rate is N / (t(2 N) - t(N)): start-up (exec, plugin
registry, state changes, the connection) cancels out. N is sized for `duration` seconds
from probes of the same kind (N, then 4 N, ... until t(2 N) - t(N) reaches 0.1 s).

Every message is written once by the producer (one copy of a prepared source buffer into
the loan, or into a fresh bytes object for the Queue and ZeroMQ, as a real producer fills
its buffer) and touched minimally by the consumer (it reads byte 0). Each run lasts
`duration` seconds; its first `warm` seconds are not counted (set-up, page faults, the
first connection), and the rate is taken by the consumer's clock between that point and
end of stream. Runs of every transport are interleaved round by round; each figure is the
median of `n` rounds. Process start-up is outside every clock.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from multiprocessing.connection import Connection

from _common import GST, Result, TimeResult, args, gst_name, medians, report, table

MiB = 1 << 20
SLOTS = 16
PING = 64

PYZMQ_MISSING = "pyzmq (missing: .venv/bin/pip install pyzmq)"
IOX_MISSING = "iceoryx2 (missing: .venv/bin/pip install iceoryx2)"
GST_SHM_MISSING = (
    "GStreamer shmsink/shmsrc (missing: apt-get install gstreamer1.0-tools "
    "gstreamer1.0-plugins-bad)"
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _source(size: int) -> bytes:
    """The payload every producer writes: random bytes with byte 0 != 0 (0 marks EOS)."""
    data = bytearray(os.urandom(size))
    data[0] = 1
    return bytes(data)


class _Clock:
    """Consumer-side counting: the first `warm` seconds after the first message are
    not counted; returns (messages, seconds) of what follows, up to end of stream."""

    __slots__ = ("count", "count0", "t0", "tfirst", "warm")

    def __init__(self, warm: float) -> None:
        self.warm = warm
        self.count = 0
        self.count0 = -1
        self.t0 = 0.0
        self.tfirst = 0.0

    def tick(self) -> None:
        self.count += 1
        if self.count0 < 0:
            now = time.perf_counter()
            if self.count == 1:
                self.tfirst = now
            elif now - self.tfirst >= self.warm:
                self.count0, self.t0 = self.count, now

    def result(self) -> tuple[int, float]:
        if self.count0 < 0:  # shorter than the warm-up: count everything
            return self.count - 1, time.perf_counter() - self.tfirst
        return self.count - self.count0, time.perf_counter() - self.t0


# -- Parallax -----------------------------------------------------------------------------


def ours_producer(service: str, size: int, ready, seconds: float) -> None:
    from parallax.link import Publisher

    src = memoryview(_source(size))
    with Publisher(service, slot_size=size, slots=SLOTS) as pub:
        ready.set()
        if not pub.wait_for_subscribers(1, timeout=20):
            raise RuntimeError("no subscriber")
        deadline = time.perf_counter() + seconds
        clock = time.perf_counter
        loan, send = pub.loan, pub.send
        while clock() < deadline:
            s = loan()
            s.view[:size] = src
            send(s, size)
        pub.send_eos()


def ours_consumer(service: str, size: int, ready, out, warm: float) -> None:
    from parallax.link import Subscriber

    ready.wait(20)
    clock = _Clock(warm)
    with Subscriber(service, timeout=20) as sub:
        receive, tick = sub.receive, clock.tick
        while (buf := receive()) is not None:
            buf.view[0]
            del buf
            tick()
    out.send(clock.result())


def ours_pinger(service: str, ready, out, seconds: float, warm: float) -> None:
    from parallax.link import Publisher, Subscriber

    src = memoryview(_source(PING))
    with Publisher(f"{service}-ping", slot_size=PING, slots=SLOTS) as pub:
        ready.set()
        with Subscriber(f"{service}-pong", timeout=20) as sub:
            pub.wait_for_subscribers(1, timeout=20)
            clock = _Clock(warm)
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                s = pub.loan()
                s.view[:PING] = src
                pub.send(s, PING)
                buf = sub.receive()
                buf.view[0]
                del buf
                clock.tick()
            pub.send_eos()
            out.send(clock.result())


def ours_ponger(service: str, ready) -> None:
    from parallax.link import Publisher, Subscriber

    with Publisher(f"{service}-pong", slot_size=PING, slots=SLOTS) as pub:
        ready.wait(20)
        with Subscriber(f"{service}-ping", timeout=20) as sub:
            pub.wait_for_subscribers(1, timeout=20)
            while (buf := sub.receive()) is not None:
                s = pub.loan()
                s.view[:PING] = buf.view
                del buf
                pub.send(s, PING)


# -- multiprocessing.Queue ----------------------------------------------------------------


def queue_producer(q, size: int, ready, seconds: float) -> None:
    src = _source(size)
    ready.wait(20)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        q.put(_fresh(src))
    q.put(b"\0")


def queue_consumer(q, size: int, ready, out, warm: float) -> None:
    clock = _Clock(warm)
    ready.set()
    get, tick = q.get, clock.tick
    while get()[0]:
        tick()
    out.send(clock.result())


# -- pyzmq --------------------------------------------------------------------------------


def zmq_producer(address: str, size: int, ready, seconds: float) -> None:
    import zmq

    src = _source(size)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, SLOTS)
    sock.connect(address)
    ready.wait(20)
    deadline = time.perf_counter() + seconds
    send = sock.send
    while time.perf_counter() < deadline:
        send(_fresh(src), copy=False)
    sock.send(b"\0")
    sock.close(linger=-1)
    ctx.term()


def zmq_consumer(address: str, size: int, ready, out, warm: float) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, SLOTS)
    sock.bind(address)
    clock = _Clock(warm)
    ready.set()
    recv, tick = sock.recv, clock.tick
    while recv(copy=False).buffer[0]:
        tick()
    out.send(clock.result())
    sock.close()
    ctx.term()


def _fresh(src: bytes) -> bytearray:
    """A new buffer holding the payload: one allocation and one copy, what a producer
    without loans does for each message."""
    return bytearray(src)


# -- iceoryx2 -----------------------------------------------------------------------------


def _iox_service(node, name: str):
    import iceoryx2 as iox

    return (
        node.service_builder(iox.ServiceName.new(name))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)
        .subscriber_max_buffer_size(SLOTS)
        .max_publishers(1)
        .max_subscribers(1)
        .open_or_create()
    )


def _iox_node():
    import iceoryx2 as iox

    iox.set_log_level_from_env_or(iox.LogLevel.Error)
    return iox.NodeBuilder.new().create(iox.ServiceType.Ipc)


def _iox_publisher(service, size: int):
    import iceoryx2 as iox

    return (
        service.publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )


def _iox_send(pub, src_addr: int, size: int) -> None:
    sample = pub.loan_slice_uninit(size)
    ctypes.memmove(sample.payload_ptr, src_addr, size)
    sample.assume_init().send()


def iox_producer(service: str, size: int, ready, seconds: float) -> None:
    node = _iox_node()
    svc = _iox_service(node, service)
    pub = _iox_publisher(svc, size)
    src = ctypes.create_string_buffer(_source(size), size)
    addr = ctypes.addressof(src)
    ready.wait(20)
    pub.update_connections()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _iox_send(pub, addr, size)
    eos = ctypes.create_string_buffer(b"\0", 1)
    _iox_send(pub, ctypes.addressof(eos), 1)
    time.sleep(0.2)  # the subscriber must see the last samples before the publisher goes
    pub.delete()


def iox_consumer(service: str, size: int, ready, out, warm: float) -> None:
    node = _iox_node()
    svc = _iox_service(node, service)
    sub = svc.subscriber_builder().buffer_size(SLOTS).create()
    ready.set()
    clock = _Clock(warm)
    receive, tick, at = sub.receive, clock.tick, ctypes.string_at
    while True:
        sample = receive()
        if sample is None:
            continue
        first = at(sample.payload_ptr, 1)[0]
        sample.delete()
        if not first:
            break
        tick()
    out.send(clock.result())
    sub.delete()


def _iox_wait(sub):
    receive = sub.receive
    while (sample := receive()) is None:
        pass
    return sample


def iox_pinger(service: str, ready, out, seconds: float, warm: float) -> None:
    node = _iox_node()
    ping = _iox_service(node, f"{service}-ping")
    pong = _iox_service(node, f"{service}-pong")
    pub = _iox_publisher(ping, PING)
    sub = pong.subscriber_builder().buffer_size(SLOTS).create()
    src = ctypes.create_string_buffer(_source(PING), PING)
    addr = ctypes.addressof(src)
    ready.set()
    time.sleep(0.2)  # the ponger's ports exist by now (it signals nothing back)
    pub.update_connections()
    clock = _Clock(warm)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _iox_send(pub, addr, PING)
        sample = _iox_wait(sub)
        ctypes.string_at(sample.payload_ptr, 1)
        sample.delete()
        clock.tick()
    eos = ctypes.create_string_buffer(b"\0", 1)
    _iox_send(pub, ctypes.addressof(eos), 1)
    out.send(clock.result())
    time.sleep(0.2)
    pub.delete()
    sub.delete()


def iox_ponger(service: str, ready) -> None:
    node = _iox_node()
    ping = _iox_service(node, f"{service}-ping")
    pong = _iox_service(node, f"{service}-pong")
    sub = ping.subscriber_builder().buffer_size(SLOTS).create()
    pub = _iox_publisher(pong, PING)
    ready.wait(20)
    time.sleep(0.1)
    pub.update_connections()
    while True:
        sample = _iox_wait(sub)
        if not ctypes.string_at(sample.payload_ptr, 1)[0]:
            sample.delete()
            break
        _iox_send(pub, sample.payload_ptr, PING)
        sample.delete()
    time.sleep(0.2)
    pub.delete()
    sub.delete()


# -- GStreamer shmsink / shmsrc -------------------------------------------------------------


def gst_shm() -> tuple[str | None, str]:
    """(peer name, '') where gst-launch-1.0 and the shm elements exist, else (None, why)."""
    name = gst_name()
    if name is None or shutil.which("gst-inspect-1.0") is None:
        return None, f"{GST} is not installed"
    for element in ("shmsink", "shmsrc"):
        found = subprocess.run(
            ["gst-inspect-1.0", element], capture_output=True, check=False, timeout=30
        )
        if found.returncode != 0:
            return None, f"GStreamer has no {element} (the shm plugin, gstreamer1.0-plugins-bad)"
    return f"{name} shmsink/shmsrc", ""


def _gst_consumer_seconds(size: int, count: int) -> float:
    """Seconds of a whole `shmsrc num-buffers=count ! fakesink` process (start-up
    included), fed by a shmsink process started first and waiting for it."""
    folder = tempfile.mkdtemp(prefix="plx-bench-gst-")
    path = os.path.join(folder, "shm.sock")
    producer = subprocess.Popen(
        [GST, "-q", "fakesrc", f"num-buffers={count}", "sizetype=fixed", f"sizemax={size}",
         "filltype=nothing", "!", "shmsink", f"socket-path={path}",
         "wait-for-connection=true", f"shm-size={size * SLOTS + 65536}", "sync=false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            if producer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"shmsink did not open {path} (exit {producer.returncode})")
            time.sleep(0.005)
        t0 = time.perf_counter()
        subprocess.run(
            [GST, "-q", "shmsrc", f"socket-path={path}", f"num-buffers={count}", "!",
             "fakesink", "sync=false"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip
        return time.perf_counter() - t0
    finally:
        # shmsink stops once its last buffer is sent; it may report that its reader left.
        try:
            producer.wait(10)
        except subprocess.TimeoutExpired:
            producer.kill()
            producer.wait()
        shutil.rmtree(folder, ignore_errors=True)


_gst_counts: dict[int, int] = {}


def gst_throughput(size: int, seconds: float) -> float:
    """Seconds per message: (t(2 N) - t(N)) / N, N sized for `seconds` of streaming."""
    count = _gst_counts.get(size)
    if count is None:  # probe once per size: N and 2 N, N x 4 until they differ by 0.1 s
        probe = 64
        while True:
            took = _gst_consumer_seconds(size, 2 * probe) - _gst_consumer_seconds(size, probe)
            if took >= 0.1 or probe >= 1 << 22:
                break
            probe *= 4
        count = _gst_counts[size] = max(probe, int(probe / max(took, 1e-3) * seconds))
    took = _gst_consumer_seconds(size, 2 * count) - _gst_consumer_seconds(size, count)
    return max(took, 1e-6) / count


# -- driving ------------------------------------------------------------------------------

_CTX = mp.get_context("spawn")
_runs = 0


def _name() -> str:
    global _runs
    _runs += 1
    return f"plx-bench-ipc-{os.getpid()}-{_runs}"


def _await(procs: list[mp.process.BaseProcess], recv: Connection, label: str) -> tuple[int, float]:
    """Start `procs`, wait for the (messages, seconds) one of them sends on `recv`, and
    join (or kill) them all, whatever happens."""
    for p in procs:
        p.start()
    try:
        if not recv.poll(60):
            raise RuntimeError(f"{label}: no result within 60 s")
        count, seconds = recv.recv()
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    return count, seconds


def _pair(producer: Callable, consumer: Callable, pargs: tuple, cargs: tuple) -> tuple[int, float]:
    """Start both processes, wait for the consumer's (messages, seconds), join both."""
    recv, send = _CTX.Pipe(False)
    ready = _CTX.Event()
    procs = [
        _CTX.Process(target=consumer, args=(*cargs[:2], ready, send, *cargs[2:]), daemon=True),
        _CTX.Process(target=producer, args=(*pargs[:2], ready, *pargs[2:]), daemon=True),
    ]
    count, seconds = _await(procs, recv, consumer.__name__)
    for p in procs:
        if p.exitcode != 0:
            raise RuntimeError(f"{p.name} ({p._target.__name__}) exited {p.exitcode}")
    return count, seconds


def throughput(kind: str, size: int, seconds: float, warm: float) -> float:
    """Seconds per message (so that medians() takes it as a time; lower is better)."""
    if kind == "ours":
        name = _name()
        count, took = _pair(
            ours_producer, ours_consumer, (name, size, seconds + warm), (name, size, warm)
        )
    elif kind == "queue":
        q = _CTX.Queue()
        count, took = _pair(
            queue_producer, queue_consumer, (q, size, seconds + warm), (q, size, warm)
        )
        q.close()
        q.join_thread()
    elif kind == "zmq":
        address = f"ipc://@{_name()}"  # abstract socket: nothing left on disk
        count, took = _pair(
            zmq_producer, zmq_consumer, (address, size, seconds + warm), (address, size, warm)
        )
    elif kind == "iox":
        name = _name()
        count, took = _pair(
            iox_producer, iox_consumer, (name, size, seconds + warm), (name, size, warm)
        )
    elif kind == "gst":
        return gst_throughput(size, seconds)
    else:
        raise ValueError(kind)
    return took / max(count, 1)


def latency(kind: str, seconds: float, warm: float) -> float:
    """One-way seconds: round trip / 2."""
    name = _name()
    pinger, ponger = (ours_pinger, ours_ponger) if kind == "ours" else (iox_pinger, iox_ponger)
    recv, send = _CTX.Pipe(False)
    ready = _CTX.Event()
    procs = [
        _CTX.Process(target=ponger, args=(name, ready), daemon=True),
        _CTX.Process(target=pinger, args=(name, ready, send, seconds + warm, warm), daemon=True),
    ]
    count, took = _await(procs, recv, pinger.__name__)
    return took / max(count, 1) / 2


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    seconds, warm, repeats = (0.3, 0.1, 1) if opts.quick else (1.0, 0.2, 3)
    zmq_version, iox_version = _version("pyzmq"), _version("iceoryx2")
    gst, gst_why = gst_shm()
    if gst is None:
        print(f"# skipping GStreamer shmsink/shmsrc: {gst_why}", flush=True)
    peers = {
        "queue": "multiprocessing.Queue (Python " + ".".join(map(str, sys.version_info[:3])) + ")",
        "zmq": f"pyzmq {zmq_version} PUSH/PULL ipc:// copy=False" if zmq_version else PYZMQ_MISSING,
        "iox": f"iceoryx2 {iox_version} (Python, busy-poll)" if iox_version else IOX_MISSING,
        "gst": gst or GST_SHM_MISSING,
    }
    have = (
        {"ours", "queue"}
        | ({"zmq"} if zmq_version else set())
        | ({"iox"} if iox_version else set())
        | ({"gst"} if gst else set())
    )
    sizes = {"1MiB": MiB, "4KiB": 4096}

    fns: dict[str, Callable[[], float]] = {}
    for label, size in sizes.items():
        for kind in ("ours", "queue", "zmq", "iox", "gst"):
            if kind in have:
                fns[f"{kind}-{label}"] = lambda kind=kind, size=size: throughput(
                    kind, size, seconds, warm
                )
    for kind in ("ours", "iox"):
        if kind in have:
            fns[f"{kind}-latency"] = lambda kind=kind: latency(kind, seconds, warm)
    # Each run has its own warm-up (its first `warm` seconds), so no warm-up round here.
    meds = medians(fns, repeats, warmup=0)

    results: list[Result] = []
    rows = []
    for label, size in sizes.items():
        ours = 1 / meds[f"ours-{label}"]
        for kind in ("queue", "zmq", "iox", "gst"):
            key = f"{kind}-{label}"
            peer = 1 / meds[key] if key in meds else None
            results.append(
                Result(f"ipc-{label}-vs-{kind}", ours, peer, peers[kind], "buffers/s", repeats)
            )
        for kind in ("ours", "queue", "zmq", "iox", "gst"):
            key = f"{kind}-{label}"
            if key in meds:
                rate = 1 / meds[key]
                rows.append(
                    [
                        label,
                        kind,
                        f"{rate:,.0f}",
                        f"{rate * size / 1e9:.2f}",
                        f"{meds[key] * 1e6:.1f}",
                    ]
                )
            else:
                rows.append([label, kind, "-", "-", peers[kind]])
    ours_lat = meds["ours-latency"] * 1e6
    iox_lat = meds["iox-latency"] * 1e6 if "iox-latency" in meds else None
    results.append(
        TimeResult("ipc-64B-one-way-latency-vs-iox", ours_lat, iox_lat, peers["iox"], "us", repeats)
    )
    notes = [
        "",
        "# per transport (median rate; GB/s = rate x message size / 1e9)",
        *table(["size", "transport", "buffers/s", "GB/s", "us/buffer"], rows),
        "",
        f"# 64-byte one-way latency (round trip / 2): ours {ours_lat:.1f} us, iceoryx2 "
        + (f"{iox_lat:.1f} us" if iox_lat is not None else "missing"),
    ]
    report(f"cross-process links, {seconds:g} s runs (+{warm:g} s warm-up)", results, notes)


if __name__ == "__main__":
    main()
