"""The README's Python examples run as written (in a temp dir with an `in.bin`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.bin").write_bytes(os.urandom(300_000))
    from parallax.pipeline import _registry

    saved = dict(_registry._classes)
    try:
        exec(compile(BLOCKS[index], f"README.md[{index}]", "exec"), {"__name__": f"readme{index}"})
    finally:
        _registry._classes.clear()
        _registry._classes.update(saved)
    capsys.readouterr()
