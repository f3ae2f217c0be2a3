"""The caps reader: good text and what it reads as, bad text and the column it blames."""

from __future__ import annotations

import contextlib
import pickle
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallax._errors import ParseError
from parallax.caps import (
    Caps,
    FloatRange,
    FractionRange,
    IntRange,
    Structure,
    Value,
    ValueArray,
    ValueList,
)
from parallax.caps._parse import MAX_DEPTH, MAX_LENGTH, parse_caps


def one(text: str) -> Structure:
    caps = Caps.from_string(text)
    assert len(caps) == 1
    return caps[0]


# -- good input --------------------------------------------------------------------------

GOOD: list[tuple[str, str, dict[str, Value]]] = [
    ("bytes", "bytes", {}),
    ("text/lines", "text/lines", {}),
    (
        "video/raw,format=RGBA8,width=1920,height=1080,framerate=30/1",
        "video/raw",
        {"format": "RGBA8", "width": 1920, "height": 1080, "framerate": Fraction(30)},
    ),
    (
        "tensor,dtype=float32,shape=<1,3,224,224>",
        "tensor",
        {"dtype": "float32", "shape": ValueArray([1, 3, 224, 224])},
    ),
    ("video/raw,width=[1,100]", "video/raw", {"width": IntRange(1, 100)}),
    ("video/raw,format={RGBA8,BGRA8}", "video/raw", {"format": ValueList(["RGBA8", "BGRA8"])}),
    (
        "video/raw,framerate=[0/1,60/1]",
        "video/raw",
        {"framerate": FractionRange(Fraction(0), Fraction(60))},
    ),
    ("audio/raw,volume=[0.0,1.5]", "audio/raw", {"volume": FloatRange(0.0, 1.5)}),
    ("x,gain=inf,neg=-2.5e-3", "x", {"gain": float("inf"), "neg": -0.0025}),
    ("x,on=true,off=false,y=yes,n=No", "x", {"on": True, "off": False, "y": True, "n": False}),
    ("x,hex=0x10,neg=-7,big=18446744073709551615", "x", {"hex": 16, "neg": -7, "big": 2**64 - 1}),
    ('x,s="two words",e="a\\"b\\\\c"', "x", {"s": "two words", "e": 'a"b\\c'}),
    ('x,num="30",t="true",s="RGBA8"', "x", {"num": 30, "t": True, "s": "RGBA8"}),
    ('x,num=(string)30,t=(string)"true"', "x", {"num": "30", "t": "true"}),
    (
        "x,colorimetry=2:4:7:1,profile=high-4:4:4",
        "x",
        {"colorimetry": "2:4:7:1", "profile": "high-4:4:4"},
    ),
    ("x,pixel-aspect-ratio=1/1", "x", {"pixel-aspect-ratio": Fraction(1)}),
    ("x,nested={a,{b,c}}", "x", {"nested": ValueList(["a", "b", "c"])}),
    ("x,l={[1,5],7}", "x", {"l": ValueList([IntRange(1, 5), 7])}),
    ("x,a=<1,{2,3},[4,8]>", "x", {"a": ValueArray([1, ValueList([2, 3]), IntRange(4, 8)])}),
    ("x,a=<<1,2>,<3,4>>", "x", {"a": ValueArray([ValueArray([1, 2]), ValueArray([3, 4])])}),
    ("x,empty=<>", "x", {"empty": ValueArray([])}),
    ("  x , w = 5 , h = [ 1 , 2 ]  ", "x", {"w": 5, "h": IntRange(1, 2)}),
    ("x,w=5,", "x", {"w": 5}),
    ("x;", "x", {}),
    ("application/x-rtp+xml.v2_1", "application/x-rtp+xml.v2_1", {}),
    # the default caps feature, system memory, means what no feature means
    ("video/x-raw(memory:SystemMemory)", "video/x-raw", {}),
    ("video/x-raw(memory:SystemMemory),format=RGBA", "video/x-raw", {"format": "RGBA"}),
    ("video/x-raw(memory:SystemMemory) , format = RGBA ,", "video/x-raw", {"format": "RGBA"}),
    ("x(memory:SystemMemory,memory:SystemMemory),w=1", "x", {"w": 1}),
    ("video/x-raw(memory:SystemMemory),memory=cuda", "video/x-raw", {"memory": "cuda"}),
]


