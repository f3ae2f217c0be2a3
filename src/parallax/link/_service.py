"""The service name of the shared-memory link: its address, and who may stand behind it.

Operations: `address()` (both ends), `bind()` (the publisher; a name already taken says
who holds it), `peer_credentials()` and `Trust` (both ends check the other by SO_PEERCRED).

Why both ends check. A service lives at an ABSTRACT Unix socket name,
"\\0parallax/<uid>/<service>": nothing on disk, so nothing to clean up after a kill -9.
But abstract names have no permissions (unix(7), "Abstract sockets": "permissions ... have
no meaning"): any local user can bind uid 1000's name before uid 1000's publisher starts
("squatting"), and a subscriber that trusted the name would map that user's memory and
take its buffers as the real publisher's. So the publisher checks each subscriber and
each subscriber checks its publisher: SO_PEERCRED (socket(7)) gives the peer's pid, uid
and gid as the kernel recorded them at connect() / listen(), which the peer cannot forge.
Both accept their own uid by default, or exactly the uids the user names (`Trust`).

A subscriber that trusts other uids looks for the service in each trusted uid's name
space ("\\0parallax/<that uid>/<service>"), its own uid first: a publisher always binds in
its own.

Limits: Linux only (SO_PEERCRED, /proc). Naming the process that holds a taken name is
best effort: /proc/net/unix gives the socket's inode, and /proc/<pid>/fd of another
user's process is readable by root only.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Self

UCRED: Final = struct.Struct("<3i")  # struct ucred: pid, uid, gid (socket(7), SO_PEERCRED)
MAX_SERVICE: Final = 64  # characters: far below the 107-byte sun_path with its prefix
_ACCEPTCON: Final = 0x10000  # __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket


def address(service: str, uid: int | None = None) -> str:
    """The abstract socket name of `service` in the name space of `uid` (default: ours).

    Raises:
        ValueError: the service name is empty, longer than 64 characters, or has a NUL.
    """
    if not service or "\0" in service or len(service) > MAX_SERVICE:
        raise ValueError(
            f"service name must be 1-{MAX_SERVICE} characters without NUL, got {service!r}"
        )
    return f"\0parallax/{os.getuid() if uid is None else uid}/{service}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who is at the other end of a Unix socket, as the kernel recorded it."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Credentials:
    """SO_PEERCRED of a connected Unix socket.

    Raises:
        OSError: the socket is not connected (the peer may be gone already).
    """
    pid, uid, gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    return Credentials(pid, uid, gid)


def parse_uids(text: str, *, what: str = "allowed-uids") -> list[int]:
    """The uids comma-separated in launch text ("0,1000"), in order; blank parts are
    skipped, so "" is none.

    Raises:
        ValueError: an entry is not a uid (an int from 0 to 2^32 - 2), naming `what`.
    """
    uids = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            uid = int(part)
        except ValueError:
            raise ValueError(f"{what}: {part.strip()!r} is not a uid") from None
        if not 0 <= uid < 0xFFFFFFFF:
            raise ValueError(f"{what}: {uid} is not a uid (0 to 4294967294)")
        uids.append(uid)
    return uids


@dataclass(frozen=True, slots=True)
class Trust:
    """The uids one end of the link accepts at the other end."""

    uids: frozenset[int]

    @classmethod
    def of(cls, uids: Iterable[int] | None = None, *, what: str = "allowed_uids") -> Self:
        """`uids`, checked; None: our own uid only.

        Raises:
            ValueError: an entry is not a uid (an int from 0 to 2^32 - 2), or the set is
                empty; `what` names the argument or property in the message.
        """
        if uids is None:
            return cls(frozenset((os.getuid(),)))
        if isinstance(uids, str | bytes):
            raise ValueError(f"{what} takes uids (ints), not a string: {uids!r}")
        chosen = frozenset(uids)
        for uid in chosen:
            if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid < 0xFFFFFFFF:
                raise ValueError(f"{what}: {uid!r} is not a uid (0 to 4294967294)")
        if not chosen:
            raise ValueError(f"{what} is empty: nobody could connect")
        return cls(chosen)

    @classmethod
    def parse(cls, text: str, *, what: str = "allowed-uids") -> Self:
        """From launch text: comma-separated uids ("0,1000"); empty: our own uid only.

        Raises:
            ValueError: an entry is not a uid.
        """
        uids = parse_uids(text, what=what)
        return cls.of(uids or None, what=what)

    def admits(self, peer: Credentials) -> bool:
        """True when `peer` runs as one of our uids."""
        return peer.uid in self.uids

    def name_spaces(self) -> tuple[int, ...]:
        """The uids whose name space a subscriber searches for a service: ours first."""
        own = os.getuid()
        others = sorted(self.uids - {own})
        return (own, *others) if own in self.uids else tuple(others)

    def __str__(self) -> str:
        """'uid 1000', or 'one of uids 0, 1000': for "uid 65534 is not ..." messages."""
        uids = sorted(self.uids)
        return f"uid {uids[0]}" if len(uids) == 1 else "one of uids " + ", ".join(map(str, uids))


def bind(sock: socket.socket, service: str) -> None:
    """Bind `sock` to `service`'s name in our name space.

    Raises:
        OSError: EADDRINUSE with a message naming the service and, where /proc shows it,
            the process that holds the name; or another refusal of bind().
    """
    name = address(service)
    try:
        sock.bind(name)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        who = holder(name)
        held = f"is held by {who}" if who else "is held by a process not visible to us"
        raise OSError(
            errno.EADDRINUSE,
            f"service {service!r} is already published: its name (abstract socket "
            f"@{name[1:]}) {held}",
        ) from e


def holder(name: str) -> str | None:
    """The process that holds abstract socket `name` (listening, if several sockets have
    it), as "pid N (command, uid U)"; None where /proc does not show it."""
    inodes = _inodes(name)
    if not inodes:
        return None
    for inode in inodes:
        pid = _pid_with_socket(inode)
        if pid is not None:
            return _describe(pid)
    return None


def _inodes(name: str) -> list[int]:
    # /proc/net/unix (proc(5)): "Num RefCount Protocol Flags Type St Inode Path"; an abstract
    # name's leading NUL prints as '@'. Listening sockets first: accepted ones share the name.
    want = "@" + name[1:]
    listening: list[int] = []
    others: list[int] = []
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as f:
            next(f, None)
            for line in f:
                fields = line.rstrip("\n").split(None, 7)
                if len(fields) == 8 and fields[7] == want:
                    (listening if int(fields[3], 16) & _ACCEPTCON else others).append(
                        int(fields[6])
                    )
    except OSError:
        return []
    return listening + others


def _pid_with_socket(inode: int) -> int | None:
    link = f"socket:[{inode}]"
    try:
        procs = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return None
    for pid in procs:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone meanwhile, or another user's (readable by root only)
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                    return int(pid)
            except OSError:
                continue
    return None


def _describe(pid: int) -> str:
    parts = []
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            parts.append(f.read().strip())
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    parts.append(f"uid {line.split()[1]}")
                    break
    except OSError:
        pass  # it exited meanwhile: the pid alone still says who it was
    if pid == os.getpid():
        parts.insert(0, "this process")
    return f"pid {pid}" + (f" ({', '.join(parts)})" if parts else "")
