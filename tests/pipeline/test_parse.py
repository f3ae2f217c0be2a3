"""The gst-launch grammar (`pipeline._lex`, `_parse`, `_print`): good lines, bad lines, round trips.

Bad input gets at least as many tests as good input; every error is checked for its
column. The hypothesis tests hold h11's fuzz invariant (any text parses or raises
ParseError) and the round trip ``parse(to_launch(d))`` ~ ``d``.
"""

from __future__ import annotations

import doctest
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallax._errors import ParseError
from parallax.pipeline._description import (
    BIN_TYPES,
    BinDecl,
    Description,
    ElementDecl,
    Endpoint,
    Link,
    Prop,
    strip_positions,
)
from parallax.pipeline._lex import DEFAULT_CAPS_NAMES
from parallax.pipeline._parse import parse
from parallax.pipeline._print import to_launch

DOC = Path(__file__).resolve().parents[2] / "docs" / "launch-syntax.md"


def error(text: str, **kwargs: frozenset[str]) -> ParseError:
    """The ParseError that `text` raises (fails the test if it parses)."""
    with pytest.raises(ParseError) as info:
        parse(text, **kwargs)
    assert info.value.text == text
    return info.value


def factories(desc: Description) -> list[str]:
    return [e.factory for e in desc.elements]


def pairs(desc: Description) -> list[tuple[int, int]]:
    return [(ln.src.element, ln.sink.element) for ln in desc.links]


def round_trips(desc: Description) -> None:
    again = parse(to_launch(desc))
    assert again.same_structure(desc)
    assert strip_positions(again) == strip_positions(desc)


# --- Chains and properties -----------------------------------------------------------------


def test_single_element() -> None:
    d = parse("fakesrc")
    assert d == Description(
        text="fakesrc",
        elements=(ElementDecl(0, "fakesrc", None, (), 1, None),),
        bins=(),
        links=(),
    )


def test_chain_links_in_order_with_columns() -> None:
    d = parse("a ! b ! c")
    assert factories(d) == ["a", "b", "c"]
    assert d.links == (
        Link(Endpoint(0, None, 1), Endpoint(1, None, 5), None, None, 3),
        Link(Endpoint(1, None, 5), Endpoint(2, None, 9), None, None, 7),
    )


def test_links_need_no_spaces() -> None:
    d = parse("a!b !c! d")
    assert pairs(d) == [(0, 1), (1, 2), (2, 3)]


def test_several_chains_separated_by_whitespace() -> None:
    d = parse("a ! b\n\tc ! d   e")
    assert factories(d) == ["a", "b", "c", "d", "e"]
    assert pairs(d) == [(0, 1), (2, 3)]


def test_properties_in_order_with_columns() -> None:
    d = parse("filesrc location=/tmp/in.bin num-buffers=10")
    assert d.elements[0].props == (
        Prop("location", "/tmp/in.bin", 9, 18),
        Prop("num-buffers", "10", 30, 42),
    )


def test_double_quoted_value_with_escapes() -> None:
    d = parse(r'identity label="a \"quoted\" value\\ here" ! fakesink')
    (prop,) = d.elements[0].props
    assert prop.value == r'a "quoted" value\ here'
    assert prop.value_column == 16


def test_single_quoted_value() -> None:
    (prop,) = parse("identity label='it''s' ! fakesink".replace("''", r"\'")).elements[0].props
    assert prop.value == "it's"


def test_quoted_value_keeps_bangs_and_parens() -> None:
    (prop,) = parse('identity label="a ! (b)" ! fakesink').elements[0].props
    assert prop.value == "a ! (b)"


def test_empty_quoted_value() -> None:
    (prop,) = parse('identity label=""').elements[0].props
    assert prop.value == ""


def test_unquoted_value_runs_to_whitespace_like_gstreamer() -> None:
    # parse.l's _string is {_char}+: any non-space characters, '!' and ')' included.
    (prop,) = parse("fakesrc num-buffers=1! fakesink").elements[0].props
    assert prop.value == "1!"


def test_unquoted_value_backslash_escapes_next_character() -> None:
    d = parse(r"fakesrc data=Subbuffer\ data other=a\\b")
    assert [p.value for p in d.elements[0].props] == ["Subbuffer data", "a\\b"]


def test_unquoted_value_keeps_escapes_inside_embedded_quotes() -> None:
    # GStreamer's PIPELINE14/15: gst_parse_unescape leaves quoted parts alone.
    text = r'capsfilter caps=application/x-rtp,sprop=(string)"x\"x\,x"'
    (prop,) = parse(text).elements[0].props
    assert prop.value == r'application/x-rtp,sprop=(string)"x\"x\,x"'


def test_spaces_around_equals_as_gstreamer() -> None:
    d = parse("fakesrc name=donald num-buffers= 27 silent =TruE sizetype = 3")
    e = d.elements[0]
    assert e.name == "donald"
    assert [(p.name, p.value) for p in e.props] == [
        ("num-buffers", "27"),
        ("silent", "TruE"),
        ("sizetype", "3"),
    ]
    assert e.props[0].value_column == 34


def test_name_is_taken_out_of_props() -> None:
    e = parse("queue max-size-buffers=3 name=q1 leaky=2").elements[0]
    assert e.name == "q1"
    assert [p.name for p in e.props] == ["max-size-buffers", "leaky"]


def test_property_names_allow_dashes_underscores_and_double_colons() -> None:
    (prop,) = parse("bin0 child::sub_prop-x=1").elements[0].props
    assert prop.name == "child::sub_prop-x"


def test_identifiers_may_start_with_digits_or_underscores() -> None:
    d = parse("fakesrc name=100 fakesink name=101 100. ! 101. _x ! 1__dentity")
    assert pairs(d) == [(0, 1), (2, 3)]


# --- References ----------------------------------------------------------------------------


def test_reference_as_source_with_any_pad() -> None:
    d = parse("fakesrc ! tee name=t  t. ! queue ! fakesink")
    assert d.links[1].src == Endpoint(1, None, 23)
    assert pairs(d) == [(0, 1), (1, 2), (2, 3)]


def test_reference_with_pad_as_source_and_sink() -> None:
    d = parse("tee name=t  mux name=m  t.src_1 ! queue ! m.sink_0")
    assert d.links[0].src == Endpoint(0, "src_1", 25)
    assert d.links[1].sink == Endpoint(1, "sink_0", 43)


