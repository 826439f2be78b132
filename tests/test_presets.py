"""Presets: composition, phases, case-insensitivity, user preset folders, every built-in end to end on Visdom,
every error message, and an installed (non-editable) package finding its presets from another folder."""

from __future__ import annotations

import json
import math
import os
import shutil
import site
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import visdom
from readback import traces, window

import flexlogger
from flexlogger import ConfigError, FlexLogger, InvalidConfigError, UnknownNameError
from flexlogger.config.presets import load_preset
from flexlogger.tools.server import VisdomServer

REPO = Path(__file__).resolve().parents[1]
BUILTINS = sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))
OFFLINE: dict[str, Any] = {"server": None, "log_dir": None}


@pytest.fixture(autouse=True)
def isolated_preset_path(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user presets from this machine: an empty config home and no FLEXLOGGER_PRESET_PATH."""
    monkeypatch.delenv("FLEXLOGGER_PRESET_PATH", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config_home")))


@pytest.fixture
def make(visdom_server: VisdomServer, env: str) -> Iterator[Callable[..., FlexLogger]]:
    """Preset loggers on the test server (no run record), closed after the test."""
    made: list[FlexLogger] = []

    def build(names: str, **kwargs: Any) -> FlexLogger:
        kwargs = {"env": env, "uid": "run", "port": visdom_server.port, "log_dir": None, **kwargs}
        logger = flexlogger.get_preset_logger(names, **kwargs)
        made.append(logger)
        return logger

    yield build
    for logger in made:
        logger.close()






def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# composition -----------------------------------------------------------------------------------------------------
def test_loss_plus_mse_definitions() -> None:
    stat = flexlogger.get_preset_logger("loss+MSE", **OFFLINE)
    assert stat.get_definitions() == {"loss": ["train_loss", "test_loss"], "mse": ["train_mse", "test_mse"]}
    assert stat.meter_specs["test_mse"].type == "MSEMeter"
    assert stat.plots["loss"].opts["title"] == "loss"


@pytest.mark.parametrize("names", ["loss+mse", "LOSS + Mse", ["loss", "MSE"], ["Loss+mse"]])
def test_names_case_insensitive_and_lists(names: Any) -> None:
    stat = flexlogger.get_preset_logger(names, **OFFLINE)
    assert stat.get_definitions() == {"loss": ["train_loss", "test_loss"], "mse": ["train_mse", "test_mse"]}


def test_preset_lists_and_phases() -> None:
    stat = flexlogger.get_preset_logger(["loss", "acc+confusion"], phases=("fit", "val", "test"),
                                        preset_args={"Confusion": {"k": 4}}, env="e", **OFFLINE)
    assert stat.get_definitions() == {
        "loss": ["fit_loss", "val_loss", "test_loss"],
        "acc": ["fit_acc", "val_acc", "test_acc"],
        "confusion_fit": ["fit_confusion"], "confusion_val": ["val_confusion"], "confusion_test": ["test_confusion"],
    }
    assert stat.env == "e" and stat.plots["confusion_val"].opts["title"] == "confusion matrix (val)"
    assert dict(stat.meter_specs["val_confusion"].args) == {"k": 4}
    one = flexlogger.get_preset_logger("loss", phases="train", **OFFLINE)
    assert one.get_definitions() == {"loss": ["train_loss"]}


def test_lr_is_one_meter_whatever_the_phases() -> None:
    stat = flexlogger.get_preset_logger("loss+lr", phases=("train", "val"), **OFFLINE)
    assert stat.get_definitions() == {"loss": ["train_loss", "val_loss"], "learning_rate": ["lr"]}


def test_preset_args_override_template_args() -> None:
    stat = flexlogger.get_preset_logger("err+mse+time", preset_args={"err": {"topk": [1, 3]}, "mse": {"root": True},
                                                                     "TIME": {"unit": True}}, **OFFLINE)
    assert list(stat.meter_specs["test_err"].args["topk"]) == [1, 3]
    assert stat.meter_specs["train_mse"].args["root"] is True
    assert stat.meters["train_time"].tnt.unit is True  # type: ignore[attr-defined]


def test_add_presets_to_a_logger() -> None:
    stat = FlexLogger({"grad": {"type": "line"}}, {"grad_norm": {"type": "AverageValueMeter", "target": "grad"}},
                      **OFFLINE)
    config = flexlogger.load_config({"presets": "loss+auc", "phases": ["train"]})
    stat.update_config(config.plots, config.meters)
    assert stat.get_definitions() == {"grad": ["grad_norm"], "loss": ["train_loss"], "auc": ["train_auc"],
                                      "roc": ["train_auc"]}
    config = flexlogger.load_config({"presets": "loss"})
    with pytest.raises(InvalidConfigError, match=r"^update_config\(\): 2 problems:\n  plots.loss: 'loss' already "
                                                 r"defined; remove\(\) it first\n  meters.train_loss: 'train_loss' "
                                                 r"already defined"):
        stat.update_config(config.plots, config.meters)
    assert "test_loss" not in stat.meters  # nothing was added


def test_preset_names_and_info() -> None:
    names = flexlogger.preset_names()
    assert set(BUILTINS) <= set(names) and set(names.values()) == {"built-in"}
    assert {"loss", "acc", "err", "mse", "mae", "confusion", "ap", "map", "auc", "lr", "time"} <= set(names)
    info = flexlogger.preset_info("ACC")
    assert info["meters"]["acc"]["add"] == flexlogger.meter_info("ClassErrorMeter")["add"]
    assert info["args"] == {"topk": [1], "accuracy": True}
    assert info["meter_names"] == ["train_acc", "test_acc"] and info["plot_names"] == ["acc"]
    conf = flexlogger.preset_info("confusion")
    assert conf["args"] == {"k": "(required)", "normalized": False}
    assert conf["required"] == {"k": "the number of classes"}
    assert conf["plot_names"] == ["confusion_train", "confusion_test"]
    assert flexlogger.preset_info("lr")["per_phase"] is False


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_preset_parses_and_documents_its_add(name: str) -> None:
    info = flexlogger.preset_info(name)
    assert info["description"] and info["source"] == "built-in"
    for meter in info["meters"].values():
        assert meter["add"].startswith("add(")


# user presets ----------------------------------------------------------------------------------------------------
MY_LOSS = """\
    description: a user's loss preset
    plots:
      loss: {type: scatter}
    meters:
      loss: {type: AverageValueMeter, target: loss}
"""


def test_user_presets_searched_before_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, home = tmp_path / "first", tmp_path / "second", tmp_path / "home"
    write(first, "MyLoss.YAML", MY_LOSS)
    write(second, "myloss.yaml", MY_LOSS.replace("scatter", "line"))
    write(second, "loss.json", json.dumps({"plots": {"loss": {"type": "bar"}},
                                           "meters": {"loss": {"type": "AverageValueMeter", "target": "loss"}}}))
    write(home / "flexlogger" / "presets", "grads.yml", """\
        plots: {grad: {type: line}}
        meters: {grad: {type: AverageValueMeter, target: grad}}
    """)
    write(home / "flexlogger" / "presets", "mse.yaml", MY_LOSS.replace("loss", "mse"))
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    names = flexlogger.preset_names()
    assert names["myloss"] == str(first)  # the first folder wins
    assert names["loss"] == str(second)  # a user preset shadows the built-in
    assert names["grads"] == names["mse"] == str(home / "flexlogger" / "presets")
    assert names["acc"] == "built-in"
    stat = flexlogger.get_preset_logger("MYLOSS+grads+acc", phases=["a"], **OFFLINE)
    assert stat.get_definitions() == {"loss": ["a_loss"], "grad": ["a_grad"], "acc": ["a_acc"]}
    assert stat.plots["loss"].type == "scatter"
    assert flexlogger.get_preset_logger("Loss", **OFFLINE).plots["loss"].type == "bar"
    assert flexlogger.preset_info("myloss")["plots"] == {"loss": {"type": "scatter"}}


BEST_LOSS = """\
    description: a loss whose best value is tracked, drawn dotted in red
    plots:
      loss: {type: line}
      'loss_{phase}': {type: line, opts: {title: 'loss ({phase})'}}
    meters:
      loss: {type: AverageValueMeter, target: [loss, 'loss_{phase}'], best: min, display: {dash: dot, color: red}}
"""


def test_presets_keep_best_and_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every meter key a definition may have (best, display) survives expansion, per phase or not, through every
    way of using a preset, and preset_info() shows it."""
    write(tmp_path, "bestloss.yaml", BEST_LOSS)
    write(tmp_path, "bestlr.yaml", """\
        per_phase: false
        plots: {lr: {type: line}}
        meters: {lr_value: {type: ValueMeter, target: lr, best: max, display: {width: 3, marker: diamond}}}
    """)
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", str(tmp_path))
    loss = {"best": "min", "display": {"dash": "dot", "color": "red"}}
    lr = {"best": "max", "display": {"width": 3, "marker": "diamond"}}
    stat = flexlogger.get_preset_logger("bestloss+bestlr", phases=["a", "b"], **OFFLINE)
    for name, keys in (("a_loss", loss), ("b_loss", loss), ("lr_value", lr)):
        spec = stat.meter_specs[name].to_dict()
        assert {k: spec.get(k) for k in keys} == keys, name
    assert stat.meter_specs["b_loss"].target == ("loss", "loss_b")
    for name, preset, template in (("a_loss", "bestloss", "loss"), ("lr_value", "bestlr", "lr_value")):
        expanded = stat.meter_specs[name].to_dict()  # every key a meter may have, not only best and display
        written = load_preset(preset).meters[template].to_dict()
        assert {k: v for k, v in expanded.items() if k != "target"} == {k: v for k, v in written.items()
                                                                          if k != "target"}
    stat.add({"a_loss": 0.5, "b_loss": 0.7, "lr_value": 0.1})
    stat.log(0)
    stat.add({"a_loss": 0.3, "b_loss": 0.9, "lr_value": 0.05})
    stat.log(1)
    assert stat.best() == {"a_loss": (0.3, 1), "b_loss": (0.7, 0), "lr_value": (0.1, 0)}
    config = flexlogger.load_config({"presets": "bestloss+bestlr", "phases": "a"})
    assert config.meters["a_loss"].best == "min" and dict(config.meters["lr_value"].display) == lr["display"]
    added, summed = FlexLogger(**OFFLINE), FlexLogger(**OFFLINE)
    added.update_config(config.plots, config.meters)
    assert added.meter_specs["a_loss"].best == "min"
    # the presets' meters on one plot of one's own, as the original flexilogger's add_metrics_for drew them
    config = flexlogger.load_config({"presets": "bestloss", "phases": "b"})
    summed.update_config({"summary": {"type": "line"}},
                         {n: {**spec.to_dict(), "target": "summary"} for n, spec in config.meters.items()})
    assert list(summed.meters) == ["b_loss"]
    assert summed.meter_specs["b_loss"].to_dict() == {"type": "AverageValueMeter", "target": "summary", **loss}
    info = flexlogger.preset_info("bestloss+bestlr")
    assert {k: info["meters"]["loss"][k] for k in loss} == loss
    assert {k: info["meters"]["lr_value"][k] for k in lr} == lr


def test_duplicate_name_across_composed_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "myloss.yaml", MY_LOSS)
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", str(tmp_path))
    with pytest.raises(InvalidConfigError, match=r"2 problems:\n  plots.loss: defined by both presets 'loss' and "
                                                 r"'myloss'; expected presets that use distinct names\n  "
                                                 r"meters.train_loss: defined by both presets 'loss' and 'myloss'"):
        flexlogger.get_preset_logger("loss+myloss", phases="train", **OFFLINE)


