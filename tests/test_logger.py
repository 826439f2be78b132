"""FlexLogger against a real Visdom server: windows read back with get_window_data, exact values."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import visdom
from readback import traces, window

import flexlogger
import flexlogger.sinks.record
from flexlogger import ConfigError, FlexLogger, MeterInputError, UnknownKeyError, UnknownNameError
from flexlogger.tools.server import VisdomServer


@pytest.fixture
def make(visdom_server: VisdomServer, env: str) -> Iterator[Any]:
    """Build loggers on the test server (no run record); every logger is closed after the test."""
    made: list[FlexLogger] = []

    def build(plots: dict[str, Any], meters: dict[str, Any], **kwargs: Any) -> FlexLogger:
        kwargs = {"env": env, "uid": "run", "port": visdom_server.port, "log_dir": None, **kwargs}
        logger = FlexLogger(plots, meters, **kwargs)
        made.append(logger)
        return logger

    yield build
    for logger in made:
        logger.close()






LOSS = {"loss": {"type": "line", "opts": {"xlabel": "epoch"}}}
TRAIN_TEST = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
              "test_loss": {"type": "AverageValueMeter", "target": "loss"}}


def test_line_traces_exact_and_empty_meters_add_no_point(make: Any, viz: visdom.Visdom) -> None:
    stat = make(LOSS, TRAIN_TEST)
    for epoch in range(3):
        for v in (1.0, 2.0, 4.5):
            stat.add({"train_loss": v + epoch})
        if epoch != 1:
            stat.add({"test_loss": [torch.tensor(10.0 * epoch)]})
        stat.log(epoch)
    win = window(viz, stat, "loss")
    assert win["title"] == "loss"
    assert {t["name"]: (t["x"], t["y"]) for t in win["content"]["data"]} == {
        "train_loss": ([0, 1, 2], [2.5, 3.5, 4.5]),
        "test_loss": ([0, 2], [0.0, 20.0]),  # nothing added at epoch 1: no point, no NaN
    }
    assert win["content"]["layout"]["xaxis"]["title"] == "epoch"


def test_topk_traces_one_per_k(make: Any, viz: visdom.Visdom) -> None:
    stat = make({"err": {"type": "line"}},
                {"train_err": {"type": "ClassErrorMeter", "target": "err", "args": {"topk": [1, 5]}}})
    scores = torch.eye(6)[[0, 1, 2, 3]] + 0.01 * torch.arange(6)  # argmax = row index
    stat.add({"train_err": [scores, torch.tensor([0, 1, 5, 5])]})
    stat.log(7)
    assert traces(viz, stat, "err") == {"train_err@1": ([7], [50.0]), "train_err@5": ([7], [0.0])}


def test_internal_counter_keys_and_reset(make: Any, viz: visdom.Visdom) -> None:
    stat = make(LOSS, TRAIN_TEST)
    stat.add({"train_loss": 1.0, "test_loss": 3.0})
    stat.log()  # step 0
    stat.add({"train_loss": 2.0, "test_loss": 5.0})
    stat.log(keys=["train_loss"], reset=False)  # step 1, test_loss left alone
    stat.add({"train_loss": 4.0})
    stat.log(keys="loss")  # a plot name selects its meters: step 2
    assert traces(viz, stat, "loss") == {"train_loss": ([0, 1, 2], [1.0, 2.0, 3.0]), "test_loss": ([0, 2], [3.0, 5.0])}
    assert math.isnan(stat.value()["train_loss"][0])
    stat.log(10.5)
    stat.add({"train_loss": 1.0})
    stat.log()
    assert traces(viz, stat, "loss")["train_loss"][0][-1] == 11


def test_heatmap_bar_curve_text_histogram_image(make: Any, viz: visdom.Visdom) -> None:
    plots = {"conf": {"type": "heatmap"}, "ap": {"type": "bar"}, "auc": {"type": "line"}, "roc": {"type": "curve"},
             "txt": {"type": "text"}, "hist": {"type": "histogram", "opts": {"numbins": 4}},
             "img": {"type": "image"}}
    meters = {"cm": {"type": "ConfusionMeter", "target": "conf", "args": {"k": 3}},
              "apm": {"type": "APMeter", "target": "ap"},
              "aucm": {"type": "AUCMeter", "target": ["auc", "roc", "txt"]},
              "w": {"type": "ValueMeter", "target": "hist"},
              "pic": {"type": "ValueMeter", "target": "img"}}
    stat = make(plots, meters)
    stat.add({"cm": [torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])],
              "apm": [torch.tensor([[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]]), torch.tensor([[1, 0], [0, 1], [1, 1]])],
              "aucm": [torch.tensor([0.9, 0.4, 0.4, 0.1]), torch.tensor([1, 1, 0, 0])],
              "w": torch.tensor([0.0, 1.0, 1.0, 2.0, 3.0]),
              "pic": torch.zeros(3, 4, 5)})
    stat.log(0)
    heat = window(viz, stat, "conf")["content"]["data"][0]
    assert heat["type"] == "heatmap" and heat["z"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    bars = window(viz, stat, "ap")["content"]["data"]
    assert [(b["name"], b["y"]) for b in bars] == [("apm", [1.0, 1.0])]
    assert traces(viz, stat, "auc") == {"aucm": ([0], [0.875])}
    assert traces(viz, stat, "roc") == {"aucm": ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])}
    assert "0.875" in window(viz, stat, "txt")["content"]
    hist = window(viz, stat, "hist")["content"]["data"][0]
    assert hist["type"] == "bar" and sum(hist["y"]) == 5
    assert window(viz, stat, "img")["type"] == "image"


def test_nan_is_a_gap(make: Any, viz: visdom.Visdom) -> None:
    stat = make({"v": {"type": "line"}}, {"x": {"type": "ValueMeter", "target": "v"}})
    for step, value in enumerate([1.0, math.nan, math.inf, 2.0]):
        stat.add({"x": value})
        stat.log(step)
    assert traces(viz, stat, "v") == {"x": ([0, 1, 2, 3], [1.0, None, None, 2.0])}
    with pytest.warns(RuntimeWarning, match=r"2 NaN/Inf value\(s\) were logged .* shown as gaps"):
        stat.close()


def test_introspection_and_display(make: Any) -> None:
    stat = make(LOSS, TRAIN_TEST)
    assert stat.get_definitions() == {"loss": ["train_loss", "test_loss"]}
    assert stat.windows == {"loss": "run_loss"}
    stat.add({"train_loss": 0.25})
    text = stat.table()
    assert "train_loss=0.25" in text and "(empty)" in text
    assert repr(stat) == f"FlexLogger(env={stat.env!r}, uid='run', server='http://localhost', port={stat.port})"
    stat.update_config({"lr": {"type": "line"}})
    stat.update_config(meters={"lr_value": {"type": "ValueMeter", "target": "lr"}})
    assert stat.get_definitions()["lr"] == ["lr_value"]
    stat.remove("loss")
    assert stat.get_definitions() == {"lr": ["lr_value"]}
    with pytest.raises(UnknownKeyError, match=r"unknown meter 'train_loss'"):
        stat.add({"train_loss": 1.0})


def test_context_manager_closes(visdom_server: VisdomServer, env: str) -> None:
    with FlexLogger(LOSS, TRAIN_TEST, env=env, port=visdom_server.port, log_dir=None) as stat:
        stat.add({"train_loss": 1.0})
        stat.log()
    with pytest.raises(flexlogger.LoggerClosedError,
                       match=r"^log\(\): this FlexLogger is closed \(env '.*', uid '.*'\); create a new one to log "
                             r"again$") as info:
        stat.log()
    assert isinstance(info.value, RuntimeError) and not isinstance(info.value, ConfigError)


# errors -------------------------------------------------------------------------------------------------------
def test_unknown_meter_type_suggests() -> None:
    with pytest.raises(UnknownNameError, match=r"meters.l.type: unknown meter type 'AverageMeter' \(did you mean "
                                               r"'AverageValueMeter'.*\); valid meter types: APMeter"):
        FlexLogger(LOSS, {"l": {"type": "AverageMeter", "target": "loss"}}, server=None, log_dir=None)


def test_unknown_plot_type_suggests() -> None:
    with pytest.raises(UnknownNameError, match=r"plots.loss.type: unknown plot type 'lines' \(did you mean 'line'"):
        FlexLogger({"loss": {"type": "lines"}}, {}, server=None, log_dir=None)


def test_missing_target_plot_at_construction() -> None:
    with pytest.raises(UnknownNameError, match=r"meters.l.target: unknown plot 'los' \(did you mean 'loss'\?\)"):
        FlexLogger(LOSS, {"l": {"type": "AverageValueMeter", "target": "los"}}, server=None, log_dir=None)
    with pytest.raises(ConfigError, match=r"meters.l.target: missing"):
        FlexLogger(LOSS, {"l": {"type": "AverageValueMeter"}}, server=None, log_dir=None)


def test_plot_that_cannot_draw_the_meter() -> None:
    with pytest.raises(ConfigError, match=r"plot 'loss' is a 'line' plot, which cannot draw a ConfusionMeter .*; "
                                          r"plot types that can: heatmap, image, text"):
        FlexLogger(LOSS, {"c": {"type": "ConfusionMeter", "target": "loss", "args": {"k": 3}}}, server=None,
                   log_dir=None)
    with pytest.raises(ConfigError, match=r"plots.h: a 'heatmap' plot shows at most 1 meter\(s\), but a, b target"):
        FlexLogger({"h": {"type": "heatmap"}}, {"a": {"type": "ConfusionMeter", "target": "h"},
                                                "b": {"type": "ConfusionMeter", "target": "h"}},
                   server=None, log_dir=None)


def test_bad_meter_args() -> None:
    with pytest.raises(ConfigError, match=r"meters.e1.args: unknown argument\(s\) 'top_k' for ClassErrorMeter; "
                                          r"valid arguments: topk, accuracy"):
        FlexLogger({"e": {"type": "line"}}, {"e1": {"type": "ClassErrorMeter", "target": "e",
                                                    "args": {"top_k": [1]}}}, server=None, log_dir=None)


def test_unknown_add_key_strict_and_lenient() -> None:
    stat = FlexLogger(LOSS, TRAIN_TEST, server=None, log_dir=None)
    with pytest.raises(KeyError, match=r"add\(\): unknown meter 'train_los' \(did you mean 'train_loss'.*valid "
                                       r"meters: test_loss, train_loss"):
        stat.add({"train_los": 1.0})
    lenient = FlexLogger(LOSS, TRAIN_TEST, server=None, log_dir=None, strict=False)
    with pytest.warns(UserWarning, match=r"unknown meter 'x'.*ignoring it \(strict=False\)") as record:
        lenient.add({"x": 1.0})
        lenient.add({"x": 2.0, "train_loss": 1.0})  # warned once per key
    assert len(record) == 1 and lenient.value()["train_loss"][0] == 1.0


def test_wrong_input_names_meter_and_shapes() -> None:
    stat = FlexLogger({"m": {"type": "line"}}, {"train_mse": {"type": "MSEMeter", "target": "m"}},
                      server=None, log_dir=None)
    with pytest.raises(MeterInputError, match=r"meter 'train_mse' \(MSEMeter\) expects output and target of the same "
                                              r"shape, got output tensor of shape \(4, 3\)"):
        stat.add({"train_mse": [torch.zeros(4, 3), torch.zeros(4)]})
    with pytest.raises(UnknownKeyError, match=r"unknown meter or plot 'nope'"):
        stat.log(keys=["nope"])
    with pytest.raises(flexlogger.ArgumentError, match=r"^log\(\): expected `step` to be a finite number or None, but "
                                                       r"got nan$") as info:
        stat.log(float("nan"))
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ConfigError)


def test_introspection_functions() -> None:
    assert {"AverageValueMeter", "ClassErrorMeter", "ConfusionMeter", "APMeter", "mAPMeter", "AUCMeter",
            "TimeMeter", "MSEMeter", "MovingAverageValueMeter", "ValueMeter"} <= set(flexlogger.meter_types())
    assert {"line", "scatter", "bar", "heatmap", "histogram", "image", "text"} <= set(flexlogger.plot_types())
    assert "heatmap" in flexlogger.meter_info("ConfusionMeter")["plot_types"]
    assert "ConfusionMeter" in flexlogger.plot_info("heatmap")["meter_types"]
    with pytest.raises(UnknownNameError, match=r"unknown plot type 'heat' \(did you mean 'heatmap'"):
        flexlogger.plot_info("heat")


def test_scatter_and_bar_of_scalars(make: Any, viz: visdom.Visdom) -> None:
    stat = make({"s": {"type": "scatter"}, "b": {"type": "bar"}},
                {"a": {"type": "AverageValueMeter", "target": ["s", "b"]},
                 "c": {"type": "AverageValueMeter", "target": "b"}})
    stat.add({"a": 2.0, "c": 3.0})
    stat.log(1)
    assert traces(viz, stat, "s") == {"a": ([1], [2.0])}
    bar = window(viz, stat, "b")["content"]["data"]
    assert [(d["x"], d["y"]) for d in bar] == [(["a", "c"], [2.0, 3.0])]


def test_values_are_numbers_not_arrays() -> None:
    stat = FlexLogger({"m": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "m"}}, server=None,
                      log_dir=None)
    for value in (np.float64(2.0), np.array(2.0), np.array([2.0]), torch.tensor(2.0)):
        stat.add({"v": value})
        got = stat.value()["v"]
        assert type(got) is float and got == 2.0, f"{value!r} gave {got!r}"  # == alone is true for arrays too


def test_run_dir_holds_the_record(tmp_path: Any) -> None:
    with FlexLogger(LOSS, TRAIN_TEST, env="e", uid="u", server=None, log_dir=tmp_path) as stat:
        stat.add({"train_loss": 1.0})
        stat.log(0)
    assert stat.run_dir == tmp_path / "e" / "u"
    assert (stat.run_dir / "points.jsonl").read_text().count('"seq":') == 1
    assert FlexLogger(LOSS, {}, server=None, log_dir=None).run_dir is None


@pytest.mark.parametrize(("meter", "value", "match"), [
    ("mse", torch.zeros(3), r"^add\(\): meter 'mse' \(MSEMeter\) takes add\(output, target\): .*; got tensor of "
                            r"shape \(3,\) .*, and one value is passed as the one argument: missing a required "
                            r"argument: 'target'$"),
    ("v", [1.0, 2.0], r"^add\(\): meter 'v' \(ValueMeter\) takes add\(value\): .*; got list of length 2, and a list "
                      r"or tuple is passed as positional arguments \(wrap one array-like value as \[value\]\): too "
                      r"many positional arguments$"),
    ("v", {"x": 1.0}, r"^add\(\): meter 'v' \(ValueMeter\) takes add\(value\): .*; got dict \{'x': 1.0\}, and a "
                      r"dict is passed as keyword arguments: missing a required argument: 'value'$"),
])
def test_add_with_the_wrong_number_of_arguments_names_the_meter(meter: str, value: Any, match: str) -> None:
    stat = FlexLogger({"m": {"type": "line"}}, {"mse": {"type": "MSEMeter", "target": "m"},
                                                 "v": {"type": "ValueMeter", "target": "m"}}, server=None, log_dir=None)
    with pytest.raises(MeterInputError, match=match):
        stat.add({meter: value})


def test_numpy_steps(make: Any, viz: visdom.Visdom, tmp_path: Any) -> None:
    stat = make({"m": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "m"}}, log_dir=tmp_path)
    for epoch in np.arange(2):  # np.int64
        stat.add({"v": 1.0})
        stat.log(epoch)
    stat.add({"v": 2.0})
    stat.log(np.float32(2.5))
    stat.add({"v": 3.0})
    stat.log()  # the counter goes on from the numpy step
    assert traces(viz, stat, "m") == {"v": ([0, 1, 2.5, 3], [1.0, 1.0, 2.0, 3.0])}
    stat.close()
    assert flexlogger.sinks.record.read_record(stat.run_dir).updates[2].step == 2.5
    assert json.loads((stat.run_dir / "summary.json").read_text())["last_step"] == 3


def test_table_shows_arrays_and_strings_of_a_value_meter() -> None:
    stat = FlexLogger({"h": {"type": "histogram"}, "t": {"type": "text"}},
                      {"w": {"type": "ValueMeter", "target": "h"}, "note": {"type": "ValueMeter", "target": "t"}},
                      server=None, log_dir=None)
    stat.add({"w": torch.zeros(10, 3), "note": "lr halved at epoch 3"})
    rows = {line.split()[2]: line for line in stat.table().splitlines()[2:]}
    assert rows["w"].endswith("array(10, 3)") and rows["note"].endswith("lr halved at epoch 3")


def test_legend_opts_are_rejected_at_construction() -> None:
    """Visdom's own `legend` would name both traces 'train' (it names a one-column line after legend[0])."""
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): plots.loss.opts.legend: expected no `legend`: "
                                          r"a window's legend is the "
                                          r"names of the meters that feed it"):
        FlexLogger({"loss": {"type": "line", "opts": {"legend": ["train", "test"]}}}, TRAIN_TEST, server=None,
                   log_dir=None)


