"""Property parity with GStreamer: every property of a GStreamer element we share is
implemented here or named, with a reason, as not applicable in docs/elements.md.

GStreamer's property names come from `gst-inspect-1.0 ELEMENT` where it is installed,
else from `GST_PROPERTIES` below (generated from gst-inspect-1.0 1.22.0, Debian 12, with
gstreamer1.0-plugins-base for appsrc/appsink and the tcp* elements). Where gst-inspect-1.0
is installed, `test_table_matches_gst_inspect` checks the live output against the table.

The docs format, in the element's `### name` section (a paragraph; it may wrap):

    Not applicable here: `silent` (nothing is logged per buffer); `name-b` (reason b);
    `name-c` and `name-d` (a reason they share)

GstObject's own `name` and `parent` are not element properties here: ignored.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from parallax.pipeline import registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "elements.md"
GST_INSPECT = shutil.which("gst-inspect-1.0")
GST_VERSION = "1.22.0"
IGNORED = frozenset({"name", "parent"})  # GstObject's, not the element's
NOT_APPLICABLE = "Not applicable here:"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# gst-inspect-1.0 1.22.0, "Element Properties:" names (name and parent dropped).
GST_PROPERTIES: dict[str, frozenset[str]] = {
    "filesrc": _names("blocksize do-timestamp location num-buffers typefind"),
    "filesink": _names(
        "append async blocksize buffer-mode buffer-size enable-last-sample last-sample"
        " location max-bitrate max-lateness max-transient-error-timeout o-sync"
        " processing-deadline qos render-delay stats sync throttle-time ts-offset"
    ),
    "fakesrc": _names(
        "blocksize can-activate-pull can-activate-push data datarate do-timestamp dump"
        " filltype format is-live last-message num-buffers parentsize pattern"
        " signal-handoffs silent sizemax sizemin sizetype sync typefind"
    ),
    "fakesink": _names(
        "async blocksize can-activate-pull can-activate-push drop-out-of-segment dump"
        " enable-last-sample last-message last-sample max-bitrate max-lateness num-buffers"
        " processing-deadline qos render-delay signal-handoffs silent state-error stats"
        " sync throttle-time ts-offset"
    ),
    "identity": _names(
        "check-imperfect-offset check-imperfect-timestamp datarate drop-allocation"
        " drop-buffer-flags drop-probability dump eos-after error-after last-message qos"
        " signal-handoffs silent single-segment sleep-time stats sync ts-offset"
    ),
    "tee": _names(
        "alloc-pad allow-not-linked has-chain last-message num-src-pads pull-mode silent"
    ),
    "queue": _names(
        "current-level-buffers current-level-bytes current-level-time flush-on-eos leaky"
        " max-size-buffers max-size-bytes max-size-time min-threshold-buffers"
        " min-threshold-bytes min-threshold-time silent"
    ),
    "capsfilter": _names("caps caps-change-mode qos"),
    "appsrc": _names(
        "block blocksize caps current-level-buffers current-level-bytes current-level-time"
        " do-timestamp duration emit-signals format handle-segment-change is-live"
        " leaky-type max-buffers max-bytes max-latency max-time min-latency min-percent"
        " num-buffers size stream-type typefind"
    ),
    "appsink": _names(
        "async blocksize buffer-list caps drop emit-signals enable-last-sample eos"
        " last-sample max-bitrate max-buffers max-lateness processing-deadline qos"
        " render-delay stats sync throttle-time ts-offset wait-on-eos"
    ),
    "fdsrc": _names("blocksize do-timestamp fd num-buffers timeout typefind"),
    "fdsink": _names(
        "async blocksize enable-last-sample fd last-sample max-bitrate max-lateness"
        " processing-deadline qos render-delay stats sync throttle-time ts-offset"
    ),
    "tcpserversink": _names(
        "async blocksize buffers-max buffers-min buffers-queued buffers-soft-max"
        " burst-format burst-value bytes-min bytes-served bytes-to-serve current-port"
        " enable-last-sample host last-sample max-bitrate max-lateness num-handles port"
        " processing-deadline qos qos-dscp recover-policy render-delay resend-streamheader"
        " send-dispatched send-messages stats sync sync-method throttle-time time-min"
        " timeout ts-offset unit-format units-max units-soft-max"
    ),
    "tcpclientsrc": _names("blocksize do-timestamp host num-buffers port stats timeout typefind"),
    "tcpclientsink": _names(
        "async blocksize enable-last-sample host last-sample max-bitrate max-lateness port"
        " processing-deadline qos render-delay stats sync throttle-time ts-offset"
    ),
    "tcpserversrc": _names(
        "blocksize current-port do-timestamp host num-buffers port stats typefind"
    ),
}

# A property line in gst-inspect's block: two spaces, the name, padding, a colon.
_PROPERTY_LINE = re.compile(r"^  ([a-z][a-z0-9-]*)\s*:")
# One entry: a name, or names sharing a reason ("`a` and `b`", "`a`, `b` or `c`"), then "(".
_NAME = r"`[a-z][a-z0-9-]*`"
_ENTRY = re.compile(rf"({_NAME}(?:\s*(?:,\s*(?:and\s+|or\s+)?|and\s+|or\s+|/\s*){_NAME})*)\s*\(")


def parse_gst_inspect(text: str) -> frozenset[str]:
    """The property names in gst-inspect-1.0's "Element Properties:" block."""
    names: set[str] = set()
    inside = False
    for line in text.splitlines():
        if line.startswith("Element Properties:"):
            inside = True
        elif inside and line and not line.startswith(" "):
            break  # the next block ("Element Signals:", ...)
        elif inside and (m := _PROPERTY_LINE.match(line)):
            names.add(m.group(1))
    return frozenset(names - IGNORED)


