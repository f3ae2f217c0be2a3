"""The `parallax` command in a shell: a closed pipe (`| head`), usage errors that show the
subcommand's usage, `inspect`'s layout, and the README's error example."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from parallax.cli import main
from parallax.pipeline import Element, registry

README = Path(__file__).resolve().parents[2] / "README.md"
PARALLAX = [sys.executable, "-m", "parallax"]


def _into_closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run `parallax argv` with stdout a pipe whose reader has already gone."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [*PARALLAX, *argv], stdout=w, stderr=subprocess.PIPE, timeout=30, check=False
        )
    finally:
        os.close(w)


@pytest.mark.parametrize(
    "argv",
    [
        ("inspect",),
        ("inspect", "fakesrc"),
        ("dot", "fakesrc ! fakesink"),
        ("launch", "fakesrc num-buffers=3 ! fakesink"),  # the progress lines hit the pipe
    ],
)
def test_output_into_a_closed_pipe_exits_141_quietly(argv: tuple[str, ...]) -> None:
    result = _into_closed_pipe(*argv)
    assert result.stderr == b""  # no traceback, no "Exception ignored"
    assert result.returncode == 141  # as a GNU tool killed by SIGPIPE


def test_consolesink_into_head_stops_the_pipeline_quietly(tmp_path: Path) -> None:
    # 16-byte pattern buffers hold a '\n' each: head has its line after the first one.
    shell = (
        "set -o pipefail; "
        f"{' '.join(PARALLAX)} launch -q fakesrc num-buffers=100000 sizetype=fixed "
        "sizemax=16 filltype=pattern ! consolesink 2>err.txt | head -1 > /dev/null; "
        "echo $?"
    )
    result = subprocess.run(
        ["bash", "-c", shell],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    status = result.stdout.strip()
    err = (tmp_path / "err.txt").read_text()
    assert (status, err) == ("141", "")


def test_consolesink_into_a_closed_pipe_is_not_an_error() -> None:
    result = _into_closed_pipe(
        "launch", "-q", "fakesrc num-buffers=10 sizetype=fixed sizemax=16 ! consolesink"
    )
    assert (result.returncode, result.stderr) == (141, b"")


def test_inspect_into_head_prints_the_first_line_and_no_error() -> None:
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {' '.join(PARALLAX)} inspect | head -1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # 0 when the listing fit in the pipe before head left, 141 when it did not.
    assert result.returncode in (0, 141)
    assert result.stderr == ""
    assert re.fullmatch(r" *\S+: .+\n", result.stdout)


# -- usage errors: the subcommand's own usage, exit 2 -----------------------------------------


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (
            ["launch", "--bogus", "fakesrc ! fakesink"],
            "usage: parallax launch [-h] [-v] [-q] [-e]",
            "parallax launch: error: unrecognized arguments: --bogus",
        ),
        (
            ["launch"],
            "usage: parallax launch",
            "parallax launch: error: the following arguments are required: pipeline",
        ),
        (
            ["inspect", "fakesrc", "fakesink"],
            "usage: parallax inspect [-h] [element]",
            "parallax inspect: error: unrecognized arguments: fakesink",
        ),
        (
            ["dot", "--svg", "fakesrc ! fakesink"],
            "usage: parallax dot [-h] [--json]",
            "parallax dot: error: unrecognized arguments: --svg",
        ),
    ],
)
def test_a_usage_error_shows_the_subcommands_usage(
    argv: list[str], usage: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert err.rstrip().endswith(error), err


# -- inspect -----------------------------------------------------------------------------------


@pytest.fixture
def bare_element() -> Iterator[str]:
    class Bare(Element, factory="test-cli-bare"):
        """An element with no pads and no properties."""

        description = "Nothing at all"

    registry.register(Bare)
    try:
        yield Bare.factory_name
    finally:  # the registry has no unregister: a test element leaves as it came
        registry._classes.pop(Bare.factory_name)


def test_inspect_says_none_where_there_is_nothing_to_list(bare_element: str) -> None:
    out = io.StringIO()
    assert main(["inspect", bare_element], out=out) == 0
    text = out.getvalue()
    assert "\nPad Templates:\n  none\n" in text
    assert text.endswith("\nElement Properties:\n  none\n")


# -- the README's error example is what the program prints -------------------------------------


def test_the_readme_error_example_is_what_parallax_prints() -> None:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"A mistake is pointed at.*?```console\n\$ (.*?)\n(.*?)```", text, re.DOTALL)
    assert m is not None, "README.md: no console block after 'A mistake is pointed at'"
    command, shown = m.group(1), m.group(2)
    assert command.startswith("parallax launch ")
    result = subprocess.run(
        ["bash", "-c", command.replace("parallax", " ".join(PARALLAX), 1)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == shown
