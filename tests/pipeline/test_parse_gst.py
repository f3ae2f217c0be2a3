"""The launch grammar against GStreamer's own: `gst-launch-1.0` and `parse` agree.

The last tables go one step further: both build and run the line, and must both run it
to the end or both fail (request pad templates, not-linked tees, typed bins, caps
features: what the builder decides).

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

from parallax._errors import ParallaxError, ParseError
from parallax.pipeline import parse_launch
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
    'no bin "',  # a typed bin of no bin type: a word of the grammar here (BIN_TYPES)
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
    ("fakesrc num-buffers=1 ! pipeline.( identity ) ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! foo.( identity ) ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! bins.( identity ) ! fakesink", REJECT),
    ("fakesrc num-buffers=1 ! tee name=t  t.src_%u ! queue ! fakesink", ACCEPT),
    ("fakesrc num-buffers=1 ! video/x-raw(memory:SystemMemory),format=RGBA ! fakesink", ACCEPT),
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


# Lines that get past both parsers, then are built and run by both: whether each runs to
# the end ("ok") or fails building or streaming ("error"). Sources stop after a buffer;
# tee branches start with a queue, as GStreamer needs to preroll several sinks.
OK, ERROR = "ok", "error"
RUN_AGREE = [
    (
        "fakesrc num-buffers=1 ! tee name=t  t.src_%u ! queue ! fakesink  "
        "t.src_%u ! queue ! fakesink",
        OK,
    ),
    (
        "fakesrc num-buffers=1 ! tee name=t  t.src_%u ! queue ! fakesink  "
        "t.src_5 ! queue ! fakesink  t.src_%u ! queue ! fakesink",
        OK,
    ),
    (
        "fakesrc num-buffers=1 ! tee name=t  t. ! queue ! fakesink  "
        "t.src_%u ! queue ! fakesink  t.src_1 ! queue ! fakesink",
        ERROR,  # src_1 is taken by then: could not link
    ),
    ("fakesrc num-buffers=1 name=s  s.src_%u ! fakesink", ERROR),  # no such template
    ("fakesrc num-buffers=1 ! tee name=t", ERROR),  # not-linked
    ("fakesrc num-buffers=1 ! tee name=t  fakesrc num-buffers=1 ! fakesink", ERROR),
    (
        "fakesrc num-buffers=1 ! tee name=t allow-not-linked=true  "
        "fakesrc num-buffers=1 ! fakesink",
        OK,
    ),
    ("fakesrc num-buffers=1 ! bin.( identity ) ! pipeline.( fakesink )", OK),
    ("fakesrc num-buffers=1 ! video/x-raw(memory:SystemMemory),format=RGBA ! fakesink", OK),
    (
        "fakesrc num-buffers=1 ! capsfilter caps=video/x-raw(memory:SystemMemory),format=RGBA ! "
        "identity ! video/x-raw,format=RGBA ! fakesink",
        OK,
    ),
]

# Built and run, where we differ on purpose (docs/launch-syntax.md): line, GStreamer, ours.
RUN_DISAGREE = [
    ("fakesrc num-buffers=1 ! video/x-raw(memory:NVMM) ! fakesink", OK, ERROR),
    ("fakesrc num-buffers=1 ! video/x-raw(mem) ! fakesink", OK, ERROR),  # a warning there
    ("fakesrc num-buffers=1 ! capsfilter caps=video/x-raw(memory:NVMM) ! fakesink", OK, ERROR),
]


def gst_runs(text: str) -> str:
    """Whether gst-launch-1.0 builds and runs `text` to the end.

    After a streaming error GStreamer 1.22 sometimes hangs in its preroll wait instead of
    exiting 1 (about one run in six for a sinkless `tee`); the ERROR it printed decides.
    """
    assert GST_LAUNCH is not None
    try:
        done = subprocess.run(
            [GST_LAUNCH, "-q", *text.split()],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except subprocess.TimeoutExpired as e:  # run() killed and reaped it
        out = [x.decode() if isinstance(x, bytes) else x or "" for x in (e.stdout, e.stderr)]
        return ERROR if any("ERROR:" in x for x in out) else "hang"
    return OK if done.returncode == 0 else ERROR


def our_run(text: str) -> str:
    """Whether `parse_launch` builds `text` and it runs to EOS."""
    try:
        parse_launch(text).run(timeout=10)
    except ParallaxError:
        return ERROR
    return OK


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


@pytest.mark.parametrize(("text", "expected"), RUN_AGREE)
def test_gst_launch_and_parse_launch_run_alike(text: str, expected: str) -> None:
    assert (gst_runs(text), our_run(text)) == (expected, expected)


@pytest.mark.parametrize(("text", "gst", "ours"), RUN_DISAGREE)
def test_known_run_disagreements_with_gst_launch(text: str, gst: str, ours: str) -> None:
    assert (gst_runs(text), our_run(text)) == (gst, ours)
