"""Parallax: a zero-copy dataflow runtime for Python on Linux.

GStreamer-style pipelines over shared-memory loans::

    import parallax
    parallax.parse_launch(
        "filesrc location=in.bin ! tee name=t ! fakesink  t. ! queue ! filesink location=out.bin"
    ).run()

Layout (imports point down): `cli` → `elements` → `pipeline` → `buffer`/`caps` → `memory`.
The names here are the ones most programs need; each subpackage exports the rest.
"""

from importlib.metadata import PackageNotFoundError, version

from ._errors import BrokenError as BrokenError
from ._errors import BudgetExceeded as BudgetExceeded
from ._errors import ClosedError as ClosedError
from ._errors import FlowError as FlowError
from ._errors import HugePagesUnavailable as HugePagesUnavailable
from ._errors import LinkError as LinkError
from ._errors import MissingExtra as MissingExtra
from ._errors import ParallaxError as ParallaxError
from ._errors import ParseError as ParseError
from ._errors import PlatformNotSupported as PlatformNotSupported
from ._errors import PoolExhausted as PoolExhausted
from ._errors import PropertyError as PropertyError
from ._errors import StaleReference as StaleReference
from ._errors import StateError as StateError
from .buffer import Buffer as Buffer
from .caps import Caps as Caps
from .pipeline import Clock as Clock
from .pipeline import Pipeline as Pipeline
from .pipeline import State as State
from .pipeline import parse_launch as parse_launch
from .pipeline import sink as sink
from .pipeline import source as source
from .pipeline import transform as transform

try:
    __version__ = version("parallax-dataflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
del PackageNotFoundError, version  # not part of the API

__all__ = [
    "BrokenError",
    "BudgetExceeded",
    "Buffer",
    "Caps",
    "Clock",
    "ClosedError",
    "FlowError",
    "HugePagesUnavailable",
    "LinkError",
    "MissingExtra",
    "ParallaxError",
    "ParseError",
    "Pipeline",
    "PlatformNotSupported",
    "PoolExhausted",
    "PropertyError",
    "StaleReference",
    "State",
    "StateError",
    "__version__",
    "parse_launch",
    "sink",
    "source",
    "transform",
]

for _name in __all__[:-5]:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("parallax._errors"):
        _obj.__module__ = "parallax"
