"""TooledModelLogger against a real Visdom server: windows read back with get_window_data, exact values."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import visdom
from readback import traces, window
from torch import nn

from flexlogger import FlexLogger, Run
from flexlogger.errors import ConfigError, ModelAnomalyWarning, UnknownNameError
from flexlogger.model.logger import ANOMALIES, DEFAULT_GROUPS, DEFAULT_STATS, TooledModelLogger
from flexlogger.model.recorder import RECORDER_STATS, FlightRecorder
from flexlogger.model.tooled import GROUPS
from flexlogger.sinks.record import read_record
from flexlogger.sinks.visdom.legible import bar_width, histogram_title, legend_rows
from flexlogger.tools.server import VisdomServer

X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.5, 1.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([[0.5, -0.5], [1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)


LOSS = {"loss": {"type": "line"}}
TRAIN_LOSS = {"train_loss": {"type": "AverageValueMeter", "target": "loss"}}


def known_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()


@pytest.fixture
def make(visdom_server: VisdomServer, env: str) -> Iterator[Callable[..., TooledModelLogger]]:
    """Build TooledModelLoggers on the test server (no run record); each is closed after the test."""
    made: list[TooledModelLogger] = []

    def build(model: nn.Module, **kwargs: Any) -> TooledModelLogger:
        kwargs = {"env": env, "uid": "run", "port": visdom_server.port, "log_dir": None, **kwargs}
        tml = TooledModelLogger(model, **kwargs)
        made.append(tml)
        return tml

    yield build
    for tml in made:
        tml.close()




def train(model: nn.Module, tml: TooledModelLogger, steps: int, log: bool = True) -> list[Any]:
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    returned = []
    for _ in range(steps):
        optim.zero_grad()
        outputs = model(X)
        F.mse_loss(outputs, Y).backward()
        optim.step()
        returned.append(tml.step(log=log))
    return returned


def test_by_layer_windows_hold_every_statistic(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, mode="by_layer", stats=("mean", "std"), groups=GROUPS)
    assert sorted(tml.windows) == ["0", "1", "2"]
    weights = []
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    returned = []
    for _ in range(3):
        optim.zero_grad()
        F.mse_loss(model(X), Y).backward()
        optim.step()
        weights.append(model[0].weight.detach().clone())
        returned.append(tml.step(log=True))
    got = traces(viz, tml, "0")
    expected_names = {f"0.{g}.{s}" for g in ("Grad_out", "Inputs", "Outputs", "Weights", "Weight_grad")
                      for s in ("mean", "std")}  # no Grad_in: the input does not require grad
    assert set(got) == expected_names
    for name, (xs, ys) in got.items():
        _, group, stat = name.split(".")
        assert xs == [0, 1, 2]
        assert ys == [r["0"][group][stat] for r in returned], name
    assert got["0.Weights.mean"][1] == pytest.approx([w.mean().item() for w in weights], rel=1e-12)
    assert got["0.Weights.std"][1] == pytest.approx([w.std().item() for w in weights], rel=1e-12)
    relu = traces(viz, tml, "1")
    assert set(relu) == {f"1.{g}.{s}" for g in ("Grad_in", "Grad_out", "Inputs", "Outputs") for s in ("mean", "std")}
    # 8 or 10 traces in rows above the plot: the layer windows equally tall, each taller than 300 px by at least its
    # legend's rows, so that every plot keeps its height
    heights = {plot: window(viz, tml, plot)["height"] for plot in tml.windows}
    assert len(set(heights.values())) == 1, heights
    for plot, height in heights.items():
        assert height >= 300 + 20 * legend_rows(list(traces(viz, tml, plot))) > 300, (plot, height)


def test_by_metric_windows_have_a_trace_per_layer(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, mode="by_metric", stats=["max", "update_ratio"], groups=["Weights", "Outputs"])
    assert sorted(tml.windows) == ["Outputs.max", "Weights.max", "Weights.update_ratio"]
    returned = train(model, tml, 2)
    got = traces(viz, tml, "Weights.update_ratio")
    assert set(got) == {"0.Weights.update_ratio", "2.Weights.update_ratio"}
    assert got["2.Weights.update_ratio"] == ([0, 1], [r["2"]["Weights"]["update_ratio"] for r in returned])
    outputs = traces(viz, tml, "Outputs.max")
    assert set(outputs) == {"0.Outputs.max", "1.Outputs.max", "2.Outputs.max"}
    assert outputs["1.Outputs.max"][1] == [r["1"]["Outputs"]["max"] for r in returned]


def test_every_n_logs_only_recorded_steps(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, every=2, groups=["Weights"], stats=["mean"], mode="by_layer")
    returned = train(model, tml, 5)
    assert [r is not None for r in returned] == [True, False, True, False, True]
    xs, ys = traces(viz, tml, "2")["2.Weights.mean"]
    assert xs == [0, 2, 4]
    assert ys == [returned[i]["2"]["Weights"]["mean"] for i in (0, 2, 4)]  # type: ignore[index]


def test_step_without_log_then_log(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, groups=["Weights"], stats=["mean"], mode="by_layer")
    returned = train(model, tml, 2, log=False)
    assert tml.value("0.Weights.mean") == {"0.Weights.mean": returned[1]["0"]["Weights"]["mean"]}
    tml.log()  # at the last recorded step
    assert traces(viz, tml, "0")["0.Weights.mean"] == ([1], [returned[1]["0"]["Weights"]["mean"]])


def test_histogram_windows(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, groups=["Weights", "Weight_grad"], histograms=True, bins=5)
    assert sorted(p for p in tml.windows if p.endswith("histogram")) == [
        "0.Weight_grad.histogram", "0.Weights.histogram", "2.Weight_grad.histogram", "2.Weights.histogram"]
    train(model, tml, 1)
    assert tml.flush(10) == 0
    data = json.loads(viz.get_window_data(tml.windows["0.Weights.histogram"], tml.env))
    bars = data["content"]["data"][0]
    w = model[0].weight.detach().numpy().reshape(-1)
    counts, _ = np.histogram(w, bins=5, range=(w.min(), w.max()))
    assert bars["y"] == counts.tolist()
    assert bars["x"] == pytest.approx(np.linspace(w.min(), w.max(), 5).tolist(), rel=1e-12)


def test_seed_usage_as_written(visdom_server: VisdomServer, env: str, viz: visdom.Visdom) -> None:
    model = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 3))
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    TMLogger = TooledModelLogger(model, env=env, port=visdom_server.port, log_dir=None)
    inputs, targets = torch.randn(8, 20), torch.randn(8, 3)
    for _ in range(3):
        optim.zero_grad()
        outputs = model(inputs)
        F.mse_loss(outputs, targets).backward()
        optim.step()
        TMLogger.step(log=True)
    xs, ys = traces(viz, TMLogger, "Weights.std")["1.Weights.std"]
    assert xs == [0, 1, 2] and ys[-1] == pytest.approx(model[1].weight.std().item(), rel=1e-5)
    TMLogger.close()
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks


def test_own_meters_next_to_the_model_statistics(make: Callable[..., TooledModelLogger],
                                                 viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, groups=["Weights"], stats=["mean"])
    tml.logger.update_config({"loss": {"type": "line"}},
                             {"train_loss": {"type": "AverageValueMeter", "target": "loss"}})
    tml.add({"train_loss": 1.0})
    tml.add({"train_loss": 3.0})
    train(model, tml, 1)  # step(log=True) logs the model windows only
    assert tml.value("train_loss")["train_loss"][0] == 2.0
    tml.log(keys="loss")
    assert traces(viz, tml, "loss") == {"train_loss": ([0], [2.0])}
    tml.reset()
    assert tml.get_definitions()["loss"] == ["train_loss"]


def test_close_and_context_manager_remove_the_hooks(visdom_server: VisdomServer, env: str) -> None:
    model = known_model()
    with TooledModelLogger(model, env=env, port=visdom_server.port, log_dir=None) as tml:
        assert model[0]._forward_hooks
        assert "TooledModelLogger(mode='by_metric'" in repr(tml)
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks
    tml.close()


def test_run_record_is_written(tmp_path: Path, visdom_server: VisdomServer, env: str) -> None:
    model = known_model()
    with TooledModelLogger(model, env=env, port=visdom_server.port, log_dir=tmp_path, groups=["Weights"]) as tml:
        returned = train(model, tml, 2)
    assert tml.logger.run_dir is not None and tml.logger.run_dir.parent == tmp_path / env
    run = read_record(tml.logger.run_dir)
    points = [(u.plot, u.step, dict(u.data)) for u in run.updates]
    assert points == [(f"Weights.{s}", step, {f"{layer}.Weights.{s}": returned[step][layer]["Weights"][s]
                                              for layer in ("0", "2")})
                      for step in (0, 1) for s in ("std", "update_ratio")]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"mode": "by_lyer"}, r"unknown mode 'by_lyer' \(did you mean 'by_layer'.*valid modes: by_layer, by_metric"),
    ({"histograms": ["Outputs"]}, r"histograms: unknown parameter group 'Outputs'.*only parameter groups"),
])
def test_bad_arguments(kwargs: dict[str, Any], match: str, visdom_server: VisdomServer, env: str) -> None:
    model = known_model()
    with pytest.raises(UnknownNameError, match=match):
        TooledModelLogger(model, env=env, port=visdom_server.port, log_dir=None, **kwargs)
    assert not model[0]._forward_hooks  # nothing left attached


def test_bad_flexlogger_argument_leaves_no_hooks(visdom_server: VisdomServer) -> None:
    model = known_model()
    with pytest.raises(ConfigError, match=r"^TooledModelLogger\(\): env: expected a non-empty string"):
        TooledModelLogger(model, env="", port=visdom_server.port, log_dir=None)
    assert not model[0]._forward_hooks


# the default charts ---------------------------------------------------------------------------------------------
def test_default_is_a_window_per_statistic_on_a_scale_that_fits(make: Callable[..., TooledModelLogger],
                                                                viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, histograms=True)
    assert tml.mode == "by_metric" and tml.tooled.stats == DEFAULT_STATS
    assert set(tml.tooled.groups) == set(DEFAULT_GROUPS)
    # line windows first, histograms last (Visdom keeps the order of first drawing)
    assert list(tml.windows) == ["Grad_out.std", "Outputs.std", "Weights.std", "Weights.update_ratio",
                                 "Weight_grad.std", "0.Weights.histogram", "0.Weight_grad.histogram",
                                 "2.Weights.histogram", "2.Weight_grad.histogram"]
    returned = train(model, tml, 2)
    for plot in ("Outputs.std", "Weights.std", "Weights.update_ratio", "Weight_grad.std"):
        content = window(viz, tml, plot)["content"]
        assert content["layout"]["yaxis"]["type"] == "log", plot  # spreads and ratios: orders of magnitude apart
        names = [t["name"] for t in content["data"]]  # a legend beside the plot only where it fits there
        assert (legend_rows(names) == 0 and "legend" not in content["layout"]) or \
            content["layout"]["legend"]["orientation"] == "h", plot  # else in rows above it, never scrolled
    heights = {window(viz, tml, plot)["height"] for plot in list(tml.windows)[:5]}
    assert len(heights) == 1, heights  # the statistics fill whole rows of the page's grid, histograms after them
    got = traces(viz, tml, "Weight_grad.std")
    assert got == {f"{n}.Weight_grad.std": ([0, 1], [r[n]["Weight_grad"]["std"] for r in returned]) for n in "02"}
    assert set(traces(viz, tml, "Outputs.std")) == {"0.Outputs.std", "1.Outputs.std", "2.Outputs.std"}
    hists = [window(viz, tml, plot) for plot in tml.windows if plot.endswith(".histogram")]
    width = hists[0]["width"]
    assert {(h["width"], h["height"]) for h in hists} == {(width, 230)}  # small; equal, so they pack in whole rows
    for h in hists:  # and each as wide as its title bar up to step 999,999 (Visdom 0.3 widens it over its neighbour)
        assert bar_width(histogram_title(h["title"].rpartition(" (step ")[0], 999_999)) <= width < 400, h["title"]


def test_signed_statistics_keep_a_linear_axis(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, stats=("mean", "norm"), groups=["Weights"])
    train(model, tml, 1)
    assert window(viz, tml, "Weights.norm")["content"]["layout"]["yaxis"]["type"] == "log"
    assert window(viz, tml, "Weights.mean")["content"]["layout"]["yaxis"].get("type") in (None, "linear")


def env_windows(viz: visdom.Visdom, env: str) -> list[str]:
    """The titles of an env's windows in the order the server keeps them (the order the page shows them)."""
    text = viz.get_window_data(None, env)
    # an env with no window: '' from visdom 0.2.4, its page's HTML from visdom 0.3
    return [w["title"] for w in json.loads(text).values()] if text.lstrip().startswith("{") else []


