"""The shared-memory process link (iceoryx2-style loans): its plan, and `Subscriber`.

Operations: `Publisher.loan()` / `send()` / `send_eos()`, `Subscriber.receive()`, and the
drop of a received Buffer's last reference (its release). See docs/links.md.

Layout:
    _service.py    the service's address, and who may stand behind it (SO_PEERCRED)
    _hello.py      HELLO and BYE, the socket's two messages (pure)
    _ring.py       the shared-memory rings of one subscriber and their memory ordering
    _wake.py       spinning, sleeping and waking a sleeper
    _loan.py       `Loan`, a publisher's loan; the per-slot arrays of a pool's mapping
    _peer.py       `Peer`, the publisher's side of one subscriber
    _serve.py      `IoThread`, the publisher's I/O thread
    _publisher.py  `Publisher`
    _received.py   the memory owner of a received buffer, and its release
    _shm.py        this plan, and `Subscriber`

Plan:
- The publisher owns a memfd-backed `SlotPool`, sealed against shrink and grow, and listens
  on an ABSTRACT Unix socket "\\0parallax/<uid>/<service>" (nothing on disk to clean up after
  a kill -9). SOCK_SEQPACKET keeps message boundaries and lets fds ride with a message.
- Abstract names have no permissions, so each end checks the other's SO_PEERCRED (socket(7);
  same uid, or the uids the user names): a subscriber refuses a publisher that another
  user started under the service's name before the real one (`_service.py`).
- On connect the publisher makes that subscriber a control block (a small sealed memfd: a
  descriptor ring to it, a release ring back, two sleeping flags) and a wake eventfd, and
  sends HELLO with four fds by SCM_RIGHTS, once: the pool's memfd, the control block, the
  subscriber's wake eventfd and its own. The subscriber checks them all (memfds sealed,
  eventfds, every slot inside the pool) before it maps anything. From then on the socket
  carries nothing but a BYE at the end.
- Per buffer, `send()` writes a descriptor (slot, window, metadata, caps only when they
  changed for that subscriber) into the subscriber's ring; `receive()` takes it. When the
  last reference to a received buffer drops, its owner's `__del__` pushes the slot index
  into the release ring (`_received.py`); `loan()` drains the release rings. No syscall
  and no thread hop per buffer.
- Wake-ups only for a side that sleeps. `receive()` on an empty ring spins `spin` seconds
  (default 200 us), then sets its sleeping flag, fences, re-checks the ring, and sleeps
  in poll() on its wake eventfd and the socket; `send()` publishes, fences, and writes
  the eventfd only if the flag is set. `loan()` on an empty pool does the same against
  the release rings and the publisher's eventfd. (Dekker's handshake: _ring.py, _wake.py.)
- The publisher keeps each sent `Slot` with a count of the subscribers that hold it (plus
  one while `send()` runs); the Slot object, and so the loan, drops when the count reaches
  zero. `SlotPool._release` stays the one place an index comes back.
- Liveness is the socket. A subscriber whose socket closes (BYE, exit, kill -9) gives back
  every slot it held; one without BYE is reported (`Publisher.errors`, a logging warning).
  A subscriber whose publisher's socket closes takes the descriptors already in its ring,
  then gets BrokenError; a sleeping one is woken by POLLHUP at once.
- The publisher's I/O thread (selectors) only accepts and watches the sockets; close()
  joins it. The subscriber has no thread.

Limits: one host; x86-64 for the fast path (TSO; other CPUs go through libatomic, see
_ring.py). A subscriber that stops reading pins at most what it was sent; with leaky=True
at most half the pool (`_publisher.py` says exactly what leaky does). A spinning
receive() burns CPU for up to `spin` seconds (default 200 us) per empty ring; it holds
the GIL for the first 20 us only (os.sched_yield releases it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final, Self

from parallax._errors import BrokenError, ClosedError
from parallax.buffer import Buffer
from parallax.caps import Caps
from parallax.memory import MemfdSegment

from ._hello import BYE, HELLO_FDS, MAX_HELLO, Hello, decode_hello
from ._loan import slot_arrays
from ._received import Received, Releaser, new_received
from ._ring import EOS_SLOT, NO_CAPS, SUB_SLEEPING, ControlBlock, DescriptorReader, fence
from ._service import Trust, address, peer_credentials
from ._wake import DEFAULT_SPIN, drain, spin

_HUP: Final = select.POLLHUP | select.POLLERR | select.POLLRDHUP | select.POLLNVAL
_HELLO_TIMEOUT: Final = 5.0  # s: HELLO follows accept at once; 5 s is generous
_from_owner = Buffer.from_owner


def _close_subscriber(
    releaser: Releaser, sock: socket.socket, wake: int, segment: MemfdSegment
) -> None:
    releaser.close()
    # Blocking, briefly: BYE tells the publisher this close is no crash.
    with contextlib.suppress(OSError):
        sock.settimeout(0.5)
        sock.send(BYE)
    sock.close()
    os.close(wake)
    segment.release()  # live buffers keep the mapping until the last of them goes


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()


class Subscriber:
    """Receive buffers from the `Publisher` of `service`, as read-only views of its memory.

    Owns a socket, a wake eventfd, the control block and a read-only mapping of the pool:
    `close()` it, or use `with`. No thread. Received buffers stay valid after close();
    each returns its slot to the publisher when its last reference (and every view of
    it) is dropped. One thread at a time may call receive().

    Args:
        service: the publisher's service name.
        timeout: seconds to wait for the publisher to appear (None: it must exist now).
        spin: seconds receive() polls an empty ring before it sleeps (0: sleep at once);
            after the first 20 us each poll yields the CPU (DEFAULT_SPIN says why).
        allowed_uids: the uids a publisher may run as (SO_PEERCRED); None: ours only.
            The service is looked for in each of their name spaces, ours first.

    Raises:
        BrokenError: no publisher (within `timeout`); a publisher of a uid we do not
            allow (the message names its pid and uid: someone may have taken the name);
            one that refused us (another uid), or sent a HELLO or fds that do not check
            out. Every fd received by then is closed.
        ValueError: a bad service name or uid.
    """

    def __init__(
        self,
        service: str,
        *,
        timeout: float | None = None,
        spin: float = DEFAULT_SPIN,
        allowed_uids: Iterable[int] | None = None,
    ) -> None:
        address(service)  # checks the name
        trust = Trust.of(allowed_uids)
        self._service = service
        self._spin = max(spin, 0.0)
        with contextlib.ExitStack() as undo:  # everything taken, until it is all ours
            sock = self._connect(trust, timeout)
            undo.callback(sock.close)
            self._check_publisher(sock, trust)
            raw: list[int] = []  # received fds that nothing else owns yet
            undo.callback(_close_all, raw)
            hello, fds = self._receive_hello(sock, raw)
            data_fd, ctl_fd, wake, pub_wake = fds
            raw.remove(data_fd)  # from_fd owns it from here on, failing or not
            try:
                segment = MemfdSegment.from_fd(data_fd, size=hello.size, readonly=True)
            except (ValueError, OSError) as e:
                raise BrokenError(f"publisher {service!r} sent a pool we cannot map: {e}") from e
            undo.callback(segment.close)
            raw.remove(ctl_fd)  # and attach() ctl_fd
            try:
                block = ControlBlock.attach(ctl_fd)
            except (ValueError, OSError) as e:
                raise BrokenError(f"publisher {service!r} sent a bad control block: {e}") from e
            undo.callback(block.close)
            poll = select.poll()
            poll.register(wake, select.POLLIN)
            poll.register(sock, select.POLLRDHUP)  # POLLHUP always: the publisher is gone
            undo.pop_all()
        self._slots, self._slot_size = hello.slots, hello.slot_size
        slices = slot_arrays(segment.mmap, hello.offsets, hello.slot_size)
        self._releaser = releaser = Releaser(block, pub_wake, slices)
        self._words = releaser.words
        self._ring = DescriptorReader(block)
        self._wake = wake
        self._poll = poll
        self._caps: Caps | None = None
        self._ended = False
        self._open = True
        self._finalizer = weakref.finalize(self, _close_subscriber, releaser, sock, wake, segment)

    # -- set-up ---------------------------------------------------------------------------

    def _connect(self, trust: Trust, timeout: float | None) -> socket.socket:
        """A socket connected to the service, in the first name space that has it."""
        names = [address(self._service, uid) for uid in trust.name_spaces()]
        deadline = time.monotonic() + (timeout or 0.0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            while True:
                for name in names:
                    try:
                        sock.connect(name)
                        return sock
                    except (ConnectionRefusedError, FileNotFoundError) as e:
                        missing = e
                if time.monotonic() >= deadline:
                    where = f" (looked as {trust})" if len(names) > 1 else ""
                    raise BrokenError(
                        f"no publisher for service {self._service!r}{where}"
                    ) from missing
                time.sleep(0.01)
        except BaseException:
            sock.close()
            raise

    def _check_publisher(self, sock: socket.socket, trust: Trust) -> None:
        """Refuse a publisher of a uid we do not allow, before taking anything from it."""
        try:
            peer = peer_credentials(sock)
        except OSError as e:
            raise BrokenError(f"publisher {self._service!r} hung up at once") from e
        if not trust.admits(peer):
            raise BrokenError(
                f"refused the publisher of service {self._service!r}: pid {peer.pid} runs as "
                f"uid {peer.uid}, not {trust} (SO_PEERCRED); another user may have taken "
                "the service's name before its publisher started"
            )

    def _receive_hello(self, sock: socket.socket, raw: list[int]) -> tuple[Hello, list[int]]:
        """HELLO and its four fds, checked; the fds are appended to `raw` as they come."""
        service = self._service
        sock.settimeout(_HELLO_TIMEOUT)
        try:
            data, fds, msg_flags, _ = socket.recv_fds(sock, MAX_HELLO, HELLO_FDS)
        except OSError as e:
            raise BrokenError(f"publisher {service!r} hung up during HELLO") from e
        raw.extend(fds)
        sock.settimeout(None)
        if not data and not fds:
            raise BrokenError(
                f"publisher {service!r} refused the connection (another uid?) or exited"
            )
        if msg_flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise BrokenError(f"publisher {service!r} sent more than a HELLO and its 4 fds")
        try:
            hello = decode_hello(data)
        except ValueError as e:
            raise BrokenError(f"publisher {service!r} sent a bad HELLO: {e}") from e
        if len(fds) != HELLO_FDS:
            raise BrokenError(f"publisher {service!r} sent {len(fds)} fds with HELLO, not 4")
        kinds = ("pool memfd", "control memfd", "wake eventfd", "publisher's wake eventfd")
        for fd, kind in zip(fds, kinds, strict=True):
            why = _not_a(fd, kind)
            if why:
                raise BrokenError(f"publisher {service!r} sent a bad {kind}: {why}")
        return hello, fds

    # -- receiving ------------------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Buffer | None:
        """The next buffer, read-only and zero-copy; None after `timeout` s or at EOS
        (then `ended` is True).

        Raises:
            BrokenError: the publisher died (its socket closed without EOS), or sent a
                descriptor that makes no sense.
            ClosedError: this subscriber is closed.
        """
        if not self._open:
            raise ClosedError(f"cannot receive on closed subscriber {self._service!r}")
        if self._ended:
            return None
        releaser = self._releaser
        if releaser.backlog:
            releaser.flush()
        try:
            entry = self._ring.get()
            if entry is None:
                entry = self._wait(timeout)
                if entry is None:
                    return None
        except ValueError as e:
            raise BrokenError(f"publisher {self._service!r} broke the ring: {e}") from e
        size, index, caps, flags, sequence, pts, dts, duration, offset = entry
        if index == EOS_SLOT:
            self._ended = True
            return None
        if caps:
            self._caps = None if caps == NO_CAPS else Caps.from_string(caps)
        if index >= self._slots:
            raise BrokenError(f"publisher {self._service!r} sent slot {index} of {self._slots}")
        # The owner first: from here on, dropping it gives the slot back.
        owner = new_received(Received)
        owner.releaser, owner.index, owner.size = releaser, index, self._slot_size
        if size > self._slot_size:
            raise BrokenError(
                f"publisher {self._service!r} sent {size:,} bytes in a slot of {self._slot_size:,}"
            )
        return _from_owner(
            owner, size, self._caps, sequence, pts, dts, duration, offset, flags, True
        )

    def _wait(self, timeout: float | None) -> tuple[Any, ...] | None:
        """receive()'s slow path: spin, then sleep until a descriptor comes."""
        ring = self._ring
        entry = spin(ring.get, self._spin if timeout is None else min(self._spin, timeout))
        if entry is not None:
            return entry
        ready = ring.ready
        deadline = None if timeout is None else time.monotonic() + timeout
        words = self._words
        try:
            while True:
                words[SUB_SLEEPING] = 1
                fence()  # our flag before our load of the stamp (see Publisher.send)
                if ready():
                    return ring.get()
                wait = -1.0
                if deadline is not None:
                    wait = (deadline - time.monotonic()) * 1000.0
                    if wait <= 0:
                        return None
                for fd, events in self._poll.poll(wait):
                    if fd == self._wake:
                        drain(fd)
                    elif events & _HUP:
                        if ready():  # what it sent before it went comes first
                            return ring.get()
                        raise BrokenError(f"publisher {self._service!r} went away (no EOS)")
        finally:
            words[SUB_SLEEPING] = 0

    @property
    def ended(self) -> bool:
        """True once the publisher sent EOS."""
        return self._ended

    @property
    def slot_size(self) -> int:
        """The publisher's slot size in bytes."""
        return self._slot_size

    def close(self) -> None:
        """Say BYE and close the socket. Idempotent; received buffers stay readable."""
        self._open = False
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<Subscriber {self._service!r} {state}>"


def _not_a(fd: int, kind: str) -> str:
    """Why `fd` is not the `kind` HELLO says it is ('' when it is)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError as e:
        return f"fd {fd}: {e}"
    if kind.endswith("eventfd"):
        return "" if target == "anon_inode:[eventfd]" else f"it is {target!r}"
    if not target.startswith("/memfd:"):
        return f"it is {target!r}"
    # Unsealed, the publisher could shrink it under our mapping: a read past the new end
    # is SIGBUS, which no Python code can catch.
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    if seals & (fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW) != fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW:
        return f"{target!r} is not sealed against shrinking and growing"
    return ""
