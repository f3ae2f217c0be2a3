"""Leaky publishing: the rule for a subscriber that holds too much of the pool.

What `Publisher(leaky=True)` (`ipcsink leaky=true`, `procqueue leaky=true`) does, exactly:
a subscriber may hold at most half the pool (`Share.limit`), so that one which stops
reading never takes the slots the others need. When send() finds a subscriber holding
its half, it first waits up to `grace` seconds (LEAKY_GRACE) for it to release a slot,
as loan() waits for a free one. If one comes back in time, nothing is lost; if not, the
buffer is dropped for that subscriber only (counted in `Publisher.dropped`), and the
subscriber *lags*: send() waits for it no more, it gets a buffer only while it holds
less than its half, until it catches up (holds a quarter of the pool or less) and is
waited for again. So a subscriber that keeps up loses nothing, even when it is briefly
descheduled or, in the publisher's process, waits for the GIL; one that stalls costs the
producer one `grace`, then nothing.

Why the wait: without it, send() skipped a subscriber the moment it held half the pool.
A subscriber thread in the publisher's process gets the GIL only when the producer's
thread lets go of it (a switch interval, 5 ms, if the producer never blocks): 99% of the
buffers were dropped for a subscriber that was not slow at all (`fakesrc ! ipcsink
leaky=true` with an `ipcsrc` in the same process; 35% with the `ipcsrc` in another one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ._peer import Peer

# Longer than a subscriber that keeps up can be kept from running on a busy machine: a
# runnable thread may wait a whole scheduling period for a CPU (CFS: sched_latency, 6 ms x
# (1 + log2 CPUs), 24 ms on 8 CPUs; on our loaded 2-vCPU VM a 10 ms grace still dropped
# 1 buffer in 2,000 for a subscriber thread that kept up), and an eventfd wake-up or a GIL
# hand-over comes on top. The price: a subscriber that stalls costs the producer one
# 50 ms wait (3 frames at 60 fps), then none until it has caught up.
LEAKY_GRACE: Final = 0.05


class Share:
    """How much of a pool of `slots` one subscriber may hold before a leaky send() waits
    for it (`limit`; `unlimited` when not leaky: then loan() waits for the pool instead)."""

    __slots__ = ("limit", "resume")

    def __init__(self, slots: int, *, leaky: bool, unlimited: int) -> None:
        self.limit = max(1, slots // 2) if leaky else unlimited
        self.resume = self.limit // 2  # a lagging subscriber holding this many caught up

    def must_wait(self, peers: Iterable[Peer]) -> bool:
        """Before a send: True when a subscriber that is waited for holds its share.
        Clears the lag of those that caught up."""
        limit, wait = self.limit, False
        for peer in peers:
            if peer.pending >= limit:
                wait = wait or not peer.lagging
            elif peer.lagging and peer.pending <= self.resume:
                peer.lagging = False
        return wait

    def has_room(self, peers: Iterable[Peer]) -> bool:
        """True when no subscriber that is waited for holds its share."""
        limit = self.limit
        return not any(p.pending >= limit and not p.lagging for p in peers)

    def give_up(self, peers: Iterable[Peer]) -> None:
        """The wait timed out: each subscriber still holding its share lags from now on."""
        for peer in peers:
            if peer.pending >= self.limit:
                peer.lagging = True
