"""The launch grammar against GStreamer's own: `gst-launch-1.0` and `parse` agree.

As h11 checks itself against the stdlib, each line below goes through both parsers, and
both must accept it or both must reject it *at the syntax level*. GStreamer reports a
syntax-level rejection as "erroneous pipeline: ..." or "pipeline could not be
constructed: ..." with one of `SYNTAX` in the message; a line that gets past parsing and
then fails (a property value, a link, a runtime error) counts as accepted, since in
Parallax those failures belong to the builder, not the grammar.

gst-launch-1.0 joins its arguments with spaces after escaping the spaces inside each one
(gst_parse_launchv), so a line is passed split on whitespace: GStreamer then parses the
line itself, up to the width of its whitespace runs.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from parallax._errors import ParseError
from parallax.pipeline._parse import parse

GST_LAUNCH = shutil.which("gst-launch-1.0")

pytestmark = [
    pytest.mark.gst,
    pytest.mark.skipif(
        GST_LAUNCH is None,
        reason="needs GStreamer's gst-launch-1.0: apt-get install gstreamer1.0-tools",
    ),
]

# Messages of gst_parse_launch errors that are about syntax (grammar.y, parse.l). "no
# element" only arises here from words that are not elements: the table uses only
# fakesrc, fakesink, identity, tee, queue and capsfilter.
SYNTAX = (
    "syntax error",
    "no element ",
    "unexpected reference",
    "unexpected pad-reference",
    "empty pipeline",
    "specified empty bin",
    "link has no",
    "No sink-element named",
    "No src-element named",
)

ACCEPT, REJECT = "accept", "reject"

# Line, and what both parsers must say about it. Every source stops after one buffer.
AGREE = [
    ("fakesrc num-buffers=1 ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! identity ! identity ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! fakesink  fakesrc num-buffers=1 ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! tee name=t  t. ! queue ! fakesink  t. ! queue ! fakesink", ACCEPT),
    ("t. ! queue ! fakesink  fakesrc num-buffers=1 ! tee name=t", ACCEPT),
    ("fakesrc num-buffers=1 ! tee name=t ! queue ! fakesink  t.src_1 ! queue ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! video/x-raw,width=320 ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! video/x-raw, width=320, height=240 ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! video/x-raw,format=(string)I420 ! identity ! fakesink", ACCEPT),
    ('fakesrc num-buffers=1 ! capsfilter caps="video/x-raw, width=320" ! fakesink', ACCEPT),
    ("fakesrc num-buffers=1 ! ( identity ! fakesink )", ACCEPT),
    ("( fakesrc num-buffers=1 ! identity ) ! fakesink", ACCEPT),
    ("bin.( name=b1 fakesrc num-buffers=1 ! identity ) ! queue ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! ( identity ! ( queue ! ( fakesink name=deep ) ) )", ACCEPT),
    ("fakesrc num-buffers=1 .src ! .sink identity .src ! .sink fakesink", ACCEPT),
    ("fakesrc num-buffers=1 name=s  fakesink name=k  s.src ! k.sink", ACCEPT),
    ("fakesrc num-buffers= 1 silent =true ! fakesink", ACCEPT),
    ('fakesrc num-buffers=1 ! identity name="a b" ! fakesink', ACCEPT),
    ("fakesrc num-buffers=1 ! identity ! fakesink ( fakesrc num-buffers=1 ! fakesink )", ACCEPT),
    ("", REJECT),
    ("fakesrc num-buffers=1 !", REJECT),
    ("! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! ! fakesink", REJECT),
    ("( fakesrc num-buffers=1 ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! fakesink )", REJECT),
    ("( )", REJECT),
    ("fakesrc num-buffers=1 ! video/x-raw", REJECT),
    ("video/x-raw ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! video/x-raw ! video/x-raw ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! t. fakesink", REJECT),
    ("fakesrc num-buffers=1 name=t  t. name=x ! fakesink", REJECT),
    ("( fakesrc num-buffers=1 ! identity ) name=x ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! fakesink @", REJECT),
    ("fakesrc num-buffers=1 ! fakesink =x", REJECT),
    ("fakesrc num-buffers=1 ! identity silent=", REJECT),
    ("fakesrc num-buffers=1 .src .src ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! ( t. ! fakesink ) identity name=t", REJECT),
    ("fakesrc num-buffers=1 name=s  s. ! t. ! fakesink  identity name=t", REJECT),
]

# Where we differ on purpose (docs/launch-syntax.md says why): the line, GStreamer's
# verdict, ours. If GStreamer changes, this fails and the docs need a look.
DISAGREE = [
    ('fakesrc num-buffers=1 ! "video/x-raw, width=320" ! fakesink', REJECT, ACCEPT),
    ("fakesrc num-buffers=1 ! ANY ! fakesink", REJECT, ACCEPT),
    ("fakesrc num-buffers=1 : fakesink", ACCEPT, REJECT),
    ("fakesrc num-buffers=1 ! identity name=a ! fakesink  identity name=a", ACCEPT, REJECT),
    ('fakesrc num-buffers=1 ! identity name="x ! fakesink', ACCEPT, REJECT),
    ('fakesrc num-buffers=1 ! identity name="a"b ! fakesink', ACCEPT, REJECT),
    ("fakesrc num-buffers=1 ! identity name= ! fakesink", ACCEPT, REJECT),
    (
        "fakesrc num-buffers=1 ! fakesink  fakesrc num-buffers=1 name=s s.src,x ! fakesink",
        ACCEPT,
        REJECT,
    ),
    ("( name=b fakesrc num-buffers=1 ) b. ! fakesink", ACCEPT, REJECT),
]


def gst_verdict(text: str) -> str:
    """Whether gst-launch-1.0 gets `text` past gst_parse_launch."""
    assert GST_LAUNCH is not None
    try:
        done = subprocess.run(
            [GST_LAUNCH, "-q", *text.split()],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() killed and reaped it; it was running, so it parsed
        return ACCEPT
    out = done.stdout + done.stderr
    failed_to_parse = "erroneous pipeline" in out or "could not be constructed" in out
    if done.returncode != 0 and failed_to_parse and any(m in out for m in SYNTAX):
        return REJECT
    return ACCEPT


def our_verdict(text: str) -> str:
    """Whether `parse` accepts `text`."""
    try:
        parse(text)
    except ParseError:
        return REJECT
    return ACCEPT


@pytest.mark.parametrize(("text", "expected"), AGREE)
def test_gst_launch_and_parse_agree(text: str, expected: str) -> None:
    assert (gst_verdict(text), our_verdict(text)) == (expected, expected)


@pytest.mark.parametrize(("text", "gst", "ours"), DISAGREE)
def test_known_disagreements_with_gst_launch(text: str, gst: str, ours: str) -> None:
    assert (gst_verdict(text), our_verdict(text)) == (gst, ours)
