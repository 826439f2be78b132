"""Bytes and time per logged step of weight/gradient histograms, against TensorBoard's ``add_histogram``.

A 5M-parameter MLP (and a 10k-parameter one) trains with ``TooledModelLogger(model, histograms=True)`` logging every
step into a run record (no Visdom server: the record's bytes and the logging time are what is measured), side by
side in one run with the same model logged by ``torch.utils.tensorboard.SummaryWriter.add_histogram`` for every
parameter and its gradient (what a user would pick instead). Both do a real forward/backward/optimizer step between
logs.

Before this change the record stored every raw value of each histogram as JSON (95 MB per logged step for a
2.2M-parameter MLP): histograms are now bin counts computed on the device, so a logged step costs the same few kB
whatever the model size.

Usage: ``python bench/bench_record.py [--smoke] [--steps 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from flexlogger import TooledModelLogger
from flexlogger.sinks.record import POINTS


def mlp(width: int, features: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, 10))


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_flexlogger(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, steps: int, root: Path
                   ) -> tuple[float, float]:
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    times, sizes = [], []
    with TooledModelLogger(model, histograms=True, stats=["mean", "std"], groups=["Weights", "Weight_grad"],
                           server=None, log_dir=root, env="bench") as tml:
        run_dir = tml.logger.run_dir
        if run_dir is None:
            raise RuntimeError(f"no run record under {root}: the record's size cannot be measured")
        points = run_dir / POINTS
        for _ in range(steps):
            optim.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optim.step()
            before = points.stat().st_size
            start = time.perf_counter()
            tml.step(log=True)
            times.append(time.perf_counter() - start)
            tml.flush()
            sizes.append(points.stat().st_size - before)
    return statistics.median(times), statistics.median(sizes[1:])


def run_tensorboard(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, steps: int, root: Path
                    ) -> tuple[float, float]:
    from torch.utils.tensorboard import SummaryWriter

    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    times, sizes = [], []
    writer = SummaryWriter(str(root))
    try:
        for step in range(steps):
            optim.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optim.step()
            writer.flush()
            before = folder_bytes(root)
            start = time.perf_counter()
            for name, p in model.named_parameters():
                if name.endswith("weight"):
                    writer.add_histogram(f"{name}/weights", p, step, bins=30)
                    writer.add_histogram(f"{name}/grads", p.grad, step, bins=30)
            times.append(time.perf_counter() - start)
            writer.flush()
            sizes.append(folder_bytes(root) - before)
    finally:
        writer.close()
    return statistics.median(times), statistics.median(sizes[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="logged steps per variant (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    models: tuple[tuple[str, int, int], ...] = (("10k params", 10, 1000), ("5M params", 2500, 2000))
    if args.smoke:
        args.steps, models = 2, models[:1]
    print(f"{'model':>12} {'variant':<34} {'record bytes/step':>18} {'log ms/step':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, width, features in models:
            x, y = torch.randn(32, features), torch.randint(0, 10, (32,))
            ours = run_flexlogger(mlp(width, features), x, y, args.steps, Path(tmp) / f"ours-{width}")
            theirs = run_tensorboard(mlp(width, features), x, y, args.steps, Path(tmp) / f"tb-{width}")
            params = sum(p.numel() for p in mlp(width, features).parameters())
            print(f"{label:>12} {'TooledModelLogger(histograms=True)':<34} {ours[1]:>18,.0f} {ours[0] * 1e3:>12.2f}"
                  f"   ({params:,} parameters)")
            print(f"{'':>12} {'TensorBoard add_histogram x4':<34} {theirs[1]:>18,.0f} {theirs[0] * 1e3:>12.2f}")
            print(f"{'':>12} {'ratio (ours / TensorBoard)':<34} {ours[1] / theirs[1]:>17.2f}x "
                  f"{ours[0] / theirs[0]:>11.2f}x")
    print("TooledModelLogger also records mean and std of 4 groups per step (TensorBoard: histograms only).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