def test_model_windows_wait_for_the_loggers_own_first_draw(visdom_server: VisdomServer, env: str,
                                                           viz: visdom.Visdom) -> None:
    model = known_model()
    with FlexLogger(LOSS, TRAIN_LOSS, env=env, port=visdom_server.port, log_dir=None) as stat:
        tml = TooledModelLogger(model, logger=stat, groups=["Weights"], stats=["std"])
        returned = train(model, tml, 2)  # logged before the loss ever was: held
        assert stat.flush(10) == 0 and env_windows(viz, env) == []
        stat.add({"train_loss": 0.5})
        stat.log(0)  # the loss window first, then the held steps, in order
        assert stat.flush(10) == 0
        assert env_windows(viz, env) == ["loss", "Weights std (log scale)"]
        assert traces(viz, tml, "Weights.std")["0.Weights.std"] == (
            [0, 1], [r["0"]["Weights"]["std"] for r in returned])
        train(model, tml, 1)  # from now on drawn at once
        assert traces(viz, tml, "Weights.std")["0.Weights.std"][0] == [0, 1, 2]
        tml.close()


def test_held_steps_are_drawn_after_hold_steps_or_at_flush(visdom_server: VisdomServer, env: str,
                                                           viz: visdom.Visdom) -> None:
    model = known_model()
    with FlexLogger(LOSS, TRAIN_LOSS, env=env, port=visdom_server.port, log_dir=None) as stat:
        tml = TooledModelLogger(model, logger=stat, groups=["Weights"], stats=["std"], hold=2)
        train(model, tml, 2)
        assert stat.flush(10) == 0 and env_windows(viz, env) == []
        train(model, tml, 1)  # a third held step is more than hold=2: all three are drawn
        assert traces(viz, tml, "Weights.std")["2.Weights.std"][0] == [0, 1, 2]
        tml.close()
    model = known_model()
    with FlexLogger(LOSS, TRAIN_LOSS, env=env + "-2", port=visdom_server.port, log_dir=None) as stat:
        tml = TooledModelLogger(model, logger=stat, groups=["Weights"], stats=["std"])
        train(model, tml, 2)
        assert tml.flush(10) == 0  # flush means everything logged is delivered: held steps too
        assert traces(viz, tml, "Weights.std")["2.Weights.std"][0] == [0, 1]
        tml.close()