def test_reference_as_sink_any_pad() -> None:
    d = parse("fakesrc ! x.  identity name=x ! fakesink")
    assert d.links[0].sink == Endpoint(1, None, 11)


def test_forward_references() -> None:
    d = parse("t. ! fakesink  fakesrc ! tee name=t")
    assert factories(d) == ["fakesink", "fakesrc", "tee"]
    assert pairs(d) == [(2, 0), (1, 2)]


def test_references_may_be_followed_by_a_bang_without_space() -> None:
    d = parse("a name=s b name=id1 c name=id2 d name=k s. ! id1. id1.! id2.sink id2.src!k.sink")
    assert pairs(d) == [(0, 1), (1, 2), (2, 3)]
    assert [(ln.src.pad, ln.sink.pad) for ln in d.links] == [
        (None, None),
        (None, "sink"),
        ("src", "sink"),
    ]


def test_request_pad_templates_are_pad_names() -> None:
    d = parse("fakesrc ! tee name=tee .src_%u ! queue")
    assert d.links[1].src.pad == "src_%u"


def test_pad_references_on_elements() -> None:
    d = parse("fakesrc .src ! .sink identity .src ! .sink fakesink")
    assert [(ln.src.pad, ln.sink.pad) for ln in d.links] == [("src", "sink"), ("src", "sink")]
    assert d.links[0].src.column == 1  # the element's word, not the pad's


def test_element_linked_to_itself_through_references() -> None:
    d = parse("identity name=x  x. ! x.")
    assert pairs(d) == [(0, 0)]


def test_deep_name_resolution() -> None:
    d = parse(
        "deepsrc. ! fakesink fakesrc ! ( identity ! ( identity ! ( identity name=deepsrc ) ) )"
    )
    assert d.links[0].src.element == 4


# --- Caps filters ---------------------------------------------------------------------------


def test_caps_filter_between_links() -> None:
    d = parse("a ! video/raw,width=320 ! b")
    (link,) = d.links
    assert (link.caps, link.caps_column, link.column) == ("video/raw,width=320", 5, 3)
    assert pairs(d) == [(0, 1)]


def test_caps_filter_with_spaces_runs_to_the_next_bang() -> None:
    d = parse("a !   video/raw, width=320, height=240   ! b")
    assert d.links[0].caps == "video/raw, width=320, height=240"
    assert d.links[0].caps_column == 7


def test_quoted_caps_filter() -> None:
    d = parse('a ! "video/raw, width=320" ! b')
    assert d.links[0].caps == "video/raw, width=320"
    assert d.links[0].caps_column == 5


def test_single_quoted_caps_filter_with_escapes() -> None:
    d = parse(r"a ! 'x/y, s=(string)\'q\'' ! b")
    assert d.links[0].caps == "x/y, s=(string)'q'"


def test_caps_names_are_caps() -> None:
    d = parse("a ! ANY ! b ! bytes ! c ! tensor ! d ! EMPTY ! e")
    assert [ln.caps for ln in d.links] == ["ANY", "bytes", "tensor", "EMPTY"]


def test_caps_names_are_configurable() -> None:
    assert parse("a ! frames ! b", caps_names=frozenset({"frames"})).links[0].caps == "frames"
    assert factories(parse("a ! bytes ! b", caps_names=frozenset())) == ["a", "bytes", "b"]


def test_word_with_comma_or_paren_is_caps() -> None:
    assert parse("a ! x,y=1 ! b").links[0].caps == "x,y=1"
    assert parse("a ! x(y) ! b").links[0].caps == "x(y)"


def test_caps_with_structures_ranges_and_arrays() -> None:
    caps = [
        "video/raw,  format=(string)YUY2; video/raw, format=(string)YV12",
        "audio/x-raw, width=[16,  32], depth={16, 24, 32}, signed=TRUE",
        "audio/x-opus, channel-mapping=(int)<0, 1>",
        'x/y, s=(string)"a ! b"',
        r'x/y, s=(string)"a\"b\,c"',
    ]
    for c in caps:
        assert parse(f"fakesrc ! {c} ! fakesink").links[0].caps == c


def test_caps_filter_escapes_resolve_outside_quotes_as_gstreamer() -> None:
    # grammar.y unwraps the caps text before gst_caps_from_string; GStreamer's own test
    # line "channel-mapping=(int)<0,\ 1>" relies on it.
    d = parse(r"fakesrc ! audio/x-opus, channel-mapping=(int)<0,\ 1>, s=(string)\!x ! fakesink")
    assert d.links[0].caps == "audio/x-opus, channel-mapping=(int)<0, 1>, s=(string)!x"
    assert (
        to_launch(d)
        == 'fakesrc ! "audio/x-opus, channel-mapping=(int)<0, 1>, s=(string)!x" ! fakesink'
    )


def test_caps_filter_with_pads_and_references() -> None:
    d = parse("t.src_0 ! video/x-raw ! .sink q  tee name=t")
    (link,) = d.links
    assert (link.src, link.sink.pad, link.caps) == (Endpoint(1, "src_0", 1), "sink", "video/x-raw")


def test_caps_filter_into_and_out_of_bins() -> None:
    d = parse("a ! x/y ! ( b ) ! z/w ! c")
    assert [(ln.src.element, ln.sink.element, ln.caps) for ln in d.links] == [
        (0, 1, "x/y"),
        (1, 2, "z/w"),
    ]


# --- Bins -----------------------------------------------------------------------------------


def test_plain_bin() -> None:
    d = parse("( a ! b )")
    assert d.bins == (BinDecl(0, "bin", None, (), 1, None),)
    assert [e.bin for e in d.elements] == [0, 0]


def test_bin_with_factory_name_and_properties() -> None:
    d = parse("pipeline.( name=b1 async-handling=true a ! b )")
    (b,) = d.bins
    assert (b.factory, b.name, b.column) == ("pipeline", "b1", 10)
    assert b.props == (Prop("async-handling", "true", 20, 35),)


def test_bin_types_are_bin_and_pipeline() -> None:
    d = parse("bin.( a ) ! pipeline.( b ! pipeline . ( c ) )")
    assert [(b.factory, b.parent) for b in d.bins] == [
        ("bin", None),
        ("pipeline", None),
        ("pipeline", 1),
    ]
    assert BIN_TYPES == ("bin", "pipeline")


