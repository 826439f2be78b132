"""TooledModelLogger against a real Visdom server: windows read back with get_window_data, exact values."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import visdom
from readback import traces
from torch import nn

from flexlogger.errors import ConfigError, UnknownNameError
from flexlogger.modellogger import TooledModelLogger
from flexlogger.server import VisdomServer
from flexlogger.sinks.record import read_record

X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.5, 1.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([[0.5, -0.5], [1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)


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
    tml = make(model)
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
    tml = make(model, every=2, groups=["Weights"], stats=["mean"])
    returned = train(model, tml, 5)
    assert [r is not None for r in returned] == [True, False, True, False, True]
    xs, ys = traces(viz, tml, "2")["2.Weights.mean"]
    assert xs == [0, 2, 4]
    assert ys == [returned[i]["2"]["Weights"]["mean"] for i in (0, 2, 4)]  # type: ignore[index]


def test_step_without_log_then_log(make: Callable[..., TooledModelLogger], viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, groups=["Weights"], stats=["mean"])
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
    xs, ys = traces(viz, TMLogger, "1")["1.Weights.mean"]
    assert xs == [0, 1, 2] and ys[-1] == pytest.approx(model[1].weight.mean().item(), rel=1e-6)
    TMLogger.close()
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks


def test_own_meters_next_to_the_model_statistics(make: Callable[..., TooledModelLogger],
                                                 viz: visdom.Visdom) -> None:
    model = known_model()
    tml = make(model, groups=["Weights"], stats=["mean"])
    tml.add_plot("loss", {"type": "line"})
    tml.add_meter("train_loss", {"type": "AverageValueMeter", "target": "loss"})
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
        assert "TooledModelLogger(mode='by_layer'" in repr(tml)
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks
    tml.close()


def test_run_record_is_written(tmp_path: Path, visdom_server: VisdomServer, env: str) -> None:
    model = known_model()
    with TooledModelLogger(model, env=env, port=visdom_server.port, log_dir=tmp_path, groups=["Weights"]) as tml:
        returned = train(model, tml, 2)
    assert tml.logger.run_dir is not None and tml.logger.run_dir.parent == tmp_path / env
    run = read_record(tml.logger.run_dir)
    points = [(u.plot, u.step, dict(u.data)) for u in run.updates]
    assert points == [(layer, step, {f"{layer}.Weights.{s}": returned[step][layer]["Weights"][s]
                                     for s in ("mean", "std")})
                      for step in (0, 1) for layer in ("0", "2")]


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
