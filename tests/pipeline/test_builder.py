"""The typed builder: same graph and executor as parse_launch; mypy rejects bad chains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parallax.elements import AppSink, FakeSink, FakeSrc, FileSink, FileSrc, Identity, Queue
from parallax.pipeline import Chain, Pipeline, State


def test_builder_runs_on_the_same_executor(tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(100_000))
    out = tmp_path / "out.bin"
    p = (
        Pipeline.from_source(FileSrc(str(src), blocksize=4096))
        .then(Identity())
        .then(Queue())
        .sink(FileSink(str(out)))
    )
    assert isinstance(p, Pipeline)
    p.run(timeout=10)
    assert out.read_bytes() == src.read_bytes()
    assert p.state is State.NULL


def test_builder_tee_branches() -> None:
    a, b = AppSink(name="ba", max_buffers=0), FakeSink(name="bb")
    p = Pipeline.from_source(FakeSrc(num_buffers=5)).tee(
        lambda c: c.then(Queue()).sink(a),
        lambda c: c.sink(b),
    )
    p.run(timeout=10)
    assert b.count == 5


def test_tee_needs_branches() -> None:
    with pytest.raises(ValueError, match="at least one branch"):
        Pipeline.from_source(FakeSrc()).tee()


def test_chain_exposes_its_pipeline() -> None:
    chain = Pipeline.from_source(FakeSrc())
    assert isinstance(chain, Chain)
    assert isinstance(chain.pipeline, Pipeline)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    [
        "builder.py",  # a chain of mismatched stages is a type error; good chains check clean
        "lookup.py",  # `pipeline.get(name, Kind)` is a `Kind` to mypy
    ],
)
def test_mypy_type_tests(module: str) -> None:
    """Each type_tests module checks clean under mypy --strict, and every `type: ignore`
    in it is needed (warn_unused_ignores)."""
    here = Path(__file__).parent / "type_tests" / module
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unused-ignores",
            "--no-incremental",
            str(here),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