# the flight recorder ----------------------------------------------------------------------------------------------
def test_recorder_event_is_drawn_listed_and_written(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                    viz: visdom.Visdom) -> None:
    model = known_model()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = FlightRecorder(window=4, after=2)
    seen: list[Any] = []
    with Run(env=env, port=visdom_server.port, log_dir=tmp_path) as run:
        stat = FlexLogger(LOSS, TRAIN_LOSS, run=run)
        tml = TooledModelLogger(model, logger=stat, recorder=rec, groups=["Weights", "Weight_grad"], stats=["std"])
        for step in range(10):
            optim.zero_grad()
            loss = F.mse_loss(model(X), Y)
            loss.backward()
            if step == 6:  # one gradient value of layer 2 goes bad; the optimizer skips the step (as AMP does)
                with torch.no_grad():
                    model[2].weight.grad[1, 0] = math.nan
            else:
                optim.step()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tml.step(log=step % 5 == 4)
            seen += [(step, str(w.message)) for w in caught if issubclass(w.category, ModelAnomalyWarning)]
            stat.add({"train_loss": loss.item()})
            stat.log(step)
        assert (6, "step 6: rule 'nonfinite above 0' fired in layer '2': nonfinite = 1") in seen
        assert [(e.step, e.layer) for e in tml.events] == [(6, "2")]
        history = tml.events[0].history
        # heatmaps: a row per layer in forward order, a column per buffered step: the 4 before the event and its own
        for stat_name in RECORDER_STATS:
            heat = window(viz, tml, f"recorder.{stat_name}")["content"]["data"][0]
            assert heat["type"] == "heatmap"
            assert heat["x"] == ["2", "3", "4", "5", "6"] and heat["y"] == ["0", "1", "2"]
            expected = [[v if math.isfinite(v) else None for v in row] for row in np.asarray(
                history.stats[stat_name]).T.tolist()]
            assert heat["z"] == expected, stat_name
        grad = window(viz, tml, "recorder.grad_norm")["content"]["data"][0]["z"]
        assert grad[2][-1] is None and all(v is not None for v in grad[2][:-1])  # layer 2 at step 6: NaN
        assert grad[1] == [None] * 5  # the ReLU has no parameters
        text = window(viz, tml, "recorder.events")["content"]
        assert "layer &#x27;2&#x27;" in text or "layer '2'" in text
        assert "step 6" in text and "nonfinite above 0" in text
        # the after steps (7 and 8) are drawn in full although step() was not asked to log them
        assert traces(viz, tml, "Weight_grad.std")["0.Weight_grad.std"][0] == [4, 7, 8, 9]
        tml.close()
        stat.close()
    lines = (run.dir / ANOMALIES).read_text().splitlines()
    assert len(lines) == 1 and "NaN" not in lines[0]
    event = json.loads(lines[0])
    assert (event["step"], event["layer"], event["stat"], event["value"]) == (6, "2", "nonfinite", 1.0)
    assert event["history"]["steps"] == [2, 3, 4, 5, 6] and event["history"]["layers"] == ["0", "1", "2"]
    assert event["history"]["stats"]["grad_norm"][-1][2] is None  # NaN written as null
    assert event["history"]["stats"]["grad_norm"][0][0] == pytest.approx(history.stats["grad_norm"][0][0])
    plots = {u.plot for u in read_record(run.dir).updates}
    assert {f"recorder.{s}" for s in RECORDER_STATS} | {"recorder.events"} <= plots  # in the run record too
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["anomalies"] == [{"step": 6, "layer": "2", "stat": "nonfinite", "value": 1.0,
                                     "rule": "nonfinite above 0", "rank": None, "detected_at": 6}]