def test_unknown_bin_type_error_points_at_the_type_name() -> None:
    e = error("fakesrc ! foo.( identity ) ! fakesink")
    assert e.column == 11
    assert str(e).splitlines()[1:] == [
        "  fakesrc ! foo.( identity ) ! fakesink",
        "            ^",
    ]


def test_to_launch_refuses_an_unknown_bin_type() -> None:
    d = Description(
        "", (ElementDecl(0, "a", None, (), 0, 0),), (BinDecl(0, "foo", None, (), 0, None),), ()
    )
    with pytest.raises(ValueError, match="bin 0 has type 'foo'"):
        to_launch(d)


def test_bin_reference_with_spaces_before_paren() -> None:
    assert parse("bin . ( a )").bins[0].factory == "bin"
    assert parse("bin . ( a )").bins[0].column == 7


def test_link_into_bin_goes_to_first_element_of_first_chain() -> None:
    d = parse("fakesrc ! ( identity ! fakesink  fakesrc ! fakesink )")
    assert pairs(d)[0] == (0, 1)


def test_link_out_of_bin_comes_from_last_element_of_last_chain() -> None:
    d = parse("( fakesrc ! identity  fakesrc ! queue ) ! fakesink")
    assert pairs(d)[-1] == (3, 4)
    assert d.links[-1].column == 41


def test_nested_bins_record_parents_and_innermost_bin() -> None:
    d = parse("pipeline.( name=john fakesrc ! ( bin. ( queue ! identity !( queue ! fakesink )) ))")
    assert [(b.key, b.factory, b.parent) for b in d.bins] == [
        (0, "pipeline", None),
        (1, "bin", 0),
        (2, "bin", 1),
        (3, "bin", 2),
    ]
    assert [e.bin for e in d.elements] == [0, 2, 2, 3, 3]
    assert pairs(d) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_bin_pads_apply_to_its_edge_elements() -> None:
    d = parse("( a ! b ) .src ! .sink ( c ! d )")
    assert d.links[1] == Link(Endpoint(1, "src", 7), Endpoint(2, "sink", 26), None, None, 16)


def test_bins_back_to_back_and_links_between_bins() -> None:
    d = parse("(a)!(b)  (c) ! d")
    assert pairs(d) == [(0, 1), (2, 3)]
    assert [e.bin for e in d.elements] == [0, 1, 2, None]


def test_bin_chains_may_use_references_inside() -> None:
    d = parse("fakesink name=sink identity name=id ( fakesrc num-buffers=4 ! id. ) id. ! sink.")
    assert pairs(d) == [(2, 1), (1, 0)]


def test_element_directly_followed_by_paren() -> None:
    d = parse("fakesrc(identity)")
    assert [e.bin for e in d.elements] == [None, 0]


def test_ten_thousand_nested_bins_do_not_recurse() -> None:
    n = 10_000
    d = parse("(" * n + " a " + ")" * n)
    assert len(d.bins) == n
    assert d.elements[0].bin == n - 1
    assert parse(to_launch(d)).same_structure(d)


# --- GStreamer's own parse-launch.c lines --------------------------------------------------

# From gstreamer/tests/check/pipelines/parse-launch.c (test_launch_lines and PIPELINE1..15),
# minus URIs (PIPELINE12/13) and ':' (link all pads), which we reject (see the gst tests).
GST_ACCEPTED = [
    "filesrc location=music.mp3 ! identity silent=true ! fakesink silent=true",
    "filesrc location=music.ogg ! tee ! identity silent=true ! identity silent=true ! "
    "fakesink silent=true",
    "filesrc location=http://domain.com/music.mp3 ! identity silent=true ! fakesink silent=true",
    "filesrc location=movie.avi ! tee name=demuxer ! ( queue ! identity silent=true ! "
    "fakesink silent=true ) ( demuxer. ! queue ! identity silent=true ! fakesink silent=true )",
    "fakesrc ! video/x-raw ! fakesink silent=true",
    "fakesrc !   video/raw,  format=(string)YUY2; video/raw, format=(string)YV12 ! "
    "fakesink silent=true",
    "fakesrc ! audio/x-raw, width=[16,  32], depth={16, 24, 32}, signed=TRUE ! "
    "fakesink silent=true",
    "fakesrc ! identity silent=true ! identity silent=true ! identity silent=true ! "
    "fakesink silent=true",
    "fakesrc name=100 fakesink name=101 silent=true 100. ! 101.",
    "fakesrc ! 1__dentity ! fakesink silent=true",
    "fakesrc ! tee name=t  t.src_12 ! queue ! fakesink  t.src_3 ! queue ! fakesink",
    "( fakesrc ) ! fakesink",
    "( fakesrc name=dasrc ) dasrc. ! fakesink",
    "deepsrc. ! fakesink fakesrc  ! ( identity ! ( identity ! (  identity name=deepsrc ) ) )",
    "fakesrc ! audio/x-opus, channel-mapping=(int)<0, 1> ! fakesink silent=true",
    r"fakesrc ! audio/x-opus, channel-mapping=(int)<0,\ 1> ! fakesink silent=true",
    'fakesrc ! capsfilter caps="audio/x-opus, channel-mapping=(int)<0, 1>" ! fakesink silent=true',
    r'fakesrc ! capsfilter caps="audio/x-opus, channel-mapping=(int)<0,\ 1>" ! fakesink',
    "fakesrc",
    r"fakesrc name=donald num-buffers= 27 silent =TruE sizetype = 3 data=   Subbuffer\ data",
    "fakesrc identity silent=true fakesink silent=true",
    "fakesrc num-buffers=4 .src ! identity silent=true !.sink identity silent=true .src ! "
    ".sink fakesink silent=true",
    "fakesrc num-buffers=4 name=src identity silent=true name=id1 identity silent=true "
    "name = id2 fakesink silent=true name =sink src. ! id1. id1.! id2.sink id2.src!sink.sink",
    'pipeline.(name="john" fakesrc num-buffers=4 ! ( bin. (  queue ! identity silent=true !'
    "( queue ! fakesink silent=true )) ))",
    "fakesrc num-buffers=4 ! tee name=tee .src_%u ! queue ! fakesink silent=true tee.src_%u ! "
    'queue ! fakesink silent=true queue name ="foo" ! fakesink silent=true tee.src_%u ! foo.',
    "fakesrc num-buffers=4 ! test. fakesink silent=true name=test",
    '( fakesrc num-buffers="4"  ) ! identity silent=true ! fakesink silent=true',
    'fakesink silent=true name = sink identity silent=true name=id ( fakesrc num-buffers="4" ! '
    "id. ) id. ! sink.",
    r'capsfilter caps=application/x-rtp,sprop-parameter-sets=(string)"x\,x"',
    r'capsfilter caps=application/x-rtp,sprop-parameter-sets=(string)"x\"x\,x"',
]


