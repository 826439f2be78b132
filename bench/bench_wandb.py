"""wandb- and TensorBoard-style logging through flexlogger against the real TensorBoard SummaryWriter, and the import.

Part 1, side by side in one run: a small training loop (bench_log's: 3 x torch.mm 256x256 per step) logs 5 scalars
per step through ``flexlogger.wandb.log`` (a live Visdom server and the record), ``flexlogger.tensorboard.
SummaryWriter.add_scalar`` x5 (the same), the real ``torch.utils.tensorboard.SummaryWriter.add_scalar`` x5 (event
file) and, when the wandb package is installed, ``wandb.log`` in offline mode; the time each step's logging blocks
the loop. Goal: flexlogger's median at most the real SummaryWriter's.

Part 2: ``flexlogger import`` of an event file of ``--import-points`` scalars written by the real SummaryWriter: the
time, and the peak memory of the importing process above what it held before (bounded: the reader streams).

    python bench/bench_wandb.py                                      # 4 s per variant, 10^6 points
    python bench/bench_wandb.py --seconds 0.2 --import-points 2000   # the CI smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_log import _ms, quantile, quiet, training_loop

from flexlogger.tools.server import VisdomServer, start_server

KEYS = ("train/loss", "val/loss", "train/acc", "val/acc", "lr")
ROOT = Path(__file__).resolve().parents[1]


def loop(log5: Callable[[int, dict[str, float]], None], seconds: float) -> list[float]:
    """bench_log's training loop, with 5 values per step under wandb-style keys."""
    names = {f"s{i}": key for i, key in enumerate(KEYS)}

    def log(step: int, values: dict[str, float]) -> None:
        log5(step, {names[k]: v for k, v in values.items() if k in names})

    return training_loop(log, seconds)


def flex_wandb(server: VisdomServer, seconds: float, root: Path) -> list[float]:
    import flexlogger.wandb as wandb

    os.environ["FLEXLOGGER_PORT"] = str(server.port)
    wandb.init(project="bench_wandb", dir=root)
    times = loop(lambda step, values: wandb.log(values, step=step), seconds)
    wandb.finish()
    return times


def flex_writer(server: VisdomServer, seconds: float, root: Path) -> list[float]:
    from flexlogger.tensorboard import SummaryWriter

    return add_scalar_times(SummaryWriter(root / "bench_writer", port=server.port), seconds)


def add_scalar_times(writer: Any, seconds: float) -> list[float]:
    """The loop's blocking times with ``writer.add_scalar`` once per value, then the writer closed."""
    def log(step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    times = loop(log, seconds)
    writer.close()
    return times


def real_writer(seconds: float, root: Path) -> list[float]:
    from torch.utils.tensorboard import SummaryWriter

    return add_scalar_times(SummaryWriter(str(root / "tb_real")), seconds)


def real_wandb(seconds: float, root: Path) -> list[float]:
    import wandb  # the real package, offline: only when it is installed

    run = wandb.init(project="bench_wandb", dir=str(root), mode="offline")
    times = loop(lambda step, values: run.log(values, step=step), seconds)
    run.finish()
    return times


_CHILD = """
import json, resource, sys, time
from flexlogger.tools.importer import import_runs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
result = import_runs([sys.argv[1]], log_dir=sys.argv[2])[0]
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "points": result.points, "problems": result.problems,
                  "before_kib": before, "peak_kib": after}))
"""


def bench_import(points: int, root: Path) -> dict[str, Any]:
    """Write ``points`` scalars with the real SummaryWriter, then import them in a fresh process."""
    from torch.utils.tensorboard import SummaryWriter

    folder = root / "import_src" / "big"
    writer = SummaryWriter(str(folder), max_queue=1000)
    start = time.perf_counter()
    for i in range(points):
        writer.add_scalar(KEYS[i % len(KEYS)], float(i) * 1e-3, i // len(KEYS))
    writer.close()
    written = time.perf_counter() - start
    size = sum(p.stat().st_size for p in folder.glob("events.out.tfevents.*"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(root / "imported")], env=env,
                          capture_output=True, text=True, check=True)
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(written_s=written, file_bytes=size)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per variant (default: %(default)s)")
    parser.add_argument("--import-points", type=int, default=1_000_000,
                        help="scalars in the event file to import (default: %(default)s)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch's threads (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.import_points = 0.1, 200
    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        imported = bench_import(args.import_points, root)
        rows: dict[str, list[float]] = {}
        missing: list[str] = []
        with quiet(), start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
            rows["flexlogger.wandb.log (5 keys)"] = flex_wandb(server, args.seconds, root / "runs")
            rows["flexlogger SummaryWriter x5"] = flex_writer(server, args.seconds, root / "runs")
            rows["torch SummaryWriter x5"] = real_writer(args.seconds, root)
            try:
                rows["wandb.log offline (5 keys)"] = real_wandb(args.seconds, root)
            except ModuleNotFoundError as exc:
                missing.append(f"wandb offline: not installed ({exc.name})")
    real = statistics.median(rows["torch SummaryWriter x5"])
    print(f"5 scalars per step of a training loop: time the loop is blocked ({args.seconds:g} s per variant, "
          f"flexlogger drawing on a live Visdom server and writing its record)\n")
    print(f"{'method':32} {'steps':>7} {'median':>11} {'p90':>11} {'p99':>11} {'median/torch SW':>16}")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"{name:32} {len(times):7d} {_ms(median):>11} {_ms(quantile(times, 0.9)):>11} "
              f"{_ms(quantile(times, 0.99)):>11} {median / real:15.2f}x")
    for line in missing:
        print(f"  ({line})")
    for name in ("flexlogger.wandb.log (5 keys)", "flexlogger SummaryWriter x5"):
        ours = statistics.median(rows[name])
        print(f"goal: {name} median <= torch SummaryWriter's {_ms(real)}: {_ms(ours)} "
              f"({'met' if ours <= real else 'NOT met'})")
    extra_mib = (imported["peak_kib"] - imported["before_kib"]) / 1024
    print(f"\nflexlogger import of {imported['points']:,} points ({imported['file_bytes'] / 2**20:.1f} MiB event file, "
          f"written by torch's SummaryWriter in {imported['written_s']:.1f} s): {imported['seconds']:.2f} s "
          f"({imported['points'] / max(imported['seconds'], 1e-9):,.0f} points/s), peak memory "
          f"{imported['peak_kib'] / 1024:.0f} MiB, {extra_mib:.0f} MiB above the process before the import"
          + (f"; problems: {imported['problems']}" if imported["problems"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
