"""`Caps`: what a pad can produce or accept, as GStreamer's GstCaps.

Caps are ANY (everything), EMPTY (nothing), or a list of structures, each an alternative,
the earlier preferred. Negotiation intersects what two pads say and fixates the result to
one concrete format. Caps are immutable and hashable, so one parsed `Caps` is shared by
every pad, thread and pipeline that spells it the same: `from_string` caches, and
`intersect` answers at once for the common cases (the same caps on both sides, or ANY).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Final, TypeVar, final, overload

from ._parse import parse_caps
from ._structure import Structure
from ._value import Value

_T = TypeVar("_T")

# How many distinct caps strings `from_string` remembers. A pipeline spells a handful of
# caps, re-parsed on every link and renegotiation; 1024 covers many pipelines at once, and
# at a few KiB per entry (text, structures, dicts, values) costs a few MiB at worst.
# Picked, not measured.
_PARSE_CACHE_SIZE: Final = 1024


@final
class Caps:
    """Media capabilities: ANY, EMPTY, or alternatives (`Structure`s) in order of preference.

    Build with `Caps.from_string("video/raw,width=[1,100]")`, `Caps.new("tensor",
    dtype="float32")`, `Caps(structure, ...)`, `Caps.any()` or `Caps.empty()`. `str()` gives
    the canonical text, which `from_string` reads back to equal caps.

    `len`, iteration and indexing go over the structures; ANY and EMPTY both have none, so
    ask `is_any`/`is_empty`, and note that `bool(caps)` is `not caps.is_empty` (ANY is true).
    `==` compares structures in order (gst_caps_is_strictly_equal); `is_equal` compares what
    the caps accept (gst_caps_is_equal).

    Raises:
        TypeError: an argument is not a `Structure`.
    """

    __slots__ = ("_any", "_hash", "_str", "_structures")

    def __init__(self, *structures: Structure) -> None:
        for s in structures:
            if not isinstance(s, Structure):
                raise TypeError(f"Caps takes Structures, got {type(s).__name__} {s!r}")
        self._any = False
        self._structures = structures
        self._hash = hash(structures)
        self._str: str | None = None

    # -- construction -----------------------------------------------------------------

    @staticmethod
    def from_string(text: str) -> Caps:
        """Parse GStreamer caps syntax; see docs/caps.md for the grammar.

        Results are cached by text (caps are immutable, so sharing is safe): parsing the
        same string again returns the same object.

        Raises:
            ParseError: the text is malformed; its `column` (1-based) points at the fault.
            TypeError: `text` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"caps text must be a str, got {type(text).__name__}")
        return _from_string(text)

    @staticmethod
    def new(name: str, /, **fields: Value) -> Caps:
        """Caps of one structure: `Caps.new("video/raw", width=320)` is `video/raw,width=320`.

        Field names are Python identifiers here; names with '-' go through `from_string` or
        `Caps(Structure(name, {"pixel-aspect-ratio": ...}))`.

        Raises:
            ValueError, TypeError: as `Structure`.
        """
        return Caps(Structure(name, fields))

    @staticmethod
    def any() -> Caps:
        """ANY: accepts everything; intersecting with it changes nothing."""
        return _ANY

    @staticmethod
    def empty() -> Caps:
        """EMPTY: accepts nothing; intersecting with it gives EMPTY."""
        return _EMPTY

    @staticmethod
    def bytes() -> Caps:
        """`bytes`: an untyped byte stream, what file and socket elements carry."""
        return _BYTES

    # -- questions --------------------------------------------------------------------

    @property
    def is_any(self) -> bool:
        """Whether these are ANY caps."""
        return self._any

    @property
    def is_empty(self) -> bool:
        """Whether these caps accept nothing (EMPTY: no structures, and not ANY)."""
        return not self._any and not self._structures

    @property
    def is_fixed(self) -> bool:
        """Whether these caps name one concrete format: one structure, every field a single
        value (no range, no list; an array of single values is fine)."""
        return len(self._structures) == 1 and self._structures[0].is_fixed

    @property
    def name(self) -> str:
        """The media type of single-structure caps.

        Raises:
            ValueError: the caps are ANY, EMPTY, or have several structures.
        """
        return self._single("name").name

    @overload
    def get(self, field: str) -> Value | None: ...
    @overload
    def get(self, field: str, default: _T) -> Value | _T: ...
    def get(self, field: str, default: object = None) -> object:
        """A field of single-structure caps, or `default` when it is absent.

        Raises:
            ValueError: the caps are ANY, EMPTY, or have several structures.
        """
        return self._single(f"get({field!r})").get(field, default)

    def _single(self, what: str) -> Structure:
        """The only structure; ValueError naming `what` was asked when there is not exactly one."""
        if len(self._structures) != 1:
            has = "names no structure" if len(self) == 0 else f"has {len(self)}"
            raise ValueError(f"caps.{what} needs caps of exactly one structure; {self} {has}")
        return self._structures[0]

    # -- algebra ----------------------------------------------------------------------

    def intersect(self, other: Caps) -> Caps:
        """What both caps accept (gst_caps_intersect, in its default zig-zag order).

        Two structures intersect when their names match and every field they share
        intersects: int with int range, range with range, list with anything (the items
        that survive), array with array of one length element by element. A field only one
        side has is kept. Kinds never mix (`1` does not meet `1.0`), a one-value result is
        that value, and nothing in common is EMPTY. Of the structure pairs, those nearest
        the front of both caps come first, and a result already covered by an earlier one
        is dropped. ANY returns the other caps; the same caps return themselves at once.

        Args:
            other: the caps to meet; any caps, ANY and EMPTY included.

        Returns:
            The common caps, which may be `self`, `other` or the shared EMPTY (caps are
            immutable, so sharing is safe). Never raises.
        """
        if self is other or other._any:
            return self
        if self._any:
            return other
        if not self._structures or not other._structures:
            return _EMPTY
        if self._hash == other._hash and self._structures == other._structures:
            return self
        a, b = self._structures, other._structures
        found: list[Structure] = []
        # gstcaps.c, gst_caps_intersect_zig_zag: walk the anti-diagonals i + j = k, so that
        # pairs nearest the front of both caps (both sides' preferences) come first.
        for k in range(len(a) + len(b) - 1):
            for i in range(min(k, len(a) - 1), max(-1, k - len(b)), -1):
                s = a[i].intersect(b[k - i])
                # gst_caps_merge_structure: drop what an earlier structure already covers.
                if s is not None and not any(s.is_subset(t) for t in found):
                    found.append(s)
        return Caps(*found) if found else _EMPTY

    def can_intersect(self, other: Caps) -> bool:
        """Whether `intersect` would be non-empty (gst_caps_can_intersect).

        It stops at the first matching pair and builds nothing, so a pad asks this cheaply
        before linking. Never raises.
        """
        if self._any or other._any:
            return not self.is_empty and not other.is_empty
        if self is other:
            return bool(self._structures)
        return any(s.can_intersect(t) for s in self._structures for t in other._structures)

    def is_subset(self, other: Caps) -> bool:
        """Whether everything these caps accept, `other` accepts (gst_caps_is_subset).

        As in GStreamer, each structure must fit inside one structure of `other`: caps split
        across two of `other`'s structures (`x,w=[1,10]` against `x,w=[1,5];x,w=[6,10]`) are
        not found to be a subset. EMPTY is a subset of everything, everything of ANY.
        Never raises.
        """
        if other._any or self.is_empty or self is other:
            return True
        if self._any or other.is_empty:
            return False
        return all(any(s.is_subset(t) for t in other._structures) for s in self._structures)

    def is_equal(self, other: Caps) -> bool:
        """Whether both caps accept the same (each is a subset of the other; gst_caps_is_equal).

        Unlike `==`, order and redundant structures do not matter.
        """
        return self == other or (self.is_subset(other) and other.is_subset(self))

    def fixate(self) -> Caps:
        """One concrete format from these caps: the first structure, each range at its low
        bound, each list at its first item (gst_caps_fixate with gst_value_fixate's
        choices; an element wanting the value nearest a target intersects with it first).
        The result `is_fixed` and `is_subset(self)`.

        Raises:
            ValueError: the caps are ANY or EMPTY, which name no format.
        """
        if self._any or not self._structures:
            raise ValueError(f"cannot fixate {self}: it names no format")
        if self.is_fixed:
            return self
        return Caps(self._structures[0].fixate())

    # -- sequence of structures and value semantics -------------------------------------

    def __len__(self) -> int:
        return len(self._structures)

    def __iter__(self) -> Iterator[Structure]:
        return iter(self._structures)

    def __getitem__(self, index: int) -> Structure:
        return self._structures[index]

    def __bool__(self) -> bool:
        return self._any or bool(self._structures)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Caps):
            return NotImplemented
        return self is other or (
            self._any == other._any
            and self._hash == other._hash
            and self._structures == other._structures
        )

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        if self._str is None:
            if self._any:
                self._str = "ANY"
            elif not self._structures:
                self._str = "EMPTY"
            else:
                self._str = ";".join(map(str, self._structures))
        return self._str

    def __repr__(self) -> str:
        return f"Caps({str(self)!r})"

    def __reduce__(self) -> tuple[object, tuple[Structure, ...]]:
        # Caps cross process boundaries (links, child pipelines). Rebuild them through the
        # constructors: the cached hash depends on the process's str hash seed, and ANY
        # stays the singleton.
        return (Caps.any, ()) if self._any else (Caps, self._structures)


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _from_string(text: str) -> Caps:
    """`Caps.from_string` behind its cache; ANY and EMPTY come back as the singletons."""
    structures = parse_caps(text)
    return _ANY if structures is None else Caps(*structures) if structures else _EMPTY


def _make_any() -> Caps:
    """The one ANY instance: no structures, flagged; built once at import."""
    caps = Caps()
    caps._any = True
    caps._hash = hash("ANY")
    return caps


_ANY: Final = _make_any()
_EMPTY: Final = Caps()
_BYTES: Final = Caps(Structure("bytes"))
