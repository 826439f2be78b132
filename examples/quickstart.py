"""Quick start: a fake training loop logged to a local Visdom server.

Run it with ``python examples/quickstart.py`` (or ``make demo`` before the full demo existed). It starts a
Visdom server on port 8097 unless one already answers there, logs a few epochs of made-up losses and
accuracies, prints the URL to open, and leaves the server running; ``make stop`` stops it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch

import flexlogger
from flexlogger.tools.server import delete_env, ensure_server

PLOTS = {"loss": {"type": "line", "opts": {"xlabel": "epoch", "ylabel": "loss"}},
         "accuracy": {"type": "line", "opts": {"xlabel": "epoch", "ylabel": "%"}}}
METERS = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
          "test_loss": {"type": "AverageValueMeter", "target": "loss"},
          "train_acc": {"type": "ClassErrorMeter", "target": "accuracy", "args": {"accuracy": True}},
          "test_acc": {"type": "ClassErrorMeter", "target": "accuracy", "args": {"accuracy": True}}}


def fake_batch(epoch: int, gen: torch.Generator, classes: int = 10, size: int = 32) -> tuple[torch.Tensor, ...]:
    """Scores that get better with the epochs, their labels and a loss."""
    target = torch.randint(0, classes, (size,), generator=gen)
    scores = torch.randn(size, classes, generator=gen)
    scores[torch.arange(size), target] += 0.5 * epoch  # the right class stands out more every epoch
    loss = torch.nn.functional.cross_entropy(scores, target)
    return scores, target, loss


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--env", default="quickstart")
    args = parser.parse_args(argv)

    started = ensure_server(args.port)
    delete_env(args.port, args.env)  # each run starts from an empty env, not next to the last run's windows
    gen = torch.Generator().manual_seed(0)
    with flexlogger.FlexLogger(PLOTS, METERS, env=args.env, port=args.port, log_dir=None) as Stat:
        for epoch in range(args.epochs):
            for _ in range(20):
                scores, target, loss = fake_batch(epoch, gen)
                Stat.add({"train_loss": loss, "train_acc": [scores, target]})
            scores, target, loss = fake_batch(epoch, gen)
            Stat.add({"test_loss": loss + 0.1 * math.exp(-epoch), "test_acc": [scores, target]})
            Stat.log(epoch)
        Stat.flush(timeout=60)
    how = f"started (pid {started.pid}; `make stop` stops it)" if started else "already running"
    print(f"Open http://localhost:{args.port}/env/{args.env} -- Visdom server {how}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
