"""Child process for the cross-process tests: receive a handle and fd over the socket
(its fd number is argv[1]), import, send back what it read, write a reply, and acknowledge.

With argv[2] == "sync" it imports a semaphore or fence instead (`sync_main`)."""

from __future__ import annotations

import os
import socket
import sys

from parallax.gpu import (
    ApiTextureHandle,
    SemaphoreHandle,
    SharedBuffer,
    SharedFence,
    SharedSemaphore,
    SharedTexture,
    ShareManager,
    SyncHandleType,
    VulkanDevice,
    decode_handle,
    decode_sync_handle,
    import_buffer,
    import_fence,
    import_semaphore,
    import_texture,
)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    with sock, ShareManager() as manager:
        raw, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
        (fd,) = fds
        obj: SharedBuffer | SharedTexture
        try:
            handle = decode_handle(raw)
            if isinstance(handle, ApiTextureHandle):
                obj = import_texture(manager.device, handle, fd)
            else:
                obj = import_buffer(manager.device, handle, fd)
        finally:
            os.close(fd)
        with obj:
            seen = obj.read()
            sock.sendall(len(seen).to_bytes(8, "little") + seen)
            obj.write(bytes(255 - b for b in seen))
            sock.sendall(b"done")


def sync_main() -> None:
    """Import the semaphore or fence sent (no fd: an already-signalled sync-fd) and:
    timeline semaphore: wait for 1, signal 2 from the host and 3 from the queue;
    binary semaphore: make the queue wait for it; opaque-fd fence: signal it from the
    queue; sync-fd fence: wait for it. Then send b"done" (or b"fail: why")."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    with sock, VulkanDevice() as device:
        raw, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
        fd = fds[0] if fds else -1
        try:
            handle = decode_sync_handle(raw)
            if isinstance(handle, SemaphoreHandle):
                obj: SharedSemaphore | SharedFence = import_semaphore(device, handle, fd)
            else:
                obj = import_fence(device, handle, fd)
        finally:
            if fd >= 0:
                os.close(fd)
        ok = False
        with SharedFence(device, export=False) as done:
            if isinstance(handle, SemaphoreHandle) and handle.timeline:
                sem = obj
                assert isinstance(sem, SharedSemaphore)
                ok = sem.wait(1, 30)
                sem.signal(2)
                sem.queue_signal(3, fence=done)
                ok = ok and done.wait(30)
            elif isinstance(handle, SemaphoreHandle):
                assert isinstance(obj, SharedSemaphore)
                obj.queue_wait(fence=done)
                ok = done.wait(30)
            else:
                assert isinstance(obj, SharedFence)
                if handle.handle_type is SyncHandleType.OPAQUE_FD:
                    device.queue_submit(fence=obj)
                ok = obj.wait(30)
            device.queue_submit()  # nothing left pending before close
            sock.sendall(b"done" if ok else b"fail: timed out")
        obj.close()


if __name__ == "__main__":
    if sys.argv[2:] == ["sync"]:
        sync_main()
    else:
        main()
