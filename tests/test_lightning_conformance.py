"""Lightning's own logger tests, ported to FlexLightningLogger as a user porting from ``CSVLogger`` would.

From Lightning-AI/pytorch-lightning ``tests/tests_pytorch/loggers/``: ``test_all.py``, ``test_logger.py`` and
``test_csv.py`` (commit 7f0c343), run against the installed Lightning with its ``BoringModel``. Each test names the
test it ports; where our logger differs on purpose (the README's Lightning section says why), the ported test asserts
our behaviour and says so. Left out, with the reason:

- test_all: the Comet/MLflow/W&B parts (other loggers, mocked there).
- test_logger: ``test_dummylogger_*`` and ``test_dummyexperiment_support_item_assignment`` (Lightning's own dummy
  classes; ours is the same class on rank > 0, checked by ``RankZeroLoggerCheck``), ``test_scan_checkpoints`` (a
  checkpoint utility, no logger).
- test_csv: ``test_no_name`` (``name`` is the Visdom env here, which cannot be empty; ``None`` is the default
  name), ``test_csv_logger_remotefs`` (the record is a local folder), ``test_flush_n_steps`` and
  ``test_metrics_reset_after_save`` (the CSV writer's buffer: every point here is written when logged),
  ``test_append_columns`` (the CSV header).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flexlogger.integrations.lightning import FlexLightningLogger, pl
from flexlogger.sinks.record import read_record

Trainer = pl.Trainer
BoringModel = importlib.import_module(f"{pl.__name__}.demos.boring_classes").BoringModel
Tuner = importlib.import_module(f"{pl.__name__}.tuner").Tuner
DummyExperiment = pl.loggers.logger.DummyExperiment


def recorded(log_dir: str | None) -> dict[str, dict[float, float]]:
    """``{trace: {step: value}}`` of a run record."""
    assert log_dir is not None
    out: dict[str, dict[float, float]] = {}
    for update in read_record(log_dir).updates:
        if update.plot != "hparams":
            for trace, value in update.data.items():
                out.setdefault(trace, {})[update.step] = value
    return out


def hparams_of(log_dir: str | None) -> dict[str, Any]:
    assert log_dir is not None
    return json.loads(Path(log_dir, "hparams.json").read_text())


def quiet(**options: Any) -> dict[str, Any]:
    return {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "enable_model_summary": False,
            **options}


# ---------------------------------------------------------------------------------------------- test_all.py
def test_loggers_fit_test_all(tmp_path: Path) -> None:
    """test_all.py::test_loggers_fit_test_all"""

    class CustomModel(BoringModel):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self.step(batch)
            self.log("train_some_val", loss)
            return {"loss": loss}

        def on_validation_epoch_end(self) -> None:
            self.log_dict({"early_stop_on": torch.tensor(1), "val_loss": torch.tensor(0.5)})

        def on_test_epoch_end(self) -> None:
            self.log("test_loss", torch.tensor(2))

    class StoreHistoryLogger(FlexLightningLogger):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.history: list[tuple[int | None, dict[str, float]]] = []

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            super().log_metrics(metrics, step)
            self.history.append((step, metrics))

    logger = StoreHistoryLogger(save_dir=str(tmp_path), server=None)
    trainer = Trainer(**quiet(default_root_dir=tmp_path, max_epochs=1, logger=logger, limit_train_batches=1,
                              limit_val_batches=1, log_every_n_steps=1))
    trainer.fit(CustomModel())
    fit_dir = logger.log_dir
    trainer.test()
    assert [(s, sorted(m)) for s, m in logger.history] == [
        (0, ["epoch", "train_some_val"]), (0, ["early_stop_on", "epoch", "val_loss"]), (1, ["epoch", "test_loss"])]
    # and in our record: fit's metrics in fit's run, test's in the run trainer.test() started (finalize closed fit's)
    assert sorted(recorded(fit_dir)) == ["early_stop_on", "train_some_val", "val_loss"]
    assert recorded(logger.log_dir) == {"test_loss": {1: 2.0}}


def test_loggers_pickle(tmp_path: Path) -> None:
    """test_all.py::test_loggers_pickle_all (_test_loggers_pickle)"""
    logger = FlexLightningLogger(save_dir=str(tmp_path), server=None)
    _ = logger.experiment  # the experiment must not be pickled
    logger.log_metrics({"a": 1})
    logger.save()
    pickle.dumps(logger)
    trainer = Trainer(max_epochs=1, logger=logger)
    trainer2 = pickle.loads(pickle.dumps(trainer))
    trainer2.logger.log_metrics({"acc": 1.0})
    assert trainer2.logger.name == logger.name
    assert trainer2.logger.save_dir == logger.save_dir
    trainer2.logger.finalize("success")
    logger.finalize("success")


@pytest.mark.parametrize("tuner_method", ["lr_find", "scale_batch_size"])
def test_logger_reset_correctly(tmp_path: Path, tuner_method: str) -> None:
    """test_all.py::test_logger_reset_correctly, with our logger in the trainer"""

    class CustomModel(BoringModel):  # type: ignore[misc,valid-type]
        def __init__(self, lr: float = 0.1, batch_size: int = 1) -> None:
            super().__init__()
            self.save_hyperparameters()

    model = CustomModel()
    trainer = Trainer(**quiet(default_root_dir=tmp_path, max_epochs=1,
                              logger=FlexLightningLogger(save_dir=tmp_path, server=None)))
    tuner = Tuner(trainer)
    logger1 = trainer.logger
    getattr(tuner, tuner_method)(model, **({"max_trials": 2} if tuner_method == "scale_batch_size" else
                                           {"num_training": 5}))
    assert logger1 is trainer.logger is model.logger


class LazyInitExperimentCheck(pl.Callback):  # type: ignore[misc,name-defined]
    """test_all.py::LazyInitExperimentCheck: on rank 0 the experiment exists at setup (ours: a FlexLogger)."""

    def setup(self, trainer: Any, pl_module: Any, stage: str | None = None) -> None:
        if trainer.global_rank > 0:
            return
        assert not isinstance(trainer.logger.experiment, DummyExperiment)


class RankZeroLoggerCheck(pl.Callback):  # type: ignore[misc,name-defined]
    """test_all.py::RankZeroLoggerCheck, as in Lightning."""

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        is_dummy = isinstance(trainer.logger.experiment, DummyExperiment)
        if trainer.is_global_zero:
            assert not is_dummy
        else:
            assert is_dummy
            assert pl_module.logger.experiment.something(foo="bar") is None


class LoggingModel(BoringModel):  # type: ignore[misc,valid-type]
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().training_step(batch, batch_idx)
        self.log("train_loss", out["loss"], on_step=True)
        return out


@pytest.mark.slow  # two spawned processes
def test_logger_initialization_under_ddp_spawn(tmp_path: Path) -> None:
    """test_all.py::test_logger_initialization (ddp_spawn, 2 processes), plus what the main process sees after fit:
    its logger names the workers' run, which holds the hyperparameters logged before fit (a fixed version)."""
    logger = FlexLightningLogger(save_dir=str(tmp_path), version="fixed", server=None)
    logger.log_hyperparams({"lr": 0.1})  # in the main process, before fit: waits for the run
    assert not (tmp_path / "lightning_logs").exists()
    trainer = Trainer(**quiet(logger=logger, default_root_dir=tmp_path, strategy="ddp_spawn", devices=2,
                              max_steps=2, log_every_n_steps=1,
                              callbacks=[LazyInitExperimentCheck(), RankZeroLoggerCheck()]))
    trainer.fit(LoggingModel())
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["fixed"]  # one run: no `fixed-2`
    assert logger.log_dir == str(tmp_path / "lightning_logs" / "fixed")
    assert hparams_of(logger.log_dir) == {"lr": 0.1}
    assert sorted(recorded(logger.log_dir)["train_loss"]) == [0, 1]
    assert json.loads(Path(logger.log_dir, "summary.json").read_text())["status"] == "finished"
    assert trainer.checkpoint_callback is not None
    assert Path(trainer.checkpoint_callback.best_model_path).parent == Path(logger.log_dir) / "checkpoints"


