"""torchmetrics Metric classes as meter types ``torchmetrics.<ClassName>``: lookup, values, views, two real ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from flexlogger import FlexLogger, MeterInputError, meter_info
from flexlogger.config.registry import make_meter, meter_args, meter_class
from flexlogger.errors import ConfigError, UnknownNameError
from flexlogger.tools.server import find_free_port

pytest.importorskip("torchmetrics")

OFFLINE: dict[str, Any] = {"server": None, "log_dir": None, "distributed": False}


def test_f1_equals_sklearn_macro() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=300)
    scores = rng.normal(size=(300, 5))
    scores[np.arange(300), target] += 1.0  # better than chance
    meter = make_meter("val_f1", "torchmetrics.MulticlassF1Score", {"num_classes": 5})
    meter.add(torch.from_numpy(scores[:100]), torch.from_numpy(target[:100]))
    meter.add(scores[100:], target[100:])  # numpy arrays are taken as tensors
    expected = f1_score(target, scores.argmax(1), average="macro")
    assert meter.count == 2
    assert meter.value() == pytest.approx(expected, rel=1e-6)
    assert meter.scalars() == {"val_f1": pytest.approx(expected, rel=1e-6)}
    meter.reset()
    assert meter.count == 0 and np.isnan(meter.value())


def test_through_the_logger_by_shape() -> None:
    plots = {"f1_plot": {"type": "line"}, "per_class": {"type": "bar"}, "cm_plot": {"type": "heatmap"}}
    meters = {"f1": {"type": "torchmetrics.MulticlassF1Score", "target": "f1_plot", "args": {"num_classes": 3}},
              "f1_per_class": {"type": "torchmetrics.MulticlassF1Score", "target": "per_class",
                               "args": {"num_classes": 3, "average": "none"}},
              "cm": {"type": "torchmetrics.MulticlassConfusionMatrix", "target": "cm_plot", "args": {"num_classes": 3}}}
    preds, target = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 1, 1, 2, 1])
    with FlexLogger(plots, meters, **OFFLINE) as stat:
        stat.add({"f1": (preds, target), "f1_per_class": (preds, target), "cm": (preds, target)})
        values = stat.value()
        np.testing.assert_allclose(values["f1_per_class"], f1_score(target, preds, average=None), rtol=1e-6)
        np.testing.assert_array_equal(values["cm"], [[1, 0, 0], [0, 2, 1], [0, 0, 1]])
        assert stat.meters["f1_per_class"].vector().shape == (3,)
        np.testing.assert_array_equal(stat.meters["cm"].matrix(), values["cm"])
        stat.log(1)  # every shape fits its plot


def test_a_shape_that_does_not_fit_the_plot_is_refused_at_log() -> None:
    plots = {"f1_plot": {"type": "line"}}
    meters = {"f1": {"type": "torchmetrics.MulticlassF1Score", "target": "f1_plot",
                     "args": {"num_classes": 3, "average": "none"}}}
    with FlexLogger(plots, meters, **OFFLINE) as stat:
        stat.add({"f1": (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))})
        with pytest.raises(MeterInputError, match=r"^meter 'f1' \(torchmetrics\.MulticlassF1Score\) computed an array "
                                                  r"of shape \(3,\), but this plot draws a number; draw a number on a "
                                                  r"line, scatter or bar plot, a vector on a bar or histogram plot"):
            stat.log(1)
    cm = make_meter("cm", "torchmetrics.MulticlassConfusionMatrix", {"num_classes": 2})
    cm.add(torch.tensor([0, 1]), torch.tensor([1, 1]))
    with pytest.raises(MeterInputError, match=r"computed an array of shape \(2, 2\), but this plot draws a vector"):
        cm.vector()
    assert cm.text() == str(np.array([[0, 0], [1, 1]]))  # rows: targets (both 1), columns: predictions


def test_bad_input_names_the_meter() -> None:
    meter = make_meter("f1", "torchmetrics.MulticlassF1Score", {"num_classes": 3})
    with pytest.raises(MeterInputError, match=r"^meter 'f1' \(torchmetrics\.MulticlassF1Score\) expects add\(preds, "
                                              r"target\): as torchmetrics' MulticlassF1Score\.update\(preds: Tensor, "
                                              r"target: Tensor\); got tensor of shape \(3,\) .*, tensor of shape "
                                              r"\(2,\) .*: "):
        meter.add(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    assert meter.count == 0


@pytest.mark.parametrize("name, message", [
    ("torchmetrics.functional.f1_score", r"^unknown meter type 'torchmetrics\.functional\.f1_score': expected "
                                         r"`torchmetrics\.<ClassName>` naming a concrete torchmetrics Metric class, "
                                         r"e\.g\. torchmetrics\.MulticlassF1Score"),
    ("torchmetrics.Metric", r"^unknown meter type 'torchmetrics\.Metric': torchmetrics' Metric is no concrete Metric "
                            r"class \(abstract, or not a Metric\); expected `torchmetrics\.<ClassName>`"),
    ("torchmetrics.MetricCollection", r"torchmetrics' MetricCollection is no concrete Metric class"),
    ("torchmetrics.os", r"^unknown meter type 'torchmetrics\.os': torchmetrics' os is no concrete Metric class"),
    ("torchmetrics._ClassificationTaskWrapper", r"expected `torchmetrics\.<ClassName>`"),
    ("torchmetrics.MulticlasF1Score", r"^unknown meter type 'torchmetrics\.MulticlasF1Score' \(did you mean "
                                      r"'torchmetrics\.MulticlassF1Score'"),
    ("os.system", r"^unknown meter type 'os\.system'; valid meter types: APMeter, .*; or torchmetrics\.<ClassName> "
                  r"for a torchmetrics Metric$"),
])
def test_names_outside_torchmetrics_metrics_are_refused(name: str, message: str) -> None:
    with pytest.raises(UnknownNameError, match=message):
        meter_class(name)
    with pytest.raises(UnknownNameError):
        FlexLogger({"p": {"type": "line"}}, {"m": {"type": name, "target": "p"}}, **OFFLINE)


def test_without_torchmetrics_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # `import torchmetrics` now fails as if not installed
    with pytest.raises(UnknownNameError, match=r"^unknown meter type 'torchmetrics\.MulticlassF1Score': torchmetrics "
                                               r"is not installed; install it with `pip install "
                                               r"'flexlogger\[torchmetrics\]'`$"):
        meter_class("torchmetrics.MulticlassF1Score")


def test_args_and_their_errors() -> None:
    assert meter_args("torchmetrics.MulticlassF1Score") == {
        "num_classes": "(required)", "top_k": 1, "average": "macro", "multidim_average": "global",
        "ignore_index": None, "validate_args": True, "zero_division": 0}
    with pytest.raises(ConfigError, match=r"^meter 'f1' \(torchmetrics\.MulticlassF1Score\): missing required "
                                          r"argument\(s\) 'num_classes'; arguments: num_classes, top_k=1, "):
        make_meter("f1", "torchmetrics.MulticlassF1Score")
    with pytest.raises(ConfigError, match=r"^meter 'f1' \(torchmetrics\.MulticlassF1Score\): Expected argument "
                                          r"`num_classes` to be an integer larger than 1, but got 0; arguments: "):
        make_meter("f1", "torchmetrics.MulticlassF1Score", {"num_classes": 0})
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) 'classes'; valid arguments: num_classes, top_k"):
        make_meter("f1", "torchmetrics.MulticlassF1Score", {"classes": 3})


def test_meter_info_shows_the_metric_doc() -> None:
    info = meter_info("torchmetrics.MulticlassF1Score")
    assert info["type"] == "torchmetrics.MulticlassF1Score"
    assert info["note"].startswith("torchmetrics' MulticlassF1Score (torchmetrics.classification.f_beta): Compute F-1 "
                                   "score for multiclass tasks.")
    assert info["doc"].startswith("Compute F-1 score for multiclass tasks.") and "num_classes" in info["doc"]
    assert info["views"] == ["scalar", "vector", "matrix", "text"]
    assert info["merges"].startswith("the metric's own sync across ranks")
    assert meter_class("torchmetrics.MulticlassF1Score") is meter_class("torchmetrics.MulticlassF1Score")


def test_merge_uses_the_metric_state() -> None:
    """In one process (no process group), merge() folds another copy in by the metric's own reductions."""
    preds, target = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 1, 0, 0, 1])
    a, b = (make_meter("f1", "torchmetrics.BinaryF1Score") for _ in range(2))
    a.add(preds[:2], target[:2])
    b.add(preds[2:], target[2:])
    a.merge(b.portable())
    assert a.count == 2
    assert a.value() == pytest.approx(f1_score(target, preds))


