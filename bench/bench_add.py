"""The cost of ``FlexLogger.add()`` against calling the torchnet meter directly, side by side in one run.

Inputs: a Python float, a 0-d CPU tensor (a loss), and a (32, 10) output/target tensor pair (MSEMeter).
Each variant is the user's whole line, dict included: ``Stat.add({'loss': v})`` against ``meter.add(v)``
(both called through a lambda, so the loop costs the same).
Variants run interleaved in blocks; each variant's time per call is the median over blocks.

Goals (issue 5): at most 1.0x torchnet for floats, at most 1.1x for tensor pairs. A 0-d tensor handed to torchnet
as a tensor costs many times a float; FlexLogger converts it, so it is compared with both.

Usage: ``python bench/bench_add.py [--smoke] [--blocks 30] [--calls 20000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchnet.meter as tnt

from flexlogger import FlexLogger


def block_time(fn: Callable[[Any], object], inputs: list[Any]) -> float:
    start = time.perf_counter()
    for value in inputs:
        fn(value)
    return (time.perf_counter() - start) / len(inputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per variant (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=20000, help="calls per block (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.blocks, args.calls = 1, 200
    torch.set_num_threads(1)
    stat = FlexLogger({"loss": {"type": "line"}, "mse": {"type": "line"}},
                      {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
                       "train_mse": {"type": "MSEMeter", "target": "mse"}}, server=None, log_dir=None)
    floats = [1.0 + i / args.calls for i in range(args.calls)]
    scalars = [torch.tensor(v) for v in floats[: args.calls // 4]]
    pair_calls = max(1, args.calls // 10)
    pairs = [(torch.randn(32, 10), torch.randn(32, 10)) for _ in range(16)] * (pair_calls // 16 + 1)
    pairs = pairs[:pair_calls]
    avg, avg_t, avg_item, mse = tnt.AverageValueMeter(), tnt.AverageValueMeter(), tnt.AverageValueMeter(), \
        tnt.MSEMeter()
    ours_avg = stat.meters["train_loss"]

    variants: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
        "float: torchnet meter.add(v)": (lambda v: avg.add(v), floats),
        "float: Stat.add({'train_loss': v})": (lambda v: stat.add({"train_loss": v}), floats),
        "float: our meter.add(v)": (lambda v: ours_avg.add(v), floats),
        "0-d tensor: torchnet meter.add(t)": (lambda t: avg_t.add(t), scalars),
        "0-d tensor: torchnet meter.add(t.item())": (lambda t: avg_item.add(t.item()), scalars),
        "0-d tensor: Stat.add({'train_loss': t})": (lambda t: stat.add({"train_loss": t}), scalars),
        "pair: torchnet MSEMeter.add(o, t)": (lambda p: mse.add(p[0], p[1]), pairs),
        "pair: Stat.add({'train_mse': (o, t)})": (lambda p: stat.add({"train_mse": p}), pairs),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for block in range(args.blocks + 2):
        for name, (fn, inputs) in variants.items():
            elapsed = block_time(fn, inputs)
            if block >= 2:  # warm-up blocks
                samples[name].append(elapsed)
        for meter in (avg, avg_t, avg_item, mse, stat):
            meter.reset()
    stat.close()
    median = {name: statistics.median(times) for name, times in samples.items()}

    print(f"add(): time per call, median of {args.blocks} interleaved blocks\n")
    print(f"{'variant':45} {'per call':>10}  ratio")
    groups = [("float: torchnet meter.add(v)", ["float: Stat.add({'train_loss': v})", "float: our meter.add(v)"]),
              ("0-d tensor: torchnet meter.add(t.item())", ["0-d tensor: torchnet meter.add(t)",
                                                            "0-d tensor: Stat.add({'train_loss': t})"]),
              ("pair: torchnet MSEMeter.add(o, t)", ["pair: Stat.add({'train_mse': (o, t)})"])]
    for base, others in groups:
        print(f"{base:45} {median[base] * 1e6:8.2f} us  1.00x (baseline)")
        for name in others:
            print(f"{name:45} {median[name] * 1e6:8.2f} us  {median[name] / median[base]:.2f}x")
    f = median["float: Stat.add({'train_loss': v})"] / median["float: torchnet meter.add(v)"]
    p = median["pair: Stat.add({'train_mse': (o, t)})"] / median["pair: torchnet MSEMeter.add(o, t)"]
    print(f"\ngoal: floats <= 1.0x torchnet: {f:.2f}x ({'met' if f <= 1.0 else 'NOT met'}); "
          f"tensor pairs <= 1.1x: {p:.2f}x ({'met' if p <= 1.1 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
