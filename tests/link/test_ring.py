"""The shared-memory rings of the process link: model checks, corruption, the release path."""

from __future__ import annotations

import collections
import ctypes.util
import os
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallax.buffer import Buffer
from parallax.link import Publisher, Subscriber
from parallax.link._received import Releaser
from parallax.link._ring import (
    DESC_TAIL,
    MAX_CAPS,
    NO_CAPS,
    PUB_SLEEPING,
    REL_BASE,
    REL_TAIL,
    AtomicWords,
    ControlBlock,
    DescriptorReader,
    DescriptorWriter,
    Geometry,
    ReleaseReader,
    ReleaseWriter,
)

ACCESSORS = [
    pytest.param(False, id="memoryview"),
    pytest.param(
        True,
        id="libatomic",
        marks=pytest.mark.skipif(
            ctypes.util.find_library("atomic") is None, reason="needs libatomic (libatomic1)"
        ),
    ),
]


def _service(name: str) -> str:
    return f"test-ring-{os.getpid()}-{name}"


def _start_at(block: ControlBlock, start: int) -> None:
    """Make both rings start at position `start`, as after `start` entries went through."""
    for word in (DESC_TAIL, REL_TAIL):
        block.words[word] = start


def test_geometry_holds_every_buffer_a_subscriber_can_hold() -> None:
    for slots in (1, 2, 3, 15, 16, 17, 4096):
        g = Geometry.for_slots(slots)
        assert g.desc_cap >= slots + 2 and g.rel_cap >= slots
        assert g.desc_cap & (g.desc_cap - 1) == 0 and g.rel_cap & (g.rel_cap - 1) == 0
        assert g.desc_base % 64 == 0 and g.size == g.caps_base + MAX_CAPS * g.desc_cap
    with pytest.raises(ValueError, match="powers of two"):
        Geometry(6, 4)


# One operation of the descriptor ring: a put (with caps: None = unchanged, "" = no caps,
# else text) or a get.
_desc_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.integers(0, 2**16 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.one_of(st.none(), st.text(max_size=40)),
        ),
        st.tuples(st.just("get"), st.just(0), st.just(0), st.none()),
    ),
    max_size=80,
)


@pytest.mark.parametrize("atomic", ACCESSORS)
@settings(max_examples=60, deadline=None)
@given(ops=_desc_ops, start=st.sampled_from([0, 1, 2**32 - 3, 2**62 + 5]))
def test_descriptor_ring_matches_a_bounded_fifo(
    atomic: bool, ops: list[tuple[str, int, int, str | None]], start: int
) -> None:
    with ControlBlock.create(2, atomic=atomic) as block:  # capacity 4: wraps all the time
        _start_at(block, start)
        writer, reader = DescriptorWriter(block), DescriptorReader(block)
        cap = block.geometry.desc_cap
        model: collections.deque[tuple[object, ...]] = collections.deque()
        for op, slot, pts, caps in ops:
            if op == "put":
                if caps is None:
                    ncaps, text, want = 0, b"", 0
                elif caps == "":
                    ncaps, text, want = NO_CAPS, b"", NO_CAPS
                else:
                    text = caps.encode()
                    ncaps, want = len(text), caps  # type: ignore[assignment]
                ok = writer.put(slot, 2, ncaps, 7, 3, pts, -1, -1, -1, text)
                assert ok == (len(model) < cap)  # full exactly at capacity
                if ok:
                    model.append((2, slot, want, 7, 3, pts, -1, -1, -1))
            else:
                got = reader.get()
                assert got == (model.popleft() if model else None)  # None exactly when empty
            assert reader.ready() == bool(model)
            assert writer.pending == len(model)
        assert writer.pending == len(model)


@pytest.mark.parametrize("atomic", ACCESSORS)
@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.one_of(st.integers(0, 4095), st.just(-1)), max_size=100),
    start=st.sampled_from([0, 7, 2**32 - 1, 2**63 + 1]),
)
def test_release_ring_matches_a_bounded_fifo(atomic: bool, ops: list[int], start: int) -> None:
    # -1: the publisher drains; otherwise the subscriber pushes that index.
    with ControlBlock.create(4, atomic=atomic) as block:
        _start_at(block, start)
        writer, reader = ReleaseWriter(block), ReleaseReader(block)
        cap = block.geometry.rel_cap
        model: list[int] = []
        for op in ops:
            if op < 0:
                assert reader.drain() == model
                model = []
            else:
                ok = writer.push(op)
                assert ok == (len(model) < cap)
                if ok:
                    model.append(op)
        assert reader.drain() == model


@given(pushes=st.lists(st.integers(0, 99), max_size=30), room=st.integers(0, 8))
def test_push_all_moves_what_fits_in_order(pushes: list[int], room: int) -> None:
    with ControlBlock.create(8) as block:
        writer, reader = ReleaseWriter(block), ReleaseReader(block)
        for i in range(8 - room):  # leave `room` free entries
            assert writer.push(1000 + i)
        backlog = collections.deque(pushes)
        moved = writer.push_all(backlog)
        assert moved == min(room, len(pushes))
        assert list(backlog) == pushes[moved:]
        assert reader.drain()[8 - room :] == pushes[:moved]


