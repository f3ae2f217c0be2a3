"""TCP link throughput: 1 MiB buffers over loopback, ours against a raw Python socket loop.

Ours: `fakesrc sizetype=fixed sizemax=1M num-buffers=N ! tcpclientsink` in one pipeline,
`tcpserversrc ! fakesink` in another, both in this process: STRM frames (62-byte head,
CRC32 over every payload on both sides), one `sendmsg` per frame from the pool slot, and
`recv_into` straight into pool slots on the receiver's asyncio loop. Timed from the
sender's `run()` (connect included) to the receiver's EOS; the receiver is listening
before the clock starts.

Peer: the floor any Python TCP transfer pays — a thread doing `sendall()` of a 1 MiB
`bytes` N times, and a thread doing `recv_into()` into one reused 1 MiB `bytearray` until
N MiB have arrived; no framing, no checksum, no metadata. Timed from connect to the last
byte received. The goal is ours >= 0.8 of the peer.

Unit: GB/s (10^9 payload bytes per second). `--quick` sends 256 MiB instead of 2 GiB.
Before the table it prints the CPU time (user + system, every thread of this process) each
side spent per MiB, median over the runs: on a 2-vCPU machine that, more than any single
thread, is what sets the ratio (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections import defaultdict

from _common import Result, args, medians, report

import parallax
from parallax.elements import (
    FakeSink,
    FakeSrc,
    TcpClientSink,
    TcpClientSrc,
    TcpServerSink,
    TcpServerSrc,
)
from parallax.pipeline import MessageType, registry

MIB = 1 << 20
CPU: defaultdict[str, list[float]] = defaultdict(list)  # µs of CPU per MiB, per run


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _note_cpu(side: str, since: float, n: int) -> None:
    CPU[side].append((_cpu() - since) * 1e6 / n)


def _register() -> None:
    # Until the entry points are in pyproject.toml (or where parallax is not installed,
    # only on the path), make the factories this benchmark uses known here.
    for cls in (TcpServerSink, TcpClientSrc, TcpClientSink, TcpServerSrc, FakeSrc, FakeSink):
        if cls.factory_name not in registry.names():
            registry.register(cls)


def time_ours(n: int) -> float:
    """Seconds to move n 1 MiB buffers through tcpclientsink → tcpserversrc."""
    rx = parallax.parse_launch("tcpserversrc name=in port=0 ! fakesink")
    rx.play()
    try:
        port = rx.get_by_name("in").bound_port  # type: ignore[attr-defined]
        tx = parallax.parse_launch(
            f"fakesrc sizetype=fixed sizemax=1M pool-slots=4 num-buffers={n} ! tcpclientsink port={port}"
        )
        c0, t0 = _cpu(), time.perf_counter()
        tx.run(timeout=120)
        message = rx.wait(120)
        took = time.perf_counter() - t0
        _note_cpu("ours", c0, n)
    finally:
        rx.stop()
    if message is None or message.type is not MessageType.EOS:
        raise RuntimeError(f"receiver did not reach EOS: {message}")
    return took


def time_raw(n: int) -> float:
    """Seconds for n sendall(1 MiB) → recv_into(1 MiB bytearray) over loopback."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        received = [0]

        def receive() -> None:
            conn, _ = server.accept()
            with conn:
                view = memoryview(bytearray(MIB))
                total, want = 0, n * MIB
                while total < want:
                    k = conn.recv_into(view)
                    if k == 0:
                        break
                    total += k
            received[0] = total

        thread = threading.Thread(target=receive)
        thread.start()
        payload = bytes(MIB)
        c0, t0 = _cpu(), time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(n):
                sock.sendall(payload)
        thread.join()
        took = time.perf_counter() - t0
        _note_cpu("raw", c0, n)
    if received[0] != n * MIB:
        raise RuntimeError(f"raw peer received {received[0]} of {n * MIB} bytes")
    return took


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    _register()
    n = 256 if opts.quick else 2048
    repeats = 3 if opts.quick else 7
    meds = medians({"ours": lambda: time_ours(n), "raw": lambda: time_raw(n)}, repeats)
    gb = n * MIB / 1e9
    print(
        "CPU per MiB (user + system, all threads): "
        + ", ".join(f"{k} {statistics.median(v):.0f} µs" for k, v in CPU.items())
    )
    results = [
        Result(
            f"tcp-loopback-1MiB-x{n}",
            gb / meds["ours"],
            gb / meds["raw"],
            "python socket sendall/recv_into",
            "GB/s",
            repeats,
        )
    ]
    report(f"TCP link: {n} buffers of 1 MiB over loopback", results)


if __name__ == "__main__":
    main()
