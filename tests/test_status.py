"""The run's status in summary.json (finished, crashed, interrupted, running after SIGKILL), best values, display
styles, max_steps, preset meters on one plot, disabled runs and the original flexilogger-style loop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import visdom
from readback import traces, window

from flexlogger import ConfigError, FlexLogger, InvalidConfigError, Run, load_config
from flexlogger.experiment import RecordCallTypeError
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer

LOSS = {"loss": {"type": "line"}}
METERS = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
          "test_loss": {"type": "AverageValueMeter", "target": "loss", "best": "min"}}
REPO = Path(__file__).resolve().parents[1]


def summary(run_dir: Path | None) -> dict[str, Any]:
    assert run_dir is not None
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


# status ---------------------------------------------------------------------------------------------------------
def test_status_finished_after_close(tmp_path: Path, env: str) -> None:
    with FlexLogger(LOSS, METERS, env=env, server=None, log_dir=tmp_path) as stat:
        assert summary(stat.run_dir)["status"] == "running"  # from the start
        stat.add({"train_loss": 0.5})
        stat.log(0)
    done = summary(stat.run_dir)
    assert done["status"] == "finished" and done["closed"] is not None and "error" not in done
    assert done["last_update"] is not None and done["step"] == 0


def boom() -> None:
    raise ValueError("exploding gradients")


def test_status_crashed_with_the_exception_and_its_traceback(tmp_path: Path, env: str) -> None:
    with pytest.raises(ValueError, match="exploding gradients"), \
            FlexLogger(LOSS, METERS, env=env, server=None, log_dir=tmp_path) as stat:
        stat.add({"train_loss": 0.5})
        stat.log(0)
        boom()
    done = summary(stat.run_dir)
    assert done["status"] == "crashed"
    assert done["error"] == "ValueError: exploding gradients"
    assert done["traceback"].startswith("Traceback (most recent call last):")
    assert "in boom" in done["traceback"] and done["traceback"].rstrip().endswith("ValueError: exploding gradients")


def test_status_interrupted_on_keyboard_interrupt(tmp_path: Path, env: str) -> None:
    with pytest.raises(KeyboardInterrupt), Run(env=env, server=None, log_dir=tmp_path) as run:
        raise KeyboardInterrupt
    done = summary(run.dir)
    assert done["status"] == "interrupted" and done["error"] == "KeyboardInterrupt"


CHILD = textwrap.dedent("""
    import json, sys, time
    import flexlogger
    run = flexlogger.Run(env="killed", server=None, log_dir=sys.argv[1], max_steps=100)
    meters = {"train_loss": {"type": "AverageValueMeter", "target": "loss", "best": "min"}}
    stat = flexlogger.FlexLogger({"loss": {"type": "line"}}, meters, run=run)
    for step in range(5):
        stat.add({"train_loss": 1.0 / (step + 1)})
        stat.log(step)
    run.flush()
    print(json.dumps({"dir": str(run.dir), "after": time.time()}), flush=True)
    time.sleep(120)