@pytest.mark.parametrize(("text", "message"), [
    ("plots: {loss: {type: lines}}\nmeters: {loss: {type: AverageValueMeter, target: loss}}\n",
     r"bad.yaml: plots.loss.type: unknown plot type 'lines' \(did you mean 'line'"),
    ("plots: {loss: {type: line}}\nmeters: {loss: {type: AverageMeter, target: loss}}\n",
     r"bad.yaml: meters.loss.type: unknown meter type 'AverageMeter' \(did you mean 'AverageValueMeter'"),
    ("descripton: x\nplots: {}\nmeters: {}\n",
     r"bad.yaml: descripton: unknown preset key 'descripton' \(did you mean 'description'\?\); valid preset keys: "
     r"description, meters, per_phase, plots, required"),
    ("per_phase: false\nplots: {'p_{phase}': {type: line}}\nmeters: {m: {type: ValueMeter, target: 'p_{phase}'}}\n",
     r"plots.p_\{phase\}: \{phase\} in a name, but per_phase is false; expected names without it"),
    ("per_phase: false\nplots: {p: {type: line}, q: {type: line}}\nmeters: {p: {type: ValueMeter, target: q}}\n",
     r"meters.p: 'p' names both a plot and a meter, and meter 'p' does not feed plot 'p': log\(keys=...\) would be "
     r"ambiguous"),
    ("required: {k: classes}\nplots: {p: {type: line}}\nmeters: {m: {type: ValueMeter, target: p}}\n",
     r"required.k: no meter of the preset takes 'k'; valid arguments: \(none\)"),
    ("per_phase: 1\nrequired: [k]\nplots: {p: {type: line}}\nmeters: {m: {type: ValueMeter, target: p}}\n",
     r"2 problems:\n  per_phase: expected true or false, but got 1\n  required: expected a mapping of meter "
     r"argument -> description, but got \['k'\]"),
    ("description: [a]\nplots: {}\n", r"bad.yaml: description: expected a string, but got \['a'\]$"),
    ("- loss\n", r"bad.yaml: \(top level\): expected a mapping with keys description, per_phase, required, plots, "
                 r"meters, but got list \['loss'\]"),
])
def test_bad_user_preset_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    write(tmp_path, "bad.yaml", text)
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", str(tmp_path))
    with pytest.raises(InvalidConfigError, match=message):
        load_preset("bad")
    with pytest.raises(InvalidConfigError, match=r"preset 'bad' \(.*bad.yaml\): "):
        flexlogger.get_preset_logger("loss+bad", **OFFLINE)