@pytest.mark.parametrize(("text", "name", "fields"), GOOD)
def test_good_text_reads_as(text: str, name: str, fields: dict[str, Value]) -> None:
    s = one(text)
    assert s.name == name
    assert dict(s) == fields
    assert s == Structure(name, fields)


TYPED: list[tuple[str, Value]] = [
    ("(int)320", 320),
    ("(i)320", 320),
    ("(uint)7", 7),
    ("(gint64)-9", -9),
    ("(float)1", 1.0),
    ("(double)2.5", 2.5),
    ("(d)0x10", 16.0),
    ("(fraction)30", Fraction(30)),
    ("(fraction)30000/1001", Fraction(30000, 1001)),
    ("(string)30", "30"),
    ("(string)true", "true"),
    ('(string)"quoted"', "quoted"),
    ("(boolean)yes", True),
    ("(bool)0", False),
    ("(b)t", True),
    ("( int )5", 5),
    ("(int)[1,100]", IntRange(1, 100)),
    ("(double)[0,1]", FloatRange(0.0, 1.0)),
    ("(fraction)[0,60]", FractionRange(Fraction(0), Fraction(60))),
    ("(string){1,2}", ValueList(["1", "2"])),
    ("(int)<1,2>", ValueArray([1, 2])),
    ("(string){(int)1,2}", ValueList([1, "2"])),
]


@pytest.mark.parametrize(("value", "expected"), TYPED)
def test_typed_values(value: str, expected: Value) -> None:
    s = one(f"x,v={value}")
    assert s == Structure("x", {"v": expected})


def test_typed_int_and_untyped_int_are_the_same_kind() -> None:
    assert one("x,w=(int)320") == one("x,w=320")
    assert one("x,w=(float)320") != one("x,w=320")


@pytest.mark.parametrize("text", ["ANY", "  ANY\n"])
def test_any(text: str) -> None:
    caps = Caps.from_string(text)
    assert caps.is_any
    assert caps is Caps.any()


@pytest.mark.parametrize("text", ["EMPTY", "NONE", "", "  \t"])
def test_empty(text: str) -> None:
    caps = Caps.from_string(text)
    assert caps.is_empty
    assert caps is Caps.empty()


def test_several_structures_in_order() -> None:
    caps = Caps.from_string("a;b, w=1 ; c")
    assert [s.name for s in caps] == ["a", "b", "c"]
    assert caps[1]["w"] == 1


def test_parse_caps_says_none_for_any_and_empty_tuple_for_empty() -> None:
    assert parse_caps("ANY") is None
    assert parse_caps("EMPTY") == ()
    assert parse_caps("a;b") == (Structure("a"), Structure("b"))


def test_from_string_caches() -> None:
    text = "video/raw,width=[1,100],format={RGBA8,BGRA8}"
    assert Caps.from_string(text) is Caps.from_string(text)


def test_from_string_refuses_non_str() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        Caps.from_string(b"bytes")  # type: ignore[arg-type]


def test_canonical_text() -> None:
    caps = Caps.from_string(' x , a = (int) 5, s = "plain", q="a b", f=(double)2, r=(fraction)3 ')
    assert str(caps) == 'x,a=5,s=plain,q="a b",f=2.0,r=3/1'
    assert repr(caps) == "Caps('x,a=5,s=plain,q=\"a b\",f=2.0,r=3/1')"


# -- bad input ---------------------------------------------------------------------------