def test_a_window_that_cannot_be_drawn_does_not_stop_the_others(visdom_server: VisdomServer, env: str,
                                                                 tmp_path: Any, viz: visdom.Visdom) -> None:
    plots = {"bad": {"type": "line", "opts": {"textlabels": ["a", "b"]}},  # Visdom rejects it when drawing
             "good": {"type": "line"}}
    meters = {"a": {"type": "ValueMeter", "target": "bad"}, "b": {"type": "ValueMeter", "target": "good"}}
    stat = FlexLogger(plots, meters, env=env, uid="run", port=visdom_server.port, log_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match=r"plot 'bad' \(line\) cannot be drawn"):
        stat.add({"a": 1.0, "b": 2.0})
        stat.log(0)
        stat.flush(10)
        stat.add({"a": 3.0, "b": 4.0})
        stat.log(1)
        stat.flush(10)
    assert stat.flush(10) == 2  # the bad window's two points
    good = json.loads(viz.get_window_data(stat.windows["good"], env))["content"]["data"]
    assert [(t["name"], t["x"], t["y"]) for t in good] == [("b", [0, 1], [2.0, 4.0])]
    with pytest.warns(RuntimeWarning, match=r"could not be delivered"):
        stat.close()
    updates = flexlogger.sinks.record.read_record(stat.run_dir).updates
    assert [(u.plot, u.step, dict(u.data)) for u in updates] == [
        ("bad", 0, {"a": 1.0}), ("good", 0, {"b": 2.0}), ("bad", 1, {"a": 3.0}), ("good", 1, {"b": 4.0})]