# errors ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "message"), [
    (lambda: flexlogger.get_preset_logger("lose", **OFFLINE),
     r"^presets: unknown preset 'lose' \(did you mean 'loss'.*\); valid presets: acc, ap, auc, .* \(searched: .*"
     r"flexlogger/presets, built-in\)$"),
    (lambda: flexlogger.get_preset_logger("loss+LOSS", **OFFLINE),
     r"^presets: preset 'loss' given twice in 'loss\+loss'; expected each preset once$"),
    (lambda: flexlogger.get_preset_logger("loss++acc", **OFFLINE),
     r"^presets: empty preset name in 'loss\+\+acc'; expected names joined by '\+', e.g. 'loss\+acc'$"),
    (lambda: flexlogger.get_preset_logger("confusion", **OFFLINE),
     r"^preset_args.confusion.k: missing; preset 'confusion' needs 'k' \(the number of classes\), e.g. "
     r"preset_args=\{'confusion': \{'k': ...\}\}$"),
    (lambda: flexlogger.get_preset_logger("loss", preset_args={"loss": {"root": True}}, **OFFLINE),
     r"^preset_args.loss.root: unknown argument 'root' for preset 'loss'; valid arguments: \(none\)$"),
    (lambda: flexlogger.get_preset_logger("mse", preset_args={"mae": {"root": True}}, **OFFLINE),
     r"^preset_args.mae: 'mae' is not one of the presets composed; expected arguments for one of: mse$"),
    (lambda: flexlogger.get_preset_logger("mse", preset_args=[1], **OFFLINE),  # type: ignore[arg-type]
     r"^preset_args: expected a mapping of preset name -> \{argument: value\}, e.g. \{'confusion': \{'k': 10\}\}, "
     r"but got \[1\]$"),
    (lambda: flexlogger.get_preset_logger("mse", preset_args={"mse": 3}, **OFFLINE),  # type: ignore[dict-item]
     r"^preset_args.mse: expected a mapping of argument -> value, but got 3$"),
    (lambda: flexlogger.get_preset_logger("confusion", preset_args={"confusion": {"k": "ten"}}, **OFFLINE),
     r"^2 problems:\n  meters.train_confusion.args: meter 'train_confusion' \(ConfusionMeter\): expected `k` "
     r"\(number of classes\) to be an int >= 2, but got 'ten'\n  meters.test_confusion.args: "),
    (lambda: flexlogger.get_preset_logger("loss", phases=[], **OFFLINE),
     r"^phases: expected a non-empty list of phase names such as \['train', 'test'\], but got \[\]$"),
    (lambda: flexlogger.get_preset_logger("loss", phases=["train", 3], **OFFLINE),  # type: ignore[list-item]
     r"^phases: expected a non-empty list of phase names .*, but got \['train', 3\]$"),
    (lambda: flexlogger.get_preset_logger("loss", phases=["a", "b", "a"], **OFFLINE),
     r"^phases: 'a' given twice in \['a', 'b', 'a'\]; expected distinct phase names$"),
    (lambda: flexlogger.get_preset_logger(["loss", 3], **OFFLINE),  # type: ignore[list-item]
     r"^presets: expected preset names \(strings\) such as 'loss\+acc', but got int 3$"),
    (lambda: flexlogger.get_preset_logger("loss+acc+lose", phases=[""], preset_args={"x": {}}, **OFFLINE),
     r"^3 problems:\n  phases: .*\n  presets: unknown preset 'lose'.*\n  preset_args.x: 'x' is not one"),
])
def test_composition_errors(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=r"^get_preset_logger\(\): " + message.removeprefix("^")) as info:
        call()
    assert info.value.problems and isinstance(info.value, ValueError)


