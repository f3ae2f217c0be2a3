"""The printer: a `Description` back to a canonical launch line.

Operations
    `to_launch(desc)` prints a launch string that `_parse.parse` reads back to the same
    structure (``parse(to_launch(d)).same_structure(d)``); `Pipeline.to_launch` goes
    through it (`_export.py`).

Plan
    Elements come in key order, nested in their bins. Each link is placed so that the
    '!' come out in the description's order: inline between adjacent elements, else
    through ``name.`` references (`_plan`). Words are quoted by the lexer's own rules run
    backwards (`_lex.quote_value`, `_lex.quote_caps`), so a word is bare only when the
    lexer reads it back unchanged.

Limits
    A link between unnamed, non-adjacent elements, or links whose order no placement can
    keep, cannot be written: a ValueError says which link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._description import BIN_TYPES, Description, ElementDecl, Link, Prop
from ._lex import DEFAULT_CAPS_NAMES, is_identifier, quote_caps, quote_value

__all__ = ["to_launch"]


def _ident(word: str, what: str) -> str:
    if not is_identifier(word):
        raise ValueError(f"{what} {word!r} cannot be written in launch syntax")
    return word


def _referable(name: str | None) -> bool:
    return name is not None and is_identifier(name)


@dataclass(slots=True)
class _Gap:
    """The links written between element g and element g + 1."""

    inline: Link | None = None  # 'g ! g+1', alone in the gap
    first: Link | None = None  # 'g ! y.', right after g
    mid: list[Link] = field(default_factory=list)  # 'x. ! y.' chains
    last: Link | None = None  # 'x. ! g+1', right before g+1


def _slot(gap: int, slot: int) -> int:
    """Position of a slot: gaps run from -1 (before element 0); 0 after g, 1 mid, 2 before g+1."""
    return 3 * (gap + 1) + slot


def _mid_at_most(limit: int) -> int | None:
    """The latest mid slot at or before `limit`, if any."""
    q = limit - (limit - 1) % 3
    return q if q >= 1 else None


def _plan(desc: Description) -> dict[int, _Gap]:
    """Place each link so that the '!' come out in the description's order.

    A link is written inline ('a ! b': consecutive elements only, alone between them),
    to a reference ('a ! y.', right after a), from one ('x. ! b', right before b), or
    between two ('x. ! y.', anywhere between chains). Slots only move forward. A backward
    pass computes, for every suffix of the links, the latest slot after which it still
    fits (fitting is monotone in that slot); the forward pass then takes, for each link,
    the most readable option that keeps the rest fitting. A parsed description's own text
    is a placement, so for those this never fails.
    """
    els, m, links = desc.elements, len(desc.elements), desc.links
    fixed: list[list[tuple[int, int, str, int]]] = []  # (start, end, kind, gap), best first
    mids: list[bool] = []
    for link in links:
        s, t = link.src.element, link.sink.element
        s_ref, t_ref = _referable(els[s].name), _referable(els[t].name)
        opts: list[tuple[int, int, str, int]] = []
        if t == s + 1:
            opts.append((_slot(s, 0), _slot(s, 2), "inline", s))
        if t_ref:
            opts.append((_slot(s, 0), _slot(s, 0), "first", s))
        if s_ref:
            opts.append((_slot(t - 1, 2), _slot(t - 1, 2), "last", t - 1))
        fixed.append(opts)
        mids.append(s_ref and t_ref)
    top_mid, never = _slot(m - 1, 1), -(3 * m + 9)
    need = [never] * len(links) + [3 * m + 9]  # need[k]: latest slot after which k.. fit
    for k in reversed(range(len(links))):
        for start, end, _, _ in fixed[k]:
            if end <= need[k + 1]:
                need[k] = max(need[k], start - 1)
        q = _mid_at_most(min(need[k + 1], top_mid)) if mids[k] else None
        if q is not None:
            need[k] = max(need[k], q)
    plan: dict[int, _Gap] = {}
    used = -1
    for k, link in enumerate(links):
        fits = [
            (end, kind, g) for start, end, kind, g in fixed[k] if used < start <= end <= need[k + 1]
        ]
        choice = fits[0] if fits else None
        if choice is None and mids[k]:
            q = _mid_at_most(min(need[k + 1], top_mid))
            if q is not None and q >= used:
                choice = (q, "mid", q // 3 - 1)  # as late as allowed: after the declarations
        if choice is None:
            src, sink = els[link.src.element], els[link.sink.element]
            raise ValueError(
                f"link {k} ({src.factory} -> {sink.factory}) cannot be written in its order: "
                "it needs a named element or adjacent declarations"
            )
        used, kind, g = choice
        gap = plan.setdefault(g, _Gap())
        if kind == "mid":
            gap.mid.append(link)
        else:
            setattr(gap, kind, link)
    return plan


def _check(desc: Description) -> None:
    """Reject descriptions whose keys or references are inconsistent."""
    els, bins = desc.elements, desc.bins
    if not els:
        raise ValueError("a description needs at least one element")
    for i, e in enumerate(els):
        if e.key != i or (e.bin is not None and not 0 <= e.bin < len(bins)):
            raise ValueError(f"element {i} has key {e.key} or bin {e.bin} out of place")
    for i, b in enumerate(bins):
        if b.key != i or (b.parent is not None and not 0 <= b.parent < i):
            raise ValueError(f"bin {i} has key {b.key} or parent {b.parent} out of place")
    for ln in desc.links:
        if not (0 <= ln.src.element < len(els) and 0 <= ln.sink.element < len(els)):
            raise ValueError(f"link at column {ln.column} names an element that does not exist")


def _decl(factory: str, name: str | None, props: tuple[Prop, ...], what: str) -> list[str]:
    words = [] if name is None else [f"name={quote_value(name)}"]
    for p in props:
        if p.name == "name":
            raise ValueError(f"{what} {factory!r} has 'name' among its props")
        words.append(f"{_ident(p.name, 'property name')}={quote_value(p.value)}")
    return words


def _link_words(
    link: Link, els: tuple[ElementDecl, ...], caps_names: frozenset[str], *, src: bool, sink: bool
) -> list[str]:
    """'!' with its caps and pads; `src`/`sink` say which ends are written as references."""
    words: list[str] = []
    if src:
        words.append(f"{els[link.src.element].name}.{link.src.pad or ''}")
    elif link.src.pad is not None:
        words.append("." + _ident(link.src.pad, "pad name"))
    words.append("!")
    if link.caps is not None:
        words += [quote_caps(link.caps, caps_names), "!"]
    if sink:
        words.append(f"{els[link.sink.element].name}.{link.sink.pad or ''}")
    elif link.sink.pad is not None:
        words.append("." + _ident(link.sink.pad, "pad name"))
    return words


def to_launch(desc: Description, *, caps_names: frozenset[str] = DEFAULT_CAPS_NAMES) -> str:
    """Print `desc` as a canonical launch line: ``parse(to_launch(d))`` has d's structure.

    Elements come in key order, nested in their bins; each link is written inline where
    its elements are adjacent, else through ``name.`` references, keeping the links' order.

    Args:
        desc: a description, typically from `parse`.
        caps_names: the caps words the line will be parsed with.

    Returns:
        One line, single spaces between words, values and caps quoted where needed.

    Raises:
        ValueError: `desc` cannot be written: inconsistent keys, a bin without elements or
            out of order, a bin type not in `BIN_TYPES`, a link between unnamed,
            non-adjacent elements, a word that is not an identifier, an empty caps filter.
    """
    _check(desc)
    els, bins = desc.elements, desc.bins
    plan = _plan(desc)
    words: list[str] = []
    open_bins: list[int] = []
    depth: dict[int, int] = {}  # open bin key -> index in open_bins
    next_bin = 0
    for g in range(-1, len(els)):
        gap = plan.get(g, _Gap())
        opens: list[int] = []
        b = els[g + 1].bin if g + 1 < len(els) else None
        while b is not None and b not in depth:
            opens.append(b)
            b = bins[b].parent
        keep = 0 if b is None else depth[b] + 1
        closes = len(open_bins) - keep
        for k in open_bins[keep:]:
            del depth[k]
        del open_bins[keep:]
        open_words: list[str] = []
        for k in reversed(opens):
            if k != next_bin:
                raise ValueError(f"bin {k} is split, empty, or out of declaration order")
            next_bin += 1
            depth[k] = len(open_bins)
            open_bins.append(k)
            bd = bins[k]
            if bd.factory not in BIN_TYPES:
                raise ValueError(f"bin {k} has type {bd.factory!r}, not one of {BIN_TYPES}")
            open_words.append("(" if bd.factory == "bin" else f"{bd.factory}.(")
            open_words += _decl(bd.factory, bd.name, bd.props, "bin")
        if gap.inline is not None:
            words += [")"] * closes
            words += _link_words(gap.inline, els, caps_names, src=False, sink=False)
            words += open_words
        else:
            if gap.first is not None:
                words += _link_words(gap.first, els, caps_names, src=False, sink=True)
            words += [")"] * closes
            for ln in gap.mid:
                words += _link_words(ln, els, caps_names, src=True, sink=True)
            if gap.last is not None:
                words += _link_words(gap.last, els, caps_names, src=True, sink=False)
            words += open_words
        if g + 1 < len(els):
            e = els[g + 1]
            factory = _ident(e.factory, "factory")
            if factory in caps_names:
                raise ValueError(f"factory {factory!r} would read as a caps filter")
            words.append(factory)
            words += _decl(factory, e.name, e.props, "element")
    if next_bin != len(bins):
        raise ValueError(f"bin {next_bin} contains no element")
    for i in range(1, len(words)):
        if words[i] == "(" and words[i - 1].endswith("."):
            words[i] = "bin.("  # after a reference, 'y. (' would read as a bin named 'y'
    return " ".join(words)
