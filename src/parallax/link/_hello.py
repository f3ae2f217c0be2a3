"""The socket side of the shared-memory link: HELLO and BYE (pure: bytes in, values out).

After HELLO the socket carries one message, the subscriber's BYE; its other job is
liveness: a socket closes when its process exits, even by kill -9, and each side sees
that at once (the publisher's I/O thread reads EOF; a sleeping subscriber's poll gets
POLLHUP). Buffers and releases travel through the shared-memory rings (`_ring.py`); who
may stand at either end of the socket is `_service.py`'s part.

Wire format (little-endian), SOCK_SEQPACKET, every message starts with a u8 kind:
    HELLO  publisher -> subscriber, once, with four fds by SCM_RIGHTS (the data memfd,
           the control memfd, the subscriber's wake eventfd, the publisher's wake
           eventfd): HELLO below, then `slots` u64 slot offsets.
    BYE    subscriber -> publisher: one byte; the subscriber closes cleanly.

`decode_hello` checks everything a subscriber relies on before it maps anything: kind,
magic, version, the slot count, and that every slot lies inside the segment (a slot
past its end would read as a short buffer, or fault).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from parallax._wire import WireHeader

MAGIC: Final = b"PLXS"
VERSION: Final = 2  # 1: one socket message per buffer and per release
_HELLO: Final = WireHeader("a HELLO", "<B3x4sHHIQQ", magic=MAGIC, version=VERSION)
"""kind, magic, version, 0, slots, slot_size, size (ValueError names what is wrong)."""
HELLO: Final = _HELLO.struct
HELLO_FDS: Final = 4

# HELLO carries one u64 offset per slot and must fit one SEQPACKET message (< wmem_default,
# 208 KiB); 4096 slots (32 KiB) is far more than a pool of loans needs.
MAX_SLOTS: Final = 4096
MAX_HELLO: Final = HELLO.size + 8 * MAX_SLOTS


class Kind(enum.IntEnum):
    """The first byte of a socket message."""

    HELLO = 1
    # 2, 3 and 4 were BUFFER, EOS and RELEASE in version 1; they travel by the rings now.
    BYE = 5


BYE: Final = bytes([Kind.BYE])


@dataclass(frozen=True, slots=True)
class Hello:
    """What HELLO says: the pool's geometry and where each slot sits in its segment."""

    slots: int
    slot_size: int
    size: int  # bytes of the data segment
    offsets: tuple[int, ...]


def encode_hello(hello: Hello) -> bytes:
    """The HELLO message (its fds travel beside it, by SCM_RIGHTS)."""
    head = _HELLO.pack(Kind.HELLO, 0, hello.slots, hello.slot_size, hello.size)
    return head + struct.pack(f"<{hello.slots}Q", *hello.offsets)


def decode_hello(data: bytes) -> Hello:
    """Parse and check a HELLO message.

    Raises:
        ValueError: anything but a HELLO of this version whose slots all lie inside its
            segment (the message says what is wrong).
    """
    kind, _, slots, slot_size, size = _HELLO.unpack_from(data)  # magic, length, version
    if kind != Kind.HELLO:
        raise ValueError(f"not a HELLO (kind {kind} at byte 0; expected {Kind.HELLO:d})")
    if not 0 < slots <= MAX_SLOTS or slot_size <= 0:
        raise ValueError(f"a pool of {slots} x {slot_size:,} bytes (1 to {MAX_SLOTS} slots)")
    if len(data) != HELLO.size + 8 * slots:
        raise ValueError(
            f"a HELLO of {len(data)} bytes; {slots} slots make it {HELLO.size + 8 * slots}"
        )
    offsets = struct.unpack_from(f"<{slots}Q", data, HELLO.size)
    for index, offset in enumerate(offsets):
        if offset + slot_size > size:
            raise ValueError(f"slot {index} at byte {offset:,} ends past the {size:,}-byte segment")
    return Hello(slots, slot_size, size, offsets)