def test_preset_info_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match=r"^unknown preset 'mea' \(did you mean 'mse', 'map', 'mae'\?\); "
                                               r"valid presets: acc, "):
        flexlogger.preset_info("mea")
    with pytest.raises(ConfigError, match=r"expected a preset name \(a string\), but got int 3"):
        flexlogger.preset_info(3)  # type: ignore[arg-type]


# every built-in end to end on the Visdom server --------------------------------------------------------------------
LOGITS = torch.tensor([[2.0, 0.1, 0.0], [0.1, 2.0, 0.0], [0.0, 0.1, 2.0], [2.0, 0.0, 0.1]])  # argmax 0, 1, 2, 0
LABELS = torch.tensor([0, 1, 2, 2])  # 3 of 4 right
SIX = torch.eye(6)[[0, 1, 2, 3]] + 0.01 * torch.arange(6)  # argmax = row; top-5 leaves out class 0


def run_loss(stat: FlexLogger) -> None:
    stat.add({"train_loss": 1.0})
    stat.add({"train_loss": 3.0, "test_loss": torch.tensor(5.0)})
    stat.log(0)
    stat.add({"train_loss": 4.0})
    stat.log(1)


def run_acc(stat: FlexLogger) -> None:
    stat.add({"train_acc": [LOGITS, LABELS], "test_acc": [LOGITS[:2], torch.tensor([1, 1])]})
    stat.log(3)