def test_gstreamer_accepted_lines_parse_and_round_trip() -> None:
    for text in GST_ACCEPTED:
        round_trips(parse(text))


# From the same file's expected_failures and leaking_failures: the ones that fail at the
# syntax level (the others fail on properties, caps, factories or pads: the builder's job).
GST_REJECTED = [
    ("", 1, "empty pipeline"),
    ("fakesrc ! ", 9, "link '!' has no sink element"),
    (" ! fakesink silent=true", 2, "link '!' has no source element"),
    ("borky://fdaffd ! fakesink silent=true", 1, "URIs are not supported"),
    ("fakesrc ! borky://fdaffd", 11, "has no sink element"),
    ("fakesrc name=src fakesink silent=true name=sink noexiste. ! sink.", 49, "noexiste"),
    ("fakesrc name=src fakesink silent=true name=sink src. ! noexiste.", 56, "noexiste"),
    ("! identity silent=true ! identity silent=true ! fakesink silent=true", 1, "no source"),
    ("bin.( )", 5, "empty bin"),
    ("( filesrc blocksize=4 location=/dev/null @ )", 42, "presets"),
    ('( fakesrc num-buffers="4" ! ) identity silent=true ! fakesink silent=true', 27, "no sink"),
    (
        'pipeline.(name="john" fakesrc num-buffers=4 ( bin. ( ! queue ! identity silent=true !'
        "( queue ! fakesink silent=true )) ))",
        54,
        "no source element",
    ),
    ("fakesrc ! .ch0 .ch1 fakesink", 16, "already names the sink pad"),
    ("fakesrc .ch0 .ch1 !  fakesink", 14, "already names the source pad"),
    ("(fakesrc .ch1) !  fakesink", 10, "not followed by a link"),
    ("(fakesrc name=s  s.ch1) !  fakesink", 18, "reference 's.ch1' is not linked"),
    ("s.ch1 fakesrc ! fakesink", 1, "reference 's.ch1' is not linked"),
    ("fakesrc ! fakesink s.ch1", 20, "reference 's.ch1' is not linked"),
    ("http://eff.org fakesrc ! fakesink", 1, "caps filter 'http://eff.org'"),
    ("(", 1, "unclosed '('"),
    (")", 1, "unmatched ')'"),
    (")  (", 1, "unmatched ')'"),
    ("fakesrc ! identity silent=true ! sgsdfagfd @ gfdgfdsgfsgSF", 44, "presets"),
    ("fakesrc ! .foo file:///dev/null", 16, "URIs are not supported"),
]


def outcome(text: str) -> Description | ParseError:
    """What `parse` makes of `text`: a description, or the ParseError it raised."""
    try:
        return parse(text)
    except ParseError as e:
        return e


def check_errors(table: list[tuple[str, int, str]]) -> None:
    """Parse every line of `table`; fail listing each that did not raise as expected."""
    wrong: list[str] = []
    for text, column, message in table:
        got = outcome(text)
        if isinstance(got, Description):
            wrong.append(f"{text!r}: parsed, expected {message!r} at {column}")
        elif message not in got.message or got.column != column or got.text != text:
            wrong.append(
                f"{text!r}: expected {message!r} at {column}, got {got.message!r} at {got.column}"
            )
    assert not wrong, "\n".join(wrong)


def test_gstreamer_rejected_lines_fail_with_column() -> None:
    check_errors(GST_REJECTED)


# --- Errors: each with its column -----------------------------------------------------------

