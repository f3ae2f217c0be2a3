"""A texture shared between two processes on the GPU (the seed's Geyser flow).

    python examples/gpu_texture_share.py

The parent creates a 256x256 RGBA8 texture in exportable Vulkan memory, fills it, and
exports it: a small handle (bytes) plus an fd, sent to a child process over a socketpair
(SCM_RIGHTS). The child imports the same memory, checks what the parent wrote, and
writes the inverse; the parent then reads the child's pixels from its own texture. The
bytes are copied into and out of the texture only to check them: the sharing itself
copies nothing. Exits 0 with a message where no Vulkan device can share memory.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import numpy as np

from parallax.gpu import (
    ApiTextureHandle,
    ShareManager,
    TextureDescriptor,
    TextureFormat,
    TextureUsage,
)

DESC = TextureDescriptor(
    256, 256, TextureFormat.RGBA8_UNORM, TextureUsage.COPY_SRC | TextureUsage.COPY_DST, "frame"
)


def pattern() -> bytes:
    y, x = np.mgrid[0:256, 0:256]
    rgba = np.stack([x, y, (x + y) // 2, np.full_like(x, 255)], axis=-1).astype(np.uint8)
    return rgba.tobytes()


def child(sock_fd: int) -> None:
    with socket.socket(fileno=sock_fd) as sock, ShareManager() as manager:
        raw, fds, _, _ = socket.recv_fds(sock, 4096, 1)
        try:
            handle = ApiTextureHandle.from_bytes(raw)
            tex = manager.import_shared_texture(handle, fds[0], expected=DESC)
        finally:
            os.close(fds[0])
        with tex:
            seen = tex.read()
            ok = seen == pattern()
            tex.write(bytes(255 - b for b in seen))
        sock.sendall(b"ok" if ok else b"bad")


def main() -> int:
    try:
        manager = ShareManager()
    except Exception as e:  # no Vulkan, or no external-memory support
        print(f"no Vulkan device that shares memory here ({e}); nothing to show")
        return 0
    with manager:
        tex = manager.create_shared_texture(DESC)
        tex.write(pattern())
        handle, fd = manager.export_texture(tex)
        ours, theirs = socket.socketpair()
        with ours:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
            )
            theirs.close()
            socket.send_fds(ours, [handle.to_bytes()], [fd])
            os.close(fd)
            answer = ours.recv(16)
        code = proc.wait()
        back = tex.read()
        inverted = back == bytes(255 - b for b in pattern())
        print(
            f"{manager.device.name}: {DESC.width}x{DESC.height} {DESC.format.value} texture, "
            f"handle {len(handle.to_bytes())} bytes + 1 fd; child saw our pixels: "
            f"{answer.decode()}; we see the child's: {'ok' if inverted else 'bad'} "
            f"(sha1 {hashlib.sha1(back).hexdigest()[:12]})"
        )
        return 0 if code == 0 and answer == b"ok" and inverted else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        sys.exit(main())
