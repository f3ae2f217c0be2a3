"""The gst-launch grammar: launch text in, a flat `Description` out, and back.

Operations
    `parse(text)` turns a launch string such as ``fakesrc ! tee name=t  t. ! queue ! fakesink``
    into a `Description`: elements and bins in declaration order, and element-to-element
    `Link`s whose names are already resolved. `to_launch(desc)` prints a canonical launch
    string that parses back to the same description. Both are pure (sans-IO): no registry,
    no elements, no files. The pipeline builder turns a description into elements and
    checks what only it can: factories, property types, pads and caps.

Plan
    A lexer makes one pass with regexes anchored at positions, as GStreamer's parse.l does
    with flex: element words, ``key=value`` assignments, ``name.pad`` references, ``.pad``
    references, ``(`` / ``bin.(``, ``)`` and links. As in parse.l, a link token swallows its
    caps filter, ``! video/x-raw, width=320 !``, so a caps filter may hold spaces. The
    parser then walks the tokens with an explicit stack of open bins -- no recursion, so
    ten thousand nested parentheses cannot raise RecursionError. Its states follow
    grammar.y: a chain is ``[ref | elementary] (! [.pad] elementary [.pad])* [! ref]``,
    where an elementary is an element or a bin. A link into or out of a bin is flattened
    to the first element of the bin's first chain or the last element of its last chain,
    which is how gst_parse_launch resolves it (ghost pads are the builder's business).
    Names are resolved once everything is read, so references may precede declarations.

Limits
    Linear in the text, apart from one sort of the links. Not supported, each a ParseError
    that says so: ``:`` (link all pads), pad lists (``t.src_0,src_1``), URIs in place of
    elements, ``@preset``. Where this grammar and GStreamer 1.22 disagree on purpose
    (quoted caps, 'single-quoted' values, unterminated quotes, duplicate names), the list
    is in docs/launch-syntax.md and pinned by tests/pipeline/test_parse_gst.py.

The module runs past 400 lines because lexer, parser and printer share one token
vocabulary and one set of quoting rules; split apart, each would need the others' private
regexes to stay consistent (the round trip is the point).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from typing import Final

from .._errors import ParseError

__all__ = [
    "DEFAULT_CAPS_NAMES",
    "BinDecl",
    "Description",
    "ElementDecl",
    "Endpoint",
    "Link",
    "Prop",
    "parse",
    "strip_positions",
    "to_launch",
]

DEFAULT_CAPS_NAMES: Final = frozenset({"ANY", "EMPTY", "bytes", "tensor"})
"""Bare words that are caps filters, not elements, after a '!' (``a ! bytes ! b``)."""


@dataclass(frozen=True, slots=True)
class Prop:
    """One ``key=value`` assignment, as written; the builder converts the value's type."""

    name: str  # e.g. "location", "num-buffers"
    value: str  # unquoted, escapes resolved
    column: int  # 1-based column of the property name
    value_column: int  # 1-based column where the value starts (the quote if quoted)


@dataclass(frozen=True, slots=True)
class ElementDecl:
    """An element: its factory, optional name, properties and innermost bin."""

    key: int  # index in Description.elements (declaration order)
    factory: str  # e.g. "filesrc"
    name: str | None  # from name=..., else None (the builder names it filesrc0, ...)
    props: tuple[Prop, ...]  # in order, without name=
    column: int  # column of the factory word
    bin: int | None  # key of the innermost BinDecl containing it, or None