WORKER = textwrap.dedent("""
    import json, sys
    import torch, torch.distributed as dist
    import flexlogger

    rank, out = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", rank=rank, world_size=2)
    data = torch.load(sys.argv[3])
    plots = {"f1_plot": {"type": "line"}, "auc_plot": {"type": "line"}}
    meters = {"f1": {"type": "torchmetrics.MulticlassF1Score", "target": "f1_plot", "args": {"num_classes": 4}},
              "auc": {"type": "torchmetrics.BinaryAUROC", "target": "auc_plot"},  # a list state, uneven across ranks
              "loss": {"type": "AverageValueMeter", "target": "f1_plot"}}
    with flexlogger.FlexLogger(plots, meters, server=None, log_dir=None) as stat:
        for preds, target, scores, labels in data[rank]:
            stat.add({"f1": (preds, target), "auc": (scores, labels), "loss": float(rank)})
        pooled = stat.value()
        local = stat.meters["f1"].value()
        stat.log(1)
        json.dump({"distributed": stat.distributed, "f1": pooled["f1"], "auc": pooled["auc"],
                   "loss": pooled["loss"][0], "local_f1": local, "count": stat.meters["f1"].count}, open(out, "w"))
    dist.destroy_process_group()
""")


def test_two_ranks_pool_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)

    def batch(n: int) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(rng.integers(0, 4, n)), torch.from_numpy(rng.integers(0, 4, n)),
                torch.from_numpy(rng.random(n)), torch.from_numpy(rng.integers(0, 2, n)))

    data = {0: [batch(50), batch(31)], 1: [batch(17)]}  # uneven: 81 samples on rank 0, 17 on rank 1
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(find_free_port())}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path / f"rank{r}.json"),
                               str(tmp_path / "data.pt")], env=run_env, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    every = [torch.cat([b[i] for r in (0, 1) for b in data[r]]).numpy() for i in range(4)]
    f1 = f1_score(every[1], every[0], average="macro")
    auc = roc_auc_score(every[3], every[2])
    local_f1 = [f1_score(torch.cat([b[1] for b in data[r]]), torch.cat([b[0] for b in data[r]]), average="macro")
                for r in (0, 1)]
    for rank, result in enumerate(results):
        assert result["distributed"] is True
        assert result["f1"] == pytest.approx(f1, rel=1e-6)
        assert result["auc"] == pytest.approx(auc, rel=1e-6)
        assert result["loss"] == pytest.approx(1 / 3)  # the pooled AverageValueMeter alongside: 2 zeros and a one
        assert result["local_f1"] == pytest.approx(local_f1[rank], rel=1e-6)  # the local meter is left as it was
        assert result["count"] == 0  # log() reset it
    assert local_f1[0] != pytest.approx(f1, rel=1e-3)  # the data makes pooling visible