""")


def test_status_of_a_killed_process_says_running_with_its_last_update(tmp_path: Path) -> None:
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        told = json.loads(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    done = summary(Path(told["dir"]))
    assert done["status"] == "running" and done["closed"] is None  # never closed: it shows when it stopped
    assert started <= done["last_update_unix"] <= told["after"]
    assert done["last_update"] == time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(done["last_update_unix"]))
    assert done["step"] == 4 and done["max_steps"] == 100 and done["progress"] == 0.05
    assert done["best"] == {"train_loss": {"value": 0.2, "step": 4, "mode": "min"}}


# best ---------------------------------------------------------------------------------------------------------------
def test_best_over_a_run_in_best_summary_and_the_recorded_legend(tmp_path: Path, env: str) -> None:
    meters = {**METERS, "train_err": {"type": "ClassErrorMeter", "target": "err", "args": {"topk": [1, 2]},
                                      "best": "min"},
              "test_acc": {"type": "AverageValueMeter", "target": "acc", "best": "max"}}
    plots = {**LOSS, "err": {"type": "line"}, "acc": {"type": "line"}}
    with FlexLogger(plots, meters, env=env, server=None, log_dir=tmp_path) as stat:
        import torch

        for step, (test, acc) in enumerate([(0.9, 50.0), (0.4, 70.0), (0.6, 90.0), (0.4, 80.0), (float("nan"), 1.0)]):
            stat.add({"train_loss": 1.0, "test_loss": test, "test_acc": acc})
            scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
            stat.add({"train_err": [scores, torch.tensor([1, 2 if step < 2 else 0])]})
            stat.log(step)
        assert stat.best() == {"test_loss": (0.4, 1), "train_err@1": (0.0, 2), "train_err@2": (0.0, 2),
                               "test_acc": (90.0, 2)}  # a tie keeps the earlier step; NaN never counts
        assert stat.run.best() == stat.best()
        assert "best: test_loss 0.4 @ 1, train_err@1 0 @ 2, train_err@2 0 @ 2, test_acc 90 @ 2" in stat.table()
        stat.flush()
        record = read_record(stat.run_dir)  # type: ignore[arg-type]
    legend = record.plots["loss"][1]["traceopts"]["plotly"]
    assert legend == {"test_loss": {"name": "test_loss (best 0.4 @ 1)"}}
    assert "train_loss" not in legend  # no best, no display: drawn as before
    assert record.plots["err"][1]["traceopts"]["plotly"]["train_err@1"]["name"] == "train_err@1 (best 0 @ 2)"
    assert summary(stat.run_dir)["best"] == {
        "test_loss": {"value": 0.4, "step": 1, "mode": "min"}, "train_err@1": {"value": 0.0, "step": 2, "mode": "min"},
        "train_err@2": {"value": 0.0, "step": 2, "mode": "min"}, "test_acc": {"value": 90.0, "step": 2, "mode": "max"}}


def legend_names(viz: visdom.Visdom, stat: FlexLogger, plot: str) -> list[str]:
    return [t["name"] for t in window(viz, stat, plot)["content"]["data"]]


def test_best_in_the_legend_on_the_server(visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
                                          tmp_path: Path) -> None:
    with FlexLogger(LOSS, METERS, env=env, port=visdom_server.port, log_dir=tmp_path, min_interval=0.0) as stat:
        for step, value in enumerate([0.9, 0.213, 0.5]):
            stat.add({"test_loss": value})
            stat.log(step)
            stat.flush()
        assert legend_names(viz, stat, "loss") == ["test_loss (best 0.213 @ 1)"]


def test_best_spec_errors() -> None:
    with pytest.raises(ConfigError, match=r"meters.test_loss.best: expected 'min' or 'max' \(is a lower or a higher "
                                          r"value better\?\), but got 'lowest'"):
        FlexLogger(LOSS, {"test_loss": {**METERS["test_loss"], "best": "lowest"}}, server=None, log_dir=None)
    with pytest.raises(ConfigError, match=r"meters.cm.best: a ConfusionMeter has no scalar value to track; expected "
                                          r"`best` only on a meter with a scalar value"):
        FlexLogger({"c": {"type": "heatmap"}}, {"cm": {"type": "ConfusionMeter", "target": "c", "args": {"k": 2},
                                                      "best": "max"}}, server=None, log_dir=None)


# display ----------------------------------------------------------------------------------------------------
def test_display_styles_the_traces_on_the_server(visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
                                                 tmp_path: Path) -> None:
    meters = {"train_loss": {"type": "AverageValueMeter", "target": "loss",
                             "display": {"dash": "dash", "color": [255, 0, 0], "width": 3}},
              "test_loss": {"type": "AverageValueMeter", "target": "loss",
                            "display": {"color": "#00aa00", "marker": "diamond"}},
              "val_loss": {"type": "AverageValueMeter", "target": "loss"}}
    with FlexLogger(LOSS, meters, env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        for step in range(3):
            stat.add({"train_loss": 1.0 - step / 10, "test_loss": 1.2 - step / 10, "val_loss": 1.1})
            stat.log(step)
        drawn = {t["name"]: t for t in window(viz, stat, "loss")["content"]["data"]}
        assert traces(viz, stat, "loss")["train_loss"] == ([0, 1, 2], [1.0, 0.9, 0.8])  # the points as before
    assert drawn["train_loss"]["line"] == {"dash": "dash", "color": "rgb(255,0,0)", "width": 3}
    assert drawn["test_loss"]["line"]["color"] == "#00aa00" and drawn["test_loss"]["mode"] == "lines+markers"
    assert drawn["test_loss"]["marker"]["symbol"] == "diamond" and drawn["test_loss"]["marker"]["color"] == "#00aa00"
    assert drawn["val_loss"]["line"].get("dash") is None and drawn["val_loss"]["line"].get("color") is None
    saved = stat.to_config()["meters"]["train_loss"]
    assert saved["display"] == {"dash": "dash", "color": "rgb(255,0,0)", "width": 3}
    assert FlexLogger.from_config(stat.to_config(), server=None, log_dir=None).meter_specs["train_loss"].display == \
        stat.meter_specs["train_loss"].display  # a saved config keeps the style


@pytest.mark.parametrize(("display", "match"), [
    ({"dash": "dashed"}, r"meters.m.display.dash: expected one of solid, dot, dash, longdash, dashdot, longdashdot, "
                         r"but got 'dashed'"),
    ({"color": "#12345"}, r"meters.m.display.color: expected a CSS colour \('#1f77b4', 'rgb\(31,119,180\)', 'red'\) "
                          r"or \[r, g, b\] with ints 0-255, but got '#12345'"),
    ({"color": [300, 0, 0]}, r"meters.m.display.color: expected a CSS colour .* but got \[300, 0, 0\]"),
    ({"width": 0}, r"meters.m.display.width: expected a line width in pixels, a number > 0 and <= 20, but got 0"),
    ({"marker": "blob"}, r"meters.m.display.marker: expected one of circle, square, .*, but got 'blob'"),
    ({"style": "x"}, r"meters.m.display: unknown key\(s\) 'style'; valid keys: dash, color, width, marker"),
    ("red", r"meters.m.display: expected a mapping with keys dash, color, width, marker, but got str 'red'"),
])
def test_display_spec_errors(display: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FlexLogger(LOSS, {"m": {"type": "AverageValueMeter", "target": "loss", "display": display}}, server=None,
                   log_dir=None)


# max_steps ----------------------------------------------------------------------------------------------------
def test_max_steps_progress_eta_in_show_the_status_window_and_the_summary(
        visdom_server: VisdomServer, viz: visdom.Visdom, env: str, tmp_path: Path) -> None:
    with FlexLogger(LOSS, METERS, env=env, port=visdom_server.port, log_dir=tmp_path, max_steps=8) as stat:
        for step in range(2):
            stat.add({"train_loss": 0.5, "test_loss": 0.4})
            stat.log(step)
        line = stat.table().splitlines()[0]
        assert line.startswith("running, step 1 of 8 (25.0%), elapsed ") and ", ETA " in line
        stat.flush()
        shown = json.loads(viz.get_window_data(stat.run.window_id("run_status"), env))["content"]
        rows = dict(re.findall(r"<tr><td><b>(.*?)</b></td><td>(.*?)</td></tr>", shown))
        assert rows["status"] == "running" and rows["step"] == "1" and rows["progress"] == "25.0% of 8 steps"
        assert rows["best test_loss"] == "0.4 @ 0" and rows["ETA"] != "-"
        running = summary(stat.run_dir)
        assert running["progress"] == 0.25 and running["max_steps"] == 8 and running["eta_seconds"] >= 0
    done = summary(stat.run_dir)
    assert done["status"] == "finished" and done["step"] == 1 and done["progress"] == 0.25


def test_max_steps_errors() -> None:
    with pytest.raises(ConfigError, match=r"FlexLogger\(\): max_steps: expected a positive int \(the number of steps "
                                          r"the run will log\) or None, but got 0"):
        FlexLogger(LOSS, METERS, server=None, log_dir=None, max_steps=0)
    with pytest.raises(ConfigError, match=r"Run\(\): max_steps: expected a positive int .* but got '10'"):
        Run(server=None, log_dir=None, max_steps="10")  # type: ignore[arg-type]
    with Run(server=None, log_dir=None) as run, \
            pytest.raises(RecordCallTypeError, match=r"set_max_steps\(\): max_steps: expected a positive int"):
        run.set_max_steps(2.5)  # type: ignore[arg-type]


# presets' meters on one plot, the original loop ----------------------------------------------------------------
def summary_of(*names: str, **config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The presets' meters retargeted to one line plot ``summary`` (the original flexilogger's add_metrics_for)."""
    meters = load_config({"presets": list(names), **config}).meters
    return {"summary": {"type": "line"}}, {n: {**spec.to_dict(), "target": "summary"} for n, spec in meters.items()}


