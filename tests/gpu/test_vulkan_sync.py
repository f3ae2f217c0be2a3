"""Semaphores and fences: handles (no GPU needed), local timeline semaphores and fences
(lavapipe will do), the errors bad imports get, and export to a child process (only
where the driver has VK_KHR_external_semaphore_fd / VK_KHR_external_fence_fd)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax._errors import ClosedError, MissingExtra
from parallax.gpu import (
    FenceHandle,
    HandleError,
    SemaphoreHandle,
    SharedFence,
    SharedSemaphore,
    SyncHandleType,
    VulkanDevice,
    VulkanError,
    decode_sync_handle,
    import_fence,
    import_semaphore,
)

vulkan = pytest.mark.vulkan
T = SyncHandleType
UUID = st.binary(min_size=16, max_size=16)


# -- handles (pure) ----------------------------------------------------------------------


@st.composite
def semaphore_handles(draw: st.DrawFn) -> SemaphoreHandle:
    timeline = draw(st.booleans())
    handle_type = T.OPAQUE_FD if timeline else draw(st.sampled_from(T))
    return SemaphoreHandle(handle_type, timeline, draw(UUID), draw(UUID))


@given(semaphore_handles())
def test_semaphore_handles_round_trip(handle: SemaphoreHandle) -> None:
    assert SemaphoreHandle.from_bytes(handle.to_bytes()) == handle
    assert SemaphoreHandle.from_dict(handle.to_dict()) == handle
    assert decode_sync_handle(handle.to_bytes()) == handle
    with pytest.raises(HandleError, match="kind: expected a fence handle"):
        FenceHandle.from_bytes(handle.to_bytes())


@given(st.builds(FenceHandle, st.sampled_from(T), UUID, UUID))
def test_fence_handles_round_trip(handle: FenceHandle) -> None:
    assert FenceHandle.from_bytes(handle.to_bytes()) == handle
    assert FenceHandle.from_dict(handle.to_dict()) == handle
    with pytest.raises(HandleError, match="kind: expected a semaphore handle"):
        SemaphoreHandle.from_bytes(handle.to_bytes())
    with pytest.raises(HandleError, match="kind: expected 'semaphore'"):
        SemaphoreHandle.from_dict(handle.to_dict())


@given(st.binary(max_size=60))
def test_any_bytes_decode_or_raise_handle_error(raw: bytes) -> None:
    try:
        decode_sync_handle(raw)
    except HandleError:
        pass


@given(semaphore_handles(), st.integers(0, 39), st.integers(0, 255))
def test_corrupted_bytes_decode_or_raise_handle_error(
    handle: SemaphoreHandle, at: int, byte: int
) -> None:
    raw = bytearray(handle.to_bytes())
    raw[at] = byte
    try:
        decode_sync_handle(bytes(raw))
    except HandleError:
        pass


def test_bad_handles_are_named() -> None:
    good = SemaphoreHandle(T.OPAQUE_FD, True, b"\0" * 16, b"\1" * 16).to_bytes()
    with pytest.raises(HandleError, match="timeline semaphore cannot be a sync-fd"):
        SemaphoreHandle(T.SYNC_FD, True, b"\0" * 16, b"\1" * 16)
    with pytest.raises(HandleError, match=r"^device_uuid: expected 16 bytes"):
        FenceHandle(T.OPAQUE_FD, b"short", b"\1" * 16)
    with pytest.raises(HandleError, match=r"^handle_type: expected a SyncHandleType"):
        FenceHandle("opaque-fd", b"\0" * 16, b"\1" * 16)  # type: ignore[arg-type]
    with pytest.raises(HandleError, match=r"^timeline: expected a bool"):
        SemaphoreHandle(T.OPAQUE_FD, 1, b"\0" * 16, b"\1" * 16)  # type: ignore[arg-type]
    with pytest.raises(HandleError, match=r"^magic"):
        decode_sync_handle(b"PXGH" + good[4:])
    with pytest.raises(HandleError, match=r"^version: expected 1, got 9"):
        decode_sync_handle(good[:4] + b"\x09" + good[5:])
    with pytest.raises(HandleError, match=r"^kind: unknown kind 7"):
        decode_sync_handle(good[:5] + b"\x07" + good[6:])
    with pytest.raises(HandleError, match=r"^handle_type: unknown code 9"):
        decode_sync_handle(good[:6] + b"\x09" + good[7:])
    with pytest.raises(HandleError, match=r"^flags: unknown bits 0x4"):
        decode_sync_handle(good[:7] + b"\x05" + good[8:])
    with pytest.raises(HandleError, match="sync handle: 39 bytes, expected 40"):
        decode_sync_handle(good[:-1])
    with pytest.raises(HandleError, match="bad semaphore handle dict"):
        SemaphoreHandle.from_dict({"kind": "semaphore", "handle_type": "opaque-fd"})
    with pytest.raises(HandleError, match="bad fence handle dict"):
        FenceHandle.from_dict(
            {"kind": "fence", "handle_type": "x", "device_uuid": "", "driver_uuid": ""}
        )


# -- on a device --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device() -> Iterator[VulkanDevice]:
    try:
        dev = VulkanDevice()
    except (MissingExtra, VulkanError) as e:
        pytest.skip(f"no usable Vulkan device: {e}")
    with dev:
        if not dev.has_timeline_semaphore:
            pytest.skip(f"{dev.name} has no timeline semaphores")
        yield dev


@vulkan
def test_timeline_signal_wait_value(device: VulkanDevice) -> None:
    with SharedSemaphore(device, timeline=True, initial_value=3, export=False) as sem:
        assert sem.timeline and sem.export_types == frozenset()
        assert sem.value == 3
        assert sem.wait(3, timeout=0)
        assert not sem.wait(4, timeout=0.01)
        sem.signal(5)
        assert sem.value == 5 and sem.wait(4, 0)
        with pytest.raises(ValueError, match="timeline only grows: it is at 5"):
            sem.signal(5)
        with pytest.raises(ValueError, match="value: expected an int"):
            sem.wait(-1)
        with pytest.raises(ValueError, match="timeout: expected seconds >= 0"):
            sem.wait(6, timeout=-1)

        def later() -> None:
            time.sleep(0.05)
            sem.signal(7)

        thread = threading.Thread(target=later)
        thread.start()
        try:
            assert sem.wait(7, timeout=10)  # the binding releases the GIL while waiting
        finally:
            thread.join()
        assert sem.value == 7


@vulkan
def test_queue_signal_and_wait(device: VulkanDevice) -> None:
    with (
        SharedSemaphore(device, timeline=True, export=False) as a,
        SharedSemaphore(device, timeline=True, export=False) as b,
        SharedSemaphore(device, export=False) as binary,
        SharedFence(device, export=False) as fence,
    ):
        a.queue_signal(2)
        assert a.wait(2, timeout=10)
        # The queue waits for a=3 (a host signal), then signals b=1 and the fence.
        device.queue_submit(wait=[(a, 3)], signal=[(b, 1)], fence=fence)
        assert not fence.signaled and b.value == 0
        a.signal(3)
        assert fence.wait(10) and b.wait(1, 10)
        fence.reset()
        assert not fence.signaled
        # Binary semaphores: signalled and waited on by the queue only.
        binary.queue_signal()
        binary.queue_wait(fence=fence)
        assert fence.wait(10)
        with pytest.raises(ValueError, match="signal: a binary semaphore"):
            binary.signal(1)
        with pytest.raises(ValueError, match="value: a binary semaphore"):
            binary.value  # noqa: B018
        with pytest.raises(ValueError, match="a binary semaphore has no value"):
            binary.queue_signal(1)
        # Commands ordered after a semaphore and signalling one (the blocking submit).
        device.submit(lambda cmd: None, wait=[(b, 1)], signal=[(a, 4), (binary, 0)])
        assert a.value == 4
        binary.queue_wait()  # consume the binary signal before it is destroyed
        device.queue_submit(fence=None)


@vulkan
def test_fence_states(device: VulkanDevice) -> None:
    with SharedFence(device, signaled=True, export=False) as fence:
        assert fence.signaled and fence.wait(0)
        fence.reset()
        assert not fence.signaled
        assert not fence.wait(timeout=0.01)
        device.queue_submit(fence=fence)
        assert fence.wait(10)
    assert fence.closed
    with pytest.raises(ClosedError, match="fence is closed"):
        fence.wait(0)


@vulkan
def test_local_objects_do_not_export(device: VulkanDevice) -> None:
    with (
        SharedSemaphore(device, timeline=True, export=False) as sem,
        pytest.raises(ValueError, match="created with export=False"),
    ):
        sem.export()
    with (
        SharedFence(device, export=False) as fence,
        pytest.raises(ValueError, match="created with export=False"),
    ):
        fence.export()
    with pytest.raises(ValueError, match="initial_value: a binary semaphore has none"):
        SharedSemaphore(device, initial_value=1, export=False)


@vulkan
def test_device_close_closes_semaphores_and_fences() -> None:
    try:
        dev = VulkanDevice()
    except (MissingExtra, VulkanError) as e:
        pytest.skip(f"{e}")
    sem = SharedSemaphore(dev, timeline=dev.has_timeline_semaphore, export=False)
    fence = SharedFence(dev, export=False)
    dev.close()
    assert sem.closed and fence.closed
    with pytest.raises(ClosedError, match="semaphore is closed"):
        sem.queue_signal(1)
    with pytest.raises(ClosedError, match="is closed"):
        SharedFence(dev, export=False)


def _handles(device: VulkanDevice) -> tuple[SemaphoreHandle, FenceHandle]:
    uuids = (device.device_uuid, device.driver_uuid)
    return SemaphoreHandle(T.OPAQUE_FD, True, *uuids), FenceHandle(T.OPAQUE_FD, *uuids)


@vulkan
def test_import_errors(device: VulkanDevice) -> None:
    sem_handle, fence_handle = _handles(device)
    r, w = os.pipe()
    try:
        with pytest.raises(HandleError, match="kind: expected a SemaphoreHandle, got Fence"):
            import_semaphore(device, fence_handle, r)  # type: ignore[arg-type]
        with pytest.raises(HandleError, match="kind: expected a FenceHandle, got Semaphore"):
            import_fence(device, sem_handle, r)  # type: ignore[arg-type]
        foreign = dataclasses.replace(sem_handle, device_uuid=b"\x01" * 16)
        with pytest.raises(HandleError, match="device_uuid: the semaphore comes from device 0101"):
            import_semaphore(device, foreign, r)
        foreign_fence = dataclasses.replace(fence_handle, driver_uuid=b"\x02" * 16)
        with pytest.raises(HandleError, match="device_uuid: the fence comes from device"):
            import_fence(device, foreign_fence, r)
        os.close(w)
        with pytest.raises(HandleError, match=f"fd: {w} is not an open file descriptor"):
            import_semaphore(device, sem_handle, w)
        with pytest.raises(HandleError, match="fd: -1 is not an open file descriptor"):
            import_fence(device, fence_handle, -1)  # -1 is for a signalled sync-fd only
    finally:
        os.close(r)


@vulkan
def test_missing_extensions_are_named(device: VulkanDevice) -> None:
    if device.has_external_semaphore_fd and device.has_external_fence_fd:
        pytest.skip(f"{device.name} has both fd extensions")
    sem_handle, fence_handle = _handles(device)
    r, w = os.pipe()
    try:
        if not device.has_external_semaphore_fd:
            with pytest.raises(VulkanError, match="needs VK_KHR_external_semaphore_fd") as e:
                SharedSemaphore(device, timeline=True)
            assert e.value.result == "VK_ERROR_EXTENSION_NOT_PRESENT"
            with pytest.raises(VulkanError, match="importing a semaphore needs VK_KHR_ext"):
                import_semaphore(device, sem_handle, r)
        if not device.has_external_fence_fd:
            with pytest.raises(VulkanError, match=r"fence .* needs VK_KHR_external_fence_fd"):
                SharedFence(device)
            with pytest.raises(VulkanError, match="importing a fence needs VK_KHR_external_fe"):
                import_fence(device, fence_handle, r)
    finally:
        os.close(r)
        os.close(w)


# -- export and import (needs the fd extensions: NVIDIA, not lavapipe) ---------------------


@pytest.fixture
def exporting(device: VulkanDevice) -> VulkanDevice:
    missing = [
        name
        for name, has in (
            ("VK_KHR_external_semaphore_fd", device.has_external_semaphore_fd),
            ("VK_KHR_external_fence_fd", device.has_external_fence_fd),
        )
        if not has
    ]
    if missing:
        pytest.skip(f"{device.name} lacks {', '.join(missing)} (lavapipe has neither)")
    return device


@vulkan
def test_export_import_in_process(exporting: VulkanDevice) -> None:
    dev = exporting
    with SharedSemaphore(dev, timeline=True, initial_value=1) as sem:
        assert T.OPAQUE_FD in sem.export_types
        handle, fd = sem.export()
        try:
            assert not os.get_inheritable(fd)
            assert handle.timeline and handle.handle_type is T.OPAQUE_FD
            with import_semaphore(dev, SemaphoreHandle.from_bytes(handle.to_bytes()), fd) as other:
                assert other.imported is T.OPAQUE_FD and other.value == 1
                other.signal(4)
                assert sem.wait(4, 10) and sem.value == 4
                with pytest.raises(HandleError, match="not sync-fd"):
                    sem.export(T.SYNC_FD)
        finally:
            os.close(fd)
    with SharedFence(dev) as fence:
        handle_f, fd = fence.export()
        try:
            with import_fence(dev, handle_f, fd) as other_f:
                dev.queue_submit(fence=other_f)
                assert fence.wait(10)
        finally:
            os.close(fd)


def _exchange(raw: bytes, fd: int) -> bytes:
    """Start the child in sync mode, send `raw` and `fd` (none if -1), and return what
    it answers once it has exited."""
    parent, child = socket.socketpair()
    with parent, child:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("_child.py")),
                str(child.fileno()),
                "sync",
            ],
            pass_fds=[child.fileno()],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            child.close()
            if fd >= 0:
                socket.send_fds(parent, [raw], [fd])
            else:
                parent.sendall(raw)
            got = b""
            while chunk := parent.recv(4096):
                got += chunk
        finally:
            assert proc.wait(timeout=60) == 0
    return got


_O = TypeVar("_O", SharedSemaphore, SharedFence)


def _or_skip(make: Callable[[], _O]) -> _O:
    """The object, or a skip where the driver cannot export it so (the NVIDIA driver
    without a display reports no sync-fd export for semaphores or fences)."""
    try:
        return make()
    except HandleError as e:
        pytest.skip(f"{e}")


@vulkan
@pytest.mark.parametrize(
    "case", ["timeline", "binary-opaque", "binary-sync", "fence-opaque", "fence-sync"]
)
def test_cross_process(exporting: VulkanDevice, case: str) -> None:
    dev = exporting
    if case == "timeline":
        with SharedSemaphore(dev, timeline=True) as sem:
            handle, fd = sem.export()
            # The child waits for 1 (ours), signals 2 (host) and 3 (its queue).
            sem.signal(1)
            try:
                assert _exchange(handle.to_bytes(), fd) == b"done"
            finally:
                os.close(fd)
            assert sem.wait(3, 10) and sem.value == 3
        return
    if case.startswith("binary"):
        kind = T.OPAQUE_FD if case == "binary-opaque" else T.SYNC_FD
        with _or_skip(lambda: SharedSemaphore(dev, export=[kind])) as sem:
            sem.queue_signal()  # the child's queue waits for this signal
            handle_s, fd = sem.export(kind)
            try:
                assert _exchange(handle_s.to_bytes(), fd) == b"done"
            finally:
                if fd >= 0:
                    os.close(fd)
        return
    kind = T.OPAQUE_FD if case == "fence-opaque" else T.SYNC_FD
    with _or_skip(lambda: SharedFence(dev, export=[kind])) as fence:
        if kind is T.SYNC_FD:
            dev.queue_submit(fence=fence)  # a sync-fd needs a pending or done signal
        handle_f, fd = fence.export(kind)
        try:
            assert _exchange(handle_f.to_bytes(), fd) == b"done"
        finally:
            if fd >= 0:
                os.close(fd)
        if kind is T.OPAQUE_FD:
            assert fence.wait(10)  # the child's queue signalled our payload
