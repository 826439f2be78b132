"""The examples, the demo and its notebook run end to end against the session's Visdom server."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import visdom

from flexlogger.server import VisdomServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def windows(viz: visdom.Visdom, env: str) -> dict[str, list[str | None]]:
    """{window title: trace names} of every window of ``env``."""
    data = json.loads(viz.get_window_data(None, env))
    return {w["title"]: [t.get("name") for t in w["content"]["data"]] for w in data.values()}


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