@dataclass(frozen=True, slots=True)
class BinDecl:
    """A bin: ``( ... )`` (factory "bin") or ``factory.( ... )``, with its properties."""

    key: int
    factory: str  # "bin" for plain parentheses, or the word before ".("
    name: str | None
    props: tuple[Prop, ...]
    column: int  # column of "("
    parent: int | None  # enclosing BinDecl key


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a link: an element (names resolved) and an optional pad name."""

    element: int  # key of an ElementDecl
    pad: str | None  # explicit pad name, or None = "pick a compatible pad"
    column: int  # column of the word that produced this endpoint


@dataclass(frozen=True, slots=True)
class Link:
    """A ``!`` between two elements, with the caps filter written between two ``!``."""

    src: Endpoint
    sink: Endpoint
    caps: str | None  # caps filter text (stripped, unquoted), or None
    caps_column: int | None
    column: int  # column of the (first) '!'


@dataclass(frozen=True, slots=True)
class Description:
    """A parsed launch line: declarations in text order, links in the order of their '!'."""

    text: str
    elements: tuple[ElementDecl, ...]
    bins: tuple[BinDecl, ...]
    links: tuple[Link, ...]

    def same_structure(self, other: Description) -> bool:
        """Whether both describe the same pipeline, ignoring `text` and every column."""
        return strip_positions(self) == strip_positions(other)


# --- Lexer ---------------------------------------------------------------------------------

_WS_CHARS: Final = " \t\n\r\f\v"  # parse.l's [[:space:]] in the C locale; no Unicode spaces
_QUOTES: Final = "\"'"
_WS: Final = re.compile(r"[ \t\n\r\f\v]*")
_IDENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_%:\-]*")  # parse.l's _identifier
_BINREF_TAIL: Final = re.compile(r"[ \t\n\r\f\v]*\.[ \t\n\r\f\v]*\(")  # parse.l's _binref
_ASSIGN_TAIL: Final = re.compile(r"[ \t\n\r\f\v]*=")  # parse.l's _assign: spaces allowed
_UNQUOTED: Final = re.compile(r"(?:\\.|[^ \t\n\r\f\v\\])*", re.DOTALL)  # parse.l's _char+
_QUOTED: Final = {q: re.compile(rf"{q}((?:\\.|[^{q}\\])*){q}", re.DOTALL) for q in _QUOTES}
_WORD: Final = re.compile(r"[^ \t\n\r\f\v!)]*")  # what decides "is this caps?"
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_FOLLOW: Final = frozenset(_WS_CHARS + "!()")  # may end an element word or a reference
_CAPS_CHARS: Final = "/,("


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """End of `pattern` matched at `pos` (`pos` itself when it does not match)."""
    m = pattern.match(text, pos)
    return pos if m is None else m.end()


def _unescape(raw: str) -> str:
    """Resolve ``\\X`` to ``X`` everywhere: the rule inside a quoted value or caps filter."""
    return _ESCAPE.sub(lambda m: m.group(1), raw) if "\\" in raw else raw


def _gst_unescape(raw: str) -> str:
    """Resolve an unquoted value as gst_parse_unescape (gstparse.c) does.

    A backslash escapes the next character, except inside embedded double quotes, which
    are kept verbatim for the value's own parser: ``caps=x/y,s=(string)"a\\,b"``.
    """
    if "\\" not in raw:
        return raw
    out: list[str] = []
    in_quotes = False
    k, n = 0, len(raw)
    while k < n:
        c = raw[k]
        if c == "\\" and not in_quotes and k + 1 < n:  # the lexer leaves no lone backslash
            out.append(raw[k + 1])
            k += 2
            continue
        if c == '"' and not (in_quotes and raw[k - 1] == "\\"):
            in_quotes = not in_quotes
        out.append(c)
        k += 1
    return "".join(out)


class _Kind(enum.Enum):
    ELEMENT = enum.auto()  # a factory word
    ASSIGN = enum.auto()  # key=value
    REF = enum.auto()  # name. or name.pad
    PADREF = enum.auto()  # .pad
    LINK = enum.auto()  # '!', with the caps filter it swallowed
    OPEN = enum.auto()  # '(' or factory.(
    CLOSE = enum.auto()  # ')'
    END = enum.auto()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    column: int
    text: str = ""  # factory, property key, reference name, pad, or bin factory
    value: str = ""  # ASSIGN: the decoded value
    value_column: int = 0
    pad: str | None = None  # REF: the pad after the dot
    caps: str | None = None  # LINK: the caps filter it swallowed
    caps_column: int | None = None

    def ref(self) -> str:
        """A REF token as written: ``t.`` or ``t.src_1``."""
        return f"{self.text}.{self.pad or ''}"


class _Lexer:
    """Splits launch text into tokens in one pass; raises ParseError on lexical errors."""

    __slots__ = ("_caps_names", "_n", "_prev", "_text")

    def __init__(self, text: str, caps_names: frozenset[str]) -> None:
        self._text, self._n, self._caps_names = text, len(text), caps_names
        self._prev: _Token | None = None

    def tokens(self) -> list[_Token]:
        """Every token of the text, the last one END."""
        out: list[_Token] = []
        i = 0
        while True:
            i = _end(_WS, self._text, i)
            if i >= self._n:
                out.append(_Token(_Kind.END, self._n + 1))
                return out
            tok, i = self._token(i)
            out.append(tok)
            self._prev = tok

    def _error(self, message: str, index: int) -> ParseError:
        return ParseError(message, self._text, index + 1)

    def _token(self, i: int) -> tuple[_Token, int]:
        c = self._text[i]
        if c == "!":
            return self._link(i)
        if c == "(":
            return _Token(_Kind.OPEN, i + 1, "bin"), i + 1
        if c == ")":
            return _Token(_Kind.CLOSE, i + 1), i + 1
        if c == ".":
            m = _IDENT.match(self._text, i + 1)
            if m is None:
                raise self._error("expected a pad name after '.'", i)
            self._check_follow(i, m.end(), reference=True)
            return _Token(_Kind.PADREF, i + 1, m.group()), m.end()
        m = _IDENT.match(self._text, i)
        if m is not None:
            return self._word(i, m.end())
        raise self._stray(i)

    def _word(self, i: int, e: int) -> tuple[_Token, int]:
        text, word = self._text, self._text[i:e]
        b = _BINREF_TAIL.match(text, e)
        if b is not None:
            return _Token(_Kind.OPEN, b.end(), word), b.end()
        a = _ASSIGN_TAIL.match(text, e)
        if a is not None:
            return self._assign(i, word, a.end() - 1)
        if e < self._n and text[e] == ".":
            m = _IDENT.match(text, e + 1)
            end = e + 1 if m is None else m.end()
            self._check_follow(i, end, reference=True)
            pad = None if m is None else m.group()
            return _Token(_Kind.REF, i + 1, word, pad=pad), end
        if word in self._caps_names:
            raise self._misplaced_caps(word, i)
        self._check_follow(i, e, reference=False)
        return _Token(_Kind.ELEMENT, i + 1, word), e

    def _assign(self, i: int, key: str, eq: int) -> tuple[_Token, int]:
        text, n = self._text, self._n
        v = _end(_WS, text, eq + 1)
        if v >= n:
            raise self._error(f"expected a property value after '{key}='", eq)
        c = text[v]
        if c == "!":
            raise self._error(
                f"expected a property value after '{key}=', found '!' "
                "(quote a value that starts with '!')",
                eq,
            )
        if c in _QUOTES:
            value, end = self._quoted(v)
            if end < n and text[end] not in _WS_CHARS:
                raise self._error(
                    f"expected a space after the closing {c}, found {text[end]!r}", end
                )
        else:
            end = _end(_UNQUOTED, text, v)
            if end < n and text[end] == "\\":
                raise self._error("'\\' at the end of the input escapes nothing", end)
            value = _gst_unescape(text[v:end])
        return _Token(_Kind.ASSIGN, i + 1, key, value=value, value_column=v + 1), end

    def _quoted(self, i: int) -> tuple[str, int]:
        m = _QUOTED[self._text[i]].match(self._text, i)
        if m is None:
            raise self._error("unterminated string", i)
        return _unescape(m.group(1)), m.end()

    def _link(self, i: int) -> tuple[_Token, int]:
        text, n = self._text, self._n
        j = _end(_WS, text, i + 1)
        if j < n and text[j] in _QUOTES:
            caps, end = self._quoted(j)
            k = _end(_WS, text, end)
            if k < n and text[k] == "!":
                if not caps.strip(_WS_CHARS):
                    raise self._error("empty caps filter", j)
                return _Token(_Kind.LINK, i + 1, caps=caps, caps_column=j + 1), k + 1
            if k < n and text[k] != ")":
                raise self._error(
                    f"expected '!' after the quoted caps filter, found {text[k]!r}", k
                )
            raise self._no_caps_sink(text[j:end], j)
        if j < n and self._starts_caps(j):
            k, bang = self._scan_caps(j)
            # grammar.y unwraps escapes before gst_caps_from_string: `<0,\ 1>` is `<0, 1>`.
            caps = _gst_unescape(text[j:k]).rstrip(_WS_CHARS)
            if not bang:
                raise self._no_caps_sink(caps, j)
            return _Token(_Kind.LINK, i + 1, caps=caps, caps_column=j + 1), k + 1
        return _Token(_Kind.LINK, i + 1), i + 1

    def _starts_caps(self, j: int) -> bool:
        """Whether the word at `j`, right after a '!', is a caps filter rather than an element."""
        if self._text[j] == "(":
            return False
        m = _IDENT.match(self._text, j)
        if m is not None and (
            self._text.startswith(".", m.end())  # a reference, 't.src_0'
            or _BINREF_TAIL.match(self._text, m.end())
            or _ASSIGN_TAIL.match(self._text, m.end())
        ):
            return False
        return self._caps_like(self._word_at(j))

    def _scan_caps(self, j: int) -> tuple[int, bool]:
        """Find where a caps filter ends: the next '!' outside quotes, or an unmatched ')'.

        GStreamer's lexer runs a caps token to the next '!'; we also skip double-quoted
        strings (caps strings quote with those only) and stop at a ')' that closes a bin,
        so ``( a ! x/y ) ! b`` says what is wrong.
        """
        text, n, depth, k = self._text, self._n, 0, j
        while k < n:
            c = text[k]
            if c == "!":
                return k, True
            if c == "\\":
                if k + 1 >= n:
                    raise self._error("'\\' at the end of the input escapes nothing", k)
                k += 2
                continue
            if c == '"':
                k = self._quoted(k)[1]
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    return k, False
                depth -= 1
            k += 1
        return k, False

    def _word_at(self, i: int) -> str:
        return self._text[i : _end(_WORD, self._text, i)]

    def _caps_like(self, word: str) -> bool:
        return word in self._caps_names or any(c in word for c in _CAPS_CHARS)

    def _check_follow(self, start: int, end: int, *, reference: bool) -> None:
        """A word must end at a space, '!', '(' or ')'; say what is wrong otherwise."""
        if end >= self._n or self._text[end] in _FOLLOW:
            return
        c = self._text[end]
        if reference and c == ",":
            raise self._error(
                "pad lists ('t.src_0,src_1') are not supported: write one link per pad", end
            )
        word = self._word_at(start)
        if self._caps_like(word):
            raise self._misplaced_caps(word, start)
        raise self._error(f"invalid character {c!r}", end)

    def _stray(self, i: int) -> ParseError:
        c = self._text[i]
        if c in _QUOTES:
            self._quoted(i)  # an unterminated string is the first thing to report
            return self._error(
                "unexpected quoted string: a quoted caps filter goes between two '!', "
                "a quoted value after 'key='",
                i,
            )
        if c == "=":
            return self._error("'=' has no property name before it", i)
        if c == ":":
            return self._error("':' (link all pads) is not supported: link with '!'", i)
        if c == "@":
            return self._error("presets ('@preset=...') are not supported", i)
        word = self._word_at(i)
        if self._caps_like(word):
            return self._misplaced_caps(word, i)
        return self._error(f"invalid character {c!r}", i)

    def _misplaced_caps(self, word: str, i: int) -> ParseError:
        shown = word if len(word) <= 40 else word[:37] + "..."
        prev = self._prev
        if prev is not None and prev.kind is _Kind.LINK and prev.caps is not None:
            return self._error(
                f"caps filter {shown!r} follows another caps filter: put an element between them",
                i,
            )
        hint = " (URIs are not supported as elements)" if "://" in word else ""
        return self._error(
            f"caps filter {shown!r} has no source element: a caps filter sits between two "
            f"elements, as in 'a ! caps ! b'{hint}",
            i,
        )

    def _no_caps_sink(self, caps: str, j: int) -> ParseError:
        shown = caps if len(caps) <= 40 else caps[:37] + "..."
        return self._error(
            f"caps filter {shown!r} has no sink element: a caps filter sits between two "
            "elements, as in 'a ! caps ! b'",
            j,
        )


# --- Parser --------------------------------------------------------------------------------


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
    ref: _Token | None = None
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
    ref: _Token | None = None  # the reference that started or closed the chain
    src_pad: _Token | None = None
    link: _Token | None = None
    sink_pad: _Token | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A link as read; its references are resolved once the whole text is read."""

    link: _Token
    src: _Side
    src_pad: _Token | None
    sink: _Side
    sink_pad: _Token | None