BAD: list[tuple[str, str, int]] = [
    ("video/raw,width=[1,", "unterminated range", 17),
    ("video/raw,width=[1,100", "unterminated range", 17),
    ("x,w={1,2", "unterminated list", 5),
    ("x,w=<1,2", "unterminated array", 5),
    ("x,w=<1,{2,3>", "expected ',' or '}' in list, got '>'", 12),
    ('x,s="abc', "unterminated string", 5),
    ('x,s="abc\\"', "unterminated string", 5),
    ("x,w=(int", "unterminated type annotation", 5),
    ("x,w=(int 5", "expected ')' to close the type, got '5'", 10),
    ("x,w=(foo)1", "unknown type 'foo'", 6),
    ("x,w=()1", "unknown type ''", 6),
    ("x,=5", "empty field name", 3),
    ("x, =5", "empty field name", 4),
    ("x,1w=5", "expected a field name, got '1'", 3),
    ("x,w", "expected '=' after field 'w', got the end", 4),
    ("x,w 5", "expected '=' after field 'w', got '5'", 5),
    ("x,w=", "expected a value, got the end", 5),
    ("x,w=,h=1", "expected a value, got ','", 5),
    ("x,w=(int)abc", "expected an int, got 'abc'", 10),
    ("x,w=(int)1.5", "expected an int, got '1.5'", 10),
    ("x,w=(uint)-1", "expected an unsigned int", 11),
    ("x,w=(float)abc", "expected a float", 12),
    ("x,w=(fraction)1.5", "expected a fraction such as 30/1", 15),
    ("x,w=(boolean)maybe", "expected a boolean", 14),
    ('x,w=(int)"5"', "expected int, got a quoted string", 10),
    ("x,w=1/0", "fraction 1/0 has a zero denominator", 5),
    ("x,w=18446744073709551616", "out of range", 5),
    ("x,w=-9223372036854775809", "out of range", 5),
    ("x,w=123456789012345678901234567890", "out of range", 5),
    ("x,w=[5,1]", "empty range [5,1]", 5),
    ("x,w=[5,5]", "range [5,5] holds one value: write 5", 5),
    ("x,w=[1,2/1]", "mixed kinds in range: int 1 and fraction 2/1", 5),
    ("x,w=[1,2.0]", "mixed kinds in range: int 1 and float 2.0", 5),
    ("x,w=[a,b]", "a range bound must be a number, got string a", 6),
    ("x,w=[1,true]", "a range bound must be a number, got boolean true", 8),
    ("x,w=[1,{2,3}]", "a range bound must be a number, got list {2,3}", 8),
    ("x,w=[1]", "a range needs two bounds, got 1", 5),
    ("x,w=[]", "a range needs two bounds, got 0", 5),
    ("x,w=[1,2,3]", "range steps are not supported", 10),
    ("x,w=[1;2]", "expected ',' or ']' in range, got ';'", 7),
    ("x,w={}", "empty list '{}' accepts nothing", 5),
    ("x,w=5 junk", "expected ',' or ';' after field 'w', got 'j'", 7),
    ("x,w=5)", "expected ',' or ';' after field 'w', got ')'", 6),
    ("bytes)", "expected ',' or ';' after 'bytes', got ')'", 6),
    ("x,w=1,w=2", "duplicate field 'w'", 7),
    ("x;;y", "empty structure between ';'", 3),
    (";x", "expected a media type name, got ';'", 1),
    ("1x", "expected a media type name, got '1'", 1),
    ("x;ANY", "ANY must stand alone", 3),
    ("EMPTY;x", "EMPTY must stand alone", 1),
    # caps features: only memory:SystemMemory; each refusal quotes the feature as written
    ("video/x-raw(memory:NVMM)", "caps feature 'memory:NVMM' is not supported", 13),
    ("video/x-raw(memory:CUDAMemory)", "GPU memory is the field memory=cuda here", 13),
    ("x(memory:SystemMemory,meta:GstVideoMeta)", "caps feature 'meta:GstVideoMeta'", 23),
    ("x(memory:SystemMemory);y(meta:Foo),w=1", "caps feature 'meta:Foo'", 26),
    ("x(ANY)", "caps features '(ANY)' are not supported", 3),
    ("x( memory:SystemMemory )", "invalid caps feature ' memory:SystemMemory '", 3),
    ("x(memory:System-Memory)", "invalid caps feature 'memory:System-Memory'", 3),
    ("x(mem)", "invalid caps feature 'mem': a feature is namespace:Name", 3),
    ("x(memory:SystemMemory,)", "invalid caps feature ''", 23),
    ("x()", "empty caps features '()'", 2),
    ("x(memory:SystemMemory", "unterminated caps features", 2),
    ("x (memory:SystemMemory)", "unexpected '(' a space before it: caps features go right", 3),
    ("x,w=1(memory:SystemMemory)", "unexpected '(' after field 'w'", 6),
    ("x,w=" + "<" * (MAX_DEPTH + 2) + ">" * (MAX_DEPTH + 2), "nested deeper than", 22),
    ("x,w=\u00e9", "expected a value, got 'é'", 5),
]


