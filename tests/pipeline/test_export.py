"""DOT is valid for Graphviz; JSON round-trips back into an equivalent pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import parallax
from parallax.pipeline import Pipeline

LAUNCH = "fakesrc num-buffers=3 sizetype=fixed ! tee name=t ! queue max-size-buffers=4 ! fakesink  t. ! ( identity ! fakesink name=last )"


def test_json_round_trip() -> None:
    p = parallax.parse_launch(LAUNCH)
    data = json.loads(p.to_json())
    assert {e["factory"] for e in data["elements"]} >= {
        "fakesrc",
        "tee",
        "queue",
        "identity",
        "fakesink",
    }
    q = Pipeline.from_json(p.to_json())
    assert json.loads(q.to_json())["links"] == data["links"]
    assert q.get_by_name("t").factory_name == "tee"
    q.run(timeout=10)


@pytest.mark.parametrize(
    ("text", "match"),
    [("not json", "not valid JSON"), ("[]", "version"), ('{"version": 1}', "missing or has a bad")],
)
def test_bad_json_is_a_value_error(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Pipeline.from_json(text)


def test_dot_has_every_element_and_link() -> None:
    p = parallax.parse_launch(LAUNCH)
    dot = p.to_dot()
    assert dot.startswith("digraph")
    for name in p.elements:
        assert f'"{name}"' in dot
    assert dot.count("->") == len(p.links())
    assert "cluster_0" in dot


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz 'dot' not installed: apt-get install graphviz"
)
def test_dot_is_valid_graphviz() -> None:
    dot = parallax.parse_launch(LAUNCH).to_dot()
    result = subprocess.run(
        ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


def test_to_launch_round_trips_through_parse_launch() -> None:
    p = parallax.parse_launch(LAUNCH)
    text = p.to_launch()
    q = parallax.parse_launch(text)
    assert q.to_launch() == text
    assert sorted((s.full_name, k.full_name) for s, k in q.links()) == sorted(
        (s.full_name, k.full_name) for s, k in p.links()
    )
    q.run(timeout=10)


def test_to_launch_quotes_values() -> None:
    p = parallax.parse_launch('filesrc location="a dir/my \\"file\\".bin" ! fakesink')
    q = parallax.parse_launch(p.to_launch())
    assert q.get_by_name(next(iter(q.elements))).get_property("location") == 'a dir/my "file".bin'