class _Parser:
    """Builds a Description from tokens with an explicit stack (grammar.y's rules)."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self._text, self._tokens = text, tokens
        self._elements: list[ElementDecl] = []
        self._bins: list[BinDecl] = []
        self._pending: list[_Pending] = []
        self._refs: list[_Token] = []
        self._names: dict[str, tuple[bool, int, int]] = {}  # name -> (is bin, key, column)
        self._paren_value: _Token | None = None  # last property whose value ends in ')'
        self._stack = [_Frame(bin=None, open_column=0)]
        self._prev: _Token | None = None

    def _error(self, message: str, column: int) -> ParseError:
        return ParseError(message, self._text, column)

    def run(self) -> Description:
        """Parse every token; raise ParseError at the first problem."""
        toks, i = self._tokens, 0
        while True:
            tok = toks[i]
            i += 1
            frame = self._stack[-1]
            if tok.kind is _Kind.ELEMENT or tok.kind is _Kind.OPEN:
                start = i
                while toks[i].kind is _Kind.ASSIGN:
                    if toks[i].value.endswith(")"):
                        self._paren_value = toks[i]
                    i += 1
                self._begin(frame)
                if tok.kind is _Kind.ELEMENT:
                    side = _Side(element=self._element(tok, toks[start:i], frame))
                    self._finish(frame, side, side)
                else:
                    key = self._bin(tok, toks[start:i], frame)
                    self._stack.append(_Frame(bin=key, open_column=tok.column))
            elif tok.kind is _Kind.CLOSE:
                self._close(tok, frame)
            elif tok.kind is _Kind.REF:
                self._ref(tok, frame)
            elif tok.kind is _Kind.LINK:
                self._link(tok, frame)
            elif tok.kind is _Kind.PADREF:
                self._padref(tok, frame)
            elif tok.kind is _Kind.ASSIGN:
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

    def _unlinked(self, ref: _Token) -> ParseError:
        r = ref.ref()
        return self._error(
            f"reference '{r}' is not linked: a reference starts a chain ('{r} ! b') "
            f"or ends one ('a ! {r}')",
            ref.column,
        )

    def _close(self, tok: _Token, f: _Frame) -> None:
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

    def _ref(self, tok: _Token, f: _Frame) -> None:
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

    def _link(self, tok: _Token, f: _Frame) -> None:
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

    def _padref(self, tok: _Token, f: _Frame) -> None:
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

    def _stray_property(self, tok: _Token) -> ParseError:
        key, prev = tok.text, self._prev
        if prev is None:
            msg = f"property '{key}' before any element"
        elif prev.kind is _Kind.REF:
            msg = (
                f"a reference cannot take properties: '{prev.ref()}' names an element "
                "declared elsewhere"
            )
        elif prev.kind is _Kind.PADREF:
            msg = f"property '{key}' after pad reference '.{prev.text}': properties go before it"
        elif prev.kind is _Kind.CLOSE:
            msg = f"property '{key}' after ')': a bin's properties go right after its '('"
        else:
            msg = f"property '{key}' has no element: expected an element after '!'"
        return self._error(msg, tok.column)

    # Declarations ------------------------------------------------------------------------

    def _props(self, tokens: list[_Token], what: str) -> tuple[str | None, tuple[Prop, ...]]:
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

    def _element(self, tok: _Token, assigns: list[_Token], f: _Frame) -> int:
        name, props = self._props(assigns, "element")
        key = len(self._elements)
        self._elements.append(ElementDecl(key, tok.text, name, props, tok.column, f.bin))
        f.elements += 1
        return key

    def _bin(self, tok: _Token, assigns: list[_Token], f: _Frame) -> int:
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

    def _endpoint(self, side: _Side, pad: _Token | None) -> Endpoint:
        if side.ref is not None:
            key = self._names[side.ref.text][1]
            return Endpoint(key, side.ref.pad, side.ref.column)
        assert side.element is not None
        column = self._elements[side.element].column
        return Endpoint(side.element, None if pad is None else pad.text, column)


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
    return _Parser(text, _Lexer(text, caps_names).tokens()).run()


# --- Printer -------------------------------------------------------------------------------


def strip_positions(desc: Description) -> Description:
    """`desc` with `text` emptied and every column zeroed (caps_column None): its structure."""

    def props(ps: tuple[Prop, ...]) -> tuple[Prop, ...]:
        return tuple(replace(p, column=0, value_column=0) for p in ps)

    return Description(
        "",
        tuple(replace(e, column=0, props=props(e.props)) for e in desc.elements),
        tuple(replace(b, column=0, props=props(b.props)) for b in desc.bins),
        tuple(
            Link(replace(ln.src, column=0), replace(ln.sink, column=0), ln.caps, None, 0)
            for ln in desc.links
        ),
    )


def _quote(value: str) -> str:
    """A property value as the lexer reads it back: bare when that is exact, else quoted.

    Bare keeps caps-like values readable, backslashes inside embedded quotes included
    (``caps=x/y,s=(string)"a\\,b"``), as gst_parse_unescape leaves those alone.
    """
    if (
        value
        and value[0] not in "\"'!"
        and not any(c in _WS_CHARS for c in value)
        and _end(_UNQUOTED, value, 0) == len(value)
        and _gst_unescape(value) == value
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ident(word: str, what: str) -> str:
    if _IDENT.fullmatch(word) is None:
        raise ValueError(f"{what} {word!r} cannot be written in launch syntax")
    return word


def _caps_text(caps: str, caps_names: frozenset[str]) -> str:
    """The caps filter bare if the lexer reads it back unchanged, else double-quoted."""
    if not caps.strip(_WS_CHARS):
        raise ValueError("an empty caps filter cannot be written in launch syntax")
    try:
        toks = _Lexer(f"a ! {caps} ! b", caps_names).tokens()
    except ParseError:
        toks = []
    if len(toks) == 4 and toks[1].caps == caps:
        return caps
    return '"' + caps.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _referable(name: str | None) -> bool:
    return name is not None and _IDENT.fullmatch(name) is not None


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
    words = [] if name is None else [f"name={_quote(name)}"]
    for p in props:
        if p.name == "name":
            raise ValueError(f"{what} {factory!r} has 'name' among its props")
        words.append(f"{_ident(p.name, 'property name')}={_quote(p.value)}")
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
        words += [_caps_text(link.caps, caps_names), "!"]
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
            out of order, a link between unnamed, non-adjacent elements, a word that is
            not an identifier, an empty caps filter.
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
            open_words.append("(" if bd.factory == "bin" else f"{_ident(bd.factory, 'bin')}.(")
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
