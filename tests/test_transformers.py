"""FlexLoggerCallback with a real Hugging Face Trainer on a tiny BERT built from a config (nothing downloaded)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import visdom
from readback import empty_windows, traces
from torch import nn

from flexlogger import ConfigError, InvalidConfigError, Run, UnknownNameError
from flexlogger.integrations import MissingExtraError
from flexlogger.integrations.transformers import SINGLE_VALUES, FlexLoggerCallback, rewrite, transformers
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer

QUERY = "bert.encoder.layer.0.attention.self.query"


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Random token ids whose label is whether token 7 occurs: a task the tiny model can start to learn."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 100, (n, 12), generator=g)
        self.labels = (self.ids == 7).any(1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def tiny_bert() -> Any:
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def make_trainer(tmp_path: Path, callbacks: list[Any], **args: Any) -> Any:
    options = {"output_dir": str(tmp_path / "out"), "max_steps": 6, "per_device_train_batch_size": 8,
               "per_device_eval_batch_size": 16, "logging_steps": 2, "eval_strategy": "steps", "eval_steps": 3,
               "learning_rate": 1e-3, "max_grad_norm": 0.05, "report_to": "none", "save_strategy": "no",
               "use_cpu": True, "disable_tqdm": True, "seed": 0, **args}
    return transformers.Trainer(model=tiny_bert(), args=transformers.TrainingArguments(**options),
                                train_dataset=Tokens(64, 0), eval_dataset=Tokens(32, 1), callbacks=callbacks)


class Clipped(transformers.TrainerCallback):  # type: ignore[misc]
    """The query layer's gradient norm and the total gradient norm, where the optimizer sees them."""

    def __init__(self) -> None:
        self.query: list[float] = []
        self.total: list[float] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.query.append(float(model.get_submodule(QUERY).weight.grad.norm()))
        self.total.append(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters() if p.grad is not None)))


def test_trainer_metrics_hparams_and_clipped_gradients_arrive(tmp_path: Path, visdom_server: VisdomServer,
                                                              viz: visdom.Visdom, env: str) -> None:
    flex = FlexLoggerCallback(presets="loss", tooled={"stats": ("norm",), "groups": ("Weight_grad",),
                                                      "layers": nn.Linear, "mode": "by_layer"},
                              env=env, port=visdom_server.port, log_dir=tmp_path / "runs")
    clipped = Clipped()
    trainer = make_trainer(tmp_path, [flex, clipped])
    trainer.train()
    stat = flex.logger
    assert stat is not None and not stat.closed and flex.tooled is None  # open for evaluate()/predict()
    flex.close()
    assert stat.closed and stat.run.status == "finished"
    assert stat.run_dir is not None

    # every entry of the Trainer's own log_history is in the record once, at its step, under the integration names
    recorded: dict[str, dict[float, list[float]]] = {}
    for update in read_record(stat.run_dir).updates:
        if update.plot in ("hparams", "model_config", "train_summary"):  # tables and text (below)
            continue
        for trace, value in update.data.items():
            recorded.setdefault(trace, {}).setdefault(update.step, []).append(value)
    expected: dict[str, dict[float, list[float]]] = {}
    once = {k: v for entry in trainer.state.log_history for k, v in entry.items() if k in SINGLE_VALUES}
    assert sorted(once) == sorted(SINGLE_VALUES)  # the Trainer's end-of-training values
    for entry in trainer.state.log_history:
        for name, value in rewrite({k: v for k, v in entry.items() if k not in SINGLE_VALUES}).items():
            meter = name.replace("/", "_") if name.replace("/", "_") in stat.meters else name  # train/loss: preset's
            if name != "train/step":
                expected.setdefault(meter, {}).setdefault(entry["step"], []).append(value)
    assert {k: v for k, v in recorded.items() if "." not in k} == expected
    assert sorted(expected["eval_loss"]) == [3, 6] and sorted(expected["train_loss"]) == [2, 4, 6]
    # the preset's loss window: the Trainer's train and eval losses, drawn once each
    assert stat.get_definitions()["loss"] == ["train_loss", "eval_loss", "test_loss"]
    drawn = traces(viz, stat, "loss")
    assert drawn["train_loss"] == ([2, 4, 6], [expected["train_loss"][s][0] for s in (2, 4, 6)])
    assert drawn["eval_loss"] == ([3, 6], [expected["eval_loss"][s][0] for s in (3, 6)])
    assert traces(viz, stat, "grad_norm")["train/grad_norm"][0] == [2, 4, 6]

    # per-layer gradient statistics: after clipping, one point per optimizer step at x = the global step
    assert max(clipped.total) <= 0.05 * 1.001  # the Trainer clipped
    xs, ys = traces(viz, stat, QUERY)[f"{QUERY}.Weight_grad.norm"]
    assert xs == list(range(6)) and ys == pytest.approx(clipped.query, rel=1e-5)

    hparams = json.loads((stat.run_dir / "hparams.json").read_text())
    assert hparams["learning_rate"] == 1e-3 and hparams["max_steps"] == 6 and hparams["max_grad_norm"] == 0.05
    # the model's config, as the W&B/MLflow integrations merge it (id2label's int keys as strings) and as text
    assert hparams["model_config"]["hidden_size"] == 16 and hparams["model_config"]["id2label"] == {
        "0": "LABEL_0", "1": "LABEL_1"}
    assert json.loads((stat.run_dir / "text" / "model_config.txt").read_text())["vocab_size"] == 100
    # end-of-training values: in summary.json and one table window, not one-point line windows
    summary = json.loads((stat.run_dir / "summary.json").read_text())
    assert {k: summary[k] for k in SINGLE_VALUES} == pytest.approx(once)
    assert summary["model/num_parameters"] == trainer.model.num_parameters() > 0
    assert not any(k in stat.plots or f"train/{k}" in stat.meters for k in SINGLE_VALUES)
    assert f"{stat.run.uid}_train_summary" in json.loads(viz.get_window_data(env=env))  # one table window


