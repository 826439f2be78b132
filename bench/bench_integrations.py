"""Overhead per training step of each framework adapter against the framework's own bare loop, side by side.

For each framework, real training steps on real data (an MLP 64-512-512-10 on scikit-learn's digits, batch 64; a
2-layer BERT built from a config, hidden 64, on random token ids, batch 16 x 32 tokens), in these variants:

- Lightning: ``bare`` (``logger=False``), ``CSVLogger`` (Lightning's own, for reference), ``FlexLightningLogger``
  (``self.log`` of two metrics every step, ``log_every_n_steps=1``: a ``log_metrics`` call per step), and ``+ callback``
  (FlexLightningCallback, mean and std of every group of every layer, every step).
- transformers: ``bare`` (``report_to='none'``), ``FlexLoggerCallback`` (``logging_steps=1``: loss, grad norm and
  learning rate drawn every step), ``+ tooled`` (mean and std of the Linear layers' weights and gradients every step).
- ignite: ``bare`` (``create_supervised_trainer``), ``attach`` (the loss added and logged every iteration),
  ``+ attach_tooled`` (mean and std of every group, before every optimizer step).

Each variant is a fresh run of ``--steps`` steps (the first 5 not counted); variants alternate over ``--rounds``
rounds. A step's time is the time between two step-end events of the framework (data, forward, backward, update
and logging), as wall time (everything the loop waits for) and as the process's CPU time (all its threads: the
Visdom sender's and the record writer's too; steadier than wall time on a shared machine); a variant's figure is the
median over rounds of its median step time; ratios are against ``bare`` of the same framework.
Every flexlogger variant writes the run record and sends to a
real Visdom server started here (the sender thread and the server compete for the same CPUs, as in real use;
``--no-server``: the run record only). One torch thread.

Usage: ``python bench/bench_integrations.py [--smoke] [--steps 150] [--rounds 5] [--only lightning,transformers,ignite]
[--no-server]`` (about five minutes with the defaults).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from flexlogger.tools.server import start_server

SKIP = 5  # warm-up steps not counted


def digits_loader() -> DataLoader[Any]:
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))
    return DataLoader(data, batch_size=64, shuffle=False, drop_last=True)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def mark() -> tuple[float, float]:
    """Now, as (wall time, CPU time of this process: every thread, the sender's and the record writer's too)."""
    return time.perf_counter(), time.process_time()


def step_times(marks: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall and CPU time between step ends, without the warm-up steps."""
    kept = marks[SKIP:]
    return (statistics.median(b[0] - a[0] for a, b in itertools.pairwise(kept)),
            statistics.median(b[1] - a[1] for a, b in itertools.pairwise(kept)))


