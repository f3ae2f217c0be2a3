"""DLPack export of raw memory (a pointer and a size), built with ctypes.

The structures follow `dlpack.h` (v1.0; the legacy `DLManagedTensor` is unchanged since
v0.6). A capsule holds one `DLManagedTensor` (named "dltensor", what every consumer
takes) or, for a consumer that passes `max_version >= (1, 0)`, one
`DLManagedTensorVersioned` (named "dltensor_versioned"). The tensor is 1-D uint8:
shape `(size,)`, strides NULL (compact), byte_offset 0, data the pointer.

Ownership, per the DLPack Python specification:

- The consumer renames the capsule ("used_dltensor[_versioned]") and later calls the
  tensor's `deleter`; until then `keepalive` (the Python owner of the memory) stays
  referenced here, in `_LIVE`, keyed by the tensor's address.
- A capsule dropped unconsumed (its name unchanged) runs the deleter from its
  destructor.
- At interpreter exit (`atexit`) the deleters of tensors still held by a consumer are
  cleared (a NULL deleter is allowed by dlpack.h): a consumer freeing its tensor during
  finalization must not call into a Python that is shutting down. Those tensors and
  their owners are leaked on purpose; the process is ending.

The deleter is a ctypes callback, so it may run on any thread (it takes the GIL).
"""

from __future__ import annotations

import atexit
import ctypes
from collections.abc import Callable
from typing import Any, Final, Protocol

KDL_CPU: Final = 1
KDL_CUDA: Final = 2
KDL_UINT: Final = 1  # DLDataTypeCode kDLUInt
DLPACK_VERSION: Final = (1, 0)  # the version of DLManagedTensorVersioned we build
FLAG_READ_ONLY: Final = 1 << 0  # DLPACK_FLAG_BITMASK_READ_ONLY
NAME: Final = b"dltensor"
VERSIONED_NAME: Final = b"dltensor_versioned"
USED_NAME: Final = b"used_dltensor"
USED_VERSIONED_NAME: Final = b"used_dltensor_versioned"


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    # `deleter` is a function pointer; kept as c_void_p so that it can be set to NULL.
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


# The C API through a handle of our own (PyDLL: the GIL is held during the calls), so the
# argtypes set here do not change `ctypes.pythonapi` for anyone else.
_api = ctypes.PyDLL(None)
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.Py_IncRef.argtypes = [ctypes.py_object]
_api.Py_IncRef.restype = None

_DeleterType = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_DestructorType = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Export:
    """What one exported tensor keeps alive: the structure, its shape array, the owner."""

    __slots__ = ("keepalive", "managed", "shape")

    def __init__(self, managed: ctypes.Structure, shape: Any, keepalive: object) -> None:
        self.managed, self.shape, self.keepalive = managed, shape, keepalive


_LIVE: dict[int, _Export] = {}


def _delete(address: int | None) -> None:
    # The consumer is done (or the capsule went unconsumed): release the owner. Popping
    # frees the structure too; it is not touched after this.
    if address:
        _LIVE.pop(address, None)


def _destroy_capsule(capsule: int | None) -> None:
    # PyCapsule destructor, run while the capsule is deallocated (so only its address is
    # used). A consumer renames the capsule when it takes the tensor: then it owns the
    # deleter call and nothing happens here.
    try:
        for name in (NAME, VERSIONED_NAME):
            if _api.PyCapsule_IsValid(capsule, name):
                _delete(_api.PyCapsule_GetPointer(capsule, name))
                return
    except BaseException:  # a destructor has nobody to report to
        return


_DELETER: Final = _DeleterType(_delete)
_DESTRUCTOR: Final = _DestructorType(_destroy_capsule)
_DELETER_ADDRESS: Final = ctypes.cast(_DELETER, ctypes.c_void_p).value
_DESTRUCTOR_ADDRESS: Final = ctypes.cast(_DESTRUCTOR, ctypes.c_void_p).value
# The callbacks and the capsule names must outlive every capsule and tensor, module
# teardown included: one extra reference each, never dropped.
for _immortal in (_DELETER, _DESTRUCTOR, NAME, VERSIONED_NAME):
    _api.Py_IncRef(_immortal)


def live_exports() -> int:
    """How many exported tensors a consumer (or an unconsumed capsule) still holds."""
    return len(_LIVE)


def to_capsule(
    ptr: int,
    size: int,
    device: tuple[int, int],
    keepalive: object,
    *,
    versioned: bool = False,
    readonly: bool = False,
) -> Any:
    """A DLPack capsule for `size` bytes at `ptr` on `device` (DLDeviceType, ordinal):
    1-D uint8, compact. `keepalive` stays referenced until the consumer calls the
    deleter (or the capsule is dropped unconsumed).

    Args:
        versioned: build a `DLManagedTensorVersioned` ("dltensor_versioned"), for a
            consumer that asked with `max_version >= (1, 0)`.
        readonly: set the read-only flag (versioned only).

    Raises:
        BufferError: `readonly` for a legacy capsule (it cannot say so), or a size or
            pointer out of range.
    """
    if size < 0 or size >= 1 << 63:
        raise BufferError(f"DLPack: size {size} is out of range")
    if not 0 <= ptr < 1 << 64:
        raise BufferError(f"DLPack: pointer {ptr:#x} is out of range")
    if readonly and not versioned:
        raise BufferError(
            "DLPack: read-only memory needs a DLPack 1.0 consumer (max_version=(1, 0))"
        )
    shape = (ctypes.c_int64 * 1)(size)
    managed: DLManagedTensor | DLManagedTensorVersioned
    if versioned:
        managed = DLManagedTensorVersioned()
        managed.version = DLPackVersion(*DLPACK_VERSION)
        managed.flags = FLAG_READ_ONLY if readonly else 0
        name = VERSIONED_NAME
    else:
        managed = DLManagedTensor()
        name = NAME
    tensor = managed.dl_tensor
    tensor.data = ptr or None
    tensor.device = DLDevice(*device)
    tensor.ndim = 1
    tensor.dtype = DLDataType(KDL_UINT, 8, 1)
    tensor.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
    tensor.strides = None
    tensor.byte_offset = 0
    managed.manager_ctx = None
    managed.deleter = _DELETER_ADDRESS
    address = ctypes.addressof(managed)
    _LIVE[address] = _Export(managed, shape, keepalive)
    try:
        return _api.PyCapsule_New(address, name, _DESTRUCTOR_ADDRESS)
    except BaseException:
        del _LIVE[address]
        raise


