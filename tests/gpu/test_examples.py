"""The GPU examples run (each exits 0 with a message where its GPU API is missing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.vulkan
def test_texture_shared_with_a_child_process() -> None:
    done = _run("gpu_texture_share.py")
    assert done.returncode == 0, done.stdout + done.stderr
    if "nothing to show" in done.stdout:
        pytest.skip(done.stdout.strip())
    assert "child saw our pixels: ok; we see the child's: ok" in done.stdout


@pytest.mark.gpu
@pytest.mark.vulkan
def test_vulkan_memory_and_semaphore_in_cuda() -> None:
    done = _run("vulkan_cuda.py")
    assert done.returncode == 0, done.stdout + done.stderr
    if "nothing to show" in done.stdout:
        pytest.skip(done.stdout.strip())
    assert "semaphore-ordered write seen: True" in done.stdout
