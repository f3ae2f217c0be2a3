"""Caps: construction, intersection, subset, fixation, and the laws they keep."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

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

_N = TypeVar("_N", int, float)


def c(text: str) -> Caps:
    return Caps.from_string(text)


# -- construction and access -------------------------------------------------------------


def test_new_builds_one_structure() -> None:
    caps = Caps.new("tensor", dtype="float32", shape=ValueArray([1, 3, 224, 224]))
    assert caps == c("tensor,dtype=float32,shape=<1,3,224,224>")
    assert caps.name == "tensor"
    assert caps.get("dtype") == "float32"
    assert caps.get("missing") is None
    assert caps.get("missing", 0) == 0
    assert caps[0]["shape"] == ValueArray([1, 3, 224, 224])


def test_new_takes_a_field_called_name() -> None:
    assert Caps.new("x", name="y").get("name") == "y"


def test_constructor_from_structures() -> None:
    caps = Caps(Structure("a", {"w": 1}), Structure("b"))
    assert caps == c("a,w=1;b")
    assert len(caps) == 2
    assert [s.name for s in caps] == ["a", "b"]
    assert Caps() == Caps.empty()


def test_constructor_refuses_non_structures() -> None:
    with pytest.raises(TypeError, match="Caps takes Structures, got str"):
        Caps("video/raw")  # type: ignore[arg-type]


def test_bytes() -> None:
    assert Caps.bytes() == c("bytes")
    assert Caps.bytes().is_fixed


@pytest.mark.parametrize("text", ["ANY", "EMPTY", "a;b"])
def test_name_and_get_need_one_structure(text: str) -> None:
    with pytest.raises(ValueError, match="exactly one structure"):
        _ = c(text).name
    with pytest.raises(ValueError, match=r"caps.get\('w'\) needs caps of exactly one"):
        c(text).get("w")


def test_any_and_empty_flags_and_truth() -> None:
    assert Caps.any().is_any
    assert not Caps.any().is_empty
    assert Caps.empty().is_empty
    assert not Caps.empty().is_any
    assert bool(Caps.any())
    assert not Caps.empty()
    assert c("a")
    assert len(Caps.any()) == len(Caps.empty()) == 0
    assert Caps.any() != Caps.empty()
    assert str(Caps.any()) == "ANY"
    assert str(Caps.empty()) == "EMPTY"


def test_caps_are_hashable_and_equal_by_value() -> None:
    a = Caps.new("video/raw", width=320, height=240)
    b = Caps(Structure("video/raw", {"height": 240, "width": 320}))
    assert a == b  # field order does not matter
    assert hash(a) == hash(b)
    assert len({a, b, c("video/raw,width=320,height=240")}) == 1


def test_kinds_never_equal_each_other() -> None:
    kinds = ["x,v=1", "x,v=1.0", "x,v=1/1", "x,v=true", "x,v=(string)1"]
    assert len({c(t) for t in kinds}) == len(kinds)


def test_list_equality_ignores_order_and_fixation_does_not() -> None:
    ab, ba = c("x,f={a,b}"), c("x,f={b,a}")
    assert ab == ba
    assert ab.fixate() == c("x,f=a")
    assert ba.fixate() == c("x,f=b")


FIXED: list[tuple[str, bool]] = [
    ("video/raw,format=RGBA8,width=1920,height=1080,framerate=30/1", True),
    ("tensor,dtype=float32,shape=<1,3,224,224>", True),
    ("bytes", True),
    ("video/raw,width=[1,100]", False),
    ("video/raw,format={RGBA8}", False),
    ("tensor,shape=<1,[1,8]>", False),
    ("a;b", False),
    ("ANY", False),
    ("EMPTY", False),
]


def test_is_fixed() -> None:
    wrong = [(text, fixed) for text, fixed in FIXED if c(text).is_fixed is not fixed]
    assert not wrong


@pytest.mark.parametrize(
    "text", ["ANY", "EMPTY", "video/raw,format={RGBA8,BGRA8},width=[1,8];tensor,shape=<1,3>"]
)
def test_pickle_round_trips(text: str) -> None:
    caps = c(text)
    again = pickle.loads(pickle.dumps(caps))
    assert again == caps
    assert hash(again) == hash(caps)
    assert again.is_any is caps.is_any


def test_pickled_caps_stay_equal_in_a_process_with_another_hash_seed() -> None:
    # Caps cache their hash, and str hashes differ between processes: unpickling must
    # rebuild the hash, or equal caps would compare unequal after crossing a link.
    text = "video/raw,format={RGBA8,BGRA8},name=cam;tensor,shape=<1,3>"
    child = (
        "import pickle, sys\n"
        "from parallax.caps import Caps\n"
        "caps = pickle.loads(sys.stdin.buffer.read())\n"
        f"same = Caps.from_string({text!r})\n"
        "assert caps == same and hash(caps) == hash(same) and {caps: 1}[same] == 1\n"
        "assert pickle.loads(pickle.dumps(Caps.any())) is Caps.any()\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", child], input=pickle.dumps(c(text)), env=env, check=True, timeout=60
    )


# -- intersection ------------------------------------------------------------------------

INTERSECTIONS = [
    # int and int range
    ("x,w=5", "x,w=[1,10]", "x,w=5"),
    ("x,w=11", "x,w=[1,10]", "EMPTY"),
    ("x,w=10", "x,w=[1,10]", "x,w=10"),
    # range and range
    ("x,w=[1,10]", "x,w=[5,20]", "x,w=[5,10]"),
    ("x,w=[1,5]", "x,w=[6,20]", "EMPTY"),
    ("x,w=[1,5]", "x,w=[5,20]", "x,w=5"),
    ("x,r=[0/1,30/1]", "x,r=[25/1,60/1]", "x,r=[25/1,30/1]"),
    ("x,r=[0/1,30/1]", "x,r=30000/1001", "x,r=30000/1001"),
    ("x,g=[0.0,1.0]", "x,g=[0.5,2.0]", "x,g=[0.5,1.0]"),
    # list and list, list and value
    ("x,f={a,b,c}", "x,f={c,b,d}", "x,f={b,c}"),
    ("x,f={a,b}", "x,f={c,d}", "EMPTY"),
    ("x,f={a,b}", "x,f=b", "x,f=b"),
    ("x,f={a,b}", "x,f=z", "EMPTY"),
    ("x,w={1,5,50}", "x,w=[2,60]", "x,w={5,50}"),
    ("x,w={[1,5],[10,20]}", "x,w=[4,12]", "x,w={[4,5],[10,12]}"),
    # array and array, element by element
    ("t,shape=<1,[1,8],224>", "t,shape=<1,3,224>", "t,shape=<1,3,224>"),
    ("t,shape=<1,[1,8],224>", "t,shape=<1,9,224>", "EMPTY"),
    ("t,shape=<1,3>", "t,shape=<1,3,1>", "EMPTY"),
    ("t,shape=<{1,2},[1,8]>", "t,shape=<2,[4,16]>", "t,shape=<2,[4,8]>"),
    ("t,shape={<1,2>,<3,4>}", "t,shape=<3,[1,9]>", "t,shape=<3,4>"),
    # names, missing fields, kinds
    ("video/raw,w=1", "audio/raw,w=1", "EMPTY"),
    ("x,w=1", "x,h=2", "x,w=1,h=2"),
    ("x,w=1", "x,w=1.0", "EMPTY"),
    ("x,w=1", "x,w=true", "EMPTY"),
    ("x,w=[1,10]", "x,w=[1.0,10.0]", "EMPTY"),
    ("x,w=1", "x,w=(string)1", "EMPTY"),
    # several structures
    ("a;b", "b;c", "b"),
    ("x,w=[1,10];x,w=[20,30]", "x,w=[5,25]", "x,w=[5,10];x,w=[20,25]"),
    # ANY and EMPTY
    ("ANY", "x,w=[1,10]", "x,w=[1,10]"),
    ("x,w=[1,10]", "ANY", "x,w=[1,10]"),
    ("ANY", "ANY", "ANY"),
    ("ANY", "EMPTY", "EMPTY"),
    ("EMPTY", "x", "EMPTY"),
]


def test_intersect() -> None:
    # The tables here are one test each, listing every wrong row: a pytest item per row
    # would spend more time in the per-test leak check than in the checks themselves.
    wrong = [
        (a, b, str(c(a).intersect(c(b))), expected)
        for a, b, expected in INTERSECTIONS
        if c(a).intersect(c(b)) != c(expected)
        or not c(b).intersect(c(a)).is_equal(c(expected))
        or c(a).can_intersect(c(b)) is c(expected).is_empty
    ]
    assert not wrong


def test_intersect_keeps_own_field_order_then_the_others() -> None:
    assert str(c("x,b=1,a=[1,5]").intersect(c("x,z=0,a=3"))) == "x,b=1,a=3,z=0"


def test_intersect_walks_both_preferences_zig_zag() -> None:
    # gst_caps_intersect's default mode walks the anti-diagonals of the pair grid, from
    # a's later structure down: b's first choice (2) comes before a's (1).
    a, b = c("s,v=1;s,v=2"), c("s,v=2;s,v=1")
    assert [s["v"] for s in a.intersect(b)] == [2, 1]
    assert [s["v"] for s in c("s,v=1;s,v=2;s,v=3").intersect(c("s,v=3;s,v=2;s,v=1"))] == [3, 2, 1]


def test_intersect_drops_what_an_earlier_result_covers() -> None:
    assert c("x,w=[1,10];x,w=5").intersect(c("x")) == c("x,w=[1,10]")


def test_intersect_short_circuits_same_and_any() -> None:
    a = c("video/raw,width=[1,100],format={RGBA8,BGRA8}")
    assert a.intersect(a) is a
    assert a.intersect(Caps(*a)) is a
    assert a.intersect(Caps.any()) is a
    assert Caps.any().intersect(a) is a


# -- subset ------------------------------------------------------------------------------

SUBSETS = [
    ("x,w=5", "x,w=[1,10]", True),
    ("x,w=[2,3]", "x,w=[1,10]", True),
    ("x,w=[1,10]", "x,w=[2,3]", False),
    ("x,w=[1,3]", "x,w={1,2,3}", True),
    ("x,w=[1,4]", "x,w={[1,2],3,4}", True),
    ("x,w=[1,4]", "x,w={[1,2],4}", False),
    ("x,g=[0.0,2.0]", "x,g={[0.0,1.0],[1.0,2.0]}", True),
    ("x,g=[0.0,2.0]", "x,g={[0.0,1.0],[1.5,2.0]}", False),
    ("x,f={a,b}", "x,f={b,c,a}", True),
    ("x,f={a,d}", "x,f={b,c,a}", False),
    ("x,f=a", "x,f={a,b}", True),
    ("t,s=<1,3>", "t,s=<1,[1,4]>", True),
    ("t,s=<1,3>", "t,s={<2,3>,<1,[1,4]>}", True),
    ("x,w=1,h=2", "x,w=1", True),  # more fields: narrower
    ("x,w=1", "x,w=1,h=2", False),  # a missing field accepts any value
    ("x,w=1", "y,w=1", False),
    ("x,w=1", "x,w=1.0", False),
    ("a", "a;b", True),
    ("a;b", "a", False),
    ("x,w=[1,10]", "x,w=[1,5];x,w=[6,10]", False),  # GStreamer's structure-wise limit
    ("EMPTY", "x", True),
    ("x", "ANY", True),
    ("ANY", "x", False),
    ("ANY", "ANY", True),
    ("x", "EMPTY", False),
]


def test_is_subset() -> None:
    wrong = [(a, b, expected) for a, b, expected in SUBSETS if c(a).is_subset(c(b)) is not expected]
    assert not wrong


def test_is_equal_ignores_order_and_redundancy() -> None:
    assert c("a;b").is_equal(c("b;a"))
    assert c("a;b") != c("b;a")
    assert c("x,w=[1,3]").is_equal(c("x,w={1,2,3}"))
    assert not c("a").is_equal(c("a;b"))


# -- fixation ----------------------------------------------------------------------------

FIXATIONS = [
    ("video/raw,width=[1,100]", "video/raw,width=1"),
    ("video/raw,format={RGBA8,BGRA8}", "video/raw,format=RGBA8"),
    ("video/raw,framerate=[15/2,60/1]", "video/raw,framerate=15/2"),
    ("x,g=[0.25,1.0]", "x,g=0.25"),
    ("x,w={[5,9],1}", "x,w=5"),
    ("t,shape=<1,{3,4},[7,9]>", "t,shape=<1,3,7>"),
    ("a,w={1,2};b", "a,w=1"),
    ("bytes", "bytes"),
]


def test_fixate() -> None:
    wrong = [
        (text, str(c(text).fixate()), expected)
        for text, expected in FIXATIONS
        if c(text).fixate() != c(expected) or not c(text).fixate().is_fixed
    ]
    assert not wrong


def test_fixate_returns_fixed_caps_themselves() -> None:
    caps = c("x,w=1")
    assert caps.fixate() is caps


@pytest.mark.parametrize("text", ["ANY", "EMPTY"])
def test_fixate_refuses_caps_naming_no_format(text: str) -> None:
    with pytest.raises(ValueError, match="names no format"):
        c(text).fixate()


# -- laws, over generated caps -----------------------------------------------------------

_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_/+.-]{0,6}", fullmatch=True).filter(
    lambda n: n not in {"ANY", "EMPTY", "NONE"}
)
_FIELDS = st.from_regex(r"[A-Za-z][A-Za-z0-9_.+-]{0,6}", fullmatch=True)
_TRICKY = st.sampled_from(["", "30", "1/2", "true", "No", "inf", "a b", 'q"t', "b\\s", "é", "<"])
_SCALARS: st.SearchStrategy[Value] = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.fractions(min_value=-(10**9), max_value=10**9, max_denominator=10**6),
    st.booleans(),
    st.text(max_size=6),
    _TRICKY,
)


def _ranges(bound: st.SearchStrategy[_N]) -> st.SearchStrategy[tuple[_N, _N]]:
    """Two different bounds, low first."""
    return st.tuples(bound, bound).filter(lambda t: t[0] != t[1]).map(lambda t: (min(t), max(t)))


_RANGES: st.SearchStrategy[Value] = st.one_of(
    _ranges(st.integers(-(2**63), 2**64 - 1)).map(lambda t: IntRange(*t)),
    _ranges(st.floats(allow_nan=False)).map(lambda t: FloatRange(*t)),
    _ranges(st.integers(-(10**6), 10**6)).map(
        lambda t: FractionRange(Fraction(t[0], 7), Fraction(t[1], 7))
    ),
)


def _containers(inner: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    return st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(ValueList),
        st.lists(inner, max_size=3).map(ValueArray),
    )


_VALUES = st.recursive(_SCALARS | _RANGES, _containers, max_leaves=6)
_CAPS = st.one_of(
    st.just(Caps.any()),
    st.lists(
        st.builds(Structure, _NAMES, st.dictionaries(_FIELDS, _VALUES, max_size=4)), max_size=3
    ).map(lambda ss: Caps(*ss)),
)


@given(_CAPS)
def test_text_round_trips(caps: Caps) -> None:
    again = Caps.from_string(str(caps))
    assert again == caps
    assert str(again) == str(caps)


# For the algebra laws, a small universe, so that generated caps overlap often.
_SMALL_INTS = st.integers(0, 6)
_SMALL_SCALARS: st.SearchStrategy[Value] = st.one_of(
    _SMALL_INTS,
    st.sampled_from(["p", "q", "r"]),
    st.sampled_from([Fraction(1, 2), Fraction(1), Fraction(3, 2)]),
    st.sampled_from([0.5, 1.0]),
)
_SMALL_RANGES: st.SearchStrategy[Value] = st.one_of(
    _ranges(_SMALL_INTS).map(lambda t: IntRange(*t)),
    _ranges(st.sampled_from([0.0, 0.5, 1.0, 2.0])).map(lambda t: FloatRange(*t)),
    _ranges(st.integers(0, 4)).map(lambda t: FractionRange(Fraction(t[0], 2), Fraction(t[1], 2))),
)


def _small_containers(inner: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    return st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(ValueList),
        st.lists(inner, min_size=1, max_size=2).map(ValueArray),
    )


_SMALL_VALUES = st.recursive(_SMALL_SCALARS | _SMALL_RANGES, _small_containers, max_leaves=4)
_SMALL_STRUCTURES = st.builds(
    Structure,
    st.sampled_from(["a", "b"]),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), _SMALL_VALUES, max_size=3),
)
_SMALL_CAPS = st.one_of(
    st.just(Caps.any()),
    st.lists(_SMALL_STRUCTURES, max_size=3).map(lambda ss: Caps(*ss)),
)
_ONE_STRUCTURE = _SMALL_STRUCTURES.map(Caps)
_FIXED = st.builds(
    Structure,
    st.sampled_from(["a", "b"]),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), _SMALL_SCALARS, max_size=3),
).map(Caps)


@given(_ONE_STRUCTURE, _ONE_STRUCTURE)
def test_intersection_of_single_structures_commutes(a: Caps, b: Caps) -> None:
    assert a.intersect(b) == b.intersect(a)


@given(_SMALL_CAPS, _SMALL_CAPS)
def test_intersection_commutes_as_sets(a: Caps, b: Caps) -> None:
    ab, ba = a.intersect(b), b.intersect(a)
    assert ab.is_empty == ba.is_empty
    assert ab.is_equal(ba)
    assert a.can_intersect(b) is b.can_intersect(a) is not ab.is_empty


@given(_SMALL_CAPS, _SMALL_CAPS, _FIXED)
def test_intersection_accepts_exactly_what_both_accept(a: Caps, b: Caps, point: Caps) -> None:
    assert point.is_subset(a.intersect(b)) is (point.is_subset(a) and point.is_subset(b))


@given(_SMALL_CAPS, _SMALL_CAPS)
def test_intersection_is_a_subset_of_both(a: Caps, b: Caps) -> None:
    ab = a.intersect(b)
    assert ab.is_subset(a)
    assert ab.is_subset(b)


@given(_FIXED)
def test_fixed_caps_intersect_with_an_equal_copy_to_themselves(a: Caps) -> None:
    copy = Caps(Structure(a.name, dict(a[0])))
    assert a[0].intersect(copy[0]) == a[0]
    assert a.intersect(copy) == a


@given(_CAPS)
def test_fixate_gives_fixed_caps_inside_the_original(caps: Caps) -> None:
    if caps.is_any or caps.is_empty:
        return
    fixed = caps.fixate()
    assert fixed.is_fixed
    assert fixed.is_subset(caps)


@given(_SMALL_CAPS)
def test_subset_is_reflexive_and_any_and_empty_bound_everything(caps: Caps) -> None:
    assert caps.is_subset(caps)
    assert caps.is_subset(Caps.any())
    assert Caps.empty().is_subset(caps)


# -- against GStreamer -------------------------------------------------------------------

_GST = shutil.which("gst-launch-1.0")


@pytest.mark.gst
@pytest.mark.skipif(_GST is None, reason="needs GStreamer: apt install gstreamer1.0-tools")
@pytest.mark.parametrize(
    "text",
    [
        "video/raw,format=RGBA8,width=1920,height=1080,framerate=30/1",
        "tensor,dtype=float32,shape=<1,3,224,224>",
        'x,s="two words",q="a\\"b",n=(string)30,b=true,g=0.5,r=30000/1001,neg=-7',
        "x,pixel-aspect-ratio=1/1,colorimetry=2:4:7:1",
    ],
)
def test_gstreamer_reads_our_text_as_we_do(text: str) -> None:
    # gst-launch -v prints the caps it negotiated, typed: 'x, s=(string)"two\ words", ...'.
    assert _GST is not None
    caps = c(text)
    # gst-launch reads its own quotes first: quote the property value for it.
    launch_quoted = '"' + str(caps).replace("\\", "\\\\").replace('"', '\\"') + '"'
    pipeline = ["fakesrc", "num-buffers=1", "!", "capsfilter", f"caps={launch_quoted}", "!"]
    out = subprocess.run(
        [_GST, "-v", *pipeline, "fakesink"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if "fakesink0.GstPad:sink: caps = " in ln)
    assert c(line.split("caps = ", 1)[1]) == caps