def run_err(stat: FlexLogger) -> None:
    stat.add({"train_err": [SIX, torch.tensor([0, 1, 5, 5])], "test_err": [SIX[:2], torch.tensor([0, 1])]})
    stat.log(0)


def run_mse(stat: FlexLogger) -> None:
    stat.add({"train_mse": [torch.ones(2, 2), torch.zeros(2, 2)],
              "test_mse": [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2)]})
    stat.log(0)


def run_mae(stat: FlexLogger) -> None:
    stat.add({"train_mae": [torch.tensor([1.0, -2.0, 3.0]), torch.zeros(3)]})
    stat.add({"train_mae": [torch.tensor([6.0]), torch.tensor([4.0])], "test_mae": [[0.5], [0.0]]})
    stat.log(2)


def run_confusion(stat: FlexLogger) -> None:
    stat.add({"train_confusion": [LOGITS, LABELS], "test_confusion": [torch.tensor([1, 1]), torch.tensor([0, 1])]})
    stat.log(0)


AP_SCORES = torch.tensor([[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]])
AP_TARGETS = torch.tensor([[1, 0], [0, 1], [1, 1]])


def run_ap(stat: FlexLogger) -> None:
    stat.add({"train_ap": [AP_SCORES, AP_TARGETS], "test_ap": [AP_SCORES, torch.tensor([[0, 0], [1, 1], [1, 0]])]})
    stat.log(0)