ERRORS = [
    # empty
    ("", 1, "empty pipeline"),
    ("   \n\t ", 1, "empty pipeline"),
    # links without an element on one side
    ("! a", 1, "link '!' has no source element"),
    ("  !", 3, "link '!' has no source element"),
    ("a !", 3, "link '!' has no sink element"),
    ("a ! b !   ", 7, "link '!' has no sink element"),
    ("a ! ! b", 5, "expected an element after '!', found another '!'"),
    ("a !! b", 4, "found another '!'"),
    ("( a ! )", 5, "link '!' has no sink element"),
    ("( ! a )", 3, "link '!' has no source element"),
    ("a ! t. ! b  c name=t", 8, "reference 't.' ends the chain"),
    # properties
    ("a key=", 6, "expected a property value after 'key='"),
    ("a key=   ", 6, "expected a property value after 'key='"),
    ("a key= ! b", 6, "found '!'"),
    ("=value a", 1, "'=' has no property name"),
    ("a ! =value", 5, "'=' has no property name"),
    ("a b=1 =2", 7, "'=' has no property name"),
    ("key=value a", 1, "property 'key' before any element"),
    ("a ! key=value b", 5, "property 'key' has no element"),
    ("t. name=x ! a", 4, "a reference cannot take properties: 't.'"),
    ("a name=t  a ! t. name=x", 18, "a reference cannot take properties"),
    ("( a ) name=x", 7, "after ')'"),
    ("a .src name=x ! b", 8, "after pad reference '.src'"),
    ('a k="abc', 5, "unterminated string"),
    ("a k='abc ! b", 5, "unterminated string"),
    ('a k="abc\\"', 5, "unterminated string"),
    ('a k="x"y', 8, 'expected a space after the closing "'),
    ("a k=x\\", 6, "escapes nothing"),
    ("a name=", 7, "expected a property value"),
    ('a name=""', 8, "name= needs a non-empty value"),
    ("a name=x name=y", 10, "a second name= on one element"),
    ("( name=x name=y a )", 10, "a second name= on one bin"),
    # names and references
    ("a name=x b name=x", 12, "duplicate name 'x': already the name of the element at column 3"),
    ("( name=x a ) b name=x", 16, "already the name of the bin"),
    ("a name=x ( name=x b )", 12, "duplicate name 'x'"),
    ("t. ! a", 1, "no element named 't'"),
    ("a ! t.sink", 5, "no element named 't'"),
    ("a ! b  x. ! y.", 8, "no element named 'x'"),
    ("( name=b1 a ) b1. ! c", 15, "'b1' names a bin"),
    ("t.", 1, "reference 't.' is not linked"),
    ("a name=t  t. b", 11, "reference 't.' is not linked"),
    ("a name=t  t. .src ! b", 14, "write 't.src'"),
    ("a name=t  b ! .sink t.", 15, "write 't.sink'"),
    ("a ! t.x,y", 8, "pad lists"),
    ("a name=t  t.src_0,src_1 ! b", 18, "pad lists"),
    ("a .src,sink ! b", 7, "pad lists"),
    ("a.b.c", 4, "invalid character '.'"),
    # pad references
    (".src a", 1, "pad reference '.src' has no element"),
    ("a .src", 3, "pad reference '.src' is not followed by a link"),
    ("a .src b", 3, "pad reference '.src' is not followed by a link"),
    ("a .src .src ! b", 8, "already names the source pad"),
    ("a ! .sink .sink b", 11, "already names the sink pad"),
    ("a ! b. .sink", 8, "pad reference '.sink' has no element"),
    ("a . ! b", 3, "expected a pad name after '.'"),
    ("a ! .", 5, "expected a pad name after '.'"),
    # caps filters out of place
    ("a ! video/raw", 5, "caps filter 'video/raw' has no sink element"),
    ("a ! video/raw, width=320   ", 5, "has no sink element"),
    ("video/raw ! a", 1, "caps filter 'video/raw' has no source element"),
    ("a ! x/y ! z/w ! b", 11, "caps filter 'z/w' follows another caps filter"),
    ("a ! x/y ! ANY ! b", 11, "follows another caps filter"),
    ("ANY ! a", 1, "caps filter 'ANY' has no source element"),
    ("a ! b tensor", 7, "caps filter 'tensor' has no source element"),
    ("a ! bytes", 5, "caps filter 'bytes' has no sink element"),
    ('a ! "x/y"', 5, "caps filter '\"x/y\"' has no sink element"),
    ('a ! "x/y" b', 11, "expected '!' after the quoted caps filter"),
    ('a ! "x/y', 5, "unterminated string"),
    ('a ! x/y,s="q ! b', 11, "unterminated string"),
    ('a ! "" ! b', 5, "empty caps filter"),
    ('a ! "  " ! b', 5, "empty caps filter"),
    ("a ! x/y\\", 8, "escapes nothing"),
    ("( a ! x/y ) ! b", 7, "has no sink element"),
    ("/dev/null ! a", 1, "has no source element"),
    ("a,b ! c", 1, "caps filter 'a,b' has no source element"),
    # bins
    ("(", 1, "unclosed '('"),
    ("( a", 1, "unclosed '('"),
    ("( a ( b )", 1, "unclosed '('"),
    ("( a ( b", 5, "unclosed '('"),
    ("a )", 3, "unmatched ')'"),
    ("( a ) )", 7, "unmatched ')'"),
    ("()", 1, "empty bin"),
    ("bin.( )", 5, "empty bin"),
    ("a name=x ( x. ! x. )", 10, "empty bin"),
    ("( fakesrc num-buffers=1) ! b", 1, "the value of 'num-buffers' at column 23 ends in ')'"),
    ("a ! ( t. ! b )  c name=t", 3, "the bin at column 5 starts with reference 't.'"),
    ("( a ! t. ) ! b  c name=t", 12, "the bin at column 1 ends with reference 't.'"),
    # bin types: GStreamer's 'no bin "foo"', at the type name
    ("a ! foo.( b ) ! c", 5, "no bin type 'foo' (a typed bin is 'bin.( ... )' or 'pipeline"),
    ("a ! bins.( b )", 5, "no bin type 'bins' (did you mean 'bin.('?"),
    ("a ! Pipeline . ( b )", 5, "did you mean 'pipeline.('?"),
    ("a ! y.  ( b name=y )", 5, "no bin type 'y'"),  # 'y. (' is 'y.(', as in GStreamer
    ("( a ! queue.( b ) )", 7, "no bin type 'queue'"),
    ("foo.( name=x a ! ! b )", 1, "no bin type 'foo'"),  # the type before what is inside
    # caps features are shown whole, as written
    (
        "a ! video/x-raw(memory:SystemMemory) ! video/x-raw(memory:SystemMemory) ! b",
        40,
        "caps filter 'video/x-raw(memory:SystemMemory)' follows another caps filter",
    ),
    (
        "video/x-raw(memory:SystemMemory),format=RGBA ! b",
        1,
        "caps filter 'video/x-raw(memory:SystemMemory),format=RGBA' has no source element",
    ),
    (
        "a ! video/x-raw(memory:SystemMemory),format=RGBA",
        5,
        "caps filter 'video/x-raw(memory:SystemMemory),format=RGBA' has no sink element",
    ),
    ("a x/y(f:g)z", 3, "caps filter 'x/y(f:g)z' has no source element"),
    ("a ! ( b x/y(f:g) )", 9, "caps filter 'x/y(f:g)' has no source element"),
    # characters
    ("a @ b", 3, "presets"),
    ("a : b", 3, "':' (link all pads) is not supported"),
    ("a ; b", 3, "invalid character ';'"),
    ("a { b", 3, "invalid character '{'"),
    ("a$ ! b", 2, "invalid character '$'"),
    ("fäkesrc", 2, "invalid character 'ä'"),
    ("a\u00a0! b", 2, "invalid character '\\xa0'"),
    ('a ! "q" ! b "c"', 13, "unexpected quoted string"),
    ("a ! 'x", 5, "unterminated string"),
    ('"x', 1, "unterminated string"),
]


def test_error_messages_and_columns() -> None:
    check_errors(ERRORS)


def test_errors_point_into_multiline_text() -> None:
    e = error("fakesrc ! identity\n  ! ! fakesink")
    assert e.column == 24
    assert str(e).splitlines()[1:] == ["    ! ! fakesink", "      ^"]


def test_error_shows_line_and_caret() -> None:
    e = error("fakesrc ! ! fakesink")
    assert str(e) == (
        "expected an element after '!', found another '!' at column 11\n"
        "  fakesrc ! ! fakesink\n"
        "            ^"
    )


def test_error_pickles_with_its_position() -> None:
    e = error("a ! ! b")
    again = pickle.loads(pickle.dumps(e))
    assert (type(again), again.message, again.text, again.column) == (
        ParseError,
        e.message,
        e.text,
        e.column,
    )


def test_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty pipeline"):
        parse("")


