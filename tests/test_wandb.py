"""flexlogger.wandb: wandb's API on a real run, drawn on the real Visdom server and kept in the run record."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import visdom
from readback import record_lines as lines

import flexlogger.wandb as wandb
from flexlogger.errors import UnknownNameError
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer


@pytest.fixture(autouse=True)
def server_from_env(monkeypatch: pytest.MonkeyPatch, visdom_server: VisdomServer) -> Iterator[None]:
    """The wandb script never names a server: the environment points it at the session's."""
    monkeypatch.setenv("FLEXLOGGER_PORT", str(visdom_server.port))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    yield
    wandb.finish()


def traces(viz: visdom.Visdom, run: Any, window: str) -> dict[str, tuple[list[Any], list[Any]]]:
    assert run.run.flush(10) == 0
    data = json.loads(viz.get_window_data(run.run.window_id(window), run.project))
    return {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]}


def test_keys_differing_by_their_first_part_share_a_window(tmp_path: Path, viz: visdom.Visdom, env: str) -> None:
    run = wandb.init(project=env, dir=tmp_path, config={"lr": 0.1})
    for i in range(3):
        wandb.log({"train/loss": 1.0 / (i + 1), "val/loss": torch.tensor(2.0 - i), "lr": np.float32(0.5)})
    drawn = traces(viz, run, "loss")
    assert drawn == {"train": ([0, 1, 2], [1.0, 0.5, 1 / 3]), "val": ([0, 1, 2], [2.0, 1.0, 0.0])}
    assert traces(viz, run, "lr") == {"lr": ([0, 1, 2], [0.5] * 3)}
    assert run.run.dir is not None
    folder = run.run.dir
    wandb.finish()
    assert lines(folder)[("loss", "val")] == [(0, 2.0), (1, 1.0), (2, 0.0)]
    assert json.loads((folder / "hparams.json").read_text()) == {"lr": 0.1}


def test_wandbs_step_rule(tmp_path: Path) -> None:
    run = wandb.init(project="steps", dir=tmp_path, mode="offline")
    wandb.log({"a": 1.0})  # step 0
    wandb.log({"a": 2.0}, commit=False)  # step 1, pending
    wandb.log({"b": 3.0})  # step 1, committed with a
    wandb.log({"a": 4.0}, step=5)  # jumps to 5, pending
    wandb.log({"b": 5.0}, step=5)
    wandb.log({"a": 6.0}, step=7)  # commits step 5
    with pytest.warns(wandb.WandbCompatWarning, match=r"log\(step=2\) is before the current step 7.*dropped"):
        wandb.log({"a": 9.0}, step=2)
    assert run.step == 7
    folder = run.run.dir
    assert folder is not None
    wandb.finish()  # commits step 7
    got = lines(folder)
    assert got[("a", "a")] == [(0, 1.0), (1, 2.0), (5, 4.0), (7, 6.0)]
    assert got[("b", "b")] == [(1, 3.0), (5, 5.0)]


def test_config_summary_and_define_metric(tmp_path: Path) -> None:
    run = wandb.init(project="cfg", dir=tmp_path, mode="offline", name="first", tags=["a"])
    wandb.config.update({"batch": 32})
    wandb.config.depth = 4
    run.config["opt"] = {"lr": 0.1}
    assert (wandb.config.batch, run.config["depth"], run.config.opt) == (32, 4, {"lr": 0.1})
    with pytest.raises(AttributeError, match="config has no key 'missing'"):
        _ = wandb.config.missing
    wandb.define_metric("epoch")
    wandb.define_metric("val/*", step_metric="epoch", summary="min")
    wandb.define_metric("train/acc", summary="max")
    for epoch, (loss, acc) in enumerate([(3.0, 0.1), (1.0, 0.7), (2.0, 0.5)]):
        wandb.log({"epoch": epoch * 10, "val/loss": loss, "train/acc": acc})
    wandb.summary["note"] = "kept"
    folder = run.run.dir
    assert folder is not None
    wandb.finish()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["summary"] == {"epoch": 20, "val/loss": 1.0, "train/acc": 0.7, "note": "kept"}
    assert summary["wandb"] == {"name": "first", "tags": ["a"]}
    assert json.loads((folder / "hparams.json").read_text()) == {"batch": 32, "depth": 4, "opt": {"lr": 0.1}}
    assert lines(folder)[("loss", "val")] == [(0.0, 3.0), (10.0, 1.0), (20.0, 2.0)]  # x = epoch


def test_min_and_max_summaries_skip_nan_and_keep_infinities(tmp_path: Path) -> None:
    """A NaN never becomes the min or max (nor stops later values from counting); infinities are values."""
    run = wandb.init(project="nan", dir=tmp_path, mode="offline")
    wandb.define_metric("loss", summary="min")
    wandb.define_metric("acc", summary="max")
    wandb.define_metric("first", summary="first")
    for loss, acc in [(math.nan, math.nan), (0.7, 0.2), (math.nan, math.nan), (0.5, math.inf), (0.9, 0.3)]:
        wandb.log({"loss": loss, "acc": acc, "first": loss})
    folder = run.run.dir
    assert folder is not None
    wandb.finish()
    summary = json.loads((folder / "summary.json").read_text())["summary"]
    assert (summary["loss"], summary["acc"], summary["first"]) == (0.5, "inf", "nan")