def test_definition_clashes() -> None:
    stat = FlexLogger(LOSS, TRAIN_TEST, server=None, log_dir=None)
    with pytest.raises(ConfigError, match=r"^update_config\(\): plots.loss: 'loss' already defined; remove\(\) it "
                                          r"first$"):
        stat.update_config({"loss": {"type": "scatter"}})
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): max_points: a Visdom sender option, but server is None "
                                          r"\(nothing is sent to Visdom\); expected no Visdom options, or a server$"):
        FlexLogger(LOSS, TRAIN_TEST, server=None, log_dir=None, max_points=100)


def test_a_plot_and_its_one_meter_share_a_name() -> None:
    """``log(keys='lr')`` selects the same meter whether 'lr' is read as the plot or as the meter."""
    stat = FlexLogger({"lr": {"type": "line"}}, {"lr": {"type": "ValueMeter", "target": "lr"}}, server=None,
                      log_dir=None)
    stat.add({"lr": 0.1})
    assert stat.value("lr") == {"lr": 0.1}
    with pytest.raises(ConfigError, match=r"^update_config\(\): meters.lr: 'lr' names both a plot and a meter, and "
                                          r"plot 'lr' is also fed by 'lr2': log\(keys=...\) would be ambiguous"):
        stat.update_config(meters={"lr2": {"type": "ValueMeter", "target": "lr"}})
    stat.update_config({"other": {"type": "line"}})
    with pytest.raises(ConfigError, match=r"meters.other: 'other' names both a plot and a meter, and meter 'other' "
                                          r"does not feed plot 'other'"):
        stat.update_config(meters={"other": {"type": "ValueMeter", "target": "lr"}})
    assert list(stat.meters) == ["lr"]  # all or nothing


