"""The user docs say what the code does: their examples run, their output is real.

- Every ```python block of the pages below runs, on its own, in an empty directory.
- Every ```console block runs in a shell, in an empty directory, one `$ ` command at a
  time, and prints what the page shows (`...` stands for any text, as in doctest).
- The property tables of docs/elements.md are what the elements declare.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from parallax.pipeline import registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = [
    "buffers.md",
    "pipelines.md",
    "elements.md",
    "writing-elements.md",
    "cli.md",
    "errors.md",
    "index.md",
    "links.md",
]


def _blocks(lang: str, pages: list[str] = PAGES) -> list[tuple[str, int, str]]:
    """(page, line, code) for every ```lang block of `pages`."""
    found = []
    for page in pages:
        text = (DOCS / page).read_text(encoding="utf-8")
        for m in re.finditer(rf"^```{lang}\n(.*?)^```$", text, re.DOTALL | re.MULTILINE):
            found.append((page, text.count("\n", 0, m.start()) + 2, m.group(1)))
    return found


PYTHON = _blocks("python")
CONSOLE = _blocks("console", [*PAGES, "../README.md"])  # the README's shell examples too


def _ids(blocks: list[tuple[str, int, str]]) -> list[str]:
    return [f"{page}:{line}" for page, line, _ in blocks]


def test_every_page_exists_and_the_index_links_them() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in [*PAGES, "memory.md", "caps.md", "launch-syntax.md"]:
        assert (DOCS / page).is_file(), page
        assert page == "index.md" or f"({page})" in index, f"index.md does not link {page}"


@pytest.mark.parametrize(("page", "line", "code"), PYTHON, ids=_ids(PYTHON))
def test_python_example_runs(
    page: str, line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Blank lines keep the line numbers of tracebacks those of the page.
    source = "\n" * (line - 1) + code
    exec(compile(source, str(DOCS / page), "exec"), {"__name__": "__docs__"})


def _commands(block: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    for text in block.splitlines():
        if text.startswith("$ "):
            pairs.append((text[2:], []))
        else:
            assert pairs, f"output before the first command: {text!r}"
            pairs[-1][1].append(text)
    return [(cmd, "\n".join(out)) for cmd, out in pairs]


def _matches(expected: str, actual: str) -> bool:
    """Line-trimmed comparison where `...` matches any text, newlines included."""
    exp = "\n".join(s.rstrip() for s in expected.strip("\n").splitlines())
    act = "\n".join(s.rstrip() for s in actual.strip("\n").splitlines())
    pattern = ".*?".join(re.escape(part) for part in exp.split("..."))
    return re.fullmatch(pattern, act, re.DOTALL) is not None


@pytest.mark.parametrize(("page", "line", "block"), CONSOLE, ids=_ids(CONSOLE))
def test_console_example_prints_what_the_page_shows(
    page: str, line: int, block: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    # `parallax` is the console script next to this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PARALLAX_DEBUG", None)
    for command, expected in _commands(block):
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        assert _matches(expected, result.stdout), (
            f"{page}:{line}: `{command}` printed\n{result.stdout}\nbut the page shows\n{expected}"
        )


# -- docs/elements.md: the property tables ---------------------------------------------------


def property_table(factory: str) -> str:
    """The markdown table docs/elements.md shows for `factory`, made from its properties.
    When a property changes, the failing test prints the new table to paste in."""
    rows = ["| property | accepts | default | meaning |", "| --- | --- | --- | --- |"]
    for prop in registry.get(factory).properties():
        default = prop.to_string(prop.default) or '""'
        doc = prop.doc.replace("|", "\\|")
        if prop.mutable:
            doc += " (may change while playing)"
        rows.append(f"| `{prop.name}` | {prop.expects()} | `{default}` | {doc} |")
    return "\n".join(rows) if len(rows) > 2 else "No properties."


BUILT_INS = sorted(ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP))


@pytest.mark.parametrize("factory", BUILT_INS)
def test_elements_page_documents_every_property(factory: str) -> None:
    text = (DOCS / "elements.md").read_text(encoding="utf-8")
    section = re.search(
        rf"^### {re.escape(factory)}\n(.*?)(?=^##)", text + "\n##", re.DOTALL | re.M
    )
    assert section is not None, f"docs/elements.md has no section '### {factory}'"
    table = property_table(factory)
    assert table in section.group(1), (
        f"docs/elements.md: the table of {factory} is out of date; it should read\n{table}"
    )


def test_the_table_maker_escapes_pipes() -> None:
    assert "text \\| hex \\| summary" in property_table("consolesink")