class Update(transformers.TrainerCallback):  # type: ignore[misc]
    """||W_after - W_before|| / ||W_before|| of the query layer around each optimizer step."""

    def __init__(self) -> None:
        self.before: torch.Tensor | None = None
        self.ratios: list[float] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.before = model.get_submodule(QUERY).weight.detach().clone()

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        assert self.before is not None
        after = model.get_submodule(QUERY).weight.detach()
        self.ratios.append(float((after - self.before).norm() / self.before.norm()))


def test_the_default_statistics_fill_every_window_and_update_ratio_is_the_step_s_update(
        tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    flex = FlexLoggerCallback(tooled={"every": 2, "layers": nn.Linear}, env=env, port=visdom_server.port,
                              log_dir=tmp_path / "runs")
    update = Update()
    make_trainer(tmp_path, [flex, update]).train()
    stat = flex.logger
    assert stat is not None and stat.run_dir is not None
    flex.close()
    assert "Weights.update_ratio" in stat.get_definitions()
    assert empty_windows(viz, env) == {}  # the update_ratio window too: measured after the optimizer step
    recorded = [u for u in read_record(stat.run_dir).updates if u.plot == "Weights.update_ratio"]
    assert [u.step for u in recorded] == [0, 2, 4]  # every=2 of 6 optimizer steps
    assert [u.data[f"{QUERY}.Weights.update_ratio"] for u in recorded] == pytest.approx(update.ratios[::2], rel=1e-4)
    assert all(r > 0 for r in update.ratios)


def test_evaluate_and_predict_after_train_go_to_the_same_run_with_the_hparams(tmp_path: Path, env: str) -> None:
    flex = FlexLoggerCallback(env=env, server=None, log_dir=tmp_path)
    trainer = make_trainer(tmp_path, [flex], max_steps=2, eval_strategy="no")
    trainer.train()
    stat = flex.logger
    assert stat is not None and not stat.closed
    trainer.evaluate()
    out = trainer.predict(Tokens(16, 2))
    assert flex.logger is stat  # one run: train, evaluate, predict
    flex.close()
    assert stat.run_dir is not None and stat.run.status == "finished"
    updates = read_record(stat.run_dir).updates
    assert {u.step for u in updates if "eval/loss" in u.data} == {2}
    test_loss = [u.data["test/loss"] for u in updates if "test/loss" in u.data]
    assert test_loss == pytest.approx([out.metrics["test_loss"]])  # predict()'s metrics, via on_predict
    assert json.loads((stat.run_dir / "hparams.json").read_text())["max_steps"] == 2


def test_a_shared_run_stays_open(tmp_path: Path, env: str) -> None:
    with Run(env=env, server=None, log_dir=tmp_path) as run:
        flex = FlexLoggerCallback(run=run)
        trainer = make_trainer(tmp_path, [flex], max_steps=2, eval_strategy="no")
        trainer.train()
        trainer.evaluate()
        flex.close()
        assert flex.logger is not None and flex.logger.closed and not run.closed
    assert run.dir is not None and run.status == "finished"
    steps = {u.step for u in read_record(run.dir).updates if "eval/loss" in u.data}
    assert steps == {2}


def test_constructor_errors_name_the_callback() -> None:
    with pytest.raises(InvalidConfigError, match=r"FlexLoggerCallback\(\) config.*unknown preset 'los'"):
        FlexLoggerCallback(presets="los")
    with pytest.raises(ConfigError, match=r"FlexLoggerCallback\(\): expected `tooled` to be a dict of "
                                          r"TooledModelLogger options.*but got bool True"):
        FlexLoggerCallback(tooled=True)  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match=r"FlexLoggerCallback\(\): unknown TooledModelLogger option 'stat' "
                                               r"\(did you mean 'stats'"):
        FlexLoggerCallback(tooled={"stat": "update_ratio"})
    with pytest.raises(ConfigError, match=r"FlexLoggerCallback\(\): `distributed` is set by the adapter"):
        FlexLoggerCallback(distributed=False)


def test_rewrite_names_as_the_trainer_integrations() -> None:
    assert rewrite({"loss": 1.0, "eval_loss": 2.0, "test_acc": 3.0, "epoch": 0.5}) == {
        "train/loss": 1.0, "eval/loss": 2.0, "test/acc": 3.0}


def test_without_transformers_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "flexlogger.integrations.transformers")
    with pytest.raises(MissingExtraError, match=r"pip install 'flexlogger\[transformers\]'"):
        importlib.import_module("flexlogger.integrations.transformers")
