"""The flexlogger demo: a small CNN on scikit-learn's 8x8 digits, logged to a local Visdom server.

``make demo`` (or ``flexlogger demo``, or ``python examples/demo.py``) starts a Visdom server on port 8097
unless one already answers there, trains for a few epochs with

- ``get_preset_logger('loss+acc')``: train and test loss and accuracy,
- a confusion matrix window for the test set,
- a ``TooledModelLogger`` on the CNN, in the same run: per-layer spreads of the outputs, their gradients, the
  weights and the weight gradients, and the weights' update ratios (a window per statistic, a trace per layer, on
  log axes), and weight/gradient histograms,

shows a tqdm progress bar, prints the layer table and the URL to open, and leaves the server running
(``make stop`` stops it). The digits data set ships with scikit-learn: real data, no download.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from tqdm import tqdm
except ImportError as exc:  # the demo's own extras; `flexlogger demo` turns this into one line naming the extra
    raise ModuleNotFoundError(f"the demo needs scikit-learn and tqdm ({exc}): pip install 'flexlogger[demo]'",
                              name=exc.name) from exc

import flexlogger
from flexlogger import defaults
from flexlogger.defaults import DEFAULT_LOG_DIR, DEFAULT_PORT
from flexlogger.tools.server import VisdomServer, delete_env, ensure_server

CLASSES = 10
BATCH = 64


def load_data(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The digits as N x 1 x 8 x 8 float tensors in [0, 1] and their labels: 75% train, 25% test."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return x_train, x_test, y_train, y_test


def make_model() -> nn.Sequential:
    """A small CNN for 8 x 8 images: two convolutions, a pooling, two linear layers, each named (the names label
    the model's windows: ``conv1.Grad_out.std``, not a bare index)."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 16, 3, padding=1)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(32 * 4 * 4, 64)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(64, CLASSES)),
    ]))


def batches(x: Tensor, y: Tensor, size: int, gen: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of (x, y), shuffled when ``gen`` is given."""
    order = torch.randperm(len(x), generator=gen) if gen is not None else torch.arange(len(x))
    for start in range(0, len(x), size):
        idx = order[start:start + size]
        yield x[idx], y[idx]


def make_loggers(model: nn.Module, env: str, port: int, log_dir: str | None) -> tuple[Any, Any]:
    """The metrics logger (loss and accuracy, train and test, per epoch, and a confusion matrix) and the model
    logger (per-layer statistics per training step)."""
    # loss and accuracy are logged once per epoch: their x axis says so (the presets' plots say "step")
    epoch = {"xlabel": "epoch"}
    plots = {"loss": {"type": "line", "opts": {"title": "loss", "ylabel": "loss", **epoch}},
             "acc": {"type": "line", "opts": {"title": "accuracy", "ylabel": "accuracy (%)", **epoch}},
             "confusion": {"type": "heatmap", "opts": {"title": "test confusion (rows: true digit)",
                                                       "xlabel": "predicted digit", "ylabel": "true digit",
                                                       "columnnames": [str(i) for i in range(CLASSES)],
                                                       "rownames": [str(i) for i in range(CLASSES)]}}}
    meters = {**{f"{phase}_loss": {"type": "AverageValueMeter", "target": "loss"} for phase in ("train", "test")},
              **{f"{phase}_acc": {"type": "ClassErrorMeter", "target": "acc", "args": {"topk": [1], "accuracy": True}}
                 for phase in ("train", "test")},
              "test_confusion": {"type": "ConfusionMeter", "target": "confusion", "args": {"k": CLASSES}}}
    Stat = flexlogger.FlexLogger(plots, meters, env=env, port=port, log_dir=log_dir)
    # the model's windows in the same run and env, drawn after the loss and accuracy (TooledModelLogger holds its
    # first draw until Stat has drawn): a window per statistic, a trace per weighted layer, spreads and update
    # ratios on log axes, then small weight/gradient histograms
    TMLogger = flexlogger.TooledModelLogger(model, logger=Stat, layers=(nn.Conv2d, nn.Linear), histograms=True)
    return Stat, TMLogger


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a small CNN on the digits data set, logging to Visdom.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="Visdom server port (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs (default: %(default)s)")
    parser.add_argument("--env", default="flexlogger_demo", help="Visdom env (default: %(default)s)")
    parser.add_argument("--log-dir", default=DEFAULT_LOG_DIR,
                        help="run record folder, '' for none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.port = defaults.resolve("port", args.port)
    args.log_dir = defaults.resolve("log_dir", args.log_dir)

    started = ensure_server(args.port)
    delete_env(args.port, args.env)  # each run starts from an empty env, not next to the last run's windows
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread, much faster on a busy CPU
    try:
        return _train(args, started)
    finally:
        torch.set_num_threads(threads)


def _train(args: argparse.Namespace, started: VisdomServer | None) -> int:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, x_test, y_train, y_test = load_data(args.seed)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    Stat, TMLogger = make_loggers(model, args.env, args.port, args.log_dir or None)
    # what tells two demo runs apart in `flexlogger compare`'s table
    Stat.run.log_hparams({"optimizer": "Adam", "lr": 3e-3, "batch": BATCH, "epochs": args.epochs, "seed": args.seed})

    began, layer_table = time.perf_counter(), ""
    with Stat, TMLogger:
        progress = tqdm(range(args.epochs), desc="epochs", unit="epoch", file=sys.stderr)
        for epoch in progress:
            model.train()
            last = (len(x_train) - 1) // BATCH
            for i, (x, y) in enumerate(batches(x_train, y_train, BATCH, gen)):
                optimizer.zero_grad()
                output = model(x)
                loss = nn.functional.cross_entropy(output, y)
                loss.backward()
                optimizer.step()
                TMLogger.step(log=(i == last))  # per-layer statistics of every step, drawn once per epoch
                Stat.add({"train_loss": loss.detach(), "train_acc": [output.detach(), y]})
            layer_table = TMLogger.table(show=False)  # the last training step (evaluation forwards come next)
            model.eval()
            with torch.no_grad():
                for x, y in batches(x_test, y_test, 256):
                    output = model(x)
                    Stat.add({"test_loss": nn.functional.cross_entropy(output, y), "test_acc": [output, y],
                              "test_confusion": [output, y]})
            values = Stat.value(["train_loss", "test_acc"])  # (mean, std) and [top-1 accuracy %], as in torchnet
            progress.set_postfix(loss=f"{values['train_loss'][0]:.3f}", test_acc=f"{values['test_acc'][0]:.1f}%")
            Stat.log(epoch)
        Stat.flush(timeout=60)
        TMLogger.flush(timeout=60)
    print(f"\nPer-layer statistics of the last training step:\n{layer_table}")
    print(f"Trained {args.epochs} epochs in {time.perf_counter() - began:.1f} s.")
    how = f"started (pid {started.pid}; `make stop` stops it)" if started else "already running"
    print(f"Open http://localhost:{args.port}/env/{args.env} -- Visdom server {how}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