def test_media_reach_the_record(tmp_path: Path) -> None:
    run = wandb.init(project="media", dir=tmp_path, mode="offline")
    counts, edges = np.histogram(np.arange(10.0), bins=5)
    wandb.log({"samples": wandb.Image(np.zeros((4, 5, 3)), caption="zeros"),
               "weights": wandb.Histogram(np.arange(100.0), num_bins=10),
               "given": wandb.Histogram(np_histogram=(counts, edges)),
               "preds": wandb.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]]),
               "page": wandb.Html("<b>bold</b>"), "nested": {"deep": {"value": 1.5}}})
    folder = run.run.dir
    assert folder is not None
    wandb.finish()
    assert (folder / "images" / "samples-0.png").is_file()
    assert (folder / "text" / "samples_caption-0.txt").read_text() == "zeros"
    assert "| 2 | b |" in (folder / "text" / "preds-0.md").read_text()
    assert (folder / "text" / "page-0.txt").read_text() == "<b>bold</b>"
    hists = {u.plot: u.data for u in read_record(folder).updates if u.kind == "histogram"}
    assert sum(hists["weights"]["weights"].counts) == 100
    assert hists["given"]["given"].counts == (2.0, 2.0, 2.0, 2.0, 2.0)
    assert lines(folder)[("deep/value", "nested")] == [(0, 1.5)]


@pytest.mark.parametrize("values", [np.arange(100.0), [2.0] * 3, [], [np.nan, np.inf, 1.0], torch.randn(50)])
def test_histograms_bin_as_the_model_statistics_do(values: Any) -> None:
    """wandb.Histogram and SummaryWriter.add_histogram share the model statistics' binning: constant and empty
    inputs included."""
    from flexlogger.model.stats import histogram

    expected = histogram(torch.as_tensor(np.asarray(values, dtype=np.float64)), 4).tolist()
    got = wandb.Histogram(values, num_bins=4).counts
    assert (*got.counts, got.lo, got.hi) == tuple(expected)
    assert got.lo < got.hi


def test_watch_draws_the_models_gradients(tmp_path: Path, viz: visdom.Visdom, env: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    run = wandb.init(project=env, dir=tmp_path)
    run.watch(model, log="gradients", log_freq=2)
    for _ in range(4):
        model.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        wandb.log({"loss": 1.0})
    drawn = traces(viz, run, "Weight_grad.std")
    assert set(drawn) == {"0.Weight_grad.std", "2.Weight_grad.std"}
    assert drawn["0.Weight_grad.std"][0] == [0, 2]
    wandb.unwatch()
    assert not model._forward_hooks and not model[0]._forward_hooks


def test_disabled_runs_write_nothing_and_every_call_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = wandb.init(project="off", dir=tmp_path, config={"a": 1})
    wandb.log({"loss": 1.0, "img": wandb.Image(np.zeros((2, 2)))})
    wandb.summary["x"] = 1
    wandb.finish()
    assert run.disabled and not any(tmp_path.iterdir())


def test_the_rest_of_wandbs_api_warns_once_and_training_goes_on(tmp_path: Path) -> None:
    with pytest.warns(wandb.WandbCompatWarning, match="init\\(entity=...\\) is not supported"):
        run = wandb.init(project="rest", dir=tmp_path, mode="offline", entity="team")
    with pytest.warns(wandb.WandbCompatWarning, match="wandb.Artifact is not supported") as seen:
        artifact = wandb.Artifact("model", type="model")
        artifact.add_file("model.pt")
        wandb.Artifact("again", type="model")
    assert len(seen) == 1
    with pytest.warns(wandb.WandbCompatWarning, match="run.log_artifact is not supported"):
        run.log_artifact(artifact)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wandb.log({"loss": 1.0})  # still logging, no more warnings
        assert wandb.login() is True
    assert wandb.run is run


def test_errors_name_the_call_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(wandb.WandbUsageError, match=r"log\(\): no run; call flexlogger.wandb.init\(\) first"):
        wandb.log({"loss": 1.0})
    with pytest.raises(UnknownNameError, match="unknown mode 'onlin' \\(did you mean 'online'"):
        wandb.init(mode="onlin")
    run = wandb.init(project="errors", dir=tmp_path, mode="offline")
    with pytest.raises(ValueError, match="expected `step` to be an int >= 0 or None, but got -1"):
        run.log({"a": 1.0}, step=-1)
    with pytest.raises(UnknownNameError, match="unknown log 'grads'"):
        run.watch(torch.nn.Linear(1, 1), log="grads")
    with pytest.raises(UnknownNameError, match="unknown summary 'median'"):
        run.define_metric("loss", summary="median")
    with pytest.raises(ValueError, match="Histogram\\(\\): expected one of `sequence`"):
        wandb.Histogram()
    wandb.finish()
    with pytest.raises(wandb.WandbUsageError, match="is finished"):
        run.log({"a": 1.0})


def test_a_key_without_a_path_shares_the_window_of_its_name(tmp_path: Path) -> None:
    run = wandb.init(project="bare", dir=tmp_path, mode="offline")
    wandb.log({"loss": 0.9, "val/loss": 1.1})  # the common pattern: train loss bare, validation loss prefixed
    wandb.log({"loss": 0.8})
    folder = run.run.dir
    assert folder is not None
    wandb.finish()
    got = lines(folder)
    assert got[("loss", "loss")] == [(0, 0.9), (1, 0.8)] and got[("loss", "val")] == [(0, 1.1)]


def test_a_script_that_never_finishes_is_committed_and_closed_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = "\n".join(["import flexlogger.wandb as wandb",
                        f"run = wandb.init(project='atexit', mode='offline', dir={str(tmp_path)!r})",
                        "wandb.log({'loss': 1.0})",
                        "wandb.log({'loss': 0.5}, commit=False)",
                        "raise SystemExit(0)"])
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", script], env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "atexit").iterdir()
    assert lines(folder)[("loss", "loss")] == [(0, 1.0), (1, 0.5)]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["summary"] == {"loss": 0.5}