def test_preset_meters_feed_one_plot_per_kind_and_phase(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                          env: str, tmp_path: Path) -> None:
    import torch

    with FlexLogger(env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        plots, meters = summary_of("loss", "acc", phases=("train", "test"))
        stat.update_config(plots, meters)
        added = ["train_loss", "test_loss", "train_acc", "test_acc"]
        assert list(stat.meters) == added
        assert stat.get_definitions() == {"summary": added}
        logits, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
        stat(train_loss=0.7, test_loss=0.9, train_acc=[logits, y], test_acc=[logits, torch.tensor([0, 1])])
        stat.log(0)
        assert traces(viz, stat, "summary") == {"train_loss": ([0], [0.7]), "test_loss": ([0], [0.9]),
                                                "train_acc": ([0], [50.0]), "test_acc": ([0], [100.0])}
        _, meters = summary_of("confusion", preset_args={"confusion": {"k": 2}})
        with pytest.raises(InvalidConfigError, match=r"^update_config\(\): 2 problems:\n  meters.train_confusion."
                                                     r"target: plot 'summary' is a 'line' plot, which cannot draw a "
                                                     r"ConfusionMeter"):
            stat.update_config(meters=meters)
        with pytest.raises(ConfigError, match=r"^config: presets: unknown preset 'los' \(did you mean 'loss'\?\)"):
            summary_of("los")


def test_the_original_flexilogger_loop(visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
                                       tmp_path: Path) -> None:
    with FlexLogger(LOSS, METERS, env=env, port=visdom_server.port, log_dir=tmp_path) as Stat:
        for epoch in range(3):
            if epoch == 2:
                Stat.step()  # skip a step: log() without a step uses the counter
            for value in (1.0, 2.0):
                Stat(train_loss=value * (epoch + 1), test_loss=value)
            Stat.log()
        assert traces(viz, Stat, "loss") == {"train_loss": ([0, 1, 3], [1.5, 3.0, 4.5]),
                                             "test_loss (best 1.5 @ 0)": ([0, 1, 3], [1.5, 1.5, 1.5])}
        assert Stat.best() == {"test_loss": (1.5, 0)}


# disabled ----------------------------------------------------------------------------------------------------
def calls(target: Any) -> None:
    """Every logging call once."""
    import argparse

    import numpy as np
    from torch import nn

    target.log_hparams({"lr": 0.1})
    target.log_text("t", "x", step=1, expected="y")
    target.log_markdown("m", "*x*")
    target.log_image("i", np.zeros((2, 2)), boxes=[{"xStart": 0, "yStart": 0, "xEnd": 1, "yEnd": 1}])
    assert target.log_command(argparse.ArgumentParser(), argparse.Namespace()) == ""
    assert target.log_summary() == {}
    target.println("p {}", 1)
    target.eprintln("e")
    assert target.print_table(["a"], [[1]]) == ""
    items = [1, 2]
    assert target.progress(items) is items
    assert target.save_model(nn.Linear(1, 1), step=1) is None
    assert target.save_obj(lambda: 0, "f") is None


def test_a_disabled_logger_starts_no_thread_writes_no_file_and_keeps_its_meters(
        tmp_path: Path, env: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = set(threading.enumerate())
    with FlexLogger(LOSS, METERS, env=env, port=1, log_dir=tmp_path, disabled=True, max_steps=5) as stat:
        assert stat.disabled and set(threading.enumerate()) == before
        for step in range(2):
            stat.add({"train_loss": 0.5, "test_loss": 0.3 - step / 10})
            assert stat.value("test_loss")["test_loss"][0] == pytest.approx(0.3 - step / 10)
            stat.log(step)
        assert stat.best() == {"test_loss": (pytest.approx(0.2), 1)}  # meters and best() keep working
        calls(stat)
        assert set(threading.enumerate()) == before
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    assert capsys.readouterr() == ("", "")  # println and progress print nothing either


def test_disable_and_enable_a_live_run(tmp_path: Path, env: str, capsys: pytest.CaptureFixture[str]) -> None:
    with FlexLogger(LOSS, METERS, env=env, server=None, log_dir=tmp_path) as stat:
        stat.add({"train_loss": 0.1})
        stat.log(0)
        stat.disable()
        assert stat.run.disabled
        stat.add({"train_loss": 0.2})
        stat.log(1)
        calls(stat)
        stat.enable()
        stat.add({"train_loss": 0.3})
        stat.log(2)
        stat.println("back")
        run_dir = stat.run_dir
    assert run_dir is not None
    assert [(u.step, u.data) for u in read_record(run_dir).updates] == [(0, {"train_loss": 0.1}),
                                                                       (2, {"train_loss": 0.3})]
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "log.txt", "points.jsonl", "summary.json"]
    assert capsys.readouterr().out == "back\n"


def test_a_run_made_disabled_opens_its_folder_on_enable(tmp_path: Path, env: str) -> None:
    run = Run(env=env, server=None, log_dir=tmp_path, disabled=True)
    assert run.dir is None
    run.enable()
    assert run.dir is not None and run.dir.parent == tmp_path / env
    run.log_text("t", "x")
    run.close()
    assert (run.dir / "text" / "t.txt").read_text() == "x" and summary(run.dir)["status"] == "finished"
    with pytest.raises(ConfigError, match=r"enable\(\): run '.*' \(env '.*'\) is closed; create a new one to log "
                                          r"again"):
        run.enable()


def test_a_best_legend_shows_markup_in_a_meter_name_as_text(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                            env: str, tmp_path: Path) -> None:
    meters = {"a<b>&": {"type": "AverageValueMeter", "target": "loss", "best": "max"}}
    with FlexLogger(LOSS, meters, env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        stat.add({"a<b>&": 1.0})
        stat.log(0)
        assert legend_names(viz, stat, "loss") == ["a&lt;b&gt;&amp; (best 1 @ 0)"]


def test_add_to_summary(tmp_path: Path) -> None:
    import flexlogger

    with flexlogger.Run(server=None, log_dir=tmp_path, env="e") as run:
        run.add_to_summary("dataset", {"name": "digits", "size": 1797})
        assert run.dir is not None
        assert json.loads((run.dir / "summary.json").read_text())["dataset"] == {"name": "digits", "size": 1797}
        with pytest.raises(flexlogger.RecordCallError, match=r"^add_to_summary\(\): expected `key` to be a non-empty "
                                                             r"string other than the run's own fields .*, but got "
                                                             r"'status'"):
            run.add_to_summary("status", "great")
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["dataset"]["size"] == 1797 and summary["status"] == "finished"
