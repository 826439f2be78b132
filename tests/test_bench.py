"""Every script in bench/ runs with ``--smoke`` (tiny arguments), so a benchmark cannot rot unnoticed: a crash or
a failed self-check (a non-zero exit) fails here. What they measure is not checked (the figures need a quiet
machine and full-size arguments: ``make bench``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_every_bench_script_is_found() -> None:
    assert len(SCRIPTS) >= 8, f"expected the bench/*.py scripts, found {[p.name for p in SCRIPTS]}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_script_runs_with_tiny_arguments(script: Path, tmp_path: Path) -> None:
    # PYTHONPATH: the scripts import the flexlogger of this checkout, as `make bench` does
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, f"{script.name} --smoke exited {done.returncode}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{script.name} --smoke printed nothing"
