"""The CUDA driver API binding (`cuda.bindings.driver`): importing it, checking every
CUresult, and releasing driver objects in order.

- `driver()`: the module, imported lazily (`MissingExtra` with the install line if absent).
- `check(function, ret)`: raise `CudaError` naming the call and the CUresult, else return
  the call's values.
- `release(drv, ctx, calls)`: the finalizer every owner in this package arms: run its
  release calls with its context current, raising the first failure after the rest ran.
- `stream_ptr(stream)`, `process_alive(pid)`: the small conversions the owners share.

`cuda.bindings` has no type stubs: it is imported through importlib and used as `Any`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Final, Protocol

from parallax._errors import MissingExtra

from ._errors import CudaError

INSTALL: Final = "pip install 'parallax-dataflow[gpu]' (cuda-bindings)"


class HasPtr(Protocol):
    """What names a CUDA stream by its CUstream address (a `CudaStream`)."""

    @property
    def ptr(self) -> int: ...


def driver() -> Any:
    """The `cuda.bindings.driver` module; `MissingExtra` with the install line if absent."""
    try:
        return importlib.import_module("cuda.bindings.driver")
    except ImportError as e:
        raise MissingExtra(f"CUDA support needs cuda-bindings: {INSTALL}: {e}") from e


def check(function: str, ret: Any) -> Any:
    """Check the CUresult a `cuda.bindings` call returned first; return the rest:
    None, the single value, or a tuple of values."""
    err, rest = (ret[0], ret[1:]) if isinstance(ret, tuple) else (ret, ())
    if int(err) != 0:
        raise CudaError(
            f"{function} failed: {error_name(err)}", function=function, result=error_name(err)
        )
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def error_name(err: Any) -> str:
    """'CUDA_ERROR_INVALID_VALUE (invalid argument)' for a CUresult."""
    drv = driver()
    name = getattr(err, "name", str(err))
    e2, text = drv.cuGetErrorString(err)
    if int(e2) == 0 and text:
        return f"{name} ({text.decode() if isinstance(text, bytes) else text})"
    return str(name)


def release(drv: Any, ctx: Any, calls: list[tuple[Any, ...]]) -> None:
    """Run release calls in order with `ctx` current; the first failure is raised after
    the rest ran (a finalizer at interpreter exit drops CUDA_ERROR_DEINITIALIZED: the
    driver is gone then, and a finalizer has nobody to report to)."""
    failed: CudaError | None = None
    deinit = int(drv.CUresult.CUDA_ERROR_DEINITIALIZED)
    err = drv.cuCtxSetCurrent(ctx)[0]
    if int(err) == deinit:
        return
    for name, *args in calls:
        err = getattr(drv, name)(*args)[0]
        if int(err) not in (0, deinit) and failed is None:
            failed = CudaError(f"{name} failed: {error_name(err)}", function=name)
    if failed is not None:
        raise failed


def stream_ptr(stream: HasPtr | int | None) -> int:
    """The CUstream address of a `CudaStream`, a raw handle (int), or 0 for None (the
    legacy default stream)."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    return int(stream.ptr)


def process_alive(pid: int) -> bool:
    """True if process `pid` exists (an exporter that is gone took its memory with it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
