"""FlexLightningLogger and FlexLightningCallback with a real Lightning Trainer on the digits data."""

from __future__ import annotations

import csv
import importlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import visdom
from readback import empty_windows, traces
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from flexlogger import ConfigError, InvalidConfigError, Run, UnknownNameError
from flexlogger.integrations import IntegrationWarning, MissingExtraError
from flexlogger.integrations.lightning import DEFAULT_NAME, FlexLightningCallback, FlexLightningLogger, pl
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer, find_free_port

L = pl  # lightning.pytorch, or pytorch_lightning where only that is installed


class DigitsModel(L.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self, lr: float = 0.05, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        self.log("train/lr_scale", 1.0 + self.current_epoch, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val/acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def digits_loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    train = TensorDataset(x[:512], y[:512])
    val = TensorDataset(x[512:768], y[512:768])
    return DataLoader(train, batch_size=64), DataLoader(val, batch_size=128)


def trainer(loggers: list[Any], callbacks: list[Any], tmp_path: Path, epochs: int = 2) -> Any:
    return L.Trainer(max_epochs=epochs, logger=loggers, callbacks=callbacks, accelerator="cpu", devices=1,
                     log_every_n_steps=4, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)


def csv_metrics(path: Path) -> dict[str, dict[int, float]]:
    """Lightning's own CSVLogger rows as ``{metric: {step: value}}``."""
    out: dict[str, dict[int, float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    out.setdefault(key, {})[int(row["step"])] = float(value)
    return out


def test_fit_two_epochs_draws_every_metric_and_records_the_run(tmp_path: Path, visdom_server: VisdomServer,
                                                               viz: visdom.Visdom, env: str) -> None:
    flex = FlexLightningLogger(presets="loss", env=env, port=visdom_server.port, log_dir=tmp_path / "runs")
    reference = L.loggers.CSVLogger(tmp_path / "csv", name="ref")
    tooled = FlexLightningCallback(stats=("mean", "norm"), groups=("Weights", "Weight_grad"), mode="by_layer")
    train, val = digits_loaders()
    model = DigitsModel()
    stat = flex.experiment  # the FlexLogger Lightning will write to
    trainer([flex, reference], [tooled], tmp_path).fit(model, train, val)

    assert stat.closed and stat.run.closed and stat.run.status == "finished"
    expected = csv_metrics(Path(reference.log_dir) / "metrics.csv")
    assert sorted(expected) == ["train/lr_scale", "train_loss", "val/acc", "val_loss"]
    assert len(expected["train_loss"]) == len(expected["val_loss"]) == len(expected["val/acc"]) == 2  # 2 epochs
    # the preset's loss window holds the train and val epochs; val/acc got a window `acc`, train/lr_scale `lr_scale`
    assert stat.get_definitions()["loss"] == ["train_loss", "val_loss", "test_loss"]
    assert stat.get_definitions()["acc"] == ["val/acc"] and stat.get_definitions()["lr_scale"] == ["train/lr_scale"]
    assert "epoch" not in stat.meters  # Lightning's own epoch entry is not drawn
    drawn = {**traces(viz, stat, "loss"), **traces(viz, stat, "acc"), **traces(viz, stat, "lr_scale")}
    for metric, points in expected.items():
        xs, ys = drawn[metric]
        assert xs == list(points)  # x = the global step Lightning logged at
        assert ys == pytest.approx(list(points.values()), rel=1e-6)  # CSV holds 6-7 digits

    record = read_record(stat.run_dir)
    recorded: dict[str, dict[float, float]] = {}
    for update in record.updates:
        for trace, value in update.data.items():
            recorded.setdefault(trace, {})[update.step] = value
    for metric, points in expected.items():
        assert recorded[metric] == pytest.approx(points, rel=1e-6)
    hparams = json.loads((stat.run_dir / "hparams.json").read_text())
    assert hparams["lr"] == 0.05 and hparams["hidden"] == 32
    summary = json.loads((stat.run_dir / "summary.json").read_text())
    assert summary["plots"]["loss"]["points"] == 4 and summary["status"] == "finished"  # train and val, 2 epochs
    # the callback's per-layer windows share the run: gradients of every optimizer step (8 per epoch)
    assert flex.version == stat.run_dir.name and flex.log_dir == str(stat.run_dir)
    assert Path(flex.save_dir or "", flex.name, flex.version) == stat.run_dir  # where Lightning puts checkpoints
    grad = traces(viz, stat, "net.0")["net.0.Weight_grad.norm"]
    assert grad[0] == list(range(16)) and all(v > 0 for v in grad[1])
    assert "net.0.Weight_grad.norm" in recorded and len(recorded["net.0.Weight_grad.norm"]) == 16


def test_gradient_statistics_are_the_gradients_the_optimizer_used(tmp_path: Path, env: str) -> None:
    class Capture(L.Callback):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.norms: list[float] = []

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            self.norms.append(float(pl_module.net[0].weight.grad.norm()))

    flex = FlexLightningLogger(env=env, server=None, log_dir=tmp_path)
    capture = Capture()
    callback = FlexLightningCallback(stats=("norm",), groups=("Weight_grad",), layers="net.0", mode="by_layer")
    trainer([flex], [callback, capture], tmp_path, epochs=1).fit(DigitsModel(), digits_loaders()[0])
    assert flex.log_dir is not None
    recorded = [u.data["net.0.Weight_grad.norm"] for u in read_record(flex.log_dir).updates
                if u.plot == "net.0"]
    assert recorded == pytest.approx(capture.norms, rel=1e-5)
    assert callback.tooled is None  # hooks taken off the model at teardown


def test_the_default_statistics_fill_every_window_and_update_ratio_is_the_step_s_update(
        tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    class Update(L.Callback):  # type: ignore[misc,name-defined]
        """||W_after - W_before|| / ||W_before|| of net.0 around each optimizer step."""

        def __init__(self) -> None:
            self.before: torch.Tensor | None = None
            self.ratios: list[float] = []

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            self.before = pl_module.net[0].weight.detach().clone()

        def on_train_batch_end(self, *args: Any) -> None:
            assert self.before is not None
            after = args[1].net[0].weight.detach()
            self.ratios.append(float((after - self.before).norm() / self.before.norm()))

    flex = FlexLightningLogger(env=env, port=visdom_server.port, log_dir=tmp_path / "runs")
    update = Update()
    callback = FlexLightningCallback(every=2)  # the defaults: std and update_ratio of four groups
    stat = flex.experiment
    trainer([flex], [callback, update], tmp_path, epochs=1).fit(DigitsModel(), digits_loaders()[0])
    assert stat.closed and stat.run_dir is not None
    assert "Weights.update_ratio" in stat.get_definitions()
    assert empty_windows(viz, env) == {}  # the update_ratio window too: measured after the optimizer step
    recorded = [u for u in read_record(stat.run_dir).updates if u.plot == "Weights.update_ratio"]
    assert [u.step for u in recorded] == [0, 2, 4, 6]  # every=2 of 8 optimizer steps
    assert [u.data["net.0.Weights.update_ratio"] for u in recorded] == pytest.approx(update.ratios[::2], rel=1e-4)
    assert all(r > 0 for r in update.ratios)


def test_a_failed_fit_closes_the_run_as_crashed(tmp_path: Path, env: str) -> None:
    class Boom(DigitsModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if batch_idx == 2:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    flex = FlexLightningLogger(env=env, server=None, log_dir=tmp_path)
    stat = flex.experiment
    with pytest.raises(RuntimeError, match="boom"):
        trainer([flex], [], tmp_path, epochs=1).fit(Boom(), digits_loaders()[0])
    assert stat.closed and stat.run.status == "crashed" and stat.run_dir is not None
    assert json.loads((stat.run_dir / "summary.json").read_text())["status"] == "crashed"


def test_a_shared_run_stays_open_and_a_bad_metric_warns_without_stopping_training(tmp_path: Path, env: str) -> None:
    class Odd(DigitsModel):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            self.log("train_loss_copy", 0.5)
            return super().training_step(batch, batch_idx)

    with Run(env=env, server=None, log_dir=tmp_path) as run:
        flex = FlexLightningLogger({"plots": {"copy": {"type": "heatmap"}},
                                    "meters": {"train_loss_copy": {"type": "ValueMeter", "target": "copy"}}},
                                   run=run)
        with pytest.warns(IntegrationWarning, match="train_loss_copy"):
            trainer([flex], [], tmp_path, epochs=1).fit(Odd(), digits_loaders()[0])
        stat = flex.experiment  # a new FlexLogger of the same (open) run: the one of fit was closed by finalize
        assert not run.closed and stat.run is run
        assert run.dir is not None and run.flush(10) == 0  # the other metrics went on: the epoch's train_loss
        assert [(u.plot, sorted(u.data)) for u in read_record(run.dir).updates] == [
            ("hparams", ["hidden", "lr"]), ("loss", ["train_loss"])]  # save_hyperparameters(), then the epoch
        stat.close()
    assert run.status == "finished"


def test_the_logger_pickles_without_its_run_for_spawned_workers(tmp_path: Path, env: str) -> None:
    flex = FlexLightningLogger(presets="loss", env=env, server=None, log_dir=tmp_path)
    stat = flex.experiment
    copy = pickle.loads(pickle.dumps(flex))  # Lightning's ddp_spawn pickles the trainer's loggers
    assert copy._logger is None and copy.experiment is not stat  # the worker makes its own FlexLogger
    assert copy.experiment.get_definitions() == stat.get_definitions()
    copy.finalize("success")
    flex.finalize("success")


def test_constructor_errors_name_the_adapter(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"FlexLightningLogger\(\) config.*unknown preset 'lossy'"):
        FlexLightningLogger(presets="lossy")
    with pytest.raises(InvalidConfigError, match=r"FlexLightningLogger\(\).*unknown config key 'enviroment' "
                                                 r"\(did you mean 'env'"):
        FlexLightningLogger(enviroment="x")
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): `distributed` is set by the adapter"):
        FlexLightningLogger(distributed=True)
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): expected `run` to be a flexlogger.Run"):
        FlexLightningLogger(run="runs")
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): env: options of the run, but a run was given"):
        FlexLightningLogger(run=Run(server=None, log_dir=None), env="x")
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): expected a config file path or a dict"):
        FlexLightningLogger(config=3)  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match=r"FlexLightningCallback\(\): unknown TooledModelLogger option "
                                               r"'stat' \(did you mean 'stats'"):
        FlexLightningCallback(stat=("mean",))


def test_max_steps_on_its_own_run_or_a_shared_one() -> None:
    """max_steps is a config option, and the one run option an adapter takes with run= (set on that run), as
    FlexLogger(run=run, max_steps=...) does."""
    own = FlexLightningLogger(presets="loss", server=None, log_dir=None, max_steps=12).experiment
    assert own.run.max_steps == 12
    own.close()
    with Run(server=None, log_dir=None) as run:
        shared = FlexLightningLogger(presets="loss", run=run, max_steps=30).experiment
        assert shared.run is run and run.max_steps == 30


def test_without_lightning_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "lightning" or m.startswith(("lightning.", "pytorch_lightning"))]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "flexlogger.integrations.lightning")
    with pytest.raises(MissingExtraError, match=r"pip install 'flexlogger\[lightning\]'") as info:
        importlib.import_module("flexlogger.integrations.lightning")
    assert isinstance(info.value, ImportError)


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset
    from flexlogger.integrations.lightning import FlexLightningLogger, pl

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
            self.log("rank", float(self.global_rank), on_step=False, on_epoch=True)  # not synced: rank 0's
            self.logger.experiment.add({"train_loss": loss})  # every rank may feed its meters
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    if __name__ == "__main__":
        port, env, log_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        torch.manual_seed(0)
        data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        logger = FlexLightningLogger(presets="loss", env=env, port=port, log_dir=log_dir)
        # "ddp": rank 1 runs this script again as a plain process (ddp_spawn's workers end with os._exit, so the
        # gloo group is never destroyed and a worker may die in C++ at exit: "terminate called ...")
        trainer = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, logger=logger,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(Model(), DataLoader(data, batch_size=8))
