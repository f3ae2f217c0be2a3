"""Texture descriptors: the seed's 21 formats, usage flags, and their validation.

Pure: no GPU, no Vulkan module. The VkFormat numbers are the Vulkan registry's
(`vk.xml`, `VkFormat`); a test checks them against the `vulkan` binding.

Which 21 formats: the seed (Geyser, phase 1) lists them only as groups ("8-bit: RGBA8,
BGRA8, R8, RG8 (unorm/sRGB); 16-bit ...; 32-bit ...; depth; HDR") summing to 21; this is
our reading of it, named as WebGPU names them. Which formats may be storage or render
targets follows WebGPU's core tables (no optional features), so a descriptor valid here
is valid for wgpu too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ._errors import DescriptorError

# WebGPU's default maxTextureDimension2D is 8192 and Vulkan 1.3 guarantees 4096; we
# accept up to 16384 (what most desktop GPUs, lavapipe included, support) and the
# device checks its own maxImageDimension2D when the texture is created.
MAX_TEXTURE_DIMENSION: Final = 16384
# A label travels inside a serialized handle; bound it (bytes of UTF-8).
MAX_LABEL_BYTES: Final = 255


class TextureFormat(enum.Enum):
    """A texture format (WebGPU's name as value); `.vk_format`, `.bytes_per_pixel` and
    the capability flags describe it."""

    R8_UNORM = "r8unorm"
    RG8_UNORM = "rg8unorm"
    RGBA8_UNORM = "rgba8unorm"
    RGBA8_UNORM_SRGB = "rgba8unorm-srgb"
    BGRA8_UNORM = "bgra8unorm"
    BGRA8_UNORM_SRGB = "bgra8unorm-srgb"
    R16_FLOAT = "r16float"
    RG16_FLOAT = "rg16float"
    RGBA16_FLOAT = "rgba16float"
    RGBA16_UINT = "rgba16uint"
    RGBA16_SINT = "rgba16sint"
    R32_FLOAT = "r32float"
    RG32_FLOAT = "rg32float"
    RGBA32_FLOAT = "rgba32float"
    RGBA32_UINT = "rgba32uint"
    RGBA32_SINT = "rgba32sint"
    DEPTH32_FLOAT = "depth32float"
    DEPTH24_PLUS = "depth24plus"
    DEPTH24_PLUS_STENCIL8 = "depth24plus-stencil8"
    RGB10A2_UNORM = "rgb10a2unorm"
    RG11B10_FLOAT = "rg11b10ufloat"

    @property
    def code(self) -> int:
        """A stable small integer for this format (used in serialized handles)."""
        return _INFO[self][0]

    @property
    def vk_formats(self) -> tuple[int, ...]:
        """The VkFormat values that implement it, preferred first. "24plus" depth
        formats have a fallback, as in WebGPU: at least 24 bits, driver's choice."""
        return _INFO[self][1]

    @property
    def vk_format(self) -> int:
        """The preferred VkFormat."""
        return _INFO[self][1][0]

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes per texel of the preferred VkFormat (depth24plus: 4, as X8_D24)."""
        return _INFO[self][2]

    @property
    def is_depth(self) -> bool:
        """True for the three depth(-stencil) formats."""
        return self in _DEPTH

    @property
    def storage(self) -> bool:
        """May be a storage texture (WebGPU core)."""
        return self in _STORAGE

    @property
    def renderable(self) -> bool:
        """May be a render attachment (WebGPU core: all but rg11b10ufloat)."""
        return self is not TextureFormat.RG11B10_FLOAT

    @property
    def host_copyable(self) -> bool:
        """Its bytes can be copied to and from host memory as one aspect of a fixed
        layout: every colour format and depth32float (not the driver-chosen 24plus)."""
        return self not in (TextureFormat.DEPTH24_PLUS, TextureFormat.DEPTH24_PLUS_STENCIL8)

    @classmethod
    def from_code(cls, code: int) -> TextureFormat:
        """The format whose `code` this is; `DescriptorError` if none."""
        try:
            return _BY_CODE[code]
        except KeyError:
            raise DescriptorError(
                f"format: unknown format code {code} (expected 1..{len(_BY_CODE)})",
                field="format",
                value=code,
            ) from None


F = TextureFormat
# format: (code, VkFormat values, bytes per pixel)
_INFO: Final[dict[TextureFormat, tuple[int, tuple[int, ...], int]]] = {
    F.R8_UNORM: (1, (9,), 1),
    F.RG8_UNORM: (2, (16,), 2),
    F.RGBA8_UNORM: (3, (37,), 4),
    F.RGBA8_UNORM_SRGB: (4, (43,), 4),
    F.BGRA8_UNORM: (5, (44,), 4),
    F.BGRA8_UNORM_SRGB: (6, (50,), 4),
    F.R16_FLOAT: (7, (76,), 2),
    F.RG16_FLOAT: (8, (83,), 4),
    F.RGBA16_FLOAT: (9, (97,), 8),
    F.RGBA16_UINT: (10, (95,), 8),
    F.RGBA16_SINT: (11, (96,), 8),
    F.R32_FLOAT: (12, (100,), 4),
    F.RG32_FLOAT: (13, (103,), 8),
    F.RGBA32_FLOAT: (14, (109,), 16),
    F.RGBA32_UINT: (15, (107,), 16),
    F.RGBA32_SINT: (16, (108,), 16),
    F.DEPTH32_FLOAT: (17, (126,), 4),  # D32_SFLOAT
    F.DEPTH24_PLUS: (18, (125, 126), 4),  # X8_D24_UNORM_PACK32, else D32_SFLOAT
    F.DEPTH24_PLUS_STENCIL8: (19, (129, 130), 4),  # D24_UNORM_S8_UINT, else D32_SFLOAT_S8_UINT
    F.RGB10A2_UNORM: (20, (64,), 4),  # A2B10G10R10_UNORM_PACK32, as wgpu maps it
    F.RG11B10_FLOAT: (21, (122,), 4),  # B10G11R11_UFLOAT_PACK32
}
_BY_CODE: Final = {info[0]: fmt for fmt, info in _INFO.items()}
_DEPTH: Final = frozenset({F.DEPTH32_FLOAT, F.DEPTH24_PLUS, F.DEPTH24_PLUS_STENCIL8})
_STORAGE: Final = frozenset(
    {
        F.RGBA8_UNORM,
        F.RGBA16_FLOAT,
        F.RGBA16_UINT,
        F.RGBA16_SINT,
        F.R32_FLOAT,
        F.RG32_FLOAT,
        F.RGBA32_FLOAT,
        F.RGBA32_UINT,
        F.RGBA32_SINT,
    }
)
del F


class TextureUsage(enum.IntFlag):
    """What a texture may be used for (WebGPU's GPUTextureUsage bits)."""

    NONE = 0
    COPY_SRC = 1
    COPY_DST = 2
    TEXTURE_BINDING = 4
    STORAGE_BINDING = 8
    RENDER_ATTACHMENT = 16


ALL_USAGES: Final = (
    TextureUsage.COPY_SRC
    | TextureUsage.COPY_DST
    | TextureUsage.TEXTURE_BINDING
    | TextureUsage.STORAGE_BINDING
    | TextureUsage.RENDER_ATTACHMENT
)


@dataclass(frozen=True, slots=True)
class TextureDescriptor:
    """A 2D, single-level, single-layer texture: size, format, usage and a label.

    Validated on construction; an invalid field raises `DescriptorError` (a `ValueError`)
    naming the field, the value and what was expected.
    """

    width: int
    height: int
    format: TextureFormat
    usage: TextureUsage
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DescriptorError(
                    f"{name}: expected an int, got {type(value).__name__} {value!r}",
                    field=name,
                    value=value,
                )
            if not 1 <= value <= MAX_TEXTURE_DIMENSION:
                raise DescriptorError(
                    f"{name}: expected 1..{MAX_TEXTURE_DIMENSION}, got {value}",
                    field=name,
                    value=value,
                )
        if not isinstance(self.format, TextureFormat):
            raise DescriptorError(
                f"format: expected a TextureFormat, got {self.format!r}",
                field="format",
                value=self.format,
            )
        usage = self.usage
        if isinstance(usage, bool) or not isinstance(usage, int):
            raise DescriptorError(
                f"usage: expected TextureUsage flags, got {usage!r}", field="usage", value=usage
            )
        if usage == 0 or int(usage) & ~int(ALL_USAGES):
            raise DescriptorError(
                f"usage: expected a non-empty combination of TextureUsage flags "
                f"(1..{int(ALL_USAGES)}), got {int(usage)}",
                field="usage",
                value=usage,
            )
        object.__setattr__(self, "usage", TextureUsage(usage))
        fmt = self.format
        if usage & TextureUsage.STORAGE_BINDING and not fmt.storage:
            kind = "a depth format" if fmt.is_depth else "not a storage format"
            raise DescriptorError(
                f"usage: STORAGE_BINDING is not allowed with format {fmt.value} ({kind}; "
                f"storage formats: {', '.join(sorted(f.value for f in _STORAGE))})",
                field="usage",
                value=usage,
            )
        if usage & TextureUsage.RENDER_ATTACHMENT and not fmt.renderable:
            raise DescriptorError(
                f"usage: RENDER_ATTACHMENT is not allowed with format {fmt.value} "
                f"(not renderable without an optional feature)",
                field="usage",
                value=usage,
            )
        if not isinstance(self.label, str):
            raise DescriptorError(
                f"label: expected a str, got {self.label!r}", field="label", value=self.label
            )
        size = len(self.label.encode("utf-8", "surrogatepass"))
        if size > MAX_LABEL_BYTES:
            raise DescriptorError(
                f"label: at most {MAX_LABEL_BYTES} bytes of UTF-8, got {size}",
                field="label",
                value=self.label,
            )

    @property
    def nbytes(self) -> int:
        """Size of the texel data, tightly packed (width * height * bytes per pixel)."""
        return self.width * self.height * self.format.bytes_per_pixel
