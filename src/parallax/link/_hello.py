"""The socket side of the shared-memory link: the service address, HELLO and BYE.

After HELLO the socket carries one message, the subscriber's BYE; its other job is
liveness: a socket closes when its process exits, even by kill -9, and each side sees
that at once (the publisher's I/O thread reads EOF; a sleeping subscriber's poll gets
POLLHUP). Buffers and releases travel through the shared-memory rings (`_ring.py`).

Wire format (little-endian), SOCK_SEQPACKET, every message starts with a u8 kind:
    HELLO  publisher -> subscriber, once, with four fds by SCM_RIGHTS (the data memfd,
           the control memfd, the subscriber's wake eventfd, the publisher's wake
           eventfd): HELLO below, then `slots` u64 slot offsets.
    BYE    subscriber -> publisher: one byte; the subscriber closes cleanly.
"""

from __future__ import annotations

import enum
import os
import struct
from typing import Final

MAGIC: Final = b"PLXS"
VERSION: Final = 2  # 1: one socket message per buffer and per release
HELLO: Final = struct.Struct("<B3x4sHHIQQ")  # kind, magic, version, 0, slots, slot_size, size
HELLO_FDS: Final = 4
UCRED: Final = struct.Struct("<3i")  # struct ucred: pid, uid, gid (socket(7), SO_PEERCRED)

# HELLO carries one u64 offset per slot and must fit one SEQPACKET message (< wmem_default,
# 208 KiB); 4096 slots (32 KiB) is far more than a pool of loans needs.
MAX_SLOTS: Final = 4096


class Kind(enum.IntEnum):
    """The first byte of a socket message."""

    HELLO = 1
    # 2, 3 and 4 were BUFFER, EOS and RELEASE in version 1; they travel by the rings now.
    BYE = 5


def address(service: str) -> str:
    """The abstract socket name of `service` for this uid (no file is created)."""
    if not service or "\0" in service or len(service) > 64:
        raise ValueError(f"service name must be 1-64 characters without NUL, got {service!r}")
    return f"\0parallax/{os.getuid()}/{service}"