# ---------------------------------------------------------------------------------------------------- Lightning
def lightning_variants(steps: int, opts: dict[str, Any], root: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    from flexlogger.integrations.lightning import FlexLightningCallback, FlexLightningLogger, pl

    class Model(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            out = self.net(x)
            loss = F.cross_entropy(out, y)
            self.log("train_loss", loss)
            self.log("train_acc", (out.argmax(1) == y).float().mean())
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    class Clock(pl.Callback):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.marks: list[tuple[float, float]] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.marks.append(mark())

    def fit(logger: Any, callbacks: list[Any]) -> tuple[float, float]:
        clock = Clock()
        trainer = pl.Trainer(max_steps=steps, logger=logger, callbacks=[*callbacks, clock], accelerator="cpu",
                             devices=1, log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=root)
        trainer.fit(Model(), digits_loader())
        return step_times(clock.marks)

    return {
        "bare": lambda: fit(False, []),
        "CSVLogger": lambda: fit(pl.loggers.CSVLogger(root / "csv"), []),
        "FlexLightningLogger": lambda: fit(FlexLightningLogger(**opts), []),
        "+ callback": lambda: fit(FlexLightningLogger(**opts), [FlexLightningCallback()]),
    }


# ------------------------------------------------------------------------------------------------- transformers
def transformers_variants(steps: int, opts: dict[str, Any], root: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    import transformers

    from flexlogger.integrations.transformers import FlexLoggerCallback

    transformers.logging.set_verbosity_error()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (16 * (steps + 1), 32), generator=g)
    labels = (ids < 100).sum(1) % 2

    class Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "labels": labels[i]}

    class Clock(transformers.TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.marks: list[tuple[float, float]] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.marks.append(mark())

    def train(callbacks: list[Any]) -> tuple[float, float]:
        config = transformers.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=128, max_position_embeddings=64,
                                         num_labels=2)  # type: ignore[call-arg]  # PretrainedConfig's **kwargs
        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(config)
        clock = Clock()
        args = transformers.TrainingArguments(output_dir=str(root / "hf"), max_steps=steps, logging_steps=1,
                                              per_device_train_batch_size=16, report_to="none", save_strategy="no",
                                              use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=Data(), callbacks=[*callbacks, clock])
        trainer.remove_callback(transformers.PrinterCallback)  # disable_tqdm prints every log: in no variant
        trainer.train()
        for callback in callbacks:  # the callback's run stays open after train() (for evaluate()): close it here
            if isinstance(callback, FlexLoggerCallback):
                callback.close()
        return step_times(clock.marks)

    tooled = {"layers": nn.Linear, "groups": ("Weights", "Weight_grad")}
    return {
        "bare": lambda: train([]),
        "FlexLoggerCallback": lambda: train([FlexLoggerCallback(**opts)]),
        "+ tooled": lambda: train([FlexLoggerCallback(tooled=tooled, **opts)]),
    }


# ------------------------------------------------------------------------------------------------------- ignite
def ignite_variants(steps: int, opts: dict[str, Any], root: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    from ignite.engine import Events, create_supervised_trainer

    import flexlogger
    from flexlogger.integrations.ignite import attach, attach_tooled

    def run(flex: bool, tooled: bool) -> tuple[float, float]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        trainer = create_supervised_trainer(model, optimizer, F.cross_entropy)
        marks: list[tuple[float, float]] = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: marks.append(mark()))
        stat = flexlogger.get_preset_logger("loss", phases=("train",), **opts) if flex else None
        tm = flexlogger.TooledModelLogger(model, logger=stat) if tooled and stat is not None else None
        try:
            if stat is not None:
                attach(stat, trainer, Events.ITERATION_COMPLETED, output_transform=lambda loss: {"train_loss": loss})
            if tm is not None:
                attach_tooled(tm, trainer, optimizer)
            trainer.run(digits_loader(), max_epochs=1, epoch_length=steps)
        finally:
            if tm is not None:
                tm.close()
            if stat is not None:
                stat.close()
        return step_times(marks)

    return {"bare": lambda: run(False, False), "attach": lambda: run(True, False),
            "+ attach_tooled": lambda: run(True, True)}


FRAMEWORKS = {"lightning": lightning_variants, "transformers": transformers_variants, "ignite": ignite_variants}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(FRAMEWORKS))
    parser.add_argument("--no-server", action="store_true", help="no Visdom server: the run record only")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.rounds = SKIP + 3, 1
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # Lightning's and transformers' banners on every fit
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = None if args.no_server else start_server(env_path=root / "env", log_path=root / "server.log")
        try:
            opts: dict[str, Any] = {"env": "bench_integrations", "log_dir": root / "runs"}
            opts.update({"server": None} if server is None else {"port": server.port})
            for framework in args.only.split(","):
                try:
                    variants = FRAMEWORKS[framework](args.steps, opts, root)
                except ImportError as exc:  # an optional framework (the `all` extra): say so and go on
                    print(f"\n{framework}: skipped, not installed ({exc})")
                    continue
                times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
                for _ in range(args.rounds):
                    for name, variant in variants.items():
                        times[name].append(variant())
                wall = {name: statistics.median(t[0] for t in values) for name, values in times.items()}
                cpu = {name: statistics.median(t[1] for t in values) for name, values in times.items()}
                print(f"\n{framework}: median step time over {args.rounds} rounds of {args.steps} steps "
                      "(wall: what the loop waits for; CPU: this process, all threads)")
                for name in variants:
                    line = f"  {name:22s}"
                    for label, table in (("wall", wall), ("CPU", cpu)):
                        value, bare = table[name], table["bare"]
                        line += f" {label} {value * 1e3:6.2f} ms"
                        line += "             " if name == "bare" else f" {value / bare:5.2f}x bare"
                    print(line)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