def test_logger_with_prefix(tmp_path: Path) -> None:
    """test_all.py::test_logger_with_prefix_all (the TensorBoard part: ``tmp-test``)"""
    logger = FlexLightningLogger(save_dir=tmp_path, prefix="tmp", server=None)
    logger.log_metrics({"test": 1.0}, step=0)
    logger.finalize("success")
    assert recorded(logger.log_dir) == {"tmp-test": {0: 1.0}}


def test_logger_default_name(tmp_path: Path) -> None:
    """test_all.py::test_logger_default_name"""
    assert FlexLightningLogger(save_dir=tmp_path, server=None).name == "lightning_logs"


# ------------------------------------------------------------------------------------------- test_logger.py
class RecordingLogger(FlexLightningLogger):
    """test_logger.py::CustomLogger's bookkeeping on top of our logger."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hparams_logged: Any = None
        self.metrics_logged: dict[str, Any] = {}
        self.finalized_status: str | None = None
        self.after_save_checkpoint_called = False

    def log_hyperparams(self, params: Any = None, *args: Any, **kwargs: Any) -> None:
        self.hparams_logged = params
        super().log_hyperparams(params, *args, **kwargs)

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.metrics_logged = metrics
        super().log_metrics(metrics, step)

    def finalize(self, status: str) -> None:
        self.finalized_status = status
        super().finalize(status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.after_save_checkpoint_called = True


class TrainLossModel(BoringModel):  # type: ignore[misc,valid-type]
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self.step(batch)
        self.log("train_loss", loss)
        return {"loss": loss}


def test_custom_logger(tmp_path: Path) -> None:
    """test_logger.py::test_custom_logger"""
    logger = RecordingLogger(save_dir=tmp_path, server=None)
    trainer = Trainer(**quiet(max_steps=2, log_every_n_steps=1, logger=logger, default_root_dir=tmp_path))
    trainer.fit(TrainLossModel())
    assert trainer.state.finished
    assert logger.metrics_logged != {}
    assert logger.after_save_checkpoint_called
    assert logger.finalized_status == "success"
    assert sorted(recorded(logger.log_dir)["train_loss"]) == [0, 1]


def test_multiple_loggers(tmp_path: Path) -> None:
    """test_logger.py::test_multiple_loggers"""
    logger1 = RecordingLogger(save_dir=tmp_path, name="one", server=None)
    logger2 = RecordingLogger(save_dir=tmp_path, name="two", server=None)
    trainer = Trainer(**quiet(max_steps=2, log_every_n_steps=1, logger=[logger1, logger2], default_root_dir=tmp_path))
    trainer.fit(TrainLossModel())
    assert trainer.state.finished
    for logger in (logger1, logger2):
        assert logger.hparams_logged is None
        assert logger.metrics_logged != {}
        assert logger.finalized_status == "success"
        assert sorted(recorded(logger.log_dir)["train_loss"]) == [0, 1]
        assert not Path(logger.log_dir or "", "hparams.json").exists()


def test_multiple_loggers_pickle(tmp_path: Path) -> None:
    """test_logger.py::test_multiple_loggers_pickle"""
    trainer = Trainer(logger=[RecordingLogger(save_dir=tmp_path, name=n, server=None) for n in ("a", "b")])
    trainer2 = pickle.loads(pickle.dumps(trainer))
    for logger in trainer2.loggers:
        logger.log_metrics({"acc": 1.0}, 0)
    for logger in trainer2.loggers:
        assert logger.metrics_logged == {"acc": 1.0}
        logger.finalize("success")
        assert recorded(logger.log_dir) == {"acc": {0: 1.0}}


def test_adding_step_key(tmp_path: Path) -> None:
    """test_logger.py::test_adding_step_key"""

    class StepLogger(FlexLightningLogger):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.logged_step = 0

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            if "val_acc" in metrics:
                assert step == self.logged_step
            super().log_metrics(metrics, step)

    class CustomModel(BoringModel):  # type: ignore[misc,valid-type]
        def on_train_epoch_end(self) -> None:
            self.logger.logged_step += 1
            self.log_dict({"step": self.logger.logged_step, "train_acc": self.logger.logged_step / 10})

        def on_validation_epoch_end(self) -> None:
            self.logger.logged_step += 1
            self.log_dict({"step": self.logger.logged_step, "val_acc": self.logger.logged_step / 10})

    logger = StepLogger(save_dir=tmp_path, server=None)
    trainer = Trainer(**quiet(max_epochs=3, logger=logger, default_root_dir=tmp_path, limit_train_batches=0.1,
                              limit_val_batches=0.1, num_sanity_val_steps=0))
    trainer.fit(CustomModel())
    assert recorded(logger.log_dir)["val_acc"] == pytest.approx({1: 0.1, 3: 0.3, 5: 0.5})  # at Lightning's `step`


def test_np_sanitization(tmp_path: Path) -> None:
    """test_logger.py::test_np_sanitization: numpy scalars as Lightning's _sanitize_params gives them."""
    np_params = {"np.bool_": np.bool_(1), "np.byte": np.byte(2), "np.intc": np.intc(3), "np.int_": np.int_(4),
                 "np.longlong": np.longlong(5), "np.single": np.single(6.0), "np.double": np.double(8.9),
                 "np.csingle": np.csingle(7 + 2j), "np.cdouble": np.cdouble(9 + 4j)}
    sanitized = {"np.bool_": True, "np.byte": 2, "np.intc": 3, "np.int_": 4, "np.longlong": 5, "np.single": 6.0,
                 "np.double": 8.9, "np.csingle": "(7+2j)", "np.cdouble": "(9+4j)"}
    logger = FlexLightningLogger(save_dir=tmp_path, server=None)
    logger.log_hyperparams(Namespace(**np_params))
    logger.finalize("success")
    assert hparams_of(logger.log_dir) == sanitized