def test_an_empty_batch_in_an_auc_meter(make: Any, viz: visdom.Visdom) -> None:
    stat = make({"auc": {"type": "line"}, "roc": {"type": "curve"}},
                {"a": {"type": "AUCMeter", "target": ["auc", "roc"]}})
    stat.add({"a": [torch.tensor([]), torch.tensor([])]})
    assert math.isnan(stat.value()["a"]) and stat.meters["a"].count == 0
    stat.log(0)  # received nothing: no point (no NaN), no curve
    stat.add({"a": [torch.tensor([0.8, 0.2]), torch.tensor([1, 0])]})
    stat.log(1)
    assert traces(viz, stat, "roc") == {"a": ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])}
    assert traces(viz, stat, "auc") == {"a": ([1], [1.0])}


@pytest.mark.parametrize(("opts", "match"), [
    ({"markersize": -1}, r"^FlexLogger\(\): plots.loss.opts: Visdom's client rejects \{'markersize': -1\}: "
                         r"marker size should be a "
                         r"positive number$"),
    ({"xtickvals": np.arange(3)}, r"^FlexLogger\(\): plots.loss.opts: expected Visdom options that are JSON "
                                  r"\(str, numbers, lists, "
                                  r"dicts\), but got \{'xtickvals': array\(\[0, 1, 2\]\)\}"),
    ({"numbins": 1}, r"^FlexLogger\(\): plots.loss.opts.numbins: expected an int >= 2 \(Visdom cannot draw one "
                     r"bin\), but got 1$"),
])
def test_opts_visdom_rejects_fail_at_construction(opts: dict[str, Any], match: str) -> None:
    """Not in the sender thread at the first log(), which would stop the delivery of every window."""
    with pytest.raises(ConfigError, match=match):
        FlexLogger({"loss": {"type": "line", "opts": opts}}, TRAIN_TEST, port=1, log_dir=None)
    stat = FlexLogger({"loss": {"type": "line"}}, TRAIN_TEST, port=1, log_dir=None, close_timeout=0)
    with pytest.raises(ConfigError,
                       match=match.replace("plots.loss", "plots.other").replace("FlexLogger", "update_config")):
        stat.update_config({"other": {"type": "scatter", "opts": opts}})
    stat.close()


