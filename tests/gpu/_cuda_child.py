"""Child process for the CUDA cross-process tests. argv[1] is a socket's fd number.

It receives one JSON message (handle bytes as hex under "mem", optionally "event") and at
most one fd by SCM_RIGHTS, opens the buffer (and waits for the event on its stream),
replies {"ok": true, "sha256": ..., "first": ...} after reading the bytes with CuPy,
writes 255 - b back, synchronizes, and replies "done". Any error is replied as
{"ok": false, "error": <class name>, "message": ...}; the child exits 0 either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

import cupy

from parallax.gpu import CudaContext, CudaEvent, CudaHandle, import_cuda_buffer


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    with sock, CudaContext(0) as ctx:
        raw, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 1)
        msg = json.loads(raw)
        fd = fds[0] if fds else None
        try:
            handle = CudaHandle.from_bytes(bytes.fromhex(msg["mem"]))
            with import_cuda_buffer(ctx, handle, fd) as buf:
                if msg.get("event"):
                    with CudaEvent.open_ipc(
                        ctx, CudaHandle.from_bytes(bytes.fromhex(msg["event"]))
                    ) as ev:
                        ev.wait(cupy.cuda.get_current_stream().ptr)
                arr = cupy.asarray(buf)
                assert arr.data.ptr == buf.ptr
                host = arr.get()
                reply = {
                    "ok": True,
                    "sha256": hashlib.sha256(host.tobytes()).hexdigest(),
                    "first": int(host[0]),
                }
                sock.sendall(json.dumps(reply).encode() + b"\n")
                arr[...] = 255 - arr
                cupy.cuda.get_current_stream().synchronize()
                del arr
        except Exception as e:
            reply = {"ok": False, "error": type(e).__name__, "message": str(e)}
            sock.sendall(json.dumps(reply).encode() + b"\n")
            return
        finally:
            if fd is not None:
                os.close(fd)
        sock.sendall(b"done\n")


if __name__ == "__main__":
    main()