@pytest.mark.parametrize("to_logger", [True, False])
def test_log_hyperparams_being_called(tmp_path: Path, to_logger: bool) -> None:
    """test_logger.py::test_log_hyperparams_being_called (a recording subclass instead of a mock)"""

    class TestModel(BoringModel):  # type: ignore[misc,valid-type]
        def __init__(self, param_one: str, param_two: str) -> None:
            super().__init__()
            self.save_hyperparameters(logger=to_logger)

    logger = RecordingLogger(save_dir=tmp_path, server=None)
    trainer = Trainer(**quiet(default_root_dir=tmp_path, max_epochs=1, limit_train_batches=0.1,
                              limit_val_batches=0.1, num_sanity_val_steps=0, logger=logger))
    trainer.fit(TestModel("pytorch", "lightning"))
    if to_logger:
        assert hparams_of(logger.log_dir) == {"param_one": "pytorch", "param_two": "lightning"}
    else:
        assert logger.hparams_logged is None and not Path(logger.log_dir or "", "hparams.json").exists()


def test_log_hyperparams_key_collision(tmp_path: Path) -> None:
    """test_logger.py::test_log_hyperparams_key_collision (its first fits; the merge errors are Lightning's own, no
    logger's): an int key, an object and a tensor are kept with the rest."""

    class _Test:
        def __str__(self) -> str:
            return "_Test"

    class TestModel(BoringModel):  # type: ignore[misc,valid-type]
        def __init__(self, hparams: dict[Any, Any]) -> None:
            super().__init__()
            self.save_hyperparameters(hparams)

    same_params = {1: 1, "2": 2, "three": 3.0, "test": _Test(), "4": torch.tensor(4)}
    logger = FlexLightningLogger(save_dir=tmp_path, server=None)
    trainer = Trainer(**quiet(default_root_dir=tmp_path, logger=logger, max_epochs=1, limit_train_batches=0.1,
                              limit_val_batches=0.1, num_sanity_val_steps=0, enable_checkpointing=False))
    trainer.fit(TestModel(same_params))
    assert hparams_of(logger.log_dir) == {"1": 1, "2": 2, "three": 3.0, "test": "_Test", "4": 4}
    trainer.fit(TestModel(same_params))  # again: a new run of the same logger, as Lightning allows


