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

Two setups, interleaved round by round (`_common.medians`):
- `tcp-loopback-1MiB-x<N>`: both ends in this process, as above (one GIL, two vCPUs).
- `tcp-loopback-1MiB-x<N>-2proc`: the receiver (`tcpserversrc ! fakesink`, or the raw
  `recv_into` loop) runs in a child process (multiprocessing, spawn), started and
  listening before the clock; the sender (the same `fakesrc ! tcpclientsink`, or the
  same `sendall` loop) runs here. Timed from the sender's start to the moment the child
  saw EOS / the last byte, both read with `time.monotonic()` (CLOCK_MONOTONIC: one clock
  for every process on Linux). This is how a TCP link is used: between two processes.
  Its CPU line adds both processes (sender + receiver).
- `tcp-loopback-1MiB-x<N>-tls`: the one-process setup with `tls=true` on both ends
  (the receiver presents a certificate that a CA made for this run signed; the sender
  verifies it; the `openssl` command makes both, before any clock starts). Its "peer" is
  the same setup without TLS, from the same rounds, so the ratio is what TLS costs:
  tls / plain throughput. Left out, with a note, where `openssl` is missing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def time_ours(n: int, tls: tuple[str, str] | None = None) -> float:
    """Seconds to move n 1 MiB buffers through tcpclientsink → tcpserversrc; `tls`: the
    receiver's and the sender's TLS properties (`tls_properties`)."""
    rx_tls, tx_tls = tls or ("", "")
    rx = parallax.parse_launch(f"tcpserversrc name=in port=0 {rx_tls} ! fakesink")
    rx.play()
    try:
        port = rx.get_by_name("in").bound_port  # type: ignore[attr-defined]
        tx = parallax.parse_launch(
            f"fakesrc sizetype=fixed sizemax=1M pool-slots=4 num-buffers={n} "
            f"! tcpclientsink port={port} {tx_tls}"
        )
        c0, t0 = _cpu(), time.perf_counter()
        tx.run(timeout=120)
        message = rx.wait(120)
        took = time.perf_counter() - t0
        _note_cpu("ours" if tls is None else "ours-tls", c0, n)
    finally:
        rx.stop()
    if message is None or message.type is not MessageType.EOS:
        raise RuntimeError(f"receiver did not reach EOS: {message}")
    return took