def test_meter_spike_rule_fires_through_the_loggers_log(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                       viz: visdom.Visdom) -> None:
    model = known_model()
    rec = FlightRecorder(window=8, rules=[{"meter": "train_loss", "spike": 4, "min_history": 5}])
    with FlexLogger(LOSS, TRAIN_LOSS, env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        tml = TooledModelLogger(model, logger=stat, recorder=rec, groups=["Weights"], stats=["std"])
        for epoch in range(10):
            train(model, tml, 1, log=False)
            stat.add({"train_loss": 1.0 + 0.01 * (epoch % 3) if epoch != 8 else 40.0})
            if epoch == 8:
                with pytest.warns(ModelAnomalyWarning, match=r"rule 'train_loss spike 4' fired on meter "
                                                             r"'train_loss': train_loss = 40"):
                    stat.log(epoch)
            else:
                stat.log(epoch)
        assert [(e.step, e.layer, e.stat, e.value) for e in tml.events] == [(8, None, "train_loss", 40.0)]
        assert tml.events[0].history.meters["train_loss"][-1] == 40.0
        assert "on meter &#x27;train_loss&#x27;" in window(viz, tml, "recorder.events")["content"] or \
            "on meter 'train_loss'" in window(viz, tml, "recorder.events")["content"]
        tml.close()
        event = json.loads((stat.run_dir / ANOMALIES).read_text())
        assert (event["layer"], event["stat"], event["value"]) == (None, "train_loss", 40.0)
        summary = json.loads((stat.run_dir / "summary.json").read_text())  # rewritten as the run goes
        assert [(a["step"], a["layer"], a["stat"]) for a in summary["anomalies"]] == [(8, None, "train_loss")]


@pytest.mark.parametrize("stats", [["std"], []], ids=["std", "no-stats"])
def test_a_meter_rule_event_carries_the_logged_step(tmp_path: Path, stats: list[str]) -> None:
    """The event of a meter rule is at the step the meter was logged at (Stat.log(130)), not the TooledModel's own
    step count (which was 8 here, or 0 without statistics), in the events, the warning and anomalies.jsonl."""
    model = known_model()
    rec = FlightRecorder(window=8, rules=[{"meter": "train_loss", "spike": 4, "min_history": 5}])
    with FlexLogger(LOSS, TRAIN_LOSS, server=None, log_dir=tmp_path) as stat:
        tml = TooledModelLogger(model, logger=stat, recorder=rec, groups=["Weights"], stats=stats)
        for epoch in range(10):
            train(model, tml, 1, log=False)
            stat.add({"train_loss": 1.0 + 0.01 * (epoch % 3) if epoch != 8 else 40.0})
            if epoch == 8:
                with pytest.warns(ModelAnomalyWarning, match=r"^step 130: rule 'train_loss spike 4' fired on meter"):
                    stat.log(50 + 10 * epoch)
            else:
                stat.log(50 + 10 * epoch)
        assert [(e.step, e.detected_at, e.stat) for e in tml.events] == [(130, 130, "train_loss")]
        tml.close()
        event = json.loads((stat.run_dir / ANOMALIES).read_text())
        assert (event["step"], event["stat"]) == (130, "train_loss")


def test_recorder_windows_are_claimed_in_the_run(visdom_server: VisdomServer, env: str) -> None:
    with FlexLogger({"recorder.events": {"type": "text"}}, {}, env=env, port=visdom_server.port,
                    log_dir=None) as stat:
        model = known_model()
        with pytest.raises(ConfigError, match=r"plot\(s\) 'recorder.events' are already drawn by another logger"):
            TooledModelLogger(model, logger=stat, recorder=FlightRecorder())
        assert not model[0]._forward_hooks


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"metrics": ["mean"]}, r"^TooledModelLogger\(\): unknown keyword argument 'metrics' \(did you mean 'stats'"
                            r".*\); valid keyword arguments: model, logger, mode, stats, groups, params, layers, "
                            r"every, histograms, bins, anomaly, recorder, hold, run, sinks, env, "),
    ({"hold": -1}, r"^TooledModelLogger\(\): hold: expected an int >= 0 \(.*\), but got -1$"),
    ({"hold": True}, r"^TooledModelLogger\(\): hold: expected an int >= 0 \(.*\), but got True$"),
])
def test_bad_keywords(kwargs: dict[str, Any], match: str) -> None:
    model = known_model()
    with pytest.raises(ConfigError, match=match):
        TooledModelLogger(model, server=None, log_dir=None, **kwargs)
    assert not model[0]._forward_hooks


