"""Vulkan external memory: export, import in this process and in a child process, and
the errors bad input gets. Needs the `vulkan` package and a driver (lavapipe will do)."""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from parallax._errors import ClosedError, MissingExtra
from parallax.gpu import (
    ApiTextureHandle,
    BufferHandle,
    DescriptorError,
    HandleError,
    SharedBuffer,
    SharedTexture,
    ShareManager,
    TextureDescriptor,
    TextureFormat,
    TextureUsage,
    VulkanDevice,
    VulkanError,
    import_buffer,
    import_texture,
)

pytestmark = pytest.mark.vulkan
U = TextureUsage
COPY = U.COPY_SRC | U.COPY_DST


@pytest.fixture(scope="module")
def device() -> Iterator[VulkanDevice]:
    try:
        dev = VulkanDevice()
    except MissingExtra as e:
        pytest.skip(f"{e}")
    except VulkanError as e:
        pytest.skip(
            f"no Vulkan device with VK_KHR_external_memory_fd: {e} (apt-get install mesa-vulkan-drivers libvulkan1)"
        )
    with dev:
        yield dev


@pytest.fixture
def manager(device: VulkanDevice) -> ShareManager:
    return ShareManager(device)


def _pattern(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


@pytest.mark.parametrize(
    "fmt",
    [
        TextureFormat.RGBA8_UNORM,
        TextureFormat.R32_FLOAT,
        TextureFormat.RGBA16_FLOAT,
        TextureFormat.R8_UNORM,
        TextureFormat.DEPTH32_FLOAT,
    ],
)
def test_texture_round_trip_in_process(manager: ShareManager, fmt: TextureFormat) -> None:
    desc = TextureDescriptor(33, 17, fmt, COPY, label="rt")
    data = _pattern(desc.nbytes)
    if fmt is TextureFormat.DEPTH32_FLOAT:  # depth must hold valid floats in [0, 1]
        data = struct.pack(f"<{33 * 17}f", *(i / (33 * 17) for i in range(33 * 17)))
    with manager.create_shared_texture(desc) as tex:
        tex.write(data)
        handle, fd = manager.export_texture(tex)
        try:
            assert not os.get_inheritable(fd)
            wire = ApiTextureHandle.from_bytes(handle.to_bytes())
            with manager.import_shared_texture(wire, fd, expected=desc) as other:
                assert other.read() == data
                other.write(data[::-1])
                assert tex.read() == data[::-1]
        finally:
            os.close(fd)


@pytest.mark.parametrize("host_visible", [True, False])
def test_buffer_round_trip_in_process(manager: ShareManager, host_visible: bool) -> None:
    with manager.create_shared_buffer(1000, host_visible=host_visible) as buf:
        buf.write(_pattern(1000))
        handle, fd = manager.export_buffer(buf)
        try:
            with manager.import_shared_buffer(
                BufferHandle.from_bytes(handle.to_bytes()), fd
            ) as other:
                assert other.read() == _pattern(1000)
                other.write(b"hello", offset=10)
            assert buf.read(5, offset=10) == b"hello"
        finally:
            os.close(fd)


@pytest.mark.parametrize("kind", ["texture", "buffer"])
def test_cross_process(manager: ShareManager, kind: str) -> None:
    if kind == "texture":
        obj: SharedTexture | SharedBuffer = manager.create_shared_texture(
            TextureDescriptor(16, 8, TextureFormat.RGBA8_UNORM, COPY)
        )
    else:
        obj = manager.create_shared_buffer(512)
    with obj:
        data = _pattern(512)
        obj.write(data)
        handle, fd = obj.export()
        parent, child = socket.socketpair()
        with parent, child:
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("_child.py")),
                        str(child.fileno()),
                    ],
                    pass_fds=[child.fileno()],
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                )
                child.close()
                socket.send_fds(parent, [handle.to_bytes()], [fd])
            finally:
                os.close(fd)
            try:
                got = b""
                while len(got) < 8 or len(got) < 8 + int.from_bytes(got[:8], "little") + 4:
                    chunk = parent.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            finally:
                assert proc.wait(timeout=30) == 0
        n = int.from_bytes(got[:8], "little")
        assert got[8 : 8 + n] == data
        assert got[8 + n :] == b"done"
        assert obj.read() == bytes(255 - b for b in data)


def test_mismatched_descriptor(manager: ShareManager) -> None:
    desc = TextureDescriptor(8, 8, TextureFormat.RGBA8_UNORM, COPY)
    with manager.create_shared_texture(desc) as tex:
        handle, fd = tex.export()
        try:
            other = TextureDescriptor(8, 9, TextureFormat.RGBA8_UNORM, COPY)
            with pytest.raises(HandleError, match="height 8 != expected 9"):
                manager.import_shared_texture(handle, fd, expected=other)
        finally:
            os.close(fd)


def test_wrong_sizes(manager: ShareManager) -> None:
    with manager.create_shared_buffer(4096) as buf:
        handle, fd = buf.export()
        try:
            too_big = dataclasses.replace(handle, size=1 << 30, allocation_size=1 << 30)
            with pytest.raises(HandleError, match="allocation_size"):
                import_buffer(manager.device, too_big, fd)
            desc = TextureDescriptor(1024, 1024, TextureFormat.RGBA32_FLOAT, COPY)
            tex_handle = ApiTextureHandle(
                handle.handle_type,
                handle.allocation_size,
                handle.memory_type_index,
                handle.device_uuid,
                handle.driver_uuid,
                descriptor=desc,
            )
            with pytest.raises(
                HandleError, match="allocation_size: a 1024x1024 rgba32float texture needs"
            ):
                import_texture(manager.device, tex_handle, fd)
            with pytest.raises(HandleError, match="expected an ApiTextureHandle"):
                import_texture(manager.device, handle, fd)  # type: ignore[arg-type]
        finally:
            os.close(fd)
    with pytest.raises(HandleError, match=r"size: expected 1..16"):
        dataclasses.replace(handle, allocation_size=16, size=8192)


def test_foreign_device_and_bad_fd(manager: ShareManager) -> None:
    with manager.create_shared_buffer(64) as buf:
        handle, fd = buf.export()
        os.close(fd)
    foreign = dataclasses.replace(handle, device_uuid=b"\x01" * 16)
    r, w = os.pipe()
    try:
        with pytest.raises(HandleError, match="device_uuid: the handle comes from device 0101"):
            import_buffer(manager.device, foreign, r)
        os.close(w)
        with pytest.raises(HandleError, match=f"fd: {w} is not an open file descriptor"):
            import_buffer(manager.device, handle, w)
    finally:
        os.close(r)


def test_closed_device_and_objects() -> None:
    try:
        dev = VulkanDevice()
    except (MissingExtra, VulkanError) as e:
        pytest.skip(f"{e}")
    buf = SharedBuffer(dev, 16)
    dev.close()
    dev.close()
    assert buf.closed
    with pytest.raises(ClosedError, match="shared buffer is closed"):
        buf.read()
    with pytest.raises(ClosedError, match="is closed"):
        SharedBuffer(dev, 16)


def test_texture_usage_and_limits(manager: ShareManager) -> None:
    with manager.create_shared_texture(
        TextureDescriptor(4, 4, TextureFormat.RGBA8_UNORM, U.COPY_DST)
    ) as tex:
        with pytest.raises(ValueError, match="usage lacks COPY_SRC"):
            tex.read()
        with pytest.raises(ValueError, match="expected 64 bytes"):
            tex.write(b"x")
    with pytest.raises(DescriptorError, match=r"^width"):
        TextureDescriptor(0, 4, TextureFormat.RGBA8_UNORM, COPY)
