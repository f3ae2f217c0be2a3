"""`parse_launch`, the builder: request pad templates, typed bins, caps features, and a
4,000-branch tee built in linear time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from parallax import LinkError, ParseError
from parallax.caps import Caps
from parallax.elements import CapsFilter, FakeSink, Tee
from parallax.pipeline import Pad, PadDirection, PadPresence, PadTemplate, parse_launch


def tee_links(text: str) -> list[tuple[str, str]]:
    """(tee src pad, sink element) for each link out of the element named t."""
    p = parse_launch(text)
    return [(src.name, sink.element.name) for src, sink in p.links() if src.element.name == "t"]


# --- request pad templates -------------------------------------------------------------------


def test_a_template_name_requests_a_new_pad_each_time() -> None:
    links = tee_links(
        "fakesrc ! tee name=t  t.src_%u ! fakesink name=a  t.src_%u ! fakesink name=b"
    )
    assert links == [("src_0", "a"), ("src_1", "b")]


def test_template_requests_mix_with_plain_references_and_named_pads() -> None:
    links = tee_links(
        "fakesrc ! tee name=t ! fakesink name=a  t.src_%u ! fakesink name=b  "
        "t.src_5 ! fakesink name=c  t. ! fakesink name=d  t.src_%u ! fakesink name=e"
    )
    assert links == [("src_0", "a"), ("src_1", "b"), ("src_5", "c"), ("src_2", "d"), ("src_3", "e")]


def test_a_template_request_skips_names_already_taken() -> None:
    links = tee_links(
        "fakesrc ! tee name=t  t.src_0 ! fakesink name=a  t.src_1 ! fakesink name=b  "
        "t.src_%u ! fakesink name=c"
    )
    assert links == [("src_0", "a"), ("src_1", "b"), ("src_2", "c")]


def test_a_template_requested_pad_runs() -> None:
    p = parse_launch(
        "fakesrc num-buffers=4 ! tee name=t  t.src_%u ! queue ! fakesink name=a  "
        "t.src_%u ! queue ! fakesink name=b"
    )
    p.run(timeout=10)
    sinks = [p.get_by_name(n) for n in "ab"]
    assert [s.count if isinstance(s, FakeSink) else None for s in sinks] == [4, 4]


def test_naming_a_linked_pad_after_a_template_request_is_a_link_error() -> None:
    # gst-launch-1.0: "could not link t to fakesink2", for the same reason
    text = "fakesrc ! tee name=t  t. ! fakesink  t.src_%u ! fakesink  t.src_1 ! fakesink"
    with pytest.raises(LinkError) as info:
        parse_launch(text)
    assert info.value.column == text.index("t.src_1 !") + len("t.src_1 ") + 1


def test_a_template_the_element_lacks_is_a_link_error_listing_its_pads() -> None:
    text = "fakesrc name=s  s.src_%u ! fakesink"
    with pytest.raises(LinkError, match=r"s has no pad 'src_%u' \(pads: src\)"):
        parse_launch(text)


def test_request_pad_by_template_name_from_python() -> None:
    tee = Tee(name="t")
    assert [tee.get_pad("src_%u").name for _ in range(3)] == ["src_0", "src_1", "src_2"]
    assert tee.get_pad("src_1") is tee.pads["src_1"]  # a number names the pad


def test_template_matches_its_own_name_and_indexed_names_only() -> None:
    t = PadTemplate("src_%u", PadDirection.SRC, PadPresence.REQUEST)
    assert [t.matches(n) for n in ["src_%u", "src_0", "src_12", "src_", "src_x", "sink_0"]] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    one = PadTemplate("aux", PadDirection.SRC, PadPresence.REQUEST)
    assert (one.matches("aux"), one.matches("aux_0")) == (True, False)


def test_a_one_pad_request_template_gives_its_pad_once() -> None:
    tee = Tee(name="t")
    one = PadTemplate("aux", PadDirection.SRC, PadPresence.REQUEST)
    assert tee.request_pad(one).name == "aux"
    with pytest.raises(LinkError, match="t already has a pad 'aux'"):
        tee.request_pad(one)


# --- request pads in O(1) --------------------------------------------------------------------


class _CountingPads(dict[str, Pad]):
    """A pads dict that counts name look-ups (`in`), the scan request_pad used to make."""

    lookups = 0

    def __contains__(self, key: Any) -> bool:
        type(self).lookups += 1
        return super().__contains__(key)


def test_requesting_n_pads_looks_up_o_n_names() -> None:
    tee = Tee(name="t")
    tee.pads = _CountingPads(tee.pads)
    _CountingPads.lookups = 0
    template = tee.pad_templates[1]
    for _ in range(2000):
        tee.request_pad(template)
    assert _CountingPads.lookups <= 2 * 2000 + 1  # it was 2,001,000: a scan from src_0 each time
    assert list(tee.pads)[-1] == "src_1999"


def test_a_4000_branch_tee_builds_well_under_a_second() -> None:
    n = 4000
    text = "fakesrc num-buffers=1 ! tee name=t " + " ".join("t.src_%u ! fakesink" for _ in range(n))
    start = time.perf_counter()
    p = parse_launch(text)
    took = time.perf_counter() - start
    assert len(p.get_by_name("t").src_pads) == n
    assert took < 1.0, f"{n} branches took {took:.2f} s (2.8 s when each request rescanned)"


# --- typed bins ------------------------------------------------------------------------------


def test_typed_bins_of_each_bin_type_build() -> None:
    p = parse_launch("fakesrc num-buffers=1 ! bin.( identity ) ! pipeline.( name=inner fakesink )")
    assert [b["name"] for b in p.bins] == ["bin0", "inner"]
    p.run(timeout=10)


def test_an_unknown_bin_type_is_a_caret_error_at_the_type_name() -> None:
    text = "fakesrc ! foo.( identity ) ! fakesink"
    with pytest.raises(ParseError) as info:
        parse_launch(text)
    assert info.value.column == 11
    assert str(info.value).endswith("\n  fakesrc ! foo.( identity ) ! fakesink\n            ^")


# --- caps features ---------------------------------------------------------------------------


def test_system_memory_caps_feature_builds_the_same_capsfilter_as_none() -> None:
    p = parse_launch(
        "fakesrc num-buffers=1 ! video/x-raw(memory:SystemMemory),format=RGBA ! fakesink"
    )
    (flt,) = [e for e in p.elements.values() if isinstance(e, CapsFilter)]
    assert flt.caps == Caps.from_string("video/x-raw,format=RGBA")
    p.run(timeout=10)


def test_an_unsupported_caps_feature_is_quoted_at_its_column_in_the_line() -> None:
    text = "fakesrc ! video/x-raw(memory:NVMM),format=NV12 ! fakesink"
    with pytest.raises(ParseError) as info:
        parse_launch(text)
    assert info.value.text == text
    assert info.value.column == text.index("memory:NVMM") + 1
    assert info.value.message.startswith("caps feature 'memory:NVMM' is not supported")


def test_memory_cuda_field_still_parses() -> None:
    p = parse_launch("fakesrc ! video/x-raw,memory=cuda ! fakesink")
    (flt,) = [e for e in p.elements.values() if isinstance(e, CapsFilter)]
    assert flt.caps[0]["memory"] == "cuda"
