"""Training scripts written for wandb and for TensorBoard run on flexlogger with their import line changed, and
nothing else: each runs to its end, and every value it prints is in the run record and in the Visdom env.

The scripts (tests/scripts/) were written for these tests in the shape of wandb's PyTorch examples and PyTorch's
TensorBoard tutorial: third-party scripts could not be kept in this repository (the public code available to us may
be read, not committed), and those found need torchvision and a download, which these tests cannot have. They
train on scikit-learn's digits (bundled with scikit-learn: no download) on the CPU, in a real subprocess that finds
the Visdom server through FLEXLOGGER_PORT alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import visdom

from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer

SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).parents[1]


def run_script(name: str, old: str, new: str, tmp_path: Path, port: int, *args: str) -> str:
    """Run a copy of ``name`` whose line ``old`` is ``new`` (the only change); return what it printed."""
    source = (SCRIPTS / name).read_text().splitlines(keepends=True)
    changed = [new + "\n" if line.rstrip("\n") == old else line for line in source]
    assert sum(a != b for a, b in zip(source, changed)) == 1
    script = tmp_path / name
    script.write_text("".join(changed))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "FLEXLOGGER_PORT": str(port), "FLEXLOGGER_LOG_DIR": str(tmp_path / "runs")}
    env.pop("FLEXLOGGER_SERVER", None)
    done = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def the_run(folder: Path) -> Path:
    found = [p.parent for p in folder.glob("*/points.jsonl")]
    assert len(found) == 1, found
    return found[0]


def recorded(run_dir: Path) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for update in read_record(run_dir).updates:
        if update.kind == "line":
            for trace, value in update.data.items():
                out.setdefault((update.plot, trace), []).append(value)
    return out


def drawn(viz: visdom.Visdom, env: str, run_dir: Path, window: str) -> dict[str, list[float]]:
    data = json.loads(viz.get_window_data(f"{run_dir.name}_{window}", env))
    return {t["name"]: t["y"] for t in data["content"]["data"]}


def floats(pattern: str, text: str) -> list[tuple[float, ...]]:
    return [tuple(float(g) for g in m.groups()) for m in re.finditer(pattern, text)]


def same(printed: list[float], logged: list[Any], digits: int) -> None:
    assert len(printed) == len(logged) and printed
    assert all(round(v, digits) == pytest.approx(p, abs=10 ** -digits / 2 + 1e-12) for p, v in zip(printed, logged))


def test_a_wandb_script(tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    out = run_script("train_wandb_digits.py", "import wandb", "import flexlogger.wandb as wandb", tmp_path,
                     visdom_server.port, "--epochs", "2", "--max-batches", "10", "--log-interval", "3",
                     "--project", env)
    run_dir = the_run(tmp_path / "runs" / env)
    lines = recorded(run_dir)
    train = floats(r"Loss: (\d+\.\d+)\tAcc: (\d+\.\d+)", out)
    val = floats(r"Average loss: (\d+\.\d+), Accuracy: (\d+)/(\d+)", out)
    assert len(train) == 8 and len(val) == 2  # batches 0, 3, 6, 9 of two epochs
    same([t[0] for t in train], lines[("loss", "train")], 6)
    same([t[1] for t in train], lines[("acc", "train")], 4)
    same([v[0] for v in val], lines[("loss", "val")], 4)
    assert lines[("acc", "val")] == [v[1] / v[2] for v in val]
    shown = {w: drawn(viz, env, run_dir, w) for w in ("loss", "acc")}
    assert shown["loss"]["train"] == lines[("loss", "train")] and shown["loss"]["val"] == lines[("loss", "val")]
    assert shown["acc"]["train"] == lines[("acc", "train")] and shown["acc"]["val"] == lines[("acc", "val")]
    best = float(re.findall(r"Best accuracy: (\d+\.\d+)", out)[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and round(summary["summary"]["best_acc"], 4) == best
    hparams = json.loads((run_dir / "hparams.json").read_text())
    assert hparams["epochs"] == 2 and hparams["lr"] == 0.05
    points = [u for u in read_record(run_dir).updates if u.plot == "Weight_grad.histogram" or
              u.plot.endswith("Weight_grad.histogram")]
    assert points  # wandb.watch(log="all"): gradient histograms


def test_a_tensorboard_script(tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    out = run_script("train_tensorboard_digits.py", "from torch.utils.tensorboard import SummaryWriter",
                     "from flexlogger.tensorboard import SummaryWriter", tmp_path, visdom_server.port,
                     "--logdir", str(tmp_path / "runs" / env), "--epochs", "2", "--max-batches", "10")
    assert out.rstrip().endswith("Finished Training")
    run_dir = the_run(tmp_path / "runs" / env)
    lines = recorded(run_dir)
    train = lines[("Loss", "train")]
    running = floats(r"\] loss: (\d+\.\d+)", out)
    assert len(train) == 20 and len(running) == 4
    same([r[0] for r in running], [sum(train[i:i + 5]) / 5 for i in (0, 5, 10, 15)], 3)
    tests = floats(r"test loss (\d+\.\d+), accuracy (\d+\.\d+)", out)
    same([t[0] for t in tests], lines[("Loss", "test")][:2], 4)
    same([t[1] for t in tests], lines[("Accuracy", "test")][:2], 4)
    shown = drawn(viz, env, run_dir, "Loss")
    assert shown["train"] == train and shown["test"] == lines[("Loss", "test")]
    assert drawn(viz, env, run_dir, "Accuracy")["test"] == lines[("Accuracy", "test")]
    assert (run_dir / "images" / "samples-0.png").is_file()
    assert json.loads((run_dir / "hparams.json").read_text()) == {"lr": 0.1, "bsize": 100}
