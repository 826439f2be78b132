"""Every script in bench/ runs with ``--smoke`` (tiny arguments), so a benchmark cannot rot unnoticed: a crash or
a failed self-check (a non-zero exit) fails here. What they measure is not checked (the figures need a quiet
machine and full-size arguments: ``make bench``).

The scripts are started all at once (each is mostly start-up: torch, a Visdom server) and each test waits for its
own, so the whole smoke run takes about as long as the slowest script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
TIMEOUT_S = 300


def test_the_bench_scripts_are_found() -> None:
    assert len(SCRIPTS) >= 8, f"expected the bench/*.py scripts, found {[p.name for p in SCRIPTS]}"


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[subprocess.Popen[str], Path]]]:
    """Every script started with ``--smoke``, each in its own folder (its TMPDIR too), output to a file there."""
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    # PYTHONPATH: the scripts import the flexlogger of this checkout, as `make bench` does
    path = os.pathsep.join(p for p in (str(BENCH.parent), os.environ.get("PYTHONPATH", "")) if p)
    for script in SCRIPTS:
        folder = tmp_path_factory.mktemp(script.stem)
        out = open(folder / "output.txt", "w")  # noqa: SIM115  # closed when the process is done
        process = subprocess.Popen([sys.executable, str(script), "--smoke"], stdout=out, stderr=subprocess.STDOUT,
                                   text=True, cwd=folder, env={**os.environ, "PYTHONPATH": path, "TMPDIR": str(folder)})
        out.close()  # the child holds its own copy
        runs[script.stem] = (process, folder / "output.txt")
    yield runs
    for process, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in SCRIPTS])
def test_bench_script_runs_with_tiny_arguments(name: str,
                                               smoke_runs: dict[str, tuple[subprocess.Popen[str], Path]]) -> None:
    process, output = smoke_runs[name]
    try:
        code = process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"bench/{name}.py --smoke ran over {TIMEOUT_S} s:\n{output.read_text()[-3000:]}")
    text = output.read_text()
    assert code == 0, f"bench/{name}.py --smoke exited {code}:\n{text[-4000:]}"
    assert "Traceback" not in text, f"bench/{name}.py --smoke printed a traceback:\n{text[-4000:]}"