def run_map(stat: FlexLogger) -> None:
    stat.add({"train_map": [AP_SCORES, AP_TARGETS], "test_map": [AP_SCORES, torch.tensor([[0, 0], [1, 1], [1, 0]])]})
    stat.log(0)


def run_auc(stat: FlexLogger) -> None:
    stat.add({"train_auc": [torch.tensor([0.9, 0.4, 0.4, 0.1]), torch.tensor([1, 1, 0, 0])],
              "test_auc": [torch.tensor([0.2, 0.8]), torch.tensor([1, 0])]})
    stat.log(5)


def run_lr(stat: FlexLogger) -> None:
    stat.add({"lr": 0.1})
    stat.log(0)
    stat.add({"lr": 0.05})
    stat.log(1)


def run_time(stat: FlexLogger) -> None:
    for _ in range(3):
        stat.add({"train_time": 1})
    stat.log(0)  # test_time got no add(): no point


def check_time(viz: visdom.Visdom, stat: FlexLogger) -> None:
    got = traces(viz, stat, "time")
    assert list(got) == ["train_time"] and got["train_time"][0] == [0]
    seconds = got["train_time"][1][0]
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0


# preset -> (preset_args, feed, {plot: expected traces} or a check function)
E2E: dict[str, tuple[dict[str, Any], Callable[[FlexLogger], None], Any]] = {
    "loss": ({}, run_loss, {"loss": {"train_loss": ([0, 1], [2.0, 4.0]), "test_loss": ([0], [5.0])}}),
    "acc": ({}, run_acc, {"acc": {"train_acc": ([3], [75.0]), "test_acc": ([3], [50.0])}}),
    "err": ({}, run_err, {"err": {"train_err@1": ([0], [50.0]), "train_err@5": ([0], [0.0]),
                                  "test_err@1": ([0], [0.0]), "test_err@5": ([0], [0.0])}}),
    "mse": ({}, run_mse, {"mse": {"train_mse": ([0], [1.0]), "test_mse": ([0], [7.5])}}),
    "mae": ({}, run_mae, {"mae": {"train_mae": ([2], [2.0]), "test_mae": ([2], [0.5])}}),
    "map": ({}, run_map, {"map": {"train_map": ([0], [1.0]), "test_map": ([0], [(7 / 12 + 1.0) / 2])}}),
    "auc": ({}, run_auc, {"auc": {"train_auc": ([5], [0.875]), "test_auc": ([5], [0.0])},
                          "roc": {"train_auc": ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0]),
                                  "test_auc": ([0.0, 1.0, 1.0], [0.0, 0.0, 1.0])}}),
    "lr": ({}, run_lr, {"learning_rate": {"lr": ([0, 1], [0.1, 0.05])}}),
    "confusion": ({"confusion": {"k": 3}}, run_confusion, None),
    "ap": ({}, run_ap, None),
    "time": ({}, run_time, check_time),
}


def test_every_builtin_has_an_end_to_end_case() -> None:
    assert sorted(E2E) == BUILTINS