def test_impossible_tails_and_stale_stamps() -> None:
    with ControlBlock.create(2) as block:
        writer, releases = DescriptorWriter(block), ReleaseReader(block)
        for _ in range(block.geometry.desc_cap):
            assert writer.put(0, 1, 0, 0, 0, -1, -1, -1, -1)
        assert not writer.put(0, 1, 0, 0, 0, -1, -1, -1, -1)  # full
        block.words[DESC_TAIL] = 10**6  # a subscriber claiming to have read the future
        with pytest.raises(ValueError, match="not within a ring"):
            writer.put(0, 1, 0, 0, 0, -1, -1, -1, -1)
        with pytest.raises(struct.error):
            DescriptorWriter(block).put(1 << 16, 1, 0, 0, 0, -1, -1, -1, -1)
        # A stamp from another lap, or a release stamp out of turn, is not an entry.
        block.words[DESC_TAIL] = 0
        fresh = DescriptorReader(block)
        block.words[(block.geometry.desc_base >> 3) + 7] = 1 + block.geometry.desc_cap
        assert fresh.get() is None and not fresh.ready()
        block.words[REL_BASE] = 2
        assert releases.drain() == []
        block.words[REL_BASE] = 1
        assert releases.drain() == [0]


def test_attach_checks_the_block() -> None:
    with ControlBlock.create(4) as block:
        fd = os.dup(block.segment.fd)
        with ControlBlock.attach(fd) as other:
            assert other.geometry.desc_cap == block.geometry.desc_cap
            other.words[DESC_TAIL] = 3  # both map the same memory
            assert block.words[DESC_TAIL] == 3
        block.words[0] = 0
        with pytest.raises(ValueError, match="magic"):
            ControlBlock.attach(os.dup(block.segment.fd))
    block.close()  # idempotent
    with pytest.raises(ValueError):
        DescriptorReader(block)  # the views are released: no access to an unmapped block


def test_release_backlog_when_the_ring_is_full_or_the_lock_busy() -> None:
    wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    block = ControlBlock.create(2)  # release capacity 2
    link = Releaser(block, wake, ())
    reader = ReleaseReader(block)
    try:
        for index in range(5):
            link.release(index)  # a finalizer: never blocks, never raises
        assert list(link.backlog) == [2, 3, 4]
        with link.lock:  # another thread is releasing: ours waits in the backlog
            link.release(5)
        assert list(link.backlog) == [2, 3, 4, 5]
        block.words[PUB_SLEEPING] = 1
        assert reader.drain() == [0, 1]
        link.flush()  # what receive() does first
        assert reader.drain() == [2, 3] and list(link.backlog) == [4, 5]
        assert os.eventfd_read(wake) == 1  # the sleeping publisher was woken
        link.release(6)
        assert reader.drain() == [4, 5] and list(link.backlog) == [6]
        link.flush()
        assert reader.drain() == [6] and not link.backlog
    finally:
        link.close()
    link.close()
    link.release(7)  # after close: a no-op, the publisher reclaims by the socket
    assert not link.backlog


def test_releases_from_many_threads_all_come_back() -> None:
    service = _service("threads")
    slots, per_thread, threads = 16, 400, 4
    with Publisher(service, slot_size=64, slots=slots) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        inbox: list[collections.deque[Buffer]] = [collections.deque() for _ in range(threads)]
        done = threading.Event()
        bad: list[object] = []

        def drop(box: collections.deque[Buffer]) -> None:
            # Each buffer's last reference dies here, in this thread (views included).
            while not (done.is_set() and not box):
                try:
                    buf = box.popleft()
                except IndexError:
                    time.sleep(0)
                    continue
                view = buf.view
                del buf
                if view[0] != 1:
                    bad.append(bytes(view))
                del view

        workers = [threading.Thread(target=drop, args=(box,)) for box in inbox]
        for w in workers:
            w.start()
        try:
            for i in range(per_thread * threads):
                sample = pub.loan(timeout=5)
                sample.view[0] = 1
                pub.send(sample, 1, sequence=i)
                buf = sub.receive(timeout=5)
                assert buf is not None and buf.sequence == i
                inbox[i % threads].append(buf)
                del buf
        finally:
            done.set()
            for w in workers:
                w.join()
        assert bad == []
        sub.receive(0)  # flushes a backlog left by a busy lock, if any
        deadline = time.monotonic() + 2
        while pub.available != slots:
            assert time.monotonic() < deadline, f"{pub.available} of {slots} slots came back"
            time.sleep(0.005)
        assert pub.errors == []


@pytest.mark.skipif(ctypes.util.find_library("atomic") is None, reason="needs libatomic")
def test_the_link_through_libatomic_words(monkeypatch: pytest.MonkeyPatch) -> None:
    # What runs off x86-64: every counter and flag through __atomic_load_8/__atomic_store_8.
    create, attach = ControlBlock.create.__func__, ControlBlock.attach.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        ControlBlock,
        "create",
        classmethod(lambda cls, slots, **kw: create(cls, slots, atomic=True)),
    )
    monkeypatch.setattr(
        ControlBlock, "attach", classmethod(lambda cls, fd: attach(cls, fd, atomic=True))
    )
    service = _service("atomic")
    with Publisher(service, slot_size=64, slots=2) as pub, Subscriber(service) as sub:
        assert pub.wait_for_subscribers(1, timeout=2)
        assert isinstance(sub._words, AtomicWords)
        for i in range(5):  # more than the pool: each slot comes back through the ring
            sample = pub.loan(timeout=1)
            sample.view[:1] = bytes([i])
            pub.send(sample, 1, sequence=i)
            buf = sub.receive(timeout=1)
            assert buf is not None and buf.sequence == i and bytes(buf.view) == bytes([i])
            del buf
        pub.send_eos()
        assert sub.receive(timeout=1) is None and sub.ended
