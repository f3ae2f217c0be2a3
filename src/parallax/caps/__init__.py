"""Caps: GStreamer-style media descriptions, parsed, intersected and fixated.

Layout:
    _value.py      value kinds (IntRange, FractionRange, FloatRange, ValueList, ValueArray),
                   their canonical text and how a bare token reads
    _algebra.py    intersect, subset and fixate on single values
    _structure.py  Structure: a media type name plus ordered fields
    _parse.py      caps text to structures (sans-IO, errors with columns)
    _caps.py       Caps: ANY, EMPTY, or structures; intersect, is_subset, fixate

docs/caps.md has the syntax and the rules, with examples.
"""

from ._caps import Caps as Caps
from ._structure import Structure as Structure
from ._value import FloatRange as FloatRange
from ._value import FractionRange as FractionRange
from ._value import IntRange as IntRange
from ._value import Value as Value
from ._value import ValueArray as ValueArray
from ._value import ValueList as ValueList

__all__ = [
    "Caps",
    "FloatRange",
    "FractionRange",
    "IntRange",
    "Structure",
    "Value",
    "ValueArray",
    "ValueList",
]

# Tracebacks and reprs name the public module, not the private one that defines the class.
for _cls in (Caps, FloatRange, FractionRange, IntRange, Structure, ValueArray, ValueList):
    _cls.__module__ = __name__
del _cls