@pytest.mark.parametrize("name", sorted(E2E))
def test_builtin_end_to_end(name: str, make: Callable[..., FlexLogger], viz: visdom.Visdom) -> None:
    preset_args, feed, expected = E2E[name]
    stat = make(name, preset_args=preset_args)
    feed(stat)
    if callable(expected):
        expected(viz, stat)
    elif name == "confusion":
        for phase, z in (("train", [[1, 0, 0], [0, 1, 0], [1, 0, 1]]), ("test", [[0, 1, 0], [0, 1, 0], [0, 0, 0]])):
            win = window(viz, stat, f"confusion_{phase}")
            assert win["title"] == f"confusion matrix ({phase})"
            assert win["content"]["data"][0]["type"] == "heatmap" and win["content"]["data"][0]["z"] == z
    elif name == "ap":
        bars = window(viz, stat, "ap")["content"]["data"]
        assert [b["name"] for b in bars] == ["train_ap", "test_ap"]
        assert bars[0]["y"] == [1.0, 1.0] and bars[1]["y"] == pytest.approx([7 / 12, 1.0])  # AP: 1/2 * 1/2 + 1/2 * 2/3
    else:
        for plot, want in expected.items():
            got = traces(viz, stat, plot)
            assert got.keys() == want.keys()
            for trace, (xs, ys) in want.items():
                assert got[trace][0] == xs and got[trace][1] == pytest.approx(ys, abs=1e-12), trace


# installation ------------------------------------------------------------------------------------------------------
PROBE = """\
import importlib.resources, json, flexlogger
stat = flexlogger.get_preset_logger('loss+MSE+confusion', preset_args={'confusion': {'k': 2}}, server=None,
                                    log_dir=None)
print(json.dumps({'module': flexlogger.__file__, 'names': flexlogger.preset_names(),
                  'presets': str(importlib.resources.files('flexlogger.builtin_presets')),
                  'definitions': stat.get_definitions()}))
"""


def probe(python: str, cwd: Path, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLEXLOGGER_PRESET_PATH")}
    environ.update(env)
    done = subprocess.run([python, "-c", PROBE], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(BUILTINS) <= set(out["names"]) and set(out["names"].values()) == {"built-in"}
    assert out["definitions"]["mse"] == ["train_mse", "test_mse"] and "confusion_test" in out["definitions"]
    return out


def test_editable_install_finds_presets_from_another_folder(tmp_path: Path) -> None:
    out = probe(sys.executable, tmp_path, XDG_CONFIG_HOME=str(tmp_path))
    assert Path(out["presets"]) == REPO / "presets"


@pytest.mark.slow
def test_installed_package_finds_presets_from_another_folder(tmp_path: Path) -> None:
    """Build a wheel from a copy of the sources, pip-install it (not editable) into a fresh venv, import from
    elsewhere. The venv reaches torch & co. through a .pth naming this venv's site-packages; a .pth does not run
    the .pth files of the folders it names, so this checkout's editable finder stays out."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("flexlogger", "presets"):
        shutil.copytree(REPO / part, src / part, ignore=ignore)
    shutil.copy(REPO / "setup.py", src / "setup.py")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path, timeout=300)
    wheel = next((tmp_path / "dist").glob("flexlogger-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = probe(python, elsewhere, XDG_CONFIG_HOME=str(tmp_path))
    assert Path(out["module"]).is_relative_to(venv), out["module"]
    assert Path(out["presets"]).is_relative_to(venv), out["presets"]


def test_a_bad_argument_value_in_a_preset_file_is_reported_where_the_preset_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A preset's meter templates are checked without being built; each meter is built once, with its final
    arguments, so a bad value in the file is reported at the expanded meter, and preset_args can correct it."""
    write(tmp_path, "badconf.yaml", """\
        plots: {'conf_{phase}': {type: heatmap}}
        meters: {conf: {type: ConfusionMeter, target: 'conf_{phase}', args: {k: 1}}}
    """)
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", str(tmp_path))
    assert flexlogger.preset_info("badconf")["args"]["k"] == 1
    with pytest.raises(InvalidConfigError, match=r"^get_preset_logger\(\): 2 problems:\n  meters.train_conf.args: "
                                                 r"meter 'train_conf' \(ConfusionMeter\): expected `k`"):
        flexlogger.get_preset_logger("badconf", **OFFLINE)
    stat = flexlogger.get_preset_logger("badconf", preset_args={"badconf": {"k": 3}}, **OFFLINE)
    assert stat.meters["test_conf"].value().shape == (3, 3)
    stat.close()
