"""The experiment record (flexlogger.experiment): each call read back from the real Visdom server and from the
run folder; bad input raises naming the call, the argument, what was expected and what came."""

from __future__ import annotations

import argparse
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import visdom

from flexlogger import FlexLogger, Run
from flexlogger.experiment import RecordCallTypeError
from flexlogger.server import VisdomServer
from flexlogger.sinks.record import read_record

LOSS = {"loss": {"type": "line"}}
TRAIN = {"train_loss": {"type": "AverageValueMeter", "target": "loss"}}


def window(viz: visdom.Visdom, run: Run, plot: str) -> dict[str, Any]:
    """The window of ``plot`` as the server holds it, once the run delivered everything."""
    assert run.flush(10) == 0
    data: dict[str, Any] = json.loads(viz.get_window_data(run.window_id(plot), run.env))
    return data


def cells(content: str) -> dict[str, str]:
    """``{name: value}`` of a text window's table (the rows the renderer drew)."""
    return dict(re.findall(r"<tr><td><b>(.*?)</b></td><td>(.*?)</td></tr>", content))


@pytest.fixture
def run(tmp_path: Path, visdom_server: VisdomServer, env: str) -> Any:
    with Run(env=env, port=visdom_server.port, log_dir=tmp_path, min_interval=0.0) as run:
        yield run


def test_log_hparams_nested_dict_table_window_and_json(run: Run, viz: visdom.Visdom) -> None:
    run.log_hparams({"lr": 0.1, "optim": {"name": "adam<b>", "betas": (0.9, 0.999)}, "path": Path("/data"),
                     "seed": None})
    run.log_hparams(argparse.Namespace(epochs=3, optim={"name": "sgd"}))  # merged: later values win, key by key
    assert run.dir is not None
    stored = json.loads((run.dir / "hparams.json").read_text())
    assert stored == {"lr": 0.1, "optim": {"name": "sgd", "betas": [0.9, 0.999]}, "path": "/data", "seed": None,
                      "epochs": 3}
    assert run.hparams == stored
    win = window(viz, run, "hparams")
    assert win["title"] == "hparams"
    assert cells(win["content"]) == {"lr": "0.1", "optim.name": "sgd", "optim.betas": "[0.9, 0.999]",
                                     "path": "/data", "seed": "-", "epochs": "3"}
    run.log_hparams({"note": "<script>x</script>"})
    assert cells(window(viz, run, "hparams")["content"])["note"] == "&lt;script&gt;x&lt;/script&gt;"
    recorded = [u for u in read_record(run.dir).updates if u.plot == "hparams"]
    assert len(recorded) == 3 and recorded[-1].kind == "text" and recorded[-1].data["optim.name"] == "sgd"


def test_flexlogger_hands_log_hparams_to_its_run(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                 viz: visdom.Visdom) -> None:
    with FlexLogger(LOSS, TRAIN, env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        stat.log_hparams({"batch_size": 32})
        assert cells(window(viz, stat.run, "hparams")["content"]) == {"batch_size": "32"}
        assert stat.run_dir is not None
        assert json.loads((stat.run_dir / "hparams.json").read_text()) == {"batch_size": 32}


@pytest.mark.parametrize(("value", "match"), [
    ([1, 2], r"log_hparams\(\): expected `hparams` to be a dict \(nested dicts allowed\), an argparse.Namespace or "
             r"a dataclass instance, but got list \[1, 2\]"),
    ({"a": {3: 1}}, r"log_hparams\(\): expected the keys of `hparams` to be non-empty strings, but got int 3 at "
                    r"hparams\['a'\]\[3\]"),
])
def test_log_hparams_bad_input_writes_nothing(run: Run, value: Any, match: str) -> None:
    with pytest.raises(RecordCallTypeError, match=match):
        run.log_hparams(value)
    assert run.dir is not None and not (run.dir / "hparams.json").exists()


def test_disabled_log_hparams_writes_no_file_and_starts_no_thread(tmp_path: Path, env: str) -> None:
    before = set(threading.enumerate())
    with Run(env=env, log_dir=tmp_path, port=1, disabled=True) as run:
        run.log_hparams({"lr": 0.1})
        run.log_hparams("not even a dict")  # a no-op: nothing is looked at
        assert set(threading.enumerate()) == before
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