def tls_properties(where: Path) -> tuple[str, str] | None:
    """Make a CA and a certificate for 127.0.0.1 that it signed, in `where`, with the
    `openssl` command; the receiver's and the sender's TLS properties, or None (no openssl).
    """
    exe = shutil.which("openssl")
    if exe is None:
        return None

    def openssl(*args: str) -> None:
        subprocess.run([exe, *args], cwd=where, check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl(
        *("req", "-x509", *ec, "-days", "1", "-subj", "/CN=bench-ca"),
        *("-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE"),
    )
    (where / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "rx.key", "-out", "rx.csr")
    openssl(
        *("x509", "-req", "-in", "rx.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-set_serial", "1", "-days", "1", "-extfile", "server.ext", "-out", "rx.pem"),
    )
    return (
        f"tls=true tls-cert={where / 'rx.pem'} tls-key={where / 'rx.key'}",
        f"tls=true tls-ca={where / 'ca.pem'}",
    )


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


# -- receiver in another process ---------------------------------------------------------

_CTX = mp.get_context("spawn")
CHILD_TIMEOUT = 120.0


def ours_receiver(conn) -> None:
    """Child: `tcpserversrc ! fakesink`; sends its port, then (monotonic end, ok, CPU s)."""
    try:
        _register()
        rx = parallax.parse_launch("tcpserversrc name=in port=0 ! fakesink")
        rx.play()
        try:
            c0 = _cpu()
            conn.send(rx.get_by_name("in").bound_port)  # type: ignore[attr-defined]
            message = rx.wait(CHILD_TIMEOUT)
            end = time.monotonic()
            cpu = _cpu() - c0
        finally:
            rx.stop()
        if message is None or message.type is not MessageType.EOS:
            raise RuntimeError(f"receiver did not reach EOS: {message}")
        conn.send(("done", end, cpu))
    except BaseException as e:
        conn.send(("error", repr(e), 0.0))
        raise
    finally:
        conn.close()


def raw_receiver(conn, n: int) -> None:
    """Child: accept one connection, `recv_into` n MiB; sends port, then (end, CPU s)."""
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            c0 = _cpu()
            conn.send(server.getsockname()[1])
            server.settimeout(CHILD_TIMEOUT)
            sock, _ = server.accept()
            with sock:
                sock.settimeout(CHILD_TIMEOUT)
                view = memoryview(bytearray(MIB))
                total, want = 0, n * MIB
                while total < want:
                    k = sock.recv_into(view)
                    if k == 0:
                        break
                    total += k
                end = time.monotonic()
            cpu = _cpu() - c0
        if total != want:
            raise RuntimeError(f"raw peer received {total} of {want} bytes")
        conn.send(("done", end, cpu))
    except BaseException as e:
        conn.send(("error", repr(e), 0.0))
        raise
    finally:
        conn.close()


@contextmanager
def _child(target: Callable[..., None], *args: object) -> Iterator[tuple[int, Callable]]:
    """Start a receiver child; yield (its port, a function returning (end, CPU s)).

    The child is joined on the way out, and killed if it is still alive after a short
    wait (at once when the body raised), so no receiver outlives a run.
    """
    recv, send = _CTX.Pipe(False)
    proc = _CTX.Process(target=target, args=(send, *args), daemon=True)
    proc.start()
    send.close()  # the child holds the only write end: its exit unblocks recv()

    def result() -> tuple[float, float]:
        if not recv.poll(CHILD_TIMEOUT):
            raise RuntimeError(f"{target.__name__}: no result within {CHILD_TIMEOUT} s")
        status, value, cpu = recv.recv()
        if status != "done":
            raise RuntimeError(f"{target.__name__} failed: {value}")
        return value, cpu

    failed = True
    try:
        if not recv.poll(60):
            raise RuntimeError(f"{target.__name__}: no port within 60 s")
        port = recv.recv()
        if isinstance(port, tuple):
            raise RuntimeError(f"{target.__name__} failed: {port[1]}")
        yield port, result
        failed = False
    finally:
        proc.join(0.1 if failed else 10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        recv.close()
    if proc.exitcode != 0:
        raise RuntimeError(f"{target.__name__} exited {proc.exitcode}")


def time_ours_2proc(n: int) -> float:
    """Seconds for n 1 MiB buffers: tcpclientsink here → tcpserversrc in a child."""
    with _child(ours_receiver) as (port, result):
        tx = parallax.parse_launch(
            f"fakesrc sizetype=fixed sizemax=1M pool-slots=4 num-buffers={n} ! tcpclientsink port={port}"
        )
        c0, t0 = _cpu(), time.monotonic()
        tx.run(timeout=120)
        tx_cpu = _cpu() - c0
        end, rx_cpu = result()
    _note_2proc("ours-2proc", tx_cpu, rx_cpu, n)
    return end - t0


def time_raw_2proc(n: int) -> float:
    """Seconds for n sendall(1 MiB) here → recv_into(1 MiB bytearray) in a child."""
    with _child(raw_receiver, n) as (port, result):
        payload = bytes(MIB)
        c0, t0 = _cpu(), time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(n):
                sock.sendall(payload)
        tx_cpu = _cpu() - c0
        end, rx_cpu = result()
    _note_2proc("raw-2proc", tx_cpu, rx_cpu, n)
    return end - t0


def _note_2proc(side: str, tx: float, rx: float, n: int) -> None:
    CPU[side].append((tx + rx) * 1e6 / n)
    CPU[f"{side} tx"].append(tx * 1e6 / n)
    CPU[f"{side} rx"].append(rx * 1e6 / n)


def _cpu_line() -> str:
    """The median CPU per MiB of each setup; the 2-process ones split as tx + rx."""
    med = {k: statistics.median(v) for k, v in CPU.items()}
    parts = []
    for k, v in med.items():
        if k.endswith((" tx", " rx")):
            continue
        split = f" (tx {med[k + ' tx']:.0f} + rx {med[k + ' rx']:.0f})" if k + " tx" in med else ""
        parts.append(f"{k} {v:.0f} µs{split}")
    return "CPU per MiB (user + system, all threads): " + ", ".join(parts)


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    _register()
    n = 256 if opts.quick else 2048
    repeats = 3 if opts.quick else 7
    with tempfile.TemporaryDirectory(prefix="tcp-bench-") as certs:
        tls = tls_properties(Path(certs))
        fns: dict[str, Callable[[], float]] = {
            "ours": lambda: time_ours(n),
            "raw": lambda: time_raw(n),
            "ours-2proc": lambda: time_ours_2proc(n),
            "raw-2proc": lambda: time_raw_2proc(n),
        }
        if tls is not None:
            fns["ours-tls"] = lambda: time_ours(n, tls)
        else:
            print("tcp-loopback-...-tls left out: it needs the openssl command for certificates")
        meds = medians(fns, repeats)
    gb = n * MIB / 1e9
    print(_cpu_line())
    results = [
        Result(
            f"tcp-loopback-1MiB-x{n}",
            gb / meds["ours"],
            gb / meds["raw"],
            "python socket sendall/recv_into",
            "GB/s",
            repeats,
        ),
        Result(
            f"tcp-loopback-1MiB-x{n}-2proc",
            gb / meds["ours-2proc"],
            gb / meds["raw-2proc"],
            "python socket sendall/recv_into, receiver in another process",
            "GB/s",
            repeats,
        ),
    ]
    if "ours-tls" in meds:
        results.append(
            Result(
                f"tcp-loopback-1MiB-x{n}-tls",
                gb / meds["ours-tls"],
                gb / meds["ours"],
                "the same link without TLS (tls=false), same rounds",
                "GB/s",
                repeats,
            )
        )
    report(f"TCP link: {n} buffers of 1 MiB over loopback", results)


if __name__ == "__main__":
    main()
