"""The gst-launch tokens: launch text in, a list of `Token`s out, and the quoting rules back.

Operations
    `Lexer(text, caps_names).tokens()` splits a launch line into tokens: element words,
    ``key=value`` assignments (the value decoded), ``name.pad`` references, ``.pad``
    references, ``(`` / ``type.(``, ``)`` and links with the caps filter they swallowed.
    `quote_value`, `quote_caps` and `is_identifier` are the same rules run backwards, for
    the printer: a word comes out bare only when this lexer reads it back unchanged.

Plan
    One pass with regexes anchored at positions, as GStreamer's parse.l does with flex.
    As in parse.l, a link token swallows its caps filter, ``! video/x-raw, width=320 !``,
    so a caps filter may hold spaces. Errors that only the characters show (an
    unterminated string, a stray '=', caps with no element before them) are raised here
    with the column; errors of order are the parser's (`_parse.py`).

Limits
    Linear in the text. ``:`` (link all pads), ``@preset`` and pad lists are each a
    ParseError that says they are not supported.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from .._errors import ParseError

__all__ = [
    "DEFAULT_CAPS_NAMES",
    "Kind",
    "Lexer",
    "Token",
    "is_identifier",
    "quote_caps",
    "quote_value",
]

DEFAULT_CAPS_NAMES: Final = frozenset({"ANY", "EMPTY", "bytes", "tensor"})
"""Bare words that are caps filters, not elements, after a '!' (``a ! bytes ! b``)."""

_WS_CHARS: Final = " \t\n\r\f\v"  # parse.l's [[:space:]] in the C locale; no Unicode spaces
_QUOTES: Final = "\"'"
_WS: Final = re.compile(r"[ \t\n\r\f\v]*")
_IDENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_%:\-]*")  # parse.l's _identifier
_BINREF_TAIL: Final = re.compile(r"[ \t\n\r\f\v]*\.[ \t\n\r\f\v]*\(")  # parse.l's _binref
_ASSIGN_TAIL: Final = re.compile(r"[ \t\n\r\f\v]*=")  # parse.l's _assign: spaces allowed
_UNQUOTED: Final = re.compile(r"(?:\\.|[^ \t\n\r\f\v\\])*", re.DOTALL)  # parse.l's _char+
_QUOTED: Final = {q: re.compile(rf"{q}((?:\\.|[^{q}\\])*){q}", re.DOTALL) for q in _QUOTES}
_WORD: Final = re.compile(r"[^ \t\n\r\f\v!)]*")  # what decides "is this caps?"
_SHOWN: Final = 80  # longer words are cut in messages; a caps filter with features fits


def _shown(word: str) -> str:
    """`word` as an error message quotes it: cut to `_SHOWN` characters."""
    return word if len(word) <= _SHOWN else word[: _SHOWN - 3] + "..."


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


class Kind(enum.Enum):
    ELEMENT = enum.auto()  # a factory word
    ASSIGN = enum.auto()  # key=value
    REF = enum.auto()  # name. or name.pad
    PADREF = enum.auto()  # .pad
    LINK = enum.auto()  # '!', with the caps filter it swallowed
    OPEN = enum.auto()  # '(' or factory.(
    CLOSE = enum.auto()  # ')'
    END = enum.auto()


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    column: int
    text: str = ""  # factory, property key, reference name, pad, or bin factory
    value: str = ""  # ASSIGN: the decoded value
    value_column: int = 0  # ASSIGN: where the value starts; OPEN: where 'type.(' starts
    pad: str | None = None  # REF: the pad after the dot
    caps: str | None = None  # LINK: the caps filter it swallowed
    caps_column: int | None = None

    def ref(self) -> str:
        """A REF token as written: ``t.`` or ``t.src_1``."""
        return f"{self.text}.{self.pad or ''}"


class Lexer:
    """Splits launch text into tokens in one pass; raises ParseError on lexical errors."""

    __slots__ = ("_caps_names", "_n", "_prev", "_text")

    def __init__(self, text: str, caps_names: frozenset[str]) -> None:
        self._text, self._n, self._caps_names = text, len(text), caps_names
        self._prev: Token | None = None

    def tokens(self) -> list[Token]:
        """Every token of the text, the last one END."""
        out: list[Token] = []
        i = 0
        while True:
            i = _end(_WS, self._text, i)
            if i >= self._n:
                out.append(Token(Kind.END, self._n + 1))
                return out
            tok, i = self._token(i)
            out.append(tok)
            self._prev = tok

    def _error(self, message: str, index: int) -> ParseError:
        return ParseError(message, self._text, index + 1)

    def _token(self, i: int) -> tuple[Token, int]:
        c = self._text[i]
        if c == "!":
            return self._link(i)
        if c == "(":
            return Token(Kind.OPEN, i + 1, "bin"), i + 1
        if c == ")":
            return Token(Kind.CLOSE, i + 1), i + 1
        if c == ".":
            m = _IDENT.match(self._text, i + 1)
            if m is None:
                raise self._error("expected a pad name after '.'", i)
            self._check_follow(i, m.end(), reference=True)
            return Token(Kind.PADREF, i + 1, m.group()), m.end()
        m = _IDENT.match(self._text, i)
        if m is not None:
            return self._word(i, m.end())
        raise self._stray(i)

    def _word(self, i: int, e: int) -> tuple[Token, int]:
        text, word = self._text, self._text[i:e]
        b = _BINREF_TAIL.match(text, e)
        if b is not None:
            return Token(Kind.OPEN, b.end(), word, value_column=i + 1), b.end()
        a = _ASSIGN_TAIL.match(text, e)
        if a is not None:
            return self._assign(i, word, a.end() - 1)
        if e < self._n and text[e] == ".":
            m = _IDENT.match(text, e + 1)
            end = e + 1 if m is None else m.end()
            self._check_follow(i, end, reference=True)
            pad = None if m is None else m.group()
            return Token(Kind.REF, i + 1, word, pad=pad), end
        if word in self._caps_names:
            raise self._misplaced_caps(word, i)
        self._check_follow(i, e, reference=False)
        return Token(Kind.ELEMENT, i + 1, word), e

    def _assign(self, i: int, key: str, eq: int) -> tuple[Token, int]:
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
        return Token(Kind.ASSIGN, i + 1, key, value=value, value_column=v + 1), end

    def _quoted(self, i: int) -> tuple[str, int]:
        m = _QUOTED[self._text[i]].match(self._text, i)
        if m is None:
            raise self._error("unterminated string", i)
        return _unescape(m.group(1)), m.end()

    def _link(self, i: int) -> tuple[Token, int]:
        text, n = self._text, self._n
        j = _end(_WS, text, i + 1)
        if j < n and text[j] in _QUOTES:
            caps, end = self._quoted(j)
            k = _end(_WS, text, end)
            if k < n and text[k] == "!":
                if not caps.strip(_WS_CHARS):
                    raise self._error("empty caps filter", j)
                return Token(Kind.LINK, i + 1, caps=caps, caps_column=j + 1), k + 1
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
            return Token(Kind.LINK, i + 1, caps=caps, caps_column=j + 1), k + 1
        return Token(Kind.LINK, i + 1), i + 1

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
        """The word at `i` as written: up to a space, a '!' or a ')' that closes no '(' of
        the word, so caps features stay whole (``video/x-raw(memory:SystemMemory)``)."""
        text, n, k, depth = self._text, self._n, i, 0
        while True:
            e = _end(_WORD, text, k)
            depth += text.count("(", k, e)  # _WORD stops before every ')'
            k = e
            if depth == 0 or k >= n or text[k] != ")":
                return text[i:k]
            depth -= 1
            k += 1

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
        shown = _shown(word)
        prev = self._prev
        if prev is not None and prev.kind is Kind.LINK and prev.caps is not None:
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
        shown = _shown(caps)
        return self._error(
            f"caps filter {shown!r} has no sink element: a caps filter sits between two "
            "elements, as in 'a ! caps ! b'",
            j,
        )


# --- The rules backwards, for the printer --------------------------------------------------


def is_identifier(word: str) -> bool:
    """Whether `word` reads back as one identifier (a factory, key, name or pad)."""
    return _IDENT.fullmatch(word) is not None


def quote_value(value: str) -> str:
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
    return _double_quoted(value)


def quote_caps(caps: str, caps_names: frozenset[str]) -> str:
    """A caps filter bare if the lexer reads it back unchanged, else double-quoted.

    Raises:
        ValueError: `caps` is empty or only whitespace.
    """
    if not caps.strip(_WS_CHARS):
        raise ValueError("an empty caps filter cannot be written in launch syntax")
    try:
        toks = Lexer(f"a ! {caps} ! b", caps_names).tokens()
    except ParseError:
        toks = []
    if len(toks) == 4 and toks[1].caps == caps:
        return caps
    return _double_quoted(caps)


def _double_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
