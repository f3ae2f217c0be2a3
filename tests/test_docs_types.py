"""Every Python example in README.md and docs/*.md passes `mypy --strict`, so the API
the docs teach is as typed as the code: a wrong call in a docs example is a type error.

The blocks are written out as modules (padded with blank lines, so mypy's line numbers
are the page's) and checked in one mypy run, with the project's mypy settings. The
optional worlds the examples use (CuPy, torch, JAX, Ray) need not be installed: their
imports are `Any` here, as they are for a user without the extra. A block whose info
string says ``title="not-typed"`` is skipped (none does today; add one only for a block
that cannot be typed, and say why next to it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
OPTIONAL = ["cupy.*", "torch.*", "jax.*", "ray.*"]  # extras a docs example may import

# One mypy run over the package and every block: 11 s from a cold cache on the 2-core
# development machine, under 2 s warm (.mypy_cache), so not marked slow.


def _blocks() -> list[tuple[Path, int, str]]:
    """(page, first line of the code, code) for every ```python block to check. A page's
    doctest blocks (`>>> `) are one session, as doctest runs them: they come as one
    module, at the line of the first."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        session: list[tuple[int, str]] = []
        for m in _BLOCK.finditer(text):
            if 'title="not-typed"' in m.group(1):
                continue
            line = text.count("\n", 0, m.start()) + 2
            if m.group(2).lstrip().startswith(">>>"):
                session.append((line, _source(m.group(2))))
            else:
                found.append((page, line, m.group(2)))
        if session:
            code = ""
            for line, part in session:  # padded so each part starts at its page line
                code += "\n" * (line - 1 - code.count("\n") - (session[0][0] - 1)) + part
            found.append((page, session[0][0], code))
    return found


def _source(code: str) -> str:
    """The code of a block; for a doctest session (`>>> `), its statements, the output
    lines blanked (so line numbers stay the page's)."""
    if not code.lstrip().startswith(">>>"):
        return code
    lines = []
    for text in code.splitlines():
        stripped = text.lstrip()
        if stripped.startswith((">>> ", "... ")) or stripped in {">>>", "..."}:
            lines.append(stripped[4:])
        else:
            lines.append("")
    return "\n".join(lines) + "\n"


def _config(path: Path) -> None:
    """The project's [tool.mypy] settings as an ini file, with the optional extras
    treated as missing-but-allowed (the code imports them lazily, the docs directly)."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    mypy = dict(settings["mypy"])
    overrides = mypy.pop("overrides", [])
    mypy.pop("files", None)

    def ini(value: object) -> str:
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)

    lines = ["[mypy]", *(f"{k} = {ini(v)}" for k, v in mypy.items())]
    for override in [*overrides, {"module": OPTIONAL, "ignore_missing_imports": True}]:
        modules = override.pop("module")
        modules = modules if isinstance(modules, list) else [modules]
        lines.append(f"[mypy-{','.join(modules)}]")
        lines.extend(f"{k} = {ini(v)}" for k, v in override.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _module_name(page: Path, line: int) -> str:
    stem = re.sub(r"\W", "_", page.stem.lower())
    return f"doc_{stem}_{line}"


def test_the_docs_have_python_examples() -> None:
    blocks = _blocks()
    assert len(blocks) >= 50
    assert {page.name for page, _, _ in blocks} >= {"README.md", "pipelines.md", "gpu.md"}


def test_every_python_block_passes_mypy_strict(tmp_path: Path) -> None:
    where: dict[str, tuple[Path, int]] = {}
    for page, line, code in _blocks():
        name = _module_name(page, line)
        where[name] = (page, line)
        (tmp_path / f"{name}.py").write_text("\n" * (line - 1) + code, encoding="utf-8")
    config = tmp_path / "mypy.ini"
    _config(config)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    problems = []
    for text in result.stdout.splitlines():
        m = re.match(r"(?:.*/)?(doc_\w+)\.py:(\d+): (.*)", text)
        if m is None:
            problems.append(text)  # an error outside the blocks (in src/) says so itself
            continue
        page, _ = where[m.group(1)]
        problems.append(f"{page.relative_to(ROOT)}:{m.group(2)}: {m.group(3)}")
    assert result.returncode == 0 and not problems, "\n".join(problems or [result.stderr])


def test_doctest_blocks_keep_their_statements_and_line_numbers() -> None:
    code = ">>> x = f(\n...     1)\n>>> x\n2\n"
    assert _source(code) == "x = f(\n    1)\nx\n\n"


def test_block_finder_reads_info_strings() -> None:
    text = '```python\nx = 1\n```\n\n```python title="not-typed"\ny\n```\n'
    matches = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]
    assert matches == [("", "x = 1\n"), (' title="not-typed"', "y\n")]
