"""parallax.gpu descriptors and handles: validation and serialization (no GPU needed)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax._errors import PlatformNotSupported
from parallax.gpu import (
    ApiTextureHandle,
    BufferHandle,
    DescriptorError,
    HandleError,
    HandleType,
    TextureDescriptor,
    TextureFormat,
    TextureUsage,
    decode_handle,
)
from parallax.gpu._descriptor import ALL_USAGES

U = TextureUsage


def test_the_seed_has_21_formats() -> None:
    assert len(TextureFormat) == 21
    assert len({f.code for f in TextureFormat}) == 21


def test_vk_format_numbers_match_the_binding() -> None:
    vk = pytest.importorskip("vulkan")
    names = {
        TextureFormat.RGBA8_UNORM: "VK_FORMAT_R8G8B8A8_UNORM",
        TextureFormat.BGRA8_UNORM_SRGB: "VK_FORMAT_B8G8R8A8_SRGB",
        TextureFormat.RGBA16_FLOAT: "VK_FORMAT_R16G16B16A16_SFLOAT",
        TextureFormat.RGBA32_SINT: "VK_FORMAT_R32G32B32A32_SINT",
        TextureFormat.DEPTH24_PLUS_STENCIL8: "VK_FORMAT_D24_UNORM_S8_UINT",
        TextureFormat.RGB10A2_UNORM: "VK_FORMAT_A2B10G10R10_UNORM_PACK32",
        TextureFormat.RG11B10_FLOAT: "VK_FORMAT_B10G11R11_UFLOAT_PACK32",
        TextureFormat.DEPTH24_PLUS: "VK_FORMAT_X8_D24_UNORM_PACK32",
    }
    for fmt, name in names.items():
        assert fmt.vk_format == getattr(vk, name), fmt


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("width", {"width": 0}),
        ("height", {"height": -1}),
        ("width", {"width": 16385}),
        ("width", {"width": 1.5}),
        ("usage", {"usage": U.NONE}),
        ("usage", {"usage": 64}),
        ("format", {"format": "rgba8unorm"}),
        ("label", {"label": "x" * 256}),
    ],
)
def test_bad_fields_are_named(field: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "width": 4,
        "height": 4,
        "format": TextureFormat.RGBA8_UNORM,
        "usage": U.COPY_SRC,
    }
    args.update(kwargs)
    with pytest.raises(DescriptorError, match=rf"^{field}:") as info:
        TextureDescriptor(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_storage_rules() -> None:
    with pytest.raises(
        DescriptorError,
        match=r"STORAGE_BINDING is not allowed with format depth32float .a depth format",
    ):
        TextureDescriptor(4, 4, TextureFormat.DEPTH32_FLOAT, U.STORAGE_BINDING)
    with pytest.raises(DescriptorError, match=r"bgra8unorm .not a storage format"):
        TextureDescriptor(4, 4, TextureFormat.BGRA8_UNORM, U.STORAGE_BINDING)
    with pytest.raises(DescriptorError, match="RENDER_ATTACHMENT"):
        TextureDescriptor(4, 4, TextureFormat.RG11B10_FLOAT, U.RENDER_ATTACHMENT)
    assert TextureDescriptor(4, 4, TextureFormat.RGBA32_FLOAT, U.STORAGE_BINDING).nbytes == 256


@pytest.mark.parametrize(
    "kind", [HandleType.OPAQUE_WIN32, HandleType.IOSURFACE, HandleType.METAL_SHARED_EVENT]
)
def test_foreign_handle_types_are_not_supported_on_linux(kind: HandleType) -> None:
    with pytest.raises(PlatformNotSupported, match="not supported on Linux"):
        BufferHandle(kind, 4096, 0, bytes(16), bytes(16), size=10)


@st.composite
def descriptors(draw: st.DrawFn) -> TextureDescriptor:
    fmt = draw(st.sampled_from(TextureFormat))
    usage = U(draw(st.integers(1, int(ALL_USAGES))))
    if not fmt.storage:
        usage &= ~U.STORAGE_BINDING
    if not fmt.renderable:
        usage &= ~U.RENDER_ATTACHMENT
    usage = usage or U.COPY_SRC
    w, h = draw(st.integers(1, 16384)), draw(st.integers(1, 16384))
    return TextureDescriptor(w, h, fmt, usage, draw(st.text(max_size=60)))


memory = {
    "handle_type": st.sampled_from([HandleType.OPAQUE_FD, HandleType.DMA_BUF]),
    "allocation_size": st.integers(1 << 20, (1 << 64) - 1),
    "memory_type_index": st.integers(0, 31),
    "device_uuid": st.binary(min_size=16, max_size=16),
    "driver_uuid": st.binary(min_size=16, max_size=16),
}


@given(st.builds(ApiTextureHandle, descriptor=descriptors(), **memory))
def test_texture_handles_round_trip(handle: ApiTextureHandle) -> None:
    assert ApiTextureHandle.from_bytes(handle.to_bytes()) == handle
    assert ApiTextureHandle.from_dict(handle.to_dict()) == handle


@given(st.builds(BufferHandle, size=st.integers(1, 1 << 20), **memory))
def test_buffer_handles_round_trip(handle: BufferHandle) -> None:
    assert BufferHandle.from_bytes(handle.to_bytes()) == handle
    assert decode_handle(handle.to_bytes()) == handle
    assert BufferHandle.from_dict(handle.to_dict()) == handle
    with pytest.raises(HandleError, match="kind"):
        ApiTextureHandle.from_bytes(handle.to_bytes())


@given(st.binary(max_size=120))
def test_any_bytes_decode_or_raise_handle_error(raw: bytes) -> None:
    with contextlib.suppress(HandleError, PlatformNotSupported):
        decode_handle(raw)


@given(
    st.builds(BufferHandle, size=st.integers(1, 1 << 20), **memory),
    st.integers(0, 50),
    st.integers(0, 255),
)
def test_corrupted_handles_decode_or_raise_handle_error(
    handle: BufferHandle, at: int, byte: int
) -> None:
    raw = bytearray(handle.to_bytes())
    raw[at % len(raw)] = byte
    with contextlib.suppress(HandleError, PlatformNotSupported):
        decode_handle(bytes(raw))


def test_bad_handle_bytes_are_precise() -> None:
    with pytest.raises(HandleError, match="magic"):
        decode_handle(b"XXXX" + bytes(60))
    with pytest.raises(HandleError, match="at least"):
        decode_handle(b"PXGH")