@pytest.mark.parametrize(("text", "message", "column"), BAD)
def test_bad_text_names_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(ParseError) as info:
        Caps.from_string(text)
    assert message in info.value.message
    assert info.value.column == column, str(info.value)
    assert info.value.text == text


def test_error_draws_a_caret_under_the_column() -> None:
    with pytest.raises(ParseError) as info:
        Caps.from_string("video/raw,width=[1,")
    assert str(info.value) == (
        "unterminated range at column 17\n  video/raw,width=[1,\n                  ^"
    )


def test_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError, match="unknown type") as info:
        Caps.from_string("x,w=(foo)1")
    err = pickle.loads(pickle.dumps(info.value))
    assert isinstance(err, ParseError)
    assert (err.message, err.text, err.column) == ("unknown type 'foo'", "x,w=(foo)1", 6)


def test_overlong_text_is_refused_before_reading() -> None:
    with pytest.raises(ParseError, match="over the 65,536 limit") as info:
        Caps.from_string("x,s=" + "a" * MAX_LENGTH)
    assert info.value.column == 1


def test_system_memory_feature_is_the_same_caps_as_none() -> None:
    with_feature = Caps.from_string("video/x-raw(memory:SystemMemory),format=RGBA,width=[1,64]")
    assert with_feature == Caps.from_string("video/x-raw,format=RGBA,width=[1,64]")
    # str() leaves the default feature out, as gst_caps_to_string does
    assert str(with_feature) == "video/x-raw,format=RGBA,width=[1,64]"
    assert Caps.from_string(str(with_feature)) == with_feature


@given(
    st.sampled_from(["x", "video/x-raw", "tensor"]),
    st.integers(1, 3),
    st.sampled_from(["", ",w=1", ",format=RGBA,h=[1,8]", ";bytes", ";y(memory:SystemMemory)"]),
)
def test_system_memory_feature_reads_as_no_feature(name: str, times: int, rest: str) -> None:
    text = f"{name}({','.join(['memory:SystemMemory'] * times)}){rest}"
    caps = Caps.from_string(text)
    assert caps == Caps.from_string(f"{name}{rest}".replace("(memory:SystemMemory)", ""))
    assert Caps.from_string(str(caps)) == caps


@given(st.from_regex(r"[A-Za-z]{1,8}:[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True))
def test_any_other_feature_is_refused_naming_it(feature: str) -> None:
    text = f"video/x-raw({feature}),format=RGBA"
    if feature == "memory:SystemMemory":
        assert Caps.from_string(text) == Caps.from_string("video/x-raw,format=RGBA")
        return
    with pytest.raises(ParseError) as info:
        Caps.from_string(text)
    assert (info.value.column, f"caps feature {feature!r}") == (
        13,
        info.value.message[: 15 + len(feature)],
    )


# -- any text parses or raises ParseError -------------------------------------------------

_GRAMMAR = st.text(alphabet='ab1/.-+:x, ;=[]{}<>()"\\\t', max_size=40)
_SEEDS = [text for text, _, _ in GOOD] + [text for text, _, _ in BAD]


@given(st.text(max_size=60) | _GRAMMAR)
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    column = 1
    try:
        Caps.from_string(text)
    except ParseError as e:
        column = e.column
    assert 1 <= column <= len(text) + 1, "the column lies in the text or just past it"


@given(st.sampled_from(_SEEDS), st.integers(0, 80), st.integers(0, 3), _GRAMMAR)
def test_any_edit_of_caps_text_parses_or_raises_parse_error(
    seed: str, at: int, cut: int, insert: str
) -> None:
    text = seed[:at] + insert[:3] + seed[at + cut :]
    with contextlib.suppress(ParseError):
        caps = Caps.from_string(text)
        assert Caps.from_string(str(caps)) == caps
