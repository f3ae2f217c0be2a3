"""The gst-launch grammar: tokens in, a flat `Description` out.

Operations
    `parse(text)` turns a launch string such as ``fakesrc ! tee name=t  t. ! queue ! fakesink``
    into a `Description` (`_description.py`): elements and bins in declaration order, and
    element-to-element `Link`s whose names are already resolved. It is pure (sans-IO): no
    registry, no elements, no files. The pipeline builder (`_launch.py`) turns a
    description into elements and checks what only it can: factories, property types,
    pads and caps. `_print.to_launch` writes a description back as text.

Plan
    The lexer (`_lex.py`) makes the tokens. The parser walks them with an explicit stack
    of open bins -- no recursion, so ten thousand nested parentheses cannot raise
    RecursionError. Its states follow grammar.y: a chain is
    ``[ref | elementary] (! [.pad] elementary [.pad])* [! ref]``, where an elementary is
    an element or a bin. A link into or out of a bin is flattened to the first element of
    the bin's first chain or the last element of its last chain, which is how
    gst_parse_launch resolves it (ghost pads are the builder's business). Names are
    resolved once everything is read, so references may precede declarations.

Limits
    Linear in the text, apart from one sort of the links. Not supported, each a ParseError
    that says so: ``:`` (link all pads), pad lists (``t.src_0,src_1``), URIs in place of
    elements, ``@preset``. Where this grammar and GStreamer 1.22 disagree on purpose
    (quoted caps, 'single-quoted' values, unterminated quotes, duplicate names), the list
    is in docs/launch-syntax.md and pinned by tests/pipeline/test_parse_gst.py.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass

from .._errors import ParseError
from ._description import BIN_TYPES, BinDecl, Description, ElementDecl, Endpoint, Link, Prop
from ._lex import DEFAULT_CAPS_NAMES, Kind, Lexer, Token

__all__ = ["parse"]


class _State(enum.Enum):
    NO_CHAIN = enum.auto()  # between chains
    ITEM = enum.auto()  # after an elementary (and maybe its source .pad)
    REF_START = enum.auto()  # a chain began with a reference; a '!' must follow
    LINK = enum.auto()  # after '!': a sink must follow
    LINK_PAD = enum.auto()  # after '! .pad': an elementary must follow
    CLOSED = enum.auto()  # a chain ended on a reference ('a ! t.')


@dataclass(frozen=True, slots=True)
class _Side:
    """What an elementary offers a link: an element, a reference, or why there is none."""

    element: int | None = None
    ref: Token | None = None
    missing: str | None = None


@dataclass(slots=True)
class _Frame:
    """The top level or one open bin, with the state of its current chain."""

    bin: int | None
    open_column: int
    elements: int = 0  # elements inside, nested bins included
    first: _Side | None = None  # the first chain's first elementary
    last: _Side | None = None  # the last finished chain's last elementary
    state: _State = _State.NO_CHAIN
    cur: _Side | None = None  # what the next '!' links from
    ref: Token | None = None  # the reference that started or closed the chain
    src_pad: Token | None = None
    link: Token | None = None
    sink_pad: Token | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A link as read; its references are resolved once the whole text is read."""

    link: Token
    src: _Side
    src_pad: Token | None
    sink: _Side
    sink_pad: Token | None


