"""Buffers: a view on memory plus timing metadata and caps.

Layout: `_buffer.py` holds `Buffer`, `Metadata` and `BufferFlags`.
"""

from ._buffer import Buffer as Buffer
from ._buffer import BufferFlags as BufferFlags
from ._buffer import MemoryOwner as MemoryOwner
from ._buffer import Metadata as Metadata

__all__ = ["Buffer", "BufferFlags", "MemoryOwner", "Metadata"]

for _cls in (Buffer, BufferFlags, Metadata, MemoryOwner):
    _cls.__module__ = __name__