@functools.cache
def gst_inspect(element: str) -> frozenset[str] | None:
    """Live property names from gst-inspect-1.0, or None where the element is missing."""
    assert GST_INSPECT is not None
    env = {**os.environ, "GST_INSPECT_NO_COLORS": "1", "PAGER": "cat"}
    proc = subprocess.run(
        [GST_INSPECT, element], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    if proc.returncode != 0:
        return None
    return parse_gst_inspect(proc.stdout)


def gst_properties(element: str) -> frozenset[str]:
    """GStreamer's properties of `element`: live where installed, else the table."""
    if GST_INSPECT is not None and (live := gst_inspect(element)) is not None:
        return live
    return GST_PROPERTIES[element]


def docs_section(text: str, element: str) -> str | None:
    """The body of `### element` in docs/elements.md, up to the next heading."""
    m = re.search(rf"^### {re.escape(element)}\s*$(.*?)(?=^##|\Z)", text, re.M | re.S)
    return m.group(1) if m else None


def parse_not_applicable(section: str) -> dict[str, str]:
    """`name` → reason from the section's paragraph that starts `Not applicable here:`.

    Raises:
        ValueError: an entry without a reason in parentheses, or unbalanced ones.
    """
    paragraphs = re.split(r"\n\s*\n", section)
    found = [p for p in paragraphs if p.lstrip().startswith(NOT_APPLICABLE)]
    if not found:
        return {}
    if len(found) > 1:
        raise ValueError(f"{len(found)} paragraphs start {NOT_APPLICABLE!r}; one, please")
    text = " ".join(found[0].split())[len(NOT_APPLICABLE) :]
    out: dict[str, str] = {}
    at = 0
    while at < len(text):
        rest = text[at:].lstrip(" ;.")
        if not rest:
            break
        at = len(text) - len(rest)
        m = _ENTRY.match(text, at)
        if m is None:
            raise ValueError(f"expected '`name` (reason)' at {text[at : at + 40]!r}")
        depth, end = 1, m.end()
        while end < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        names = re.findall(r"`([a-z][a-z0-9-]*)`", m.group(1))
        if depth:
            raise ValueError(f"unclosed '(' in the reason for `{names[0]}`")
        reason = text[m.end() : end - 1].strip()
        if not reason:
            raise ValueError(f"`{names[0]}` has an empty reason")
        out.update(dict.fromkeys(names, reason))
        at = end
    return out


# -- the parsers themselves -----------------------------------------------------------


def test_parse_gst_inspect_reads_only_the_properties_block() -> None:
    text = (
        "Pad Templates:\n  SRC template: 'src'\n\nElement Properties:\n"
        "  blocksize           : Size in bytes\n                        flags: readable\n"
        "  current-level-buffers: Current number\n  name                : The name\n"
        "\nElement Signals:\n  handoff             : void\n"
    )
    assert parse_gst_inspect(text) == {"blocksize", "current-level-buffers"}


def test_parse_not_applicable_entries_with_nested_parentheses_and_wrapping() -> None:
    section = (
        "\nText.\n\nNot applicable here: `silent` (nothing is logged per buffer); `qos`\n"
        "(no QoS events (yet)); `async` (state changes are synchronous).\n\nMore.\n"
    )
    assert parse_not_applicable(section) == {
        "silent": "nothing is logged per buffer",
        "qos": "no QoS events (yet)",
        "async": "state changes are synchronous",
    }


def test_parse_not_applicable_names_sharing_one_reason() -> None:
    section = "\nNot applicable here: `silent` and `last-message` (no per-buffer messages);\n`a`, `b` or `c` (one reason); `d`/`e` (another).\n"
    assert parse_not_applicable(section) == {
        "silent": "no per-buffer messages",
        "last-message": "no per-buffer messages",
        "a": "one reason",
        "b": "one reason",
        "c": "one reason",
        "d": "another",
        "e": "another",
    }


@pytest.mark.parametrize(
    "line",
    [
        "Not applicable here: `silent`",  # no reason
        "Not applicable here: `silent` ()",  # empty reason
        "Not applicable here: `silent` (unclosed",
        "Not applicable here: silent (no backquotes)",
    ],
)
def test_parse_not_applicable_refuses_malformed_lines(line: str) -> None:
    with pytest.raises(ValueError):
        parse_not_applicable(f"\n{line}\n")


# -- the table against GStreamer --------------------------------------------------------


@pytest.mark.gst
@pytest.mark.skipif(
    GST_INSPECT is None,
    reason="needs GStreamer's gst-inspect-1.0: apt-get install gstreamer1.0-tools "
    "gstreamer1.0-plugins-base",
)
@pytest.mark.parametrize("element", sorted(GST_PROPERTIES))
def test_table_matches_gst_inspect(element: str) -> None:
    live = gst_inspect(element)
    if live is None:
        pytest.skip(f"gst-inspect-1.0 does not know {element}: install gstreamer1.0-plugins-base")
    table = GST_PROPERTIES[element]
    assert live == table, (
        f"{element}: gst-inspect-1.0 differs from the table (made with {GST_VERSION}): "
        f"only live {sorted(live - table)}, only in the table {sorted(table - live)}"
    )


# -- parity -----------------------------------------------------------------------------


@pytest.mark.parametrize("element", sorted(GST_PROPERTIES))
def test_every_gstreamer_property_is_implemented_or_not_applicable(element: str) -> None:
    cls = registry.get(element)
    section = docs_section(DOCS.read_text(), element)
    assert section is not None, f"docs/elements.md has no '### {element}' section"
    not_applicable = parse_not_applicable(section)
    wanted = gst_properties(element)
    missing = sorted(n for n in wanted if cls.find_property(n) is None and n not in not_applicable)
    assert not missing, (
        f"{element}: GStreamer properties neither implemented nor listed on the "
        f"'{NOT_APPLICABLE}' line of its docs/elements.md section: {', '.join(missing)}"
    )


@pytest.mark.parametrize("element", sorted(GST_PROPERTIES))
def test_not_applicable_names_only_unimplemented_gstreamer_properties(element: str) -> None:
    section = docs_section(DOCS.read_text(), element)
    if section is None:
        pytest.skip(f"no '### {element}' section (the parity test reports it)")
    not_applicable = parse_not_applicable(section)
    stale = sorted(set(not_applicable) - gst_properties(element))
    assert not stale, f"{element}: listed as not applicable, not GStreamer's: {stale}"
    cls = registry.get(element)
    both = sorted(n for n in not_applicable if cls.find_property(n) is not None)
    assert not both, f"{element}: implemented yet listed as not applicable: {both}"