def test_first_bad_reference_in_text_order_is_reported() -> None:
    assert error("x. ! a  a ! y.  b ! z.").column == 1
    assert error("a name=x  x. ! a  a ! y.  b ! z.").column == 23


# --- to_launch --------------------------------------------------------------------------------

CANONICAL = [
    ("fakesrc", "fakesrc"),
    ("a  !b!c", "a ! b ! c"),
    ("a k = v  k2='x y'", 'a k=v k2="x y"'),
    (r"a k=x\ y", 'a k="x y"'),
    ('a k="\'"', 'a k="\'"'),
    ('a k="!x"', 'a k="!x"'),
    ("a k=x!y", "a k=x!y"),
    ('a k="x\\\\y"', r'a k="x\\y"'),
    ("a name=x k=1", "a name=x k=1"),
    ('a name="my src"', 'a name="my src"'),
    ("a ! 'x/y, w=1' ! b", "a ! x/y, w=1 ! b"),
    ('a ! "x/y ! z" ! b', 'a ! "x/y ! z" ! b'),
    ('a ! " x/y" ! b', 'a ! " x/y" ! b'),
    ("a ! ANY ! b", "a ! ANY ! b"),
    ("a .src ! .sink b", "a .src ! .sink b"),
    ("(a)!(b)", "( a ) ! ( b )"),
    ("bin.( name=b a )", "( name=b a )"),
    ("pipeline.( a ! b )", "pipeline.( a ! b )"),
    ("t. ! b  a ! tee name=t", "t. ! b a ! tee name=t"),
    ("tee name=t  t. ! q1  t. ! q2", "tee name=t ! q1 t. ! q2"),
    ("a name=x  b name=y  y. ! x.", "a name=x b name=y ! x."),
    ("a name=x  b name=y  c  y. ! x.", "a name=x b name=y ! x. c"),
    ("a name=x  b  c name=y  y. ! x.", "a name=x b c name=y ! x."),
    ("a name=x  b name=y  c  c ! d  x. ! y.", "a name=x b name=y c c ! d x. ! y."),
    ("a name=x b name=y x. ! y.", "a name=x ! b name=y"),
    ("a name=x ( b name=y ) x. ! y.", "a name=x ! ( b name=y )"),
    ("a name=x  c  ( b )  c ! x.", "a name=x c ( b ) c ! x."),
    ("a name=x c x. ! ( b )", "a name=x c x. ! ( b )"),
    ("a ! y.  bin.( b name=y )", "a ! ( b name=y )"),
    ("a ! y.  bin.( b name=y ) c", "a ! ( b name=y ) c"),
    ("a ! y.  bin.( c  b name=y )", "a ! y. bin.( c b name=y )"),
    ("a name=x ! x.", "a name=x ! x."),
]


def test_to_launch_is_canonical() -> None:
    wrong = [
        f"{text!r}: expected {expected!r}, got {to_launch(parse(text))!r}"
        for text, expected in CANONICAL
        if to_launch(parse(text)) != expected or not parse(expected).same_structure(parse(text))
    ]
    assert not wrong, "\n".join(wrong)


CAPS_FEATURES = [
    "a ! video/x-raw(memory:SystemMemory),format=RGBA ! b",
    "a ! video/x-raw(memory:SystemMemory), format=RGBA, width=[1,64] ! b",
    "a ! video/x-raw(memory:SystemMemory,meta:GstVideoMeta) ! b",
    "a ! video/x-raw(memory:SystemMemory);video/x-raw(memory:CUDAMemory) ! b",
    "a ! video/x-raw(ANY) ! ( b ! x/y(f:g),w=1 ! c )",
]


@pytest.mark.parametrize("text", CAPS_FEATURES)
def test_caps_features_are_kept_as_written_and_printed_back(text: str) -> None:
    d = parse(text)
    caps = text.split(" ! ")[1]
    assert d.links[0].caps == caps
    assert to_launch(d) == text
    round_trips(d)


def test_to_launch_keeps_link_order_with_references() -> None:
    d = parse("c. ! d   a ! tee name=c")
    assert pairs(d) == [(2, 0), (1, 2)]
    round_trips(d)


def test_to_launch_with_custom_caps_names() -> None:
    names = frozenset({"frames"})
    d = parse("a ! frames ! b", caps_names=names)
    assert to_launch(d, caps_names=names) == "a ! frames ! b"
    assert to_launch(d) == 'a ! "frames" ! b'
    assert parse(to_launch(d)).same_structure(d)


def test_same_structure_ignores_text_and_columns() -> None:
    assert parse("a   !  b k=1").same_structure(parse("a ! b k=1"))
    assert not parse("a ! b k=1").same_structure(parse("a ! b k=2"))
    assert not parse("a ! b").same_structure(parse("a b"))


def test_strip_positions_zeroes_columns() -> None:
    d = strip_positions(parse("a k=1 ! x/y ! ( b )"))
    assert d.text == ""
    assert d.elements[0].column == d.elements[0].props[0].column == 0
    assert d.bins[0].column == 0
    assert (d.links[0].column, d.links[0].caps_column, d.links[0].src.column) == (0, None, 0)


def _element(key: int, name: str | None = None, bin: int | None = None) -> ElementDecl:
    return ElementDecl(key, f"e{key}", name, (), 0, bin)


def _link(src: int, sink: int, caps: str | None = None) -> Link:
    return Link(Endpoint(src, None, 0), Endpoint(sink, None, 0), caps, None, 0)


UNWRITABLE = [
    (Description("", (), (), ()), "at least one element"),
    (Description("", (_element(1),), (), ()), "key"),
    (Description("", (_element(0, bin=3),), (), ()), "bin"),
    (Description("", (_element(0), _element(1), _element(2)), (), (_link(0, 2),)), "named"),
    (Description("", (_element(0), _element(1)), (), (_link(1, 0),)), "cannot be written"),
    (Description("", (_element(0),), (), (_link(0, 5),)), "does not exist"),
    (Description("", (_element(0),), (BinDecl(0, "bin", None, (), 0, None),), ()), "no element"),
    (
        Description(
            "",
            (_element(0, bin=1), _element(1, bin=0)),
            (BinDecl(0, "bin", None, (), 0, None), BinDecl(1, "bin", None, (), 0, None)),
            (),
        ),
        "out of declaration order",
    ),
    (
        Description(
            "",
            (_element(0, bin=0), _element(1), _element(2, bin=0)),
            (BinDecl(0, "bin", None, (), 0, None),),
            (),
        ),
        "split",
    ),
    (Description("", (ElementDecl(0, "a b", None, (), 0, None),), (), ()), "factory 'a b'"),
    (Description("", (ElementDecl(0, "bytes", None, (), 0, None),), (), ()), "caps filter"),
    (
        Description("", (ElementDecl(0, "a", None, (Prop("k k", "v", 0, 0),), 0, None),), (), ()),
        "property name",
    ),
    (
        Description("", (ElementDecl(0, "a", None, (Prop("name", "v", 0, 0),), 0, None),), (), ()),
        "'name' among its props",
    ),
    (Description("", (_element(0), _element(1)), (), (_link(0, 1, " "),)), "empty caps"),
]


