"""attach() and attach_tooled() on real ignite Engines training on the digits data."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import visdom
from ignite.engine import create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Accuracy, Loss
from readback import empty_windows, traces
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import flexlogger
from flexlogger import ConfigError
from flexlogger.integrations import IntegrationWarning, MissingExtraError
from flexlogger.integrations.ignite import Engine, Events, attach, attach_optimizer_params, attach_tooled
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer


def digits() -> tuple[DataLoader[Any], DataLoader[Any]]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    return (DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32),
            DataLoader(TensorDataset(x[256:384], y[256:384]), batch_size=64))


def setup() -> tuple[nn.Module, torch.optim.Optimizer, Any, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = create_supervised_trainer(model, optimizer, F.cross_entropy)
    evaluator = create_supervised_evaluator(model, metrics={"val_accuracy": Accuracy(),
                                                            "val_loss": Loss(F.cross_entropy)})
    return model, optimizer, trainer, evaluator


def test_engine_run_logs_outputs_metrics_and_gradients(tmp_path: Path, visdom_server: VisdomServer,
                                                       viz: visdom.Visdom, env: str) -> None:
    model, optimizer, trainer, evaluator = setup()
    train, val = digits()
    seen: dict[str, dict[int, float]] = {"train_loss": {}, "val_accuracy": {}, "val_loss": {}}
    grads: list[float] = []

    Stat = flexlogger.get_preset_logger("loss", phases=("train", "val"), env=env, port=visdom_server.port,
                                        log_dir=tmp_path)
    tm = flexlogger.TooledModelLogger(model, logger=Stat, stats=("norm",), groups=("Weight_grad",), layers="0",
                                      mode="by_layer")
    with Stat, tm:
        attach(Stat, trainer, Events.ITERATION_COMPLETED(every=3), output_transform=lambda loss: {"train_loss": loss})
        attach(Stat, evaluator, Events.COMPLETED, metric_names="all",
               global_step_transform=lambda engine, event: trainer.state.epoch)
        tooled = attach_tooled(tm, trainer, optimizer)
        optimizer.register_step_pre_hook(lambda *_: grads.append(float(model[0].weight.grad.norm())))

        @trainer.on(Events.ITERATION_COMPLETED(every=3))
        def remember(engine: Any) -> None:
            seen["train_loss"][engine.state.iteration] = engine.state.output

        @trainer.on(Events.EPOCH_COMPLETED)
        def validate(engine: Any) -> None:
            evaluator.run(val)
            for name in ("val_accuracy", "val_loss"):
                seen[name][engine.state.epoch] = evaluator.state.metrics[name]

        trainer.run(train, max_epochs=2)
        tooled.remove()
        drawn = {**traces(viz, Stat, "loss"), **traces(viz, Stat, "accuracy")}
        definitions = Stat.get_definitions()
        record = read_record(Stat.run_dir)

    assert list(seen["train_loss"]) == [3, 6, 9, 12, 15]  # 8 iterations per epoch, every 3rd
    for name, points in seen.items():  # the engine's values at its own iterations / the trainer's epochs
        assert drawn[name] == (list(points), pytest.approx(list(points.values()), rel=1e-12))
    assert definitions["loss"] == ["train_loss", "val_loss"] and definitions["accuracy"] == ["val_accuracy"]
    recorded = [u.data["0.Weight_grad.norm"] for u in record.updates if u.plot == "0"]
    assert len(recorded) == 16 and recorded == pytest.approx(grads, rel=1e-6)  # the gradients of each step


def test_the_default_statistics_fill_every_window_and_update_ratio_is_the_step_s_update(
        tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    model, optimizer, trainer, _ = setup()
    ratios: list[float] = []
    before: list[torch.Tensor] = []
    optimizer.register_step_pre_hook(lambda *_: before.append(model[0].weight.detach().clone()))
    Stat = flexlogger.get_preset_logger("loss", phases=("train",), env=env, port=visdom_server.port, log_dir=tmp_path)
    tm = flexlogger.TooledModelLogger(model, logger=Stat, every=2)  # the defaults: std and update_ratio
    with Stat, tm:
        attach(Stat, trainer, Events.ITERATION_COMPLETED, output_transform=lambda loss: {"train_loss": loss})
        attach_tooled(tm, trainer, optimizer)

        @trainer.on(Events.ITERATION_COMPLETED)
        def remember(engine: Any) -> None:
            after = model[0].weight.detach()
            ratios.append(float((after - before[-1]).norm() / before[-1].norm()))

        trainer.run(digits()[0], max_epochs=1)
        assert Stat.flush(10) == 0
        empty = empty_windows(viz, env)
        record = read_record(Stat.run_dir)
    assert empty == {}  # the update_ratio window too: measured after the optimizer step
    recorded = [u for u in record.updates if u.plot == "Weights.update_ratio"]
    assert [u.step for u in recorded] == [1, 3, 5, 7]  # every=2 of 8 iterations, at the engine's iteration
    assert [u.data["0.Weights.update_ratio"] for u in recorded] == pytest.approx(ratios[::2], rel=1e-4)
    assert all(r > 0 for r in ratios)


def test_handles_remove_and_work_as_context_managers(tmp_path: Path, env: str) -> None:
    model, _, trainer, _ = setup()
    tm = flexlogger.TooledModelLogger(model, stats=("norm",), groups=("Weights",), layers="0", mode="by_layer", env=env,
                                      server=None, log_dir=tmp_path)
    with tm.logger as Stat, tm:
        Stat.update_config({"loss": {"type": "line"}}, {"train_loss": {"type": "AverageValueMeter", "target": "loss"}})
        with attach(Stat, trainer, Events.ITERATION_COMPLETED, output_transform=lambda loss: {"train_loss": loss}), \
                attach_tooled(tm, trainer):  # on ITERATION_COMPLETED: the weights after the update
            trainer.run(digits()[0], max_epochs=1, epoch_length=3)
        trainer.run(digits()[0], max_epochs=2, epoch_length=3)  # nothing attached any more
        assert Stat.flush(10) == 0
        updates = read_record(Stat.run_dir).updates
    assert [u.step for u in updates if u.plot == "loss"] == [1, 2, 3]
    norms = [u.data["0.Weights.norm"] for u in updates if u.plot == "0"]
    assert len(norms) == 3 and norms[-1] != norms[0]  # the weights changed between the recorded steps


def test_a_bad_value_or_a_missing_metric_warns_and_the_engine_goes_on(tmp_path: Path, env: str) -> None:
    _, _, trainer, _ = setup()
    with flexlogger.FlexLogger(env=env, server=None, log_dir=tmp_path) as Stat:
        attach(Stat, trainer, Events.ITERATION_COMPLETED, output_transform=lambda loss: {"text": "not a number",
                                                                                       "train/loss": loss})
        attach(Stat, trainer, Events.EPOCH_COMPLETED, metric_names=["accuracy"])
        with pytest.warns(IntegrationWarning) as warned:
            trainer.run(digits()[0], max_epochs=1, epoch_length=4)
        messages = [str(w.message) for w in warned]
        assert any("metric 'text' is str 'not a number', not a number" in m for m in messages)
        assert any("metric 'accuracy' is not in engine.state.metrics (none)" in m for m in messages)
        assert Stat.flush(10) == 0
        assert [u.step for u in read_record(Stat.run_dir).updates] == [1, 2, 3, 4]
        assert Stat.get_definitions() == {"loss": ["train/loss"]}


def test_attach_errors_name_the_function(tmp_path: Path) -> None:
    _, optimizer, trainer, _ = setup()
    with flexlogger.FlexLogger(server=None, log_dir=None) as Stat:
        with pytest.raises(ConfigError, match=r"attach\(\): expected `logger` to be a flexlogger.FlexLogger, but got"
                                              r" str 'x'"):
            attach("x", trainer, Events.COMPLETED, metric_names="all")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"attach\(\): expected `engine` to be an ignite.engine.Engine"):
            attach(Stat, None, Events.COMPLETED, metric_names="all")
        with pytest.raises(ConfigError, match=r"attach\(\): expected `output_transform` to be a callable or None"):
            attach(Stat, trainer, Events.COMPLETED, output_transform=3)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"attach\(\): expected `metric_names` to be 'all', a list of metric "
                                              r"names or None, but got 'accuracy'"):
            attach(Stat, trainer, Events.COMPLETED, metric_names="accuracy")
        with pytest.raises(ConfigError, match=r"attach\(\): expected `output_transform`, `metric_names` or both"):
            attach(Stat, trainer, Events.COMPLETED)
        with pytest.raises(ConfigError, match=r"attach\(\): expected `global_step_transform` to be a callable"):
            attach(Stat, trainer, Events.COMPLETED, metric_names="all", global_step_transform=1)  # type: ignore
        with pytest.raises(ConfigError, match=r"attach_tooled\(\): expected `tooled` to be a "
                                              r"flexlogger.TooledModelLogger"):
            attach_tooled(Stat, trainer)  # type: ignore[arg-type]
    tm = flexlogger.TooledModelLogger(nn.Linear(2, 2), server=None, log_dir=None)
    with tm:
        with pytest.raises(ConfigError, match=r"attach_tooled\(\): expected `engine` to be an ignite.engine.Engine"):
            attach_tooled(tm, "engine")
        with pytest.raises(ConfigError, match=r"attach_tooled\(\): expected `optimizer` to be a "
                                              r"torch.optim.Optimizer or None, but got int 3"):
            attach_tooled(tm, trainer, 3)
        with pytest.raises(ConfigError, match=r"attach_tooled\(\): expected `optimizer` or `event`, not both"):
            attach_tooled(tm, trainer, optimizer, Events.ITERATION_COMPLETED)
    assert isinstance(trainer, Engine)


def test_without_ignite_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "ignite" or m.startswith("ignite.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ignite", None)
    monkeypatch.delitem(sys.modules, "flexlogger.integrations.ignite")
    with pytest.raises(MissingExtraError, match=r"pip install 'flexlogger\[ignite\]'"):
        importlib.import_module("flexlogger.integrations.ignite")


def test_metrics_with_no_meter_are_grouped_by_their_phase_prefix() -> None:  # shared by the three adapters
    from flexlogger.integrations.common import group_of

    names = ["train/loss", "val_loss", "train_loss_epoch", "eval/loss", "loss", "lr-SGD", "eval/acc/top1",
             "validation_acc", "trainer_x", "train_", "val/"]
    assert [group_of(n) for n in names] == ["loss", "loss", "loss", "loss", "loss", "lr-SGD", "acc.top1", "acc",
                                            "trainer_x", "train_", "val."]


def test_tags_vectors_learning_rates_and_an_evaluator_loss_as_ignite_handlers_log_them(tmp_path: Path,
                                                                                        env: str) -> None:
    """What ignite's own TensorBoard handlers write, here: ``tag/name``, ``prec/0..n``, ``lr/group_i``, the gradient
    statistics at the iteration, and an evaluator's ``loss`` beside the ``loss`` window."""
    from ignite.metrics import Precision

    model, optimizer, trainer, _ = setup()
    optimizer.add_param_group({"params": [], "lr": 0.01})  # a second group: a second lr series
    train, val = digits()
    metrics = {"accuracy": Accuracy(), "loss": Loss(F.cross_entropy), "prec": Precision(average=False)}
    evaluators = {tag: create_supervised_evaluator(model, metrics=metrics) for tag in ("training", "validation")}
    grads_at: list[int] = []
    Stat = flexlogger.get_preset_logger("loss", phases=("train",), env=env, server=None, log_dir=tmp_path)
    tm = flexlogger.TooledModelLogger(model, logger=Stat, stats=("norm",), groups=("Weight_grad",), layers="0",
                                      mode="by_layer")
    with Stat, tm:
        attach(Stat, trainer, Events.ITERATION_COMPLETED, output_transform=lambda loss: {"train_loss": loss})
        for tag, evaluator in evaluators.items():
            attach(Stat, evaluator, Events.COMPLETED, metric_names="all", tag=tag,
                   global_step_transform=lambda engine, event: trainer.state.epoch)
        attach_optimizer_params(Stat, trainer, optimizer)
        attach_tooled(tm, trainer, optimizer)
        optimizer.register_step_pre_hook(lambda *_: grads_at.append(trainer.state.iteration))

        @trainer.on(Events.EPOCH_COMPLETED)
        def evaluate(engine: Any) -> None:
            evaluators["training"].run(train)
            evaluators["validation"].run(val)

        trainer.run(train, max_epochs=2)
        # the `loss` metric of an evaluator with no tag: beside the preset's `loss` window, not dropped
        plain = create_supervised_evaluator(model, metrics={"loss": Loss(F.cross_entropy)})
        attach(Stat, plain, Events.COMPLETED, metric_names="all", global_step_transform=lambda e, ev: 99)
        plain.run(val)
        assert Stat.flush(10) == 0
        definitions = Stat.get_definitions()
        updates = read_record(Stat.run_dir).updates
    # two evaluators, distinct series: 2 points each (one per epoch), one per x
    assert definitions["accuracy"] == ["training/accuracy", "validation/accuracy"]
    for tag in ("training", "validation"):
        xs = [u.step for u in updates if f"{tag}/accuracy" in u.data]
        assert xs == [1, 2]
    # Precision(average=False) over 10 classes: prec/0..9, as ignite's handlers log it
    assert sorted(definitions["prec.0"] + definitions["prec.9"]) == ["training/prec/0", "training/prec/9",
                                                                     "validation/prec/0", "validation/prec/9"]
    last = evaluators["validation"].state.metrics["prec"]
    assert [u.data["validation/prec/3"] for u in updates if "validation/prec/3" in u.data][-1] == pytest.approx(
        float(last[3]))
    # lr per param group, at each iteration (ignite's OptimizerParamsHandler on ITERATION_STARTED)
    assert definitions["lr"] == ["lr/group_0", "lr/group_1"]
    lr = [(u.step, u.data["lr/group_0"], u.data["lr/group_1"]) for u in updates if u.plot == "lr"]
    assert lr == [(i, 0.1, 0.01) for i in range(1, 17)]
    # gradient statistics at the iteration of their optimizer step (1..16), as GradsScalarHandler, not 0..15
    assert [u.step for u in updates if u.plot == "0"] == grads_at == list(range(1, 17))
    # the untagged evaluator's loss went to the loss window as `loss/metric`
    assert "loss/metric" in definitions["loss"]
    assert [u.data["loss/metric"] for u in updates if "loss/metric" in u.data] == pytest.approx(
        [plain.state.metrics["loss"]])


def test_tag_and_optimizer_params_errors_name_the_function(tmp_path: Path) -> None:
    _, optimizer, trainer, _ = setup()
    with flexlogger.FlexLogger(server=None, log_dir=None) as Stat:
        with pytest.raises(ConfigError, match=r"attach\(\): expected `tag` to be a non-empty string .* but got int 3"):
            attach(Stat, trainer, Events.COMPLETED, metric_names="all", tag=3)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"attach_optimizer_params\(\): expected `param_name` to be an entry "
                                              r"of every param group \(.*lr.*momentum.*\), but got 'lrr'"):
            attach_optimizer_params(Stat, trainer, optimizer, param_name="lrr")
        with pytest.raises(ConfigError, match=r"attach_optimizer_params\(\): expected `optimizer` to be a torch "
                                              r"optimizer"):
            attach_optimizer_params(Stat, trainer, "sgd")