# ---------------------------------------------------------------------------------------------- test_csv.py
def test_automatic_versioning(tmp_path: Path) -> None:
    """test_csv.py::test_automatic_versioning, differing on purpose: the default version is a new unique id (the
    run's window ids in a shared Visdom env), not the next ``version_<n>``; the folders there are left alone."""
    for name in ("version_0", "version_1", "version_nonumber", "other"):
        (tmp_path / "exp" / name).mkdir(parents=True)
    logger = FlexLightningLogger(save_dir=tmp_path, name="exp", server=None)
    assert logger.version not in os.listdir(tmp_path / "exp")
    assert sorted(os.listdir(tmp_path / "exp")) == ["other", "version_0", "version_1", "version_nonumber"]


def test_manual_versioning(tmp_path: Path) -> None:
    """test_csv.py::test_manual_versioning (our version is the folder's name: ``version_1`` for 1)"""
    for n in range(3):
        (tmp_path / "exp" / f"version_{n}").mkdir(parents=True)
    logger = FlexLightningLogger(save_dir=tmp_path, name="exp", version=1, server=None)
    assert logger.version == "version_1"


def test_manual_versioning_file_exists(tmp_path: Path) -> None:
    """test_csv.py::test_manual_versioning_file_exists, differing on purpose: nothing is overwritten. A folder
    holding another logger's files is left alone (``version_0-2``), and so is a run record (``version_0-3``)."""
    (tmp_path / "exp" / "version_0").mkdir(parents=True)
    previous = tmp_path / "exp" / "version_0" / "metrics.csv"
    previous.touch()
    logger = FlexLightningLogger(save_dir=tmp_path, name="exp", version=0, server=None)
    assert logger.version == "version_0-2"  # known before the run starts
    _ = logger.experiment
    assert previous.exists() and logger.log_dir == str(tmp_path / "exp" / "version_0-2")
    logger.finalize("success")
    again = FlexLightningLogger(save_dir=tmp_path, name="exp", version=0, server=None)
    assert again.version == "version_0-3"
    _ = again.experiment
    assert again.log_dir == str(tmp_path / "exp" / "version_0-3")
    again.finalize("success")