class _Parser:
    """Builds a Description from tokens with an explicit stack (grammar.y's rules)."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self._text, self._tokens = text, tokens
        self._elements: list[ElementDecl] = []
        self._bins: list[BinDecl] = []
        self._pending: list[_Pending] = []
        self._refs: list[Token] = []
        self._names: dict[str, tuple[bool, int, int]] = {}  # name -> (is bin, key, column)
        self._paren_value: Token | None = None  # last property whose value ends in ')'
        self._stack = [_Frame(bin=None, open_column=0)]
        self._prev: Token | None = None

    def _error(self, message: str, column: int) -> ParseError:
        return ParseError(message, self._text, column)

    def run(self) -> Description:
        """Parse every token; raise ParseError at the first problem."""
        toks, i = self._tokens, 0
        while True:
            tok = toks[i]
            i += 1
            frame = self._stack[-1]
            if tok.kind is Kind.ELEMENT or tok.kind is Kind.OPEN:
                start = i
                while toks[i].kind is Kind.ASSIGN:
                    if toks[i].value.endswith(")"):
                        self._paren_value = toks[i]
                    i += 1
                self._begin(frame)
                if tok.kind is Kind.ELEMENT:
                    side = _Side(element=self._element(tok, toks[start:i], frame))
                    self._finish(frame, side, side)
                else:
                    key = self._bin(tok, toks[start:i], frame)
                    self._stack.append(_Frame(bin=key, open_column=tok.column))
            elif tok.kind is Kind.CLOSE:
                self._close(tok, frame)
            elif tok.kind is Kind.REF:
                self._ref(tok, frame)
            elif tok.kind is Kind.LINK:
                self._link(tok, frame)
            elif tok.kind is Kind.PADREF:
                self._padref(tok, frame)
            elif tok.kind is Kind.ASSIGN:
                raise self._stray_property(tok)
            else:
                return self._end(frame)
            self._prev = tok

    # Chains ------------------------------------------------------------------------------

    def _begin(self, f: _Frame) -> None:
        """An elementary is next: the sink of a pending link, or the start of a chain."""
        if f.state is _State.LINK or f.state is _State.LINK_PAD:
            return
        self._end_chain(f)

    def _finish(self, f: _Frame, first: _Side, last: _Side) -> None:
        """An elementary is complete: link into its first element, continue from its last."""
        if f.link is not None:
            if first.missing is not None:
                raise self._error(f"link '!' has no sink element: {first.missing}", f.link.column)
            assert f.cur is not None
            self._pending.append(_Pending(f.link, f.cur, f.src_pad, first, f.sink_pad))
        elif f.first is None:
            f.first = first
        f.cur, f.state = last, _State.ITEM
        f.src_pad = f.link = f.sink_pad = None

    def _end_chain(self, f: _Frame) -> None:
        if f.state is _State.ITEM:
            if f.src_pad is not None:
                raise self._error(
                    f"pad reference '.{f.src_pad.text}' is not followed by a link '!'",
                    f.src_pad.column,
                )
            f.last = f.cur
        elif f.state is _State.CLOSED:
            assert f.ref is not None
            f.last = _Side(
                missing=f"the last chain of the bin at column {f.open_column} ends with "
                f"reference '{f.ref.ref()}'"
            )
        elif f.state is _State.REF_START:
            assert f.ref is not None
            raise self._unlinked(f.ref)
        elif f.link is not None:
            raise self._error("link '!' has no sink element", f.link.column)
        f.state, f.cur, f.ref = _State.NO_CHAIN, None, None

    def _unlinked(self, ref: Token) -> ParseError:
        r = ref.ref()
        return self._error(
            f"reference '{r}' is not linked: a reference starts a chain ('{r} ! b') "
            f"or ends one ('a ! {r}')",
            ref.column,
        )

    def _close(self, tok: Token, f: _Frame) -> None:
        if len(self._stack) == 1:
            raise self._error("unmatched ')'", tok.column)
        self._end_chain(f)
        if f.elements == 0:
            raise self._error("empty bin: '(' contains no element", f.open_column)
        self._stack.pop()
        parent = self._stack[-1]
        parent.elements += f.elements
        assert f.first is not None
        assert f.last is not None
        self._finish(parent, f.first, f.last)

    def _ref(self, tok: Token, f: _Frame) -> None:
        self._refs.append(tok)
        if f.state is _State.LINK:
            assert f.link is not None
            assert f.cur is not None
            self._pending.append(_Pending(f.link, f.cur, f.src_pad, _Side(ref=tok), None))
            f.state, f.ref, f.cur = _State.CLOSED, tok, None
            f.src_pad = f.link = None
        elif f.state is _State.LINK_PAD:
            assert f.sink_pad is not None
            pad = f.sink_pad.text
            raise self._error(
                f"pad reference '.{pad}' before reference '{tok.ref()}': write '{tok.text}.{pad}'",
                f.sink_pad.column,
            )
        else:
            self._end_chain(f)
            if f.first is None:
                f.first = _Side(
                    missing=f"the first chain of the bin at column {f.open_column} starts "
                    f"with reference '{tok.ref()}'"
                )
            f.state, f.ref, f.cur = _State.REF_START, tok, _Side(ref=tok)

    def _link(self, tok: Token, f: _Frame) -> None:
        if f.state is _State.ITEM or f.state is _State.REF_START:
            assert f.cur is not None
            if f.cur.missing is not None:
                raise self._error(f"link '!' has no source element: {f.cur.missing}", tok.column)
            f.link, f.state = tok, _State.LINK
        elif f.state is _State.LINK or f.state is _State.LINK_PAD:
            raise self._error("expected an element after '!', found another '!'", tok.column)
        elif f.state is _State.CLOSED:
            assert f.ref is not None
            r = f.ref.ref()
            raise self._error(
                f"link '!' has no source element: reference '{r}' ends the chain before it "
                f"(to link out of it, start a new chain: '{r} ! ...')",
                tok.column,
            )
        else:
            raise self._error("link '!' has no source element", tok.column)

    def _padref(self, tok: Token, f: _Frame) -> None:
        pad = tok.text
        if f.state is _State.ITEM:
            if f.src_pad is not None:
                raise self._error(
                    f"unexpected pad reference '.{pad}': '.{f.src_pad.text}' already names "
                    "the source pad",
                    tok.column,
                )
            f.src_pad = tok
        elif f.state is _State.LINK:
            f.sink_pad, f.state = tok, _State.LINK_PAD
        elif f.state is _State.LINK_PAD:
            assert f.sink_pad is not None
            raise self._error(
                f"unexpected pad reference '.{pad}': '.{f.sink_pad.text}' already names "
                "the sink pad",
                tok.column,
            )
        elif f.state is _State.REF_START:
            assert f.ref is not None
            raise self._error(
                f"pad reference '.{pad}' after reference '{f.ref.ref()}': "
                f"write '{f.ref.text}.{pad}'",
                tok.column,
            )
        else:
            raise self._error(
                f"pad reference '.{pad}' has no element: it follows an element "
                f"('a .{pad} ! b') or a '!' ('a ! .{pad} b')",
                tok.column,
            )

    def _stray_property(self, tok: Token) -> ParseError:
        key, prev = tok.text, self._prev
        if prev is None:
            msg = f"property '{key}' before any element"
        elif prev.kind is Kind.REF:
            msg = (
                f"a reference cannot take properties: '{prev.ref()}' names an element "
                "declared elsewhere"
            )
        elif prev.kind is Kind.PADREF:
            msg = f"property '{key}' after pad reference '.{prev.text}': properties go before it"
        elif prev.kind is Kind.CLOSE:
            msg = f"property '{key}' after ')': a bin's properties go right after its '('"
        else:
            msg = f"property '{key}' has no element: expected an element after '!'"
        return self._error(msg, tok.column)

    # Declarations ------------------------------------------------------------------------

    def _props(self, tokens: list[Token], what: str) -> tuple[str | None, tuple[Prop, ...]]:
        """Split assignments into the name (claimed here) and the other properties."""
        name: str | None = None
        props: list[Prop] = []
        for p in tokens:
            if p.text != "name":
                props.append(Prop(p.text, p.value, p.column, p.value_column))
                continue
            if name is not None:
                raise self._error(
                    f"a second name= on one {what} (already named {name!r})", p.column
                )
            if not p.value:
                raise self._error("name= needs a non-empty value", p.value_column)
            seen = self._names.get(p.value)
            if seen is not None:
                other = "bin" if seen[0] else "element"
                raise self._error(
                    f"duplicate name {p.value!r}: already the name of the {other} at "
                    f"column {seen[2]}",
                    p.column,
                )
            name = p.value
            key = len(self._bins) if what == "bin" else len(self._elements)
            self._names[name] = (what == "bin", key, p.column)
        return name, tuple(props)

    def _element(self, tok: Token, assigns: list[Token], f: _Frame) -> int:
        name, props = self._props(assigns, "element")
        key = len(self._elements)
        self._elements.append(ElementDecl(key, tok.text, name, props, tok.column, f.bin))
        f.elements += 1
        return key

    def _bin(self, tok: Token, assigns: list[Token], f: _Frame) -> int:
        if tok.text not in BIN_TYPES:
            raise self._error(_no_bin_type(tok.text), tok.value_column)
        name, props = self._props(assigns, "bin")
        key = len(self._bins)
        self._bins.append(BinDecl(key, tok.text, name, props, tok.column, f.bin))
        return key

    # End ---------------------------------------------------------------------------------

    def _end(self, frame: _Frame) -> Description:
        if len(self._stack) > 1:
            hint, p = "", self._paren_value
            if p is not None and p.column > frame.open_column:
                hint = (
                    f" (the value of '{p.text}' at column {p.value_column} ends in ')': "
                    "a value runs to the next space)"
                )
            raise self._error(f"unclosed '('{hint}", frame.open_column)
        self._end_chain(frame)
        if not self._elements:
            raise self._error("empty pipeline: no element", 1)
        for ref in self._refs:  # in text order, so the first bad reference is reported
            seen = self._names.get(ref.text)
            if seen is None:
                raise self._error(f"no element named {ref.text!r}", ref.column)
            if seen[0]:
                raise self._error(
                    f"{ref.text!r} names a bin: a reference must name an element", ref.column
                )
        self._pending.sort(key=lambda p: p.link.column)
        links = tuple(
            Link(
                self._endpoint(p.src, p.src_pad),
                self._endpoint(p.sink, p.sink_pad),
                p.link.caps,
                p.link.caps_column,
                p.link.column,
            )
            for p in self._pending
        )
        return Description(self._text, tuple(self._elements), tuple(self._bins), links)

    def _endpoint(self, side: _Side, pad: Token | None) -> Endpoint:
        if side.ref is not None:
            key = self._names[side.ref.text][1]
            return Endpoint(key, side.ref.pad, side.ref.column)
        assert side.element is not None
        column = self._elements[side.element].column
        return Endpoint(side.element, None if pad is None else pad.text, column)


def _no_bin_type(word: str) -> str:
    """Why ``word.( ... )`` is no bin: GStreamer's 'no bin "word"', with what would be."""
    close = difflib.get_close_matches(word, BIN_TYPES, n=1)
    hint = f"did you mean '{close[0]}.('? " if close else ""
    kinds = " or ".join(f"'{t}.( ... )'" for t in BIN_TYPES)
    return f"no bin type {word!r} ({hint}a typed bin is {kinds})"


def parse(text: str, *, caps_names: frozenset[str] = DEFAULT_CAPS_NAMES) -> Description:
    """Parse a gst-launch line into a `Description`.

    Args:
        text: the launch line, e.g. ``"fakesrc num-buffers=3 ! video/x-raw ! fakesink"``.
        caps_names: bare words that are caps filters after a '!' (besides words holding
            '/', ',' or '(').

    Returns:
        Elements and bins in declaration order and element-to-element links in the order
        of their '!', every reference resolved to an element key.

    Raises:
        ParseError: for any malformed input, with the 1-based column of the offending
            character; no other exception escapes for any `str` (anything else is a bug).
    """
    return _Parser(text, Lexer(text, caps_names).tokens()).run()