def test_recorder_alone_draws_the_full_statistics_of_the_after_steps_only(
        make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    rec = FlightRecorder(window=3, after=2, warn=False)
    tml = make(model, recorder=rec, stats=(), groups=["Weights", "Weight_grad"], anomaly=False)
    assert "Weights.std" in tml.windows and "Weights.nonfinite" in tml.windows  # the recorder's `stats`
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    returned = []
    for step in range(8):
        optim.zero_grad()
        F.mse_loss(model(X), Y).backward()
        if step == 3:
            with torch.no_grad():
                model[0].weight.grad[0, 0] = math.inf
        else:
            optim.step()
        returned.append(tml.step(log=True))
    assert [r is not None for r in returned] == [False] * 4 + [True, True] + [False] * 2
    assert [(e.step, e.layer) for e in tml.events] == [(3, "0")]
    got = traces(viz, tml, "Weights.std")
    assert got["0.Weights.std"] == ([4, 5], [returned[i]["0"]["Weights"]["std"] for i in (4, 5)])  # type: ignore
    heat = window(viz, tml, "recorder.grad_norm")["content"]["data"][0]
    assert heat["x"] == ["0", "1", "2", "3"] and heat["z"][0][-1] is None  # only 3 steps before it existed


def test_observe_hands_each_log_its_series_and_plots() -> None:
    seen: list[tuple[float, dict[str, float], list[str]]] = []
    with FlexLogger({**LOSS, "confusion": {"type": "heatmap"}},
                    {**TRAIN_LOSS, "conf": {"type": "ConfusionMeter", "target": "confusion", "args": {"k": 2}}},
                    server=None, log_dir=None) as stat:
        remove = stat.observe(lambda step, series, plots: seen.append((step, series, plots)))
        stat.add({"train_loss": 2.0, "conf": [torch.tensor([0, 1]), torch.tensor([0, 0])]})
        stat.log(3)
        stat.add({"train_loss": 4.0})
        stat.log(keys="loss")
        remove()
        stat.add({"train_loss": 1.0})
        stat.log()
    assert seen == [(3, {"train_loss": 2.0}, ["loss", "confusion"]), (4, {"train_loss": 4.0}, ["loss"])]


def test_an_event_the_run_folder_cannot_take_warns_and_training_goes_on(tmp_path: Path) -> None:
    model = known_model()
    with TooledModelLogger(model, recorder=FlightRecorder(window=2, warn=False), groups=["Weights"],
                           stats=["std"], anomaly=False, server=None, log_dir=tmp_path) as tml:
        assert tml.logger.run_dir is not None
        (tml.logger.run_dir / ANOMALIES).mkdir()  # in the way of the file
        F.mse_loss(model(X), Y).backward()
        with torch.no_grad():
            model[0].weight.grad[0, 0] = math.nan
        with pytest.warns(RuntimeWarning, match=r"flight recorder: could not append the event of step 0 to "
                                                r".*anomalies.jsonl: "):
            tml.step()
        assert [e.step for e in tml.events] == [0]
        train(model, tml, 1)  # the loop goes on