def test_named_version(tmp_path: Path) -> None:
    """test_csv.py::test_named_version (the hyperparameters are written when the run starts: here at finalize)"""
    (tmp_path / "exp").mkdir()
    expected_version = "2020-02-05-162402"
    logger = FlexLightningLogger(save_dir=tmp_path, name="exp", version=expected_version, server=None)
    logger.log_hyperparams({"a": 1, "b": 2})
    assert logger.version == expected_version
    logger.finalize("success")
    assert os.listdir(tmp_path / "exp") == [expected_version]
    assert os.listdir(tmp_path / "exp" / expected_version)
    assert hparams_of(logger.log_dir) == {"a": 1, "b": 2}


@pytest.mark.parametrize("step_idx", [10, None])
def test_log_metrics(tmp_path: Path, step_idx: int | None) -> None:
    """test_csv.py::test_log_metrics"""
    logger = FlexLightningLogger(save_dir=tmp_path, server=None)
    metrics = {"float": 0.3, "int": 1, "FloatTensor": torch.tensor(0.1), "IntTensor": torch.tensor(1)}
    logger.log_metrics(metrics, step_idx)
    logger.save()
    logger.finalize("success")
    got = recorded(logger.log_dir)
    assert sorted(got) == sorted(metrics)
    firsts = {k: next(iter(v.values())) for k, v in got.items()}
    assert firsts == pytest.approx({k: float(v) for k, v in metrics.items()})
    if step_idx is not None:
        assert all(list(v) == [step_idx] for v in got.values())


def test_log_hyperparams(tmp_path: Path) -> None:
    """test_csv.py::test_log_hyperparams"""
    logger = FlexLightningLogger(save_dir=tmp_path, server=None)
    hparams = {"float": 0.3, "int": 1, "string": "abc", "bool": True, "dict": {"a": {"b": "c"}}, "list": [1, 2, 3],
               "layer": torch.nn.BatchNorm1d}
    logger.log_hyperparams(hparams)
    logger.finalize("success")
    params = hparams_of(logger.log_dir)
    assert all(n in params for n in hparams)
    assert params["dict"] == {"a": {"b": "c"}} and params["list"] == [1, 2, 3] and "BatchNorm1d" in params["layer"]


def test_fit_logger(tmp_path: Path) -> None:
    """test_csv.py::test_fit_csv_logger (BoringModel for the test suite's ClassifDataModule)"""
    logger = FlexLightningLogger(save_dir=tmp_path, server=None)
    trainer = Trainer(**quiet(default_root_dir=tmp_path, max_steps=10, logger=logger, log_every_n_steps=1))
    trainer.fit(TrainLossModel())
    assert logger.log_dir is not None and os.path.isfile(os.path.join(logger.log_dir, "points.jsonl"))
    assert sorted(recorded(logger.log_dir)["train_loss"]) == list(range(10))


def test_append_metrics_file(tmp_path: Path) -> None:
    """test_csv.py::test_append_metrics_file, differing on purpose: a second logger of the same version never
    appends to a record: it writes ``version_0-2``; the two records hold 2 and 1 points."""
    logger = FlexLightningLogger(save_dir=tmp_path, name="test", version=0, server=None)
    logger.log_metrics({"a": 1, "b": 2})
    logger.log_metrics({"a": 3, "b": 4})
    logger.finalize("success")
    second = FlexLightningLogger(save_dir=tmp_path, name="test", version=0, server=None)
    second.log_metrics({"a": 100, "b": 200})
    second.finalize("success")
    assert len(recorded(logger.log_dir)["a"]) == 2 and list(recorded(second.log_dir)["a"].values()) == [100]
    assert second.version == "version_0-2"