def test_to_launch_rejects_descriptions_it_cannot_write() -> None:
    for desc, message in UNWRITABLE:
        with pytest.raises(ValueError, match=message):
            to_launch(desc)


# --- Hypothesis ------------------------------------------------------------------------------

GRAMMAR_ALPHABET = "ab!().,=\"' \\/\tn:_-t\n%xy"


def _check_parse_or_error(text: str) -> None:
    got = outcome(text)
    if isinstance(got, ParseError):
        assert got.text == text
        assert 1 <= got.column <= len(text) + 1
        assert str(got)
    else:
        assert got.elements
        round_trips(got)


@given(st.text(max_size=60))
@settings(deadline=None)
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    _check_parse_or_error(text)


@given(st.text(alphabet=GRAMMAR_ALPHABET, max_size=50))
@settings(max_examples=400, deadline=None)
def test_grammar_shaped_text_parses_or_raises_and_round_trips(text: str) -> None:
    _check_parse_or_error(text)


IDENT = st.builds(str.__add__, st.sampled_from("abcfxyz"), st.text("abz09_-:", max_size=4))
VALUES = st.text(max_size=8)  # any code point but surrogates
SPACE = st.sampled_from([" ", "  ", "\t", "\n", " \n "])
PROPS = st.lists(st.tuples(IDENT, VALUES), max_size=2)
EQUALS = st.sampled_from(["=", "=", " = ", "= "])
STYLES = st.sampled_from(["bare", "double", "single"])
NAME_KINDS = st.sampled_from(["none", "ident", "text"])
PADS = st.none() | st.sampled_from(["src", "sink_0", "src_%u", "a:b"])
BIN_FACTORIES = st.sampled_from(["bin", "pipeline", "bin."])
CAPS = (
    st.tuples(st.just("none"), st.none())
    | st.tuples(st.just("name"), st.sampled_from(sorted(DEFAULT_CAPS_NAMES)))
    | st.tuples(st.just("bare"), st.builds("{}/{}".format, IDENT, IDENT))
    | st.tuples(
        st.just("bare"), st.builds("{}/raw, width={}, f=(string)x".format, IDENT, st.integers(0, 9))
    )
    | st.tuples(st.just("quoted"), VALUES.filter(lambda v: v.strip(" \t\n\r\f\v") != ""))
    | st.tuples(  # caps features, as in 'video/x-raw(memory:SystemMemory),format=RGBA'
        st.just("bare"),
        st.builds(
            "{}/{}({}){}".format,
            IDENT,
            IDENT,
            st.lists(st.builds("{}:{}".format, IDENT, IDENT), min_size=1, max_size=2).map(",".join),
            st.sampled_from(["", ",format=RGBA", ", w=[1,2]"]),
        ),
    )
)


@dataclass
class Expected:
    """What a generated launch line must parse to."""

    factories: list[str] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    props: list[list[tuple[str, str]]] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)
    caps: list[str | None] = field(default_factory=list)


class _Ref:
    """A reference whose target is chosen once every element is generated."""

    def __init__(self, index: int, pad: str | None) -> None:
        self.index, self.pad = index, pad


