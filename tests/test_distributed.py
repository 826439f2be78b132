"""Two real processes in a gloo process group: meters pooled exactly, only rank 0 draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import visdom
from test_meters import EXAMPLES

from flexlogger import meter_types
from flexlogger.config.registry import make_meter
from flexlogger.meters import AverageValueMeter, ClassErrorMeter
from flexlogger.tools.server import VisdomServer, find_free_port

WORKER = textwrap.dedent("""
    import json, sys
    import torch, torch.distributed as dist
    import flexlogger

    rank, port, env, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", rank=rank, world_size=2)
    values = {0: [1.0, 2.0, 3.0], 1: [10.0, 20.0]}[rank]
    plots = {"loss": {"type": "line"}, "err": {"type": "line"}, "conf": {"type": "heatmap"}}
    meters = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
              "train_err": {"type": "ClassErrorMeter", "target": "err"},
              "cm": {"type": "ConfusionMeter", "target": "conf", "args": {"k": 2}}}
    with flexlogger.FlexLogger(plots, meters, env=env, uid="ddp", port=port, log_dir=None) as stat:
        for v in values:
            stat.add({"train_loss": v})
        labels = torch.tensor([rank, rank, 1])
        stat.add({"train_err": [torch.eye(2)[[0, 0, 0]], labels], "cm": [torch.tensor([0, 0, 0]), labels]})
        pooled = stat.value()
        stat.log(3)
        json.dump({"distributed": stat.distributed, "mean": pooled["train_loss"][0], "std": pooled["train_loss"][1],
                   "err": pooled["train_err"], "sinks": len(stat.run.sinks)}, open(out, "w"))
    dist.destroy_process_group()
""")


def test_two_ranks_pool_meters_and_rank0_draws(tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom,
                                               env: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(find_free_port())}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(visdom_server.port), env,
                               str(tmp_path / f"rank{r}.json")], env=run_env, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    everything = [1.0, 2.0, 3.0, 10.0, 20.0]
    for result in results:  # value() is pooled on every rank
        assert result["distributed"] is True
        assert result["mean"] == pytest.approx(np.mean(everything), rel=1e-12)
        assert result["std"] == pytest.approx(np.std(everything, ddof=1), rel=1e-12)
        assert result["err"] == pytest.approx([400 / 6])  # labels 0,0,1 and 1,1,1 all predicted 0: 4 of 6 wrong
    assert results[0]["sinks"] >= 1 and results[1]["sinks"] == 0
    loss = json.loads(viz.get_window_data("ddp_loss", env))["content"]["data"]
    assert [(t["name"], t["x"], t["y"]) for t in loss] == [("train_loss", [3], [pytest.approx(7.2)])]
    conf = json.loads(viz.get_window_data("ddp_conf", env))["content"]["data"][0]
    assert conf["z"] == [[2, 0], [4, 0]]


def test_merge_is_exact_in_process() -> None:
    """Chan's pooled mean/std equals one meter fed everything (the in-process half of the check above)."""
    rng = np.random.default_rng(3)
    a_values, b_values = rng.normal(size=57).tolist(), rng.normal(5, 3, size=31).tolist()
    a, b, whole = AverageValueMeter("x"), AverageValueMeter("x"), AverageValueMeter("x")
    for v in a_values:
        a.add(v)
        whole.add(v)
    for v in b_values:
        b.add(v)
        whole.add(v)
    a.merge(b.portable())
    assert a.count == whole.count == 88
    assert a.value() == pytest.approx(whole.value(), rel=1e-12)
    e1, e2 = ClassErrorMeter("e", topk=[1, 2]), ClassErrorMeter("e", topk=[1, 2])
    e1.add(np.array([[0.1, 0.5, 0.4]]), np.array([2]))
    e2.add(np.array([[0.1, 0.5, 0.4]]), np.array([1]))
    e1.merge(e2)
    assert e1.value() == [50.0, 0.0]


@pytest.mark.parametrize("kind", [k for k in meter_types() if k != "TimeMeter"])  # TimeMeter: rank 0's clock
def test_every_meter_type_merges_like_one_meter_fed_everything(kind: str) -> None:
    args, inputs = EXAMPLES[kind]
    mine, other, whole = (make_meter("m", kind, args) for _ in range(3))
    mine.add(*inputs)
    other.add(*inputs)
    other.add(*inputs)
    for _ in range(3):
        whole.add(*inputs)
    mine.merge(other.portable())
    assert mine.count == 3
    np.testing.assert_allclose(np.asarray(mine.value(), dtype=np.float64),
                               np.asarray(whole.value(), dtype=np.float64), rtol=1e-12)
