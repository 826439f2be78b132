"""flexlogger.tensorboard.SummaryWriter: TensorBoard's writer drawing on the real Visdom server, alone and inside a
real Hugging Face Trainer through HF's own TensorBoardCallback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import visdom

from flexlogger.errors import ConfigError
from flexlogger.sinks.record import read_record
from flexlogger.tensorboard import SummaryWriter, TensorBoardCompatWarning
from flexlogger.tools.server import VisdomServer


def traces(viz: visdom.Visdom, writer: SummaryWriter, window: str) -> dict[str, tuple[list[Any], list[Any]]]:
    assert writer.run.flush(10) == 0
    data = json.loads(viz.get_window_data(writer.run.window_id(window), writer.run.env))
    return {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]}


def test_scalars_share_windows_and_reach_visdom_and_the_record(tmp_path: Path, visdom_server: VisdomServer,
                                                               viz: visdom.Visdom, env: str) -> None:
    with SummaryWriter(tmp_path / env, port=visdom_server.port) as writer:
        assert writer.run.env == env
        for step in range(3):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step)
            writer.add_scalar("val/loss", torch.tensor(2.0 - step), step)
            writer.add_scalars("lr", {"head": 0.1 * step, "body": np.float64(0.01)}, step)
        writer.add_scalar("no_step", 5.0)
        writer.add_scalar("no_step", 6.0)
        assert traces(viz, writer, "loss") == {"train": ([0, 1, 2], [1.0, 0.5, 1 / 3]),
                                               "val": ([0, 1, 2], [2.0, 1.0, 0.0])}
        assert traces(viz, writer, "lr")["head"] == ([0, 1, 2], [0.0, 0.1, 0.2])
        folder = writer.run.dir
    assert folder is not None and folder.parent == tmp_path / env
    steps = [(u.step, u.data["no_step"]) for u in read_record(folder).updates if u.plot == "no_step"]
    assert steps == [(0, 5.0), (1, 6.0)]  # without global_step: one more than the tag's last step
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"


def test_histograms_images_text_hparams_and_pr_curves(tmp_path: Path) -> None:
    writer = SummaryWriter(tmp_path / "media", server=None)
    writer.add_histogram("weights", torch.arange(100.0), 3, bins=10)
    writer.add_image("one", torch.zeros(3, 4, 5), 1)
    writer.add_image("gray", np.ones((4, 5)), 1, dataformats="HW")
    writer.add_images("batch", torch.rand(2, 3, 4, 5), 2)
    writer.add_text("notes", "hello", 4)
    writer.add_hparams({"lr": 0.1, "depth": 3}, {"hparam/acc": 0.9})
    writer.add_pr_curve("pr", np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1]), 5, num_thresholds=5)
    folder = writer.run.dir
    writer.close()
    assert folder is not None
    updates = read_record(folder).updates
    hist = next(u for u in updates if u.plot == "weights")
    assert (hist.step, sum(hist.data["weights"].counts)) == (3, 100.0)
    assert {p.name for p in (folder / "images").glob("*.png")} == {"one-1.png", "gray-1.png", "batch-2.png"}
    assert (folder / "text" / "notes-4.txt").read_text() == "hello"
    assert json.loads((folder / "hparams.json").read_text()) == {"lr": 0.1, "depth": 3}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["metrics"] == {"hparam/acc": 0.9}
    recall, precision = next(u for u in updates if u.plot == "pr").data["pr"]
    # thresholds 0, .25, .5, .75, 1: scores >= t
    assert list(recall) == [1.0, 1.0, 0.5, 0.5, 0.0] and list(precision) == [0.5, 2 / 3, 0.5, 0.5, 1.0]


def test_other_methods_warn_once_and_bad_input_is_an_error(tmp_path: Path) -> None:
    writer = SummaryWriter(tmp_path / "rest", server=None)
    with pytest.warns(TensorBoardCompatWarning, match="SummaryWriter.add_graph is not supported") as seen:
        writer.add_graph(torch.nn.Linear(1, 1), torch.zeros(1, 1))
        writer.add_graph(torch.nn.Linear(1, 1), torch.zeros(1, 1))
    assert len(seen) == 1
    with pytest.raises(ConfigError, match="add_scalar\\(\\): expected `scalar_value` of 'x' to be a number"):
        writer.add_scalar("x", "high")
    with pytest.raises(ConfigError, match=r"add_image\(\): expected an image of 3 dimensions.*'HW'"):
        writer.add_image("x", np.zeros((3, 4, 5)), dataformats="HW")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.add_scalar("x", 1.0, 0)
    writer.close()


def test_hugging_faces_own_tensorboard_callback_with_our_writer(tmp_path: Path, visdom_server: VisdomServer,
                                                                viz: visdom.Visdom, env: str) -> None:
    transformers = pytest.importorskip("transformers")
    from test_transformers import make_trainer

    writer = SummaryWriter(tmp_path / env, port=visdom_server.port)
    callback = transformers.integrations.TensorBoardCallback(tb_writer=writer)
    trainer = make_trainer(tmp_path, [callback])
    trainer.train()
    logged = [entry for entry in trainer.state.log_history]
    losses = {e["step"]: e["loss"] for e in logged if "loss" in e}
    evals = {e["step"]: e["eval_loss"] for e in logged if "eval_loss" in e}
    assert len(losses) == 3 and len(evals) == 2
    assert writer.run.closed  # the callback closed the writer at on_train_end
    folder = writer.run.dir
    assert folder is not None
    drawn = json.loads(viz.get_window_data(writer.run.window_id("loss"), env))
    by_trace = {t["name"]: dict(zip(t["x"], t["y"])) for t in drawn["content"]["data"]}
    assert set(by_trace) == {"train", "eval"}
    assert by_trace["train"] == pytest.approx(losses) and by_trace["eval"] == pytest.approx(evals)
    args = json.loads((folder / "text" / "args.txt").read_text())
    assert args["max_steps"] == 6 and args["logging_steps"] == 2


def test_add_figure_shows_a_matplotlib_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(2, 1), dpi=50)
    plt.plot([0, 1], [1, 0])
    with SummaryWriter(tmp_path / "figure", server=None) as writer:
        writer.add_figure("curve", figure, 7)
        folder = writer.run.dir
    assert folder is not None and (folder / "images" / "curve-7.png").is_file()
    assert not plt.get_fignums()  # closed, as TensorBoard's close=True


@pytest.mark.parametrize(("key", "expected"), [
    ("train/loss", ("loss", "train")), ("val/loss", ("loss", "val")),  # wandb's phase/quantity
    ("Loss/train", ("Loss", "train")), ("Loss/test", ("Loss", "test")),  # TensorBoard's quantity/phase
    ("acc/top1/x", ("top1/x", "acc")), ("loss", ("loss", "loss")), ("a/", ("a/", "a/")),
])
def test_split_key(key: str, expected: tuple[str, str]) -> None:
    from flexlogger.integrations.windows import split_key

    assert split_key(key) == expected