def cuda_array_interface(ptr: int, size: int) -> dict[str, Any]:
    """Version 3 of Numba's CUDA Array Interface for `size` bytes (`|u1`) at `ptr`,
    read-write, with no stream entry: the producer orders its writes before handing over
    (or the consumer waits on the event that came with the memory)."""
    return {
        "version": 3,
        "typestr": "|u1",
        "shape": (size,),
        "strides": None,
        "data": (ptr, False),
        "stream": None,
    }


def wants_versioned(max_version: tuple[int, int] | None) -> bool:
    """True when the consumer's `max_version` takes a versioned capsule (major >= 1)."""
    if max_version is None:
        return False
    try:
        major = int(max_version[0])
    except (TypeError, ValueError, IndexError) as e:
        raise TypeError(f"max_version: expected (major, minor), got {max_version!r}") from e
    return major >= DLPACK_VERSION[0]


def check_request(
    device: tuple[int, int], *, dl_device: tuple[int, int] | None, copy: bool | None
) -> None:
    """Refuse what a zero-copy export cannot do: another device or a forced copy."""
    if dl_device is not None and tuple(dl_device) != tuple(device):
        raise BufferError(
            f"DLPack: the memory is on device {tuple(device)}, not {tuple(dl_device)}; "
            "cross-device export needs a copy"
        )
    if copy:
        raise BufferError("DLPack: copy=True is not supported; export is zero-copy only")


def cuda_consumer_stream(stream: int | None) -> int | None:
    """The CUstream the consumer will use (per the array API `__dlpack__` rules for
    CUDA), or None when it asked for no synchronization (-1).

    None and 1 mean the legacy default stream (CU_STREAM_LEGACY, 0x1), 2 the per-thread
    default stream (CU_STREAM_PER_THREAD, 0x2), larger ints a stream handle; 0 is
    ambiguous and refused.
    """
    if stream is None:
        return 1
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"stream: expected an int or None, got {stream!r}")
    if stream == -1:
        return None
    if stream == 0 or stream < -1:
        raise ValueError(
            f"stream: {stream} is not allowed for CUDA (None or 1: legacy default stream, "
            "2: per-thread default stream, > 2: a stream handle, -1: no synchronization)"
        )
    return stream


@atexit.register
def _forget_at_exit() -> None:
    # Consumers may free their tensors during finalization (module teardown, C++ static
    # destructors), when calling back into Python is no longer safe: clear the deleters
    # (NULL is allowed) and leak the structures, so that nobody calls into freed memory.
    leaked = list(_LIVE.values())
    _LIVE.clear()
    for export in leaked:
        export.managed.deleter = None
    if leaked:
        _api.Py_IncRef(leaked)


def export_cuda(
    keepalive: object,
    ptr: int,
    size: int,
    ordinal: int,
    *,
    stream: int | None,
    max_version: tuple[int, int] | None,
    dl_device: tuple[int, int] | None,
    copy: bool | None,
    wait: Callable[[int], None] | None = None,
) -> Any:
    """`__dlpack__` for `size` bytes of CUDA memory at `ptr` on device `ordinal`.

    `wait(cu_stream)` (when given) makes the consumer's stream wait for the work that
    filled the memory; it is skipped when the consumer passed `stream=-1`.
    """
    device = (KDL_CUDA, ordinal)
    check_request(device, dl_device=dl_device, copy=copy)
    versioned = wants_versioned(max_version)
    consumer = cuda_consumer_stream(stream)
    if consumer is not None and wait is not None:
        wait(consumer)
    return to_capsule(ptr, size, device, keepalive, versioned=versioned)


class _Windowed(Protocol):
    @property
    def size(self) -> int: ...

    def dlpack_window(
        self,
        start: int,
        size: int,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any: ...


class WholeExport:
    """`__dlpack__` of all `size` bytes, through the class's own `dlpack_window`: what
    the CUDA memory owners (`DeviceMemory`, `CudaMemory`) share."""

    __slots__ = ()

    def __dlpack__(
        self: _Windowed,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule of the whole memory (1-D uint8, no copy), for
        `jax.dlpack.from_dlpack`, `torch.from_dlpack`, `cupy.from_dlpack`: "dltensor" for
        a consumer without `max_version` (or below 1.0), else "dltensor_versioned". The
        owner stays alive until the consumer is done with the tensor. `stream` follows
        the array API (None/1/2/a handle/-1); see `dlpack_window` for what is waited on.

        Raises:
            BufferError: `dl_device` is another device, or `copy=True`.
        """
        return self.dlpack_window(
            0, self.size, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy
        )
