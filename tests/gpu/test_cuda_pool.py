"""`CudaPool`, the bounded pool of device slots under `cudaupload`: a failed allocation
must not shrink it. The first tests inject the failure into fake allocations and run
anywhere; the `gpu` tests make the driver itself refuse (an allocation far larger than
the device) and fail a copy inside `cudaupload`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from parallax._errors import FlowError, MissingExtra, PlatformNotSupported
from parallax.buffer import Buffer
from parallax.gpu import CudaContext, CudaError, CudaPool, _cuda_pool


class _FakeMemory:
    """What the pool makes per slot; `CudaBuffer`'s constructor signature."""

    made: list[_FakeMemory]
    fail: list[bool]  # one entry per coming allocation; True fails it

    def __init__(self, ctx: object, size: int) -> None:
        if self.fail and self.fail.pop(0):
            raise CudaError("cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY", function="cuMemAlloc")
        self.size, self.closed = size, False
        self.made.append(self)

    def close(self) -> None:
        self.closed = True


class _FakeEvent(_FakeMemory):
    def __init__(self, ctx: object) -> None:
        super().__init__(ctx, 0)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[type[_FakeMemory], type[_FakeEvent]]:
    memory = type("Memory", (_FakeMemory,), {"made": [], "fail": []})
    event = type("Event", (_FakeEvent,), {"made": [], "fail": []})
    monkeypatch.setattr(_cuda_pool, "CudaBuffer", memory)
    monkeypatch.setattr(_cuda_pool, "CudaEvent", event)
    return memory, event


def _never_flushing() -> bool:
    return False


def _flushing() -> bool:
    return True  # a loan that would have to wait raises FlowError at once


def test_a_failed_allocation_leaves_the_pool_its_size(fakes: Any) -> None:
    memory, _event = fakes
    pool = CudaPool(object(), 1024, 2)  # type: ignore[arg-type]  # fakes need no context
    memory.fail[:] = [True]
    with pytest.raises(CudaError, match="OUT_OF_MEMORY"):
        pool.loan("up0", _flushing)
    assert pool.allocated == 0
    # Both slots can still be made: the failure took none of them. (Before the fix the
    # count went up first, so the second loan waited for a return that never came.)
    a = pool.loan("up0", _flushing)
    b = pool.loan("up0", _flushing)
    assert a[0] is not b[0] and pool.allocated == 2 == len(memory.made)
    with pytest.raises(FlowError, match="up0: stopped while waiting for a free GPU buffer"):
        pool.loan("up0", _flushing)
    pool.give_back(*a)
    assert pool.loan("up0", _never_flushing) == a
    pool.close()


def test_a_failed_event_frees_the_slot_memory_and_shrinks_nothing(fakes: Any) -> None:
    memory, event = fakes
    pool = CudaPool(object(), 1024, 1)  # type: ignore[arg-type]
    event.fail[:] = [True]
    with pytest.raises(CudaError):
        pool.loan("up0", _flushing)
    assert pool.allocated == 0
    assert [m.closed for m in memory.made] == [True]  # no half-made slot left to the GC
    slot = pool.loan("up0", _flushing)
    assert pool.allocated == 1 and not slot[0].closed
    pool.close()


def test_close_frees_the_free_slots_and_drops_later_returns(fakes: Any) -> None:
    pool = CudaPool(object(), 64, 2)  # type: ignore[arg-type]
    a: Any = pool.loan("up0", _flushing)
    b: Any = pool.loan("up0", _flushing)
    pool.give_back(*a)
    pool.close()
    pool.close()  # idempotent
    assert a[0].closed and a[1].closed and not b[0].closed
    pool.give_back(*b)  # after close: not kept (the finalizers free real memory)
    assert "closed" in repr(pool)


@pytest.mark.parametrize(("slot_size", "slots"), [(0, 1), (64, 0), (True, 1), (64, 1.5)])
def test_bad_pool_sizes_are_refused(slot_size: Any, slots: Any) -> None:
    with pytest.raises(ValueError, match="expected a positive int"):
        CudaPool(object(), slot_size, slots)  # type: ignore[arg-type]


# -- on a GPU ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx() -> Iterator[CudaContext]:
    try:
        context = CudaContext(0)
    except (MissingExtra, PlatformNotSupported) as e:
        pytest.skip(f"needs an NVIDIA GPU with cuda-bindings: {e}")
    with context:
        from parallax.gpu import CudaBuffer, CudaEvent

        with CudaBuffer(context, 1 << 20) as mem, CudaEvent(context) as event:
            mem.export()  # the driver's lazily opened fds exist before the leak check
            event.export()
        yield context


@pytest.mark.gpu
def test_an_allocation_the_driver_refuses_leaves_the_pool_its_size(ctx: CudaContext) -> None:
    pool = CudaPool(ctx, 1 << 50, 1)  # 1 PiB: more than any device has
    for _ in range(2):  # the second loan tries again instead of waiting for a return
        with pytest.raises(CudaError, match="cuMemAlloc failed"):
            pool.loan("up0", _flushing)
        assert pool.allocated == 0
    pool.close()


@pytest.mark.gpu
def test_a_failed_copy_in_cudaupload_returns_its_slot(
    ctx: CudaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parallax.elements._cuda import CudaUpload

    up = CudaUpload(pool_slots=1, register=False)
    up.start()
    try:
        original = CudaUpload._upload
        calls = []

        def failing_once(self: CudaUpload, *args: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise CudaError("injected copy failure", function="cuMemcpyHtoDAsync")
            original(self, *args)

        monkeypatch.setattr(CudaUpload, "_upload", failing_once)
        with pytest.raises(CudaError, match="injected"):
            up.transform(Buffer(b"x" * 100))
        # pool-slots=1: were the slot lost, this would wait for a return forever.
        up._flushing = True  # a wait for a return would raise FlowError at once
        out = up.transform(Buffer(b"y" * 100))
        assert out is not None and up._pool is not None and up._pool.allocated == 1
        cupy = _cupy()
        if cupy is not None:
            assert cupy.asarray(out).get().tobytes() == b"y" * 100
        del out
    finally:
        up.stop()


def _cupy() -> Any:
    try:
        return importlib.import_module("cupy")
    except ImportError:
        return None