""")


@pytest.mark.slow  # two processes, each importing torch and Lightning
def test_under_ddp_only_rank_0_draws(tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom,
                                     env: str) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(visdom_server.port), env, str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MASTER_PORT": str(
                              find_free_port())})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "runs" / env).iterdir())
    assert len(runs) == 1  # rank 1 made no run folder
    updates = read_record(runs[0]).updates
    assert [(u.plot, u.step, sorted(u.data)) for u in updates] == [("loss", 1, ["train_loss"]), ("rank", 1, ["rank"]),
                                                                   ("loss", 3, ["train_loss"]), ("rank", 3, ["rank"])]
    assert [u.data["rank"] for u in updates if u.plot == "rank"] == [0.0, 0.0]  # drawn by rank 0
    windows = json.loads(viz.get_window_data(env=env))
    assert sorted(windows) == [f"{runs[0].name}_loss", f"{runs[0].name}_rank"]  # one run's windows, nothing else


def test_pytorch_lightning_alone_is_used_when_lightning_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path, env: str) -> None:
    pytorch_lightning = pytest.importorskip("pytorch_lightning")
    for name in [m for m in sys.modules if m == "lightning" or m.startswith("lightning.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.delitem(sys.modules, "flexlogger.integrations.lightning")
    adapter = importlib.import_module("flexlogger.integrations.lightning")
    assert adapter.pl is pytorch_lightning
    flex = adapter.FlexLightningLogger(env=env, server=None, log_dir=tmp_path)
    assert isinstance(flex, pytorch_lightning.loggers.Logger)
    assert isinstance(adapter.FlexLightningCallback(), pytorch_lightning.Callback)
    flex.log_metrics({"train_loss": 0.25}, step=3)
    flex.finalize("success")
    assert [(u.plot, u.step, u.data) for u in read_record(tmp_path / env / flex.version).updates] == [
        ("loss", 3, {"train_loss": 0.25})]


def test_name_version_save_dir_and_prefix_as_lightning_loggers_take_them(tmp_path: Path) -> None:
    flex = FlexLightningLogger(save_dir=tmp_path, name="exp", version=3, prefix="tmp", server=None)
    # reading where the run goes starts nothing: no folder, no file
    assert (flex.name, flex.version, flex.save_dir) == ("exp", "version_3", str(tmp_path))
    assert flex.root_dir == str(tmp_path / "exp") and flex.log_dir == str(tmp_path / "exp" / "version_3")
    assert list(tmp_path.iterdir()) == []
    flex.log_metrics({"test": 1.0}, step=0)  # Lightning's prefix: `tmp-test`
    flex.finalize("success")
    assert [(u.plot, u.data) for u in read_record(tmp_path / "exp" / "version_3").updates] == [
        ("tmp-test", {"tmp-test": 1.0})]
    assert FlexLightningLogger(server=None, log_dir=tmp_path).name == DEFAULT_NAME == "lightning_logs"
    assert FlexLightningLogger(server=None, log_dir=tmp_path, version="2020-02-05").version == "2020-02-05"
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): `name` is Lightning's name for `env`, but both "
                                          r"were given \(name='a', env='b'\); expected one of them"):
        FlexLightningLogger(name="a", env="b")
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): expected `version` to be an int \(version_<n>\), "
                                          r"a string or None, but got float 1.5"):
        FlexLightningLogger(version=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"FlexLightningLogger\(\): name, version: options of the run, but a run "
                                          r"was given"):
        FlexLightningLogger(run=Run(server=None, log_dir=None), name="a", version=1)


def test_trainer_log_dir_is_save_dir_and_checkpoints_go_into_the_run_folder(tmp_path: Path) -> None:
    """Lightning's Trainer.log_dir is `save_dir` for every logger but its CSV and TensorBoard ones (W&B, MLflow
    too); the checkpoints go to <save_dir>/<name>/<version>/checkpoints: inside the run folder."""
    flex = FlexLightningLogger(save_dir=tmp_path, server=None)
    fit = L.Trainer(max_epochs=1, logger=flex, accelerator="cpu", devices=1, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=tmp_path, log_every_n_steps=4)
    assert fit.log_dir == flex.save_dir == str(tmp_path)
    fit.fit(DigitsModel(), digits_loaders()[0])
    assert flex.log_dir is not None and fit.checkpoint_callback is not None
    assert Path(fit.checkpoint_callback.best_model_path).parent == Path(flex.log_dir) / "checkpoints"
    assert (Path(flex.log_dir) / "points.jsonl").exists()


def test_odd_hparams_are_sanitised_and_kept_and_metrics_recorded(tmp_path: Path) -> None:
    class _Test:
        def __str__(self) -> str:
            return "a test object"

    flex = FlexLightningLogger(save_dir=tmp_path, server=None)
    flex.log_hyperparams({1: 1, "2": 2, "three": 3.0, "test": _Test(), "4": torch.tensor(4),
                          "opt": Namespace(lr=0.1, betas=(0.9, 0.99))}, metrics={"hp_metric": 0.5})
    flex.log_hyperparams(Namespace(batch=32))
    flex.finalize("success")
    assert flex.log_dir is not None
    hparams = json.loads(Path(flex.log_dir, "hparams.json").read_text())
    assert hparams == {"1": 1, "2": 2, "three": 3.0, "test": "a test object", "4": 4,
                       "opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "batch": 32}
    # log_hyperparams(params, metrics): the metrics at step 0, as Lightning's TensorBoard logger does
    assert [(u.step, u.data) for u in read_record(flex.log_dir).updates if u.plot != "hparams"] == [
        (0, {"hp_metric": 0.5})]
    # a key the record refuses even then (empty) is one warning; the others are kept
    flex = FlexLightningLogger(save_dir=tmp_path, server=None)
    _ = flex.experiment
    with pytest.warns(IntegrationWarning, match=r"log_hyperparams\[''\]: RecordCallTypeError: .*non-empty strings"):
        flex.log_hyperparams({"": 1, "ok": 2})
    flex.finalize("success")
    assert json.loads(Path(flex.log_dir or "", "hparams.json").read_text()) == {"ok": 2}


def test_an_exception_is_crashed_with_its_traceback_and_ctrl_c_is_interrupted(tmp_path: Path) -> None:
    class Fails(DigitsModel):
        def __init__(self, exc: BaseException) -> None:
            super().__init__()
            self.exc = exc

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if batch_idx == 2:
                raise self.exc
            return super().training_step(batch, batch_idx)

    flex = FlexLightningLogger(save_dir=tmp_path, name="boom", server=None)
    with pytest.raises(RuntimeError, match="boom"):
        trainer([flex], [], tmp_path, epochs=1).fit(Fails(RuntimeError("boom")), digits_loaders()[0])
    assert flex.log_dir is not None
    summary = json.loads(Path(flex.log_dir, "summary.json").read_text())
    assert summary["status"] == "crashed" and summary["error"] == "RuntimeError: boom"
    assert "in training_step" in summary["traceback"] and "raise self.exc" in summary["traceback"]

    flex = FlexLightningLogger(save_dir=tmp_path, name="ctrl-c", server=None)
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT from then on: given back to pytest below
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown after a KeyboardInterrupt: sys.exit(1)
            trainer([flex], [], tmp_path, epochs=1).fit(Fails(KeyboardInterrupt()), digits_loaders()[0])
    finally:
        signal.signal(signal.SIGINT, handler)
    assert flex.log_dir is not None
    assert json.loads(Path(flex.log_dir, "summary.json").read_text())["status"] == "interrupted"
