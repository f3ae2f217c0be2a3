"""Child process for the cross-process test: receive a handle and fd over the socket
(its fd number is argv[1]), import, send back what it read, write a reply, and acknowledge."""

from __future__ import annotations

import os
import socket
import sys

from parallax.gpu import (
    ApiTextureHandle,
    SharedBuffer,
    SharedTexture,
    ShareManager,
    decode_handle,
    import_buffer,
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


if __name__ == "__main__":
    main()