class _Gen:
    """Draws a launch line word by word from the grammar, recording what it means."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.words: list[str | _Ref] = []
        self.exp = Expected()
        self.referable: list[str] = []
        self.counter = 0

    def value(self, v: str) -> str:
        style = self.draw(STYLES)
        safe = v and v[0] not in "\"'!" and not any(c in " \t\n\r\f\v\\" for c in v)
        if style == "bare" and safe:
            return v
        if style == "single":
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def assignments(self) -> tuple[str | None, list[tuple[str, str]]]:
        props = self.draw(PROPS)
        name: str | None = None
        kind = self.draw(NAME_KINDS)
        self.counter += 1  # a numeric suffix keeps names unique
        if kind == "ident":
            name = f"{self.draw(IDENT)}-{self.counter}"
        elif kind == "text":
            name = f"{self.draw(VALUES)}#{self.counter}"
        spelled = [(k, v) for k, v in props]
        if name is not None:
            at = self.draw(st.integers(0, len(spelled)))
            spelled.insert(at, ("name", name))
        for k, v in spelled:
            eq = self.draw(EQUALS)
            self.words.append(f"{k}{eq}{self.value(v)}")
        return name, props

    def element(self) -> None:
        factory = self.draw(IDENT)
        self.words.append(factory)
        self.exp.factories.append(factory)
        self.exp.props.append([])
        self.exp.names.append(None)
        name, props = self.assignments()
        self.exp.names[-1], self.exp.props[-1] = name, props
        if name is not None and "#" not in name:
            self.referable.append(name)

    def elementary(self, depth: int) -> None:
        if depth > 0 and self.draw(st.integers(0, 3)) == 0:
            factory = self.draw(BIN_FACTORIES)
            self.words.append("(" if factory == "bin." else f"{factory}.(")
            self.exp.bins.append("bin" if factory == "bin." else factory)
            self.assignments()
            self.chainlist(depth - 1, inner=True)
            self.words.append(")")
        else:
            self.element()

    def pad(self) -> str | None:
        return self.draw(PADS)

    def ref(self) -> None:
        self.words.append(_Ref(self.draw(st.integers(0, 50)), self.pad()))

    def link(self) -> None:
        how, caps = self.draw(CAPS)
        self.words.append("!")
        self.exp.caps.append(caps)
        if caps is None:
            return
        if how == "bare":
            self.words.append(caps)
        elif how == "name":
            self.words.append(self.value(caps))
        else:
            q = self.draw(st.sampled_from("\"'"))
            self.words.append(q + caps.replace("\\", "\\\\").replace(q, "\\" + q) + q)
        self.words.append("!")

    def chain(self, depth: int, *, inner_first: bool, inner_last: bool) -> None:
        starts_with_ref = not inner_first and self.draw(st.booleans())
        if starts_with_ref:
            self.ref()
        else:
            self.elementary(depth)
        hops = self.draw(st.integers(1 if starts_with_ref else 0, 2))
        ends_with_ref = not inner_last and self.draw(st.booleans())
        for hop in range(hops):
            if (pad := self.pad()) is not None and not (starts_with_ref and hop == 0):
                self.words.append(f".{pad}")
            self.link()
            if (pad := self.pad()) is not None:
                self.words.append(f".{pad}")
            self.elementary(depth)
        if ends_with_ref:
            self.link()
            self.ref()

    def chainlist(self, depth: int, *, inner: bool) -> None:
        n = self.draw(st.integers(1, 2 if inner else 3))
        for i in range(n):
            self.chain(depth, inner_first=inner and i == 0, inner_last=inner and i == n - 1)

    def text(self) -> str:
        if not self.referable:  # every reference needs a target
            self.words = ["anchor name=anchor-0", *self.words]
            self.referable.append("anchor-0")
            self.exp.factories.insert(0, "anchor")
            self.exp.names.insert(0, self.referable[0])
            self.exp.props.insert(0, [])
        out: list[str] = []
        for i, w in enumerate(self.words):
            if isinstance(w, _Ref):
                out.append(f"{self.referable[w.index % len(self.referable)]}.{w.pad or ''}")
            elif w == "(" and i and isinstance(self.words[i - 1], _Ref):
                out.append("bin.(")  # 'x. (' would read as a bin made by factory 'x'
            else:
                out.append(w)
            out.append(self.draw(SPACE))
        return "".join(out)


@st.composite
def launch_lines(draw: st.DrawFn) -> tuple[str, Expected]:
    gen = _Gen(draw)
    gen.chainlist(2, inner=False)
    return gen.text(), gen.exp


@given(launch_lines())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_lines_parse_as_generated_and_round_trip(case: tuple[str, Expected]) -> None:
    text, exp = case
    d = parse(text)
    assert factories(d) == exp.factories
    assert [e.name for e in d.elements] == exp.names
    assert [[(p.name, p.value) for p in e.props] for e in d.elements] == exp.props
    assert [b.factory for b in d.bins] == exp.bins
    assert [ln.caps for ln in d.links] == exp.caps
    for e in d.elements:
        assert text.startswith(e.factory, e.column - 1)
        for p in e.props:
            assert text.startswith(p.name, p.column - 1)
    assert all(text[b.column - 1] == "(" for b in d.bins)
    assert all(text[ln.column - 1] == "!" for ln in d.links)
    assert [ln.column for ln in d.links] == sorted(ln.column for ln in d.links)
    round_trips(d)


@st.composite
def reference_heavy_lines(draw: st.DrawFn) -> str:
    """Chains of elements, bins, pads and caps that link through references a lot."""
    words: list[str] = []
    named: set[int] = set()
    refs = st.sampled_from(["n0.", "n1.", "n2.", "n0.src", "n1.sink_0", "n2.a:b", "n3."])
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 5)) == 0:
            words += [draw(refs), "!"]
        depth = 0
        hops = draw(st.integers(0, 4))
        for hop in range(hops + 1):
            if draw(st.integers(0, 3)) == 0:
                opener = draw(st.sampled_from(["(", "bin.(", f"pipeline.( k={len(words)}"]))
                if opener == "(" and words and words[-1].endswith("."):
                    opener = "bin.("  # 'n0. (' reads as a bin of type 'n0', as in GStreamer
                words.append(opener)
                depth += 1
            k = draw(st.integers(0, 3))
            if draw(st.booleans()) and k not in named:
                named.add(k)
                words.append(f"q name=n{k}")
            else:
                words.append(draw(st.sampled_from(["a", "b k=v", 'c k="x y"'])))
            while depth and draw(st.booleans()):
                words.append(")")
                depth -= 1
            if hop < hops:
                words += draw(
                    st.sampled_from([["!"], ["!", "x/y", "!"], [".src", "!"], ["!", ".sink"]])
                )
        if draw(st.booleans()):
            words += ["!", draw(refs)]
        words += [")"] * depth
    words += [f"d name=n{k}" for k in range(4) if k not in named]  # every reference resolves
    return " ".join(words)


@given(IDENT | st.sampled_from([*BIN_TYPES, "bins", "Bin"]), SPACE, SPACE)
def test_a_typed_bin_parses_only_with_a_bin_type(word: str, ws1: str, ws2: str) -> None:
    text = f"a ! {word}{ws1}.{ws2}( b ) ! c"
    got = outcome(text)
    if word in BIN_TYPES:
        assert isinstance(got, Description)
        assert [b.factory for b in got.bins] == [word]
        round_trips(got)
    else:
        assert isinstance(got, ParseError)
        assert (got.column, got.message.split(" (")[0]) == (5, f"no bin type {word!r}")


@given(reference_heavy_lines())
@settings(max_examples=200, deadline=None)
def test_reference_heavy_lines_round_trip(text: str) -> None:
    round_trips(parse(text))


# --- Performance and docs --------------------------------------------------------------------


def test_a_few_kilobytes_parse_in_linear_time() -> None:
    def line(n: int) -> str:
        chain = " ! ".join(f'identity name=id{i} label="v {i}"' for i in range(n))
        refs = " ".join(f"id{i}. ! x/y, w={i} ! q{i}" for i in range(n))
        return f"fakesrc ! {chain} ! fakesink  {refs}"

    def best_of_3(text: str) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            parse(text)
            times.append(time.perf_counter() - t0)
        return min(times)

    small, big = line(100), line(1600)
    assert len(big) > 100_000
    assert best_of_3(big) < max(40 * best_of_3(small), 0.5)  # 16x the input: not quadratic
    d = parse(big)
    assert len(d.elements) == 2 + 2 * 1600
    t0 = time.perf_counter()
    assert parse(to_launch(d)).same_structure(d)
    assert time.perf_counter() - t0 < 3.0


def test_docs_examples_run() -> None:
    result = doctest.testfile(
        str(DOC),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 10
    assert result.failed == 0, f"{result.failed} example(s) in {DOC} failed; see the output"
