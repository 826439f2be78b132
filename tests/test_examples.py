"""The examples, the demo and its notebook run end to end against the session's Visdom server."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import visdom

from flexlogger.tools.cli import main as cli_main
from flexlogger.tools.server import VisdomServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def windows(viz: visdom.Visdom, env: str) -> dict[str, list[str | None]]:
    """{window title: trace names} of every chart of ``env`` (text windows: ``[]``)."""
    data = json.loads(viz.get_window_data(None, env))
    return {w["title"]: [t.get("name") for t in w["content"]["data"]] if isinstance(w["content"], dict) else []
            for w in data.values()}


def test_quickstart(visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
                    capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = load_example("quickstart")
    assert quickstart.main(["--port", str(visdom_server.port), "--epochs", "3", "--env", env]) == 0
    assert capsys.readouterr().out.endswith(f"Open http://localhost:{visdom_server.port}/env/{env} -- Visdom server "
                                            "already running.\n")
    assert windows(viz, env) == {"loss": ["train_loss", "test_loss"], "accuracy": ["train_acc", "test_acc"]}
    data = json.loads(viz.get_window_data(None, env))
    for window in data.values():
        for trace in window["content"]["data"]:
            assert trace["x"] == [0.0, 1.0, 2.0]


def test_demo(visdom_server: VisdomServer, viz: visdom.Visdom, env: str, tmp_path: Path,
              capsys: pytest.CaptureFixture[str]) -> None:
    from flexlogger.tools import demo
    assert demo.main(["--port", str(visdom_server.port), "--epochs", "2", "--env", env,
                      "--log-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"Open http://localhost:{visdom_server.port}/env/{env} -- Visdom server already running.\n")
    assert "Conv2d" in out and "Linear" in out  # the layer table
    found = windows(viz, env)
    assert found.pop("loss") == ["train_loss", "test_loss"]
    assert found.pop("accuracy") == ["train_acc", "test_acc"]
    assert found.pop("test confusion (rows: true digit)") == [None]  # one heatmap
    assert found.pop("hparams") == []  # the table that tells compared demo runs apart
    # the TooledModelLogger windows: one per statistic (a trace per weighted layer), and the weight and gradient
    # histograms of each layer
    found = {re.sub(r" \(step \d+\)$", "", title): v for title, v in found.items()}  # histograms say their step
    layers = {"conv1": "Conv2d", "conv2": "Conv2d", "fc1": "Linear", "fc2": "Linear"}  # the demo names its layers
    statistics = {"Grad_out std", "Outputs std", "Weights std", "Weights update_ratio", "Weight_grad std"}
    assert set(found) == {f"{n} ({kind}){suffix}" for n, kind in layers.items()
                          for suffix in (" Weights", " Weight_grad")} | {f"{s} (log scale)" for s in statistics}
    for title in statistics:
        group, stat = title.split()
        assert sorted(found[f"{title} (log scale)"]) == [f"{n}.{group}.{stat}" for n in layers]


def test_flexlogger_demo_command(visdom_server: VisdomServer, viz: visdom.Visdom, env: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the run record goes to ./runs
    assert cli_main(["demo", "--port", str(visdom_server.port), "--epochs", "1", "--env", env]) == 0
    assert capsys.readouterr().out.endswith(f"/env/{env} -- Visdom server already running.\n")
    assert windows(viz, env)["loss"] == ["train_loss", "test_loss"]
    assert list((tmp_path / "runs").rglob("points.jsonl"))


@pytest.mark.slow
def test_notebook_runs(visdom_server: VisdomServer, viz: visdom.Visdom, env: str, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    monkeypatch.setenv("FLEXLOGGER_PORT", str(visdom_server.port))
    monkeypatch.setenv("FLEXLOGGER_ENV", env)
    monkeypatch.setenv("FLEXLOGGER_EPOCHS", "2")
    notebook = nbformat.read(EXAMPLES / "demo.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells
               if cell.cell_type == "code"]
    assert f"Visdom: http://localhost:{visdom_server.port}/env/{env} (reused)" in outputs[0]
    assert "Conv2d" in outputs[-2] and "Linear" in outputs[-2]  # the layer table
    assert outputs[-1] == f"Open http://localhost:{visdom_server.port}/env/{env}\n"
    found = windows(viz, env)
    assert found["loss"] == ["train_loss", "test_loss"]
    assert found["accuracy"] == ["train_acc", "test_acc"]
    assert "test confusion (rows: true digit)" in found