def test_a_type_that_is_not_a_string() -> None:
    with pytest.raises(UnknownNameError, match=r"^FlexLogger\(\): plots.l.type: unknown plot type \['line'\]; "
                                               r"valid plot types: bar"):
        FlexLogger({"l": {"type": ["line"]}}, {}, server=None, log_dir=None)
    with pytest.raises(UnknownNameError, match=r"^FlexLogger\(\): meters.m.type: unknown meter type \{'a': 1\}; "
                                               r"valid meter types: "):
        FlexLogger({"l": {"type": "line"}}, {"m": {"type": {"a": 1}, "target": "l"}}, server=None, log_dir=None)


def test_a_meter_fed_only_empty_batches_adds_no_point(make: Any, viz: visdom.Visdom) -> None:
    stat = make({"m": {"type": "line"}}, {"train_mse": {"type": "MSEMeter", "target": "m"},
                                          "test_mse": {"type": "MSEMeter", "target": "m"}})
    stat.add({"train_mse": [torch.zeros(0, 3), torch.zeros(0, 3)], "test_mse": [torch.ones(2), torch.zeros(2)]})
    stat.log(0)
    assert traces(viz, stat, "m") == {"test_mse": ([0], [1.0])}  # no NaN point for train_mse


class KeptUpdates:
    """A sink that keeps the Updates it gets, in order."""

    def __init__(self) -> None:
        self.updates: list[Any] = []

    def write(self, update: Any) -> None:
        self.updates.append(update)

    def flush(self, timeout: float | None = None) -> int:
        return 0

    def close(self) -> None:
        pass


def test_steps_an_observer_releases_are_drawn_in_the_same_log_without_log_calling_log() -> None:
    import inspect

    kept = KeptUpdates()
    line = {"type": "line"}
    stat = FlexLogger({"a": line, "b": line}, {"ma": {"type": "ValueMeter", "target": "a"},
                                               "mb": {"type": "ValueMeter", "target": "b"}},
                      server=None, log_dir=None, sinks=[kept])
    depths: list[int] = []
    held = [(5, {"mb": 1.0}, ["b"]), (6, {"mb": 2.0}, ["b"])]

    def observer(step: float, series: dict[str, float], plots: list[str]) -> list[Any]:
        depths.append(sum(frame.function == "log" for frame in inspect.stack()))
        released, held[:] = list(held), []
        return released

    stat.observe(observer)
    stat.add({"ma": 0.5})
    stat.log(0)
    assert [(u.plot, u.step, dict(u.data)) for u in kept.updates] == [
        ("a", 0, {"ma": 0.5}), ("b", 5, {"mb": 1.0}), ("b", 6, {"mb": 2.0})]
    assert depths == [1, 1, 1]  # observed after each step drawn, always from the one log() call
    stat.close()
