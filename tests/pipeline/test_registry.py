"""The element registry: lookup, and what an unknown name is told."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import parallax
from parallax.pipeline import UnknownElement, registry


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("shmsink", "(GStreamer's shmsink; here, use ipcsink: shared memory to other processes)"),
        ("shmsrc", "(GStreamer's shmsrc; here, use ipcsrc: shared memory from another process)"),
        ("multifdsink", "(GStreamer's multifdsink; here, use tee with one fdsink per fd)"),
        ("queue2", "(GStreamer's queue2; here, use queue: there is no disk buffering)"),
    ],
)
def test_a_gstreamer_element_with_an_equivalent_names_it(name: str, hint: str) -> None:
    with pytest.raises(UnknownElement) as info:
        registry.get(name)
    assert str(info.value) == f"unknown element '{name}' {hint}"
    assert info.value.factory == name


def test_the_launch_error_says_it_with_the_column() -> None:
    with pytest.raises(parallax.ParseError) as info:
        parallax.parse_launch("fakesrc ! shmsink socket-path=/tmp/x")
    assert info.value.column == 11
    assert "unknown element 'shmsink' (GStreamer's shmsink; here, use ipcsink" in str(info.value)


def test_a_gstreamer_element_without_an_equivalent_is_plainly_unknown() -> None:
    with pytest.raises(UnknownElement) as info:
        registry.get("videotestsrc")
    assert str(info.value).startswith("unknown element 'videotestsrc'")
    assert "GStreamer's" not in str(info.value)


def test_a_misspelling_still_gets_the_closest_names() -> None:
    with pytest.raises(
        UnknownElement, match=r"^unknown element 'fakesnk' \(did you mean 'fakesink'"
    ):
        registry.get("fakesnk")


@pytest.mark.parametrize("name", sorted(registry.GSTREAMER_EQUIVALENTS))
def test_the_table_names_only_unknown_names_and_real_equivalents(name: str) -> None:
    assert name not in registry.names(), f"{name} exists here: drop it from the table"
    said = registry.GSTREAMER_EQUIVALENTS[name]
    assert said.startswith("use ")
    first = said.removeprefix("use ").split()[0].rstrip(":,")
    if first not in {"one", "tee"}:
        registry.get(first)  # the element it points to exists
    else:
        assert all(e in registry.names() for e in ("tee", "fdsink", "queue") if e in said)


GST_INSPECT = shutil.which("gst-inspect-1.0")


@pytest.mark.gst
@pytest.mark.skipif(
    GST_INSPECT is None, reason="needs gst-inspect-1.0: apt-get install gstreamer1.0-tools"
)
@pytest.mark.parametrize("name", ["multifdsink", "multisocketsink", "queue2", "multiqueue"])
def test_the_gstreamer_names_are_gstreamers(name: str) -> None:
    # shmsink/shmsrc, ipcpipeline* and fake{video,audio}sink are in gst-plugins-bad,
    # which the test machine may not have; these four are in core and -base.
    assert GST_INSPECT is not None
    result = subprocess.run([GST_INSPECT, name], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, f"gst-inspect-1.0 does not know {name}"
