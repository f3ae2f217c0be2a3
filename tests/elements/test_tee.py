"""`tee`: not-linked as GStreamer's (an error naming the tee, or dropped with
allow-not-linked=true), and EOS upstream once every branch has it."""

from __future__ import annotations

import pytest

import parallax
from parallax import FlowError, PropertyError
from parallax.elements import FakeSink, Tee
from parallax.pipeline import Pipeline


def _src_buffers(p: Pipeline, name: str = "s") -> int:
    return p.get_by_name(name).pads["src"].buffers


def test_allow_not_linked_defaults_to_false_and_reads_launch_text() -> None:
    assert Tee().allow_not_linked is False
    assert Tee(allow_not_linked="true").allow_not_linked is True
    with pytest.raises(PropertyError, match="allow-not-linked"):
        Tee(allow_not_linked="sometimes")


def test_a_tee_without_branches_is_a_not_linked_error_naming_it() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=3 ! tee name=fan")
    with pytest.raises(FlowError) as info:
        p.run(timeout=10)
    assert info.value.element == "fan"
    assert str(info.value) == (
        "fan: not-linked: no src pad is linked (a branch starts with 'fan. ! ...'); "
        "set allow-not-linked=true to drop the buffers"
    )


def test_allow_not_linked_drops_every_buffer_and_the_stream_ends() -> None:
    p = parallax.parse_launch("fakesrc name=s num-buffers=7 ! tee name=t allow-not-linked=true")
    p.run(timeout=10)
    assert _src_buffers(p) == 7


def test_allow_not_linked_beside_another_chain_drops_and_the_pipeline_ends() -> None:
    p = parallax.parse_launch(
        "fakesrc name=s num-buffers=4 ! tee allow-not-linked=true  "
        "fakesrc num-buffers=9 ! fakesink name=k"
    )
    p.run(timeout=10)
    k = p.get_by_name("k")
    assert (_src_buffers(p), k.count if isinstance(k, FakeSink) else None) == (4, 9)


def test_a_tee_with_branches_ignores_allow_not_linked() -> None:
    for allow in ("false", "true"):
        p = parallax.parse_launch(
            f"fakesrc num-buffers=5 ! tee name=t allow-not-linked={allow} ! fakesink name=k"
        )
        p.run(timeout=10)
        k = p.get_by_name("k")
        assert isinstance(k, FakeSink)
        assert k.count == 5


def test_eos_from_every_branch_ends_the_stream_upstream() -> None:
    p = parallax.parse_launch(
        "fakesrc name=s ! tee name=t  t. ! fakesink num-buffers=3  t. ! fakesink num-buffers=6"
    )
    p.run(timeout=10)
    assert 6 <= _src_buffers(p) <= 7
