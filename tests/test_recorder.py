"""FlightRecorder: faults injected into real training steps are caught at their step, in their layer, with history."""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from flexlogger.errors import ConfigError, FlexLoggerError, ModelAnomalyWarning, UnknownNameError
from flexlogger.model.arith import Arith, NumpyArith, TorchArith
from flexlogger.model.recorder import RECORDER_STATS, AnomalyEvent, FlightRecorder, check_rules
from flexlogger.model.tooled import TooledModel
from flexlogger.tools.server import find_free_port

WINDOW = 16


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small models on a shared machine: one thread (OpenMP spin-waiting across busy cores costs 10-50x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def train(model: nn.Module, tm: TooledModel, steps: int, fault: Callable[[int], None] | None = None,
          between: Callable[[int], None] | None = None, lr: float = 0.01, seed: int = 1) -> list[Any]:
    """Real steps on a fixed random task; ``fault(step)`` runs after backward, ``between(step)`` after the
    optimizer step, both before ``tm.step()``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    results = []
    for step in range(steps):
        x = torch.randn(16, 12, generator=gen)
        y = torch.randint(0, 4, (16,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if fault is not None:
            fault(step)
        opt.step()
        if between is not None:
            between(step)
        results.append(tm.step())
    return results


def quiet_run(model: nn.Module, recorder: FlightRecorder, steps: int, **kwargs: Any) -> TooledModel:
    tm = TooledModel(model, stats=(), recorder=recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelAnomalyWarning)
        train(model, tm, steps, **kwargs)
    return tm


# ------------------------------------------------------------------------------------------- injected faults
def test_nan_in_one_gradient_is_caught_at_its_step_with_the_window_before() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "nonfinite", "above": 0}], after=5)
    tm = TooledModel(model, stats=(), recorder=rec)

    def fault(step: int) -> None:
        if step == 30:
            model[2].weight.grad[3, 5] = math.nan  # type: ignore[index]

    with pytest.warns(ModelAnomalyWarning, match=r"step 30: rule 'nonfinite above 0' fired in layer '2'"):
        train(model, tm, 40, fault=fault)
    event = rec.events[0]
    assert (event.step, event.layer, event.stat, event.rule, event.detected_at) == (30, "2", "nonfinite",
                                                                                    "nonfinite above 0", 30)
    assert event.value >= 1
    assert event.history.steps == list(range(30 - WINDOW, 31))
    assert event.history.layers == ["0", "1", "2", "3", "4"]
    assert set(event.history.stats) == set(RECORDER_STATS)
    table = event.history.stats["grad_norm"]
    assert len(table) == WINDOW + 1 and all(len(row) == 5 for row in table)
    assert math.isnan(table[-1][2]) and all(math.isfinite(row[2]) for row in table[:-1])
    assert math.isnan(table[0][1])  # a ReLU has no parameters


def test_exploding_weight_is_caught_in_its_layer() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "weight_norm", "zscore_above": 6}], after=0)

    def between(step: int) -> None:
        if step == 40:
            with torch.no_grad():
                model[4].weight.mul_(1e3)

    quiet_run(model, rec, 45, between=between)
    assert [(e.step, e.layer, e.stat) for e in rec.events] == [(40, "4", "weight_norm")]
    assert rec.events[0].value == pytest.approx(rec.events[0].history.stats["weight_norm"][-2][4] * 1e3, rel=0.05)


def test_dying_layer_is_caught_first_in_forward_order() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "dead_fraction", "above": 0.95}], after=0)

    def between(step: int) -> None:
        if step == 20:
            with torch.no_grad():
                model[2].weight.zero_()
                model[2].bias.zero_()

    quiet_run(model, rec, 25, between=between)
    # the zeroed Linear outputs only zeros from step 21 on, and so does the ReLU behind it: the Linear is named
    assert [(e.step, e.layer, e.value) for e in rec.events] == [(21, "2", 1.0)]
    assert rec.events[0].history.stats["dead_fraction"][-1][3] == 1.0


def test_zscore_rule_on_a_gradient_spike_fires_once() -> None:
    model = mlp()
    rec = FlightRecorder(window=32, rules=[{"stat": "grad_norm", "zscore_above": 6}], after=0)

    def fault(step: int) -> None:
        if step in (50, 51, 52):
            model[0].weight.grad.mul_(100)  # type: ignore[union-attr]

    quiet_run(model, rec, 80, fault=fault)
    assert [(e.step, e.layer, e.stat) for e in rec.events] == [(50, "0", "grad_norm")]


def test_a_rule_that_keeps_firing_is_reported_once_per_episode() -> None:
    model = mlp()
    rec = FlightRecorder(window=8, rules=[{"stat": "act_max", "above": 1e6}], after=0)

    def between(step: int) -> None:
        scale = 1e9 if step in (10, 30) else 1e-9 if step in (13, 33) else 1.0
        with torch.no_grad():
            model[0].weight.mul_(scale)

    quiet_run(model, rec, 40, between=between, lr=0.0)
    assert [e.step for e in rec.events] == [11, 31]  # outputs of steps 11-13 and 31-33 are huge: two episodes


def test_check_every_delays_detection_but_keeps_the_exact_step() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "nonfinite", "above": 0}], after=0, check_every=4)

    def fault(step: int) -> None:
        if step == 25:
            model[4].bias.grad[0] = math.inf  # type: ignore[index]

    quiet_run(model, rec, 32, fault=fault)
    event = rec.events[0]
    assert (event.step, event.layer, event.detected_at) == (25, "4", 27)
    assert event.history.steps == list(range(25 - WINDOW, 26))
    assert "detected at step 27" in event.message()


def test_after_steps_are_recorded_in_full_then_only_the_buffer() -> None:
    model = mlp()
    seen: list[AnomalyEvent] = []
    heard: list[AnomalyEvent] = []
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "nonfinite", "above": 0}], after=3, on_trigger=seen.append,
                         listeners=[heard.append])
    tm = TooledModel(model, stats=(), recorder=rec, histograms=True)

    def fault(step: int) -> None:
        if step == 10:
            model[0].weight.grad[0, 0] = math.nan  # type: ignore[index]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelAnomalyWarning)
        results = train(model, tm, 18, fault=fault)
    assert [i for i, r in enumerate(results) if r is not None] == [11, 12, 13]
    assert seen == heard == rec.events
    event = rec.events[0]
    assert event.complete and [s for s, _ in event.after] == [11, 12, 13]
    assert set(event.after[0][1]["0"]["Weights"]) == set(rec.stats)
    assert [s for s, _ in event.histograms] == [11, 12, 13]
    data = json.loads(json.dumps(event.to_dict()))
    assert data["step"] == 10 and data["layer"] == "0" and data["history"]["steps"][-1] == 10
    assert data["spec"] == {"stat": "nonfinite", "above": 0.0, "name": "nonfinite above 0", "min_history": 16}
    assert len(data["after"]) == 3 and "counts" in data["histograms"][0]["histograms"]["0"]["Weights"]


def test_recorder_with_statistics_every_step() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"stat": "nonfinite", "above": 0}], after=2)
    tm = TooledModel(model, stats=("mean", "std"), every=5, recorder=rec)
    results = train(model, tm, 12)
    assert [i for i, r in enumerate(results) if r is not None] == [0, 5, 10]
    assert not rec.events


def test_meter_spike_rule_on_observed_values() -> None:
    model = mlp()
    rec = FlightRecorder(window=WINDOW, rules=[{"meter": "train_loss", "spike": 3, "name": "loss spike"}], after=2)
    tm = TooledModel(model, stats=(), recorder=rec)
    gen = torch.Generator().manual_seed(0)
    with pytest.warns(ModelAnomalyWarning, match="rule 'loss spike' fired on meter 'train_loss'"):
        for step in range(30):
            train(model, tm, 1)
            loss = 1.0 + 0.01 * torch.randn((), generator=gen)
            event = rec.observe("train_loss", loss * (10 if step in (25, 26) else 1))
            assert (event is not None) == (step == 25)
    assert rec.observe("val_loss", 1.0) is None  # no rule on it
    event = rec.events[0]
    assert (event.step, event.layer, event.stat) == (25, None, "train_loss")
    assert event.value == pytest.approx(10, rel=0.05)
    assert len(event.history.meters["train_loss"]) == WINDOW + 1
    assert event.history.steps[-1] == 25
    assert [s for s, _ in event.after] == [26, 27]


def test_callable_rule_sees_current_and_history() -> None:
    model = mlp()
    calls: list[tuple[int, int]] = []

    def big_update(current: dict[str, Tensor], history: dict[str, Tensor]) -> Tensor:
        calls.append((current["grad_norm"].shape[0], history["grad_norm"].shape[0]))
        return current["update_ratio"] > 0.5

    rec = FlightRecorder(window=4, rules=[big_update], after=0)

    def between(step: int) -> None:
        if step == 7:
            with torch.no_grad():
                model[2].weight.add_(1.0)

    quiet_run(model, rec, 10, between=between)
    assert [(e.step, e.layer, e.rule) for e in rec.events] == [(7, "2", "big_update")]
    assert math.isnan(rec.events[0].value)
    assert calls[:6] == [(5, 0), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5)]  # up to window + check_every rows


# ---------------------------------------------------------------------------------------------- no false alarm
def test_no_false_trigger_over_2000_steps_on_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    rules = [{"stat": "nonfinite", "above": 0}, {"stat": "dead_fraction", "above": 0.95},
             {"stat": "grad_norm", "zscore_above": 6}, {"stat": "weight_norm", "zscore_above": 6}]
    rec = FlightRecorder(window=64, rules=rules, after=20)
    tm = TooledModel(model, stats=(), recorder=rec)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=gen)
    losses = []
    for step in range(2000):
        idx = order[(step * 32) % (len(x) - 32):][:32]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        tm.step()
        losses.append(loss.item())
    assert sum(losses[-50:]) / 50 < 0.2  # it trained
    assert rec.events == []


# ------------------------------------------------------------------------------------------------- memory
def _live_storage_bytes() -> int:
    gc.collect()
    seen: dict[int, int] = {}
    for obj in gc.get_objects():
        if type(obj) in (Tensor, nn.Parameter) and obj.layout == torch.strided:
            storage = obj.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def test_ring_buffer_memory_stays_constant_over_10_000_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    rec = FlightRecorder(window=32, rules=[{"stat": "nonfinite", "above": 0}, {"stat": "grad_norm",
                                                                               "zscore_above": 6}])
    tm = TooledModel(model, stats=(), recorder=rec)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    sizes = {}
    for step in range(10_000):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        tm.step()
        if step in (100, 9_999):
            sizes[step] = (rec.memory_bytes(), _live_storage_bytes())
    assert sizes[100] == sizes[9_999]
    assert rec.memory_bytes() >= rec._buf.numel() * 4 > 0


# --------------------------------------------------------------------------------------------- custom stats
def test_custom_statistics_and_snr() -> None:
    model = mlp()
    tm = TooledModel(model, stats=("mean", "snr", ("l1", lambda t: t.abs().sum()), ("top", lambda t: t.max())))
    train(model, tm, 1)
    got = tm.get_dict()
    w = model[0].weight.detach().double()
    assert got["0"]["Weights"]["l1"] == pytest.approx(w.abs().sum().item(), rel=1e-5)
    assert got["0"]["Weights"]["top"] == pytest.approx(w.max().item(), rel=1e-6)
    assert got["0"]["Weights"]["snr"] == pytest.approx((w.mean().abs() / w.std()).item(), rel=1e-4)
    assert list(got["0"]["Outputs"]) == ["mean", "snr", "l1", "top"]
    assert "l1" in tm.table(show=False)


@pytest.mark.parametrize(("stats", "match"), [
    ((("l1", 3),), r"custom statistic 'l1' to have a callable .* but got 3 \(int\); valid entries: a name"),
    ((("mean", lambda t: t.sum()),), r"custom statistic 'mean' clashes with the built-in statistic"),
    ((("a", lambda t: t), ("a", lambda t: t)), r"custom statistic 'a' is given twice"),
    (((1, 2, 3),), r"expected each entry of `stats` to be a name from STATS .* but got \(1, 2, 3\)"),
    ((), r"expected at least one statistic in `stats`"),
])
def test_bad_custom_statistics(stats: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TooledModel(mlp(), stats=stats)


def test_custom_statistic_must_return_one_value() -> None:
    model = mlp()
    tm = TooledModel(model, stats=(("abs", lambda t: t.abs()),), groups=("Weights",))
    with pytest.raises(ConfigError, match=r"custom statistic 'abs' to return a 0-d tensor, but got Tensor\(32, 12\)"):
        tm.get_dict()


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("rules", "error", "match"), [
    ([{"stat": "grad", "above": 1}], UnknownNameError, r"rules\[0\]: unknown recorder statistic 'grad' \(did you "
                                                       r"mean 'grad_norm'"),
    ([{"stat": "grad_norm"}], ConfigError, r"rules\[0\]: expected exactly one condition of above, below, "
                                           r"zscore_above for a stat rule, but got none"),
    ([{"meter": "loss", "above": 1}], ConfigError, r"exactly one condition of spike for a meter rule"),
    ([{"above": 1}], ConfigError, r"rules\[0\]: expected exactly one of 'stat' or 'meter'"),
    ([{"stat": "grad_norm", "above": 1}, {"stat": "act_max", "abov": 1}], UnknownNameError,
     r"rules\[1\]: unknown rule key 'abov' \(did you mean 'above'"),
    ([{"stat": "grad_norm", "above": "1"}], ConfigError, r"expected 'above' to be a finite number, but got '1'"),
    ([{"stat": "grad_norm", "zscore_above": -1}], ConfigError, r"number of standard deviations > 0, but got -1"),
    ([{"meter": "", "spike": 3}], ConfigError, r"expected 'meter' to be a meter name \(str\), but got ''"),
    ([{"stat": "grad_norm", "above": 1, "min_history": 1}], ConfigError, r"'min_history' to be an int >= 2"),
    ([{"stat": "grad_norm", "above": 1, "name": 3}], ConfigError, r"expected 'name' to be a str, but got 3"),
    (["grad_norm > 3"], ConfigError, r"rules\[0\]: expected a rule \{'stat': <one of grad_norm"),
    (3, ConfigError, r"expected `rules` to be a list of rules"),
])
def test_bad_rules(rules: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        FlightRecorder(rules=rules)
    with pytest.raises(error, match=match):
        check_rules(rules)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"window": 1}, r"expected `window` to be an int >= 2, but got 1"),
    ({"check_every": 0}, r"expected `check_every` to be an int >= 1, but got 0"),
    ({"after": -1}, r"expected `after` to be an int >= 0, but got -1"),
    ({"min_history": True}, r"expected `min_history` to be an int >= 2, but got True"),
    ({"on_trigger": 5}, r"expected `on_trigger` to be a callable \(event\) -> None, but got 5"),
    ({"listeners": [5]}, r"^FlightRecorder\(\): expected `listeners` to be a list of callables \(event\) -> None, but "
                         r"got \[5\] \(list\)$"),
    ({"update_ratio": 0}, r"expected `update_ratio` to be True or False, but got 0"),
    ({"update_ratio": False, "rules": [{"stat": "update_ratio", "above": 1}]},
     r"a rule watches 'update_ratio' but `update_ratio=False` does not buffer it"),
    ({"sync": "yes"}, r"^FlightRecorder\(\): expected `sync` to be True or False, but got 'yes'$"),
    ({"warn": 1}, r"^FlightRecorder\(\): expected `warn` to be True or False, but got 1$"),
    ({"windw": 8}, r"^FlightRecorder\(\): unknown keyword argument 'windw' \(did you mean 'window'\?\); valid keyword "
                   r"arguments: window, rules, after, check_every, on_trigger, listeners, min_history, sync, stats, "
                   r"warn, update_ratio$"),
])
def test_bad_recorder_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FlightRecorder(**kwargs)


def test_recorder_argument_checks() -> None:
    with pytest.raises(ConfigError, match=r"^TooledModel\(\): expected `recorder` to be a FlightRecorder, but got "
                                          r"\{'window': 3\} \(dict\)$"):
        TooledModel(mlp(), recorder={"window": 3})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"expected `sync` to be True or False, but got 1"):
        TooledModel(mlp(), sync=1)  # type: ignore[arg-type]
    rec = FlightRecorder()
    TooledModel(mlp(), recorder=rec)
    with pytest.raises(ConfigError, match=r"already attached to a TooledModel; give each its own"):
        TooledModel(mlp(), recorder=rec)
    assert issubclass(ConfigError, FlexLoggerError)


def test_without_update_ratio_no_parameter_copy_is_kept() -> None:
    model = mlp()
    with_copy, without = FlightRecorder(), FlightRecorder(update_ratio=False)
    TooledModel(model, stats=(), recorder=with_copy)
    TooledModel(model, stats=(), recorder=without)
    n_params = sum(p.numel() for p in model.parameters())
    assert with_copy.memory_bytes() - without.memory_bytes() >= 4 * n_params

    other = mlp()

    def fault(step: int) -> None:
        if step == 5:
            other[0].weight.grad[0, 0] = math.nan  # type: ignore[index]

    rec = FlightRecorder(window=4, update_ratio=False, after=0)
    quiet_run(other, rec, 8, fault=fault)
    assert [(e.step, e.layer) for e in rec.events] == [(5, "0")]
    assert all(math.isnan(v) for row in rec.events[0].history.stats["update_ratio"] for v in row)
    assert all(math.isfinite(row[0]) for row in rec.events[0].history.stats["weight_norm"][:-1])


def test_remove_detaches_the_recorder_hooks() -> None:
    model = mlp()
    tm = TooledModel(model, stats=(), recorder=FlightRecorder())
    tm.remove()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ----------------------------------------------------------------------------------------------- distributed
DIST_WORKER = textwrap.dedent("""
    import json, math, sys, warnings
    import torch, torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn
    from flexlogger.model.recorder import FlightRecorder
    from flexlogger.model.tooled import TooledModel

    rank, out = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    result = {}
    for sync in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        rec = FlightRecorder(window=8, rules=[{"stat": "nonfinite", "above": 0}], after=2, sync=sync)
        tm = TooledModel(model, stats=(), recorder=rec)
        gen = torch.Generator().manual_seed(rank)
        returned = []
        for step in range(16):
            model.zero_grad()
            x = torch.randn(4, 6, generator=gen) * (rank + 1)
            F.cross_entropy(model(x), torch.randint(0, 3, (4,), generator=gen)).backward()
            if rank == 1 and step == 12:
                model[2].weight.grad[0, 0] = math.nan
            returned.append(tm.step() is not None)
        result[str(sync)] = {"events": [e.to_dict() for e in rec.events], "recorded": returned,
                             "act_max": rec._buf[:, 3, 0].tolist()}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    tm = TooledModel(model, stats=("mean", "std", "min", "max", "norm", "zero_frac", "nonfinite"), sync=True)
    x = torch.randn(3 + 2 * rank, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(rank))
    model(x).sum().backward()
    result["pooled"] = tm.step()
    result["outputs"] = model[0](x).tolist()
    json.dump(result, open(out, "w"))
    dist.destroy_process_group()
""")


def test_two_ranks_a_rule_firing_on_rank_1_is_reported_by_rank_0(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(DIST_WORKER)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(find_free_port()),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path / f"rank{r}.json")],
                              env=env,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    per_rank = r0["False"]["events"]
    assert [(e["step"], e["layer"], e["rank"], e["stat"]) for e in per_rank] == [(12, "2", 1, "nonfinite")]
    assert per_rank[0]["history"]["steps"] == list(range(4, 13))
    assert r1["False"]["events"] == []  # rank 0 reports for every rank
    recorded = [i for i, r in enumerate(r0["False"]["recorded"]) if r]
    assert recorded == [i for i, r in enumerate(r1["False"]["recorded"]) if r] == [13, 14]  # both record `after`
    pooled = r0["True"]["events"]
    assert [(e["step"], e["layer"], e["rank"]) for e in pooled] == [(12, "2", None)]
    assert r1["True"]["events"] == []
    # pooled: every rank holds the same buffer, the max over ranks of each layer's max |output|
    assert r0["True"]["act_max"] == r1["True"]["act_max"]
    assert all(a >= b for a, b in zip(r0["True"]["act_max"], r0["False"]["act_max"]))
    # TooledModel(sync=True): the statistics of both ranks' values taken together (3 + 5 samples)
    assert r0["pooled"] == r1["pooled"]
    both = torch.tensor(r0["outputs"] + r1["outputs"], dtype=torch.float64)
    assert both.shape == (8, 8)
    got = r0["pooled"]["0"]["Outputs"]
    assert got["mean"] == pytest.approx(both.mean().item(), rel=1e-9)
    assert got["std"] == pytest.approx(both.std().item(), rel=1e-9)
    assert (got["min"], got["max"]) == (both.min().item(), both.max().item())
    assert got["norm"] == pytest.approx(both.norm().item(), rel=1e-9)
    assert got["nonfinite"] == 0


def test_layer_order_is_the_forward_order() -> None:
    class Backwards(nn.Module):  # declared in the reverse of the order it runs them
        def __init__(self) -> None:
            super().__init__()
            self.last = nn.Linear(4, 2)
            self.first = nn.Linear(3, 4)

        def forward(self, x: Tensor) -> Tensor:
            return self.last(self.first(x))

    model = Backwards()
    rec = FlightRecorder(window=4)
    assert rec.layer_order == []  # not attached yet
    tm = TooledModel(model, stats=(), recorder=rec)
    assert rec.layer_order == ["last", "first"]  # nothing ran yet: named order
    model(torch.randn(2, 3)).sum().backward()
    tm.step()
    assert rec.layer_order == ["first", "last"]


# ------------------------------------------------------------------------------------- numpy and torch agree
def _recorded(arith: Callable[[torch.device, int], Arith],
              fault: Callable[[nn.Sequential, int], None]) -> tuple[FlightRecorder, Tensor]:
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 4))
    torch.manual_seed(0)
    model.load_state_dict({k: torch.randn_like(v) * 0.3 for k, v in model.state_dict().items()})

    def spiky(current: dict[str, Tensor], history: dict[str, Tensor]) -> Tensor:
        if not len(history["act_max"]):
            return torch.zeros((), dtype=torch.bool)
        return current["act_max"] > 50 * history["act_max"].nan_to_num(0).amax(0)

    rec = FlightRecorder(window=8, after=0, check_every=2, warn=False, min_history=4,
                         rules=[{"stat": "nonfinite", "above": 0}, {"stat": "grad_norm", "zscore_above": 4},
                                {"stat": "dead_fraction", "above": 0.9}, {"stat": "update_ratio", "zscore_above": 5,
                                                                          "min_history": 6}, spiky])
    rec._arith_for = arith  # type: ignore[method-assign]  # the arithmetic under test, on the CPU
    quiet_run(model, rec, 40, fault=lambda step: fault(model, step),
              between=lambda step: fault(model, -step - 1))
    return rec, rec._history_tensors().clone()


def test_numpy_and_torch_arithmetic_give_the_same_buffer_and_events() -> None:
    def fault(model: nn.Sequential, step: int) -> None:
        with torch.no_grad():
            if step == 12:  # after backward: a gradient spike in the first layer
                model[0].weight.grad.mul_(1e3)  # type: ignore[union-attr]
            if step == -(20 + 1):  # after the optimizer step: the third Linear dies
                model[3].weight.zero_()
                model[3].bias.zero_()
            if step == 30:
                model[5].weight.grad[0, 0] = math.nan  # type: ignore[index]
            if step == -(34 + 1):
                model[0].weight.mul_(1e4)

    host, host_buf = _recorded(lambda device, n: NumpyArith(n), fault)
    dev, dev_buf = _recorded(lambda device, n: TorchArith(n, device), fault)
    assert isinstance(host._arith, NumpyArith) and isinstance(dev._arith, TorchArith)
    assert host_buf.shape == dev_buf.shape == (10, len(RECORDER_STATS), 6)
    torch.testing.assert_close(host_buf, dev_buf, rtol=1e-5, atol=0, equal_nan=True)
    assert torch.isnan(host_buf[:, 0, 1]).all()  # a ReLU has no parameters: NaN norms, on both
    events = [(e.step, e.layer, e.stat, e.rule, e.detected_at) for e in host.events]
    assert events == [(e.step, e.layer, e.stat, e.rule, e.detected_at) for e in dev.events]
    assert {e[2] for e in events} >= {"grad_norm", "dead_fraction", "nonfinite", "spiky"}, events
    for a, b in zip(host.events, dev.events):
        assert a.value == pytest.approx(b.value, rel=1e-5, nan_ok=True)
        assert a.history.steps == b.history.steps
        torch.testing.assert_close(torch.tensor(a.history.stats["act_max"]), torch.tensor(b.history.stats["act_max"]),
                                   rtol=1e-5, atol=0, equal_nan=True)


# ---------------------------------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recorder_on_cuda_reads_the_host_only_at_its_checks_and_agrees_with_the_cpu() -> None:
    """On a GPU the buffer and the rules stay on the device: a step that is not a check makes no host sync
    (``torch.cuda.set_sync_debug_mode('error')`` raises on one); the buffer equals the CPU's (numpy) within the
    GPU's rounding."""
    rules = [{"stat": "nonfinite", "above": 0}, {"stat": "grad_norm", "zscore_above": 6, "min_history": 2},
             {"stat": "dead_fraction", "above": 0.95}]
    buffers = []
    for device in ("cuda", "cpu"):
        model = mlp().to(device)
        rec = FlightRecorder(window=8, rules=rules, after=0, check_every=4, warn=False)
        tm = TooledModel(model, stats=(), recorder=rec)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(1)
        batches = [(torch.randn(16, 12, generator=gen).to(device), torch.randint(0, 4, (16,), generator=gen).to(device))
                   for _ in range(16)]
        for step, (x, y) in enumerate(batches):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if device == "cuda" and step >= 4 and step % 4 != 3:  # after the first steps' index uploads
                torch.cuda.set_sync_debug_mode("error")
                try:
                    tm.step()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            else:
                tm.step()
        assert rec._buf.device.type == device
        buffers.append(rec._history_tensors().cpu())
    torch.testing.assert_close(buffers[0], buffers[1], rtol=1e-3, atol=1e-6, equal_nan=True)
