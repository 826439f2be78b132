"""Comparing runs: several run records drawn in one env (one trace per run and meter), followed while a live logger
writes, and the hparams table; replay --follow of lines any program appends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import visdom
from torch import nn

import flexlogger
from flexlogger import ConfigError, FlexLogger, UnknownNameError
from flexlogger.model.logger import model_statistics
from flexlogger.sinks.record import RecordError
from flexlogger.tools.cli import main
from flexlogger.tools.compare import hparams_table
from flexlogger.tools.follow import RecordFollower
from flexlogger.tools.server import VisdomServer

PLOTS = {"loss": {"type": "line"}, "acc": {"type": "line"}, "classes": {"type": "bar"}}
METERS = {"train_loss": {"type": "ValueMeter", "target": "loss"},
          "test_loss": {"type": "ValueMeter", "target": "loss"},
          "test_acc": {"type": "ValueMeter", "target": "acc"},
          "per_class": {"type": "ValueMeter", "target": "classes"}}
ROOT = Path(__file__).resolve().parent.parent


def loss(run: int, step: int) -> float:
    return 1.0 / (step + 1) + run


def acc(run: int, step: int) -> float:
    return float(step * (run + 1) % 7)


def log_steps(stat: FlexLogger, run: int, steps: range) -> None:
    for step in steps:
        values = {"train_loss": loss(run, step), "test_loss": 2 * loss(run, step), "test_acc": acc(run, step),
                  "per_class": [[1.0, 2.0]]}
        known = {m for meters in stat.get_definitions().values() for m in meters}
        stat.add({k: v for k, v in values.items() if k in known})
        stat.log(step)


def make_run(root: Path, env: str, uid: str, run: int, steps: int, hparams: dict[str, Any] | None = None,
             plots: dict[str, Any] | None = None) -> Path:
    with FlexLogger(plots or PLOTS, {m: s for m, s in METERS.items() if s["target"] in (plots or PLOTS)},
                    env=env, uid=uid, server=None, log_dir=root) as stat:
        if hparams is not None:
            stat.log_hparams(hparams)  # hparams.json, as a run writes it
        log_steps(stat, run, range(steps))
        path = stat.run.dir
    assert path is not None
    return path


def traces(viz: visdom.Visdom, env: str, win: str) -> dict[str, tuple[list[Any], list[Any]]]:
    data = json.loads(viz.get_window_data(win, env))["content"]["data"]
    return {t["name"]: (t["x"], t["y"]) for t in data}


def test_compare_two_runs_one_still_written_by_a_live_logger(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                            tmp_path: Path, env: str) -> None:
    done = make_run(tmp_path, "exp", "a", 0, 30, hparams={"lr": 0.1, "opt": {"name": "sgd"}})
    live = FlexLogger(PLOTS, METERS, env="exp", uid="b", server=None, log_dir=tmp_path)
    log_steps(live, 1, range(10))
    live.flush()
    assert live.run.dir is not None
    live.run.log_hparams({"lr": 0.01})
    results: list[Any] = []
    follower = threading.Thread(target=lambda: results.append(flexlogger.compare(
        [done, live.run.dir], env=env, port=visdom_server.port, follow=True, poll=0.05, min_interval=0.05)))
    follower.start()
    try:
        time.sleep(0.3)  # compare is drawing the first 10 steps of b
        for start in range(10, 50, 10):
            log_steps(live, 1, range(start, start + 10))
            time.sleep(0.1)
    finally:
        live.close()  # b finishes: compare reads what is left and returns
        follower.join(30)
    assert not follower.is_alive() and results
    result = results[0]
    assert result.skipped == {}  # the bar plot (and the runs' own hparams text window) are not compared
    assert result.windows == {"acc": "compare_acc", "loss": "compare_loss"} and result.table_window == "compare__runs"
    assert result.points == 2 * 30 + 2 * 50 + 30 + 50
    drawn = traces(viz, env, "compare_loss")
    assert set(drawn) == {"a/train_loss", "a/test_loss", "b/train_loss", "b/test_loss"}
    assert drawn["a/train_loss"] == (list(range(30)), [loss(0, s) for s in range(30)])
    assert drawn["b/test_loss"] == (list(range(50)), [2 * loss(1, s) for s in range(50)])  # followed to the end
    assert traces(viz, env, "compare_acc")["b/test_acc"][1] == [acc(1, s) for s in range(50)]
    table = json.loads(viz.get_window_data("compare__runs", env))["content"]
    assert "<td>a</td><td>0.1</td><td>sgd</td>" in table and "<td>b</td><td>0.01</td>" in table
    rows = {row["run"]: row for row in result.table.rows}
    assert rows["a"]["lr"] == 0.1 and rows["a"]["opt.name"] == "sgd" and rows["b"]["lr"] == 0.01
    assert rows["b"]["train_loss last"] == loss(1, 49) and rows["b"]["train_loss best"] == loss(1, 49)
    assert rows["a"]["test_acc best"] == 6.0 and rows["a"]["test_acc last"] == acc(0, 29)


def test_the_hparams_table_rows_best_and_last_and_sorting(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "e", f"r{i}", i, 8, hparams={"lr": 10.0 ** -i}) for i in range(3)]
    table = hparams_table(runs, meters=["test_acc", "train_loss"], sort="test_acc")
    assert table.headers == ["run", "lr", "test_acc best", "test_acc last", "train_loss best", "train_loss last"]
    assert table.best == {"test_acc": "max", "train_loss": "min"}  # from the names: acc is a score, loss is not
    best_acc = {i: max(acc(i, s) for s in range(8)) for i in range(3)}
    order = sorted(range(3), key=lambda i: -best_acc[i])
    assert [row["run"] for row in table.rows] == [f"r{i}" for i in order]
    for row in table.rows:
        i = int(row["run"][1])
        assert row == {"run": f"r{i}", "lr": 10.0 ** -i, "test_acc best": best_acc[i], "test_acc last": acc(i, 7),
                       "train_loss best": loss(i, 7), "train_loss last": loss(i, 7)}
    by_loss = hparams_table(runs, sort="train_loss", names=["x", "y", "z"])
    assert [row["run"] for row in by_loss.rows] == ["x", "y", "z"]  # least loss first
    assert "test_loss best" in by_loss.headers and by_loss.text().splitlines()[0].split()[:2] == ["run", "lr"]


def test_a_meter_s_best_direction_comes_from_its_spec(tmp_path: Path) -> None:
    meters = {"train_loss": {**METERS["train_loss"], "best": "max"}}  # a loss whose best is its greatest
    with FlexLogger({"loss": PLOTS["loss"]}, meters, env="e", uid="r", server=None, log_dir=tmp_path) as stat:
        for step in range(5):
            stat.add({"train_loss": loss(0, step)})
            stat.log(step)
        run = stat.run.dir
    assert run is not None and json.loads((run / "config.json").read_text())["meters"]["train_loss"]["best"] == "max"
    table = hparams_table([run], meters=["train_loss"])
    assert table.best == {"train_loss": "max"} and table.rows[0]["train_loss best"] == loss(0, 0)


def test_runs_with_different_plots(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path,
                                   env: str) -> None:
    a = make_run(tmp_path, "e", "a", 0, 5)
    b = make_run(tmp_path, "e", "b", 1, 5, plots={"loss": {"type": "line"}})
    shared = flexlogger.compare([a, b], env=env, port=visdom_server.port)
    assert set(shared.windows) == {"loss"} and shared.skipped == {}
    only_a = flexlogger.compare([a, b], plots=["acc"], names=["one", "two"], env=env, port=visdom_server.port)
    assert only_a.traces == {"acc": ["one/test_acc"]}
    assert set(traces(viz, env, "compare_acc")) == {"one/test_acc"}
    with pytest.raises(UnknownNameError, match=r"^compare\(\): no run has plot\(s\) 'los': unknown plot 'los' "
                                               r"\(did you mean 'loss'\?\); valid plots: acc, classes, loss$"):
        flexlogger.compare([a, b], plots=["los"], port=visdom_server.port)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"names": ["x"]}, ConfigError, r"^compare\(\): expected one name per run \(2\), but got 1: 'x'$"),
    ({"names": ["x", "x"]}, ConfigError, r"^compare\(\): expected distinct non-empty run names without '/', but got"),
    ({"names": ["x/1", "y"]}, ConfigError, r"without '/', but got 'x/1'$"),
    ({"plots": ["classes"]}, ConfigError,
     r"^compare\(\): the runs share no line or scatter plot to compare; their plots: acc, classes, loss; expected"),
    ({"sort": "acc"}, UnknownNameError,
     r"^compare\(\): cannot sort by 'acc': unknown table meter 'acc' \(did you mean 'test_acc'\?\)"),
    ({"meters": ["nope"]}, UnknownNameError, r"^compare\(\): no run has meter\(s\) 'nope' in the compared plots"),
])
def test_compare_errors(tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    a, b = make_run(tmp_path, "e", "a", 0, 3), make_run(tmp_path, "e", "b", 1, 3)
    with pytest.raises(error, match=match):
        flexlogger.compare([a, b], port=1, **kwargs)  # refused before any server is asked


def test_compare_of_a_folder_without_record_and_of_no_run(tmp_path: Path) -> None:
    make_run(tmp_path, "e", "a", 0, 3)
    with pytest.raises(RecordError, match=r"^compare\(\): expected a run record folder holding points\.jsonl, but "
                                          r".* has none; run folders under it: .*e/a$"):
        flexlogger.compare([tmp_path])
    with pytest.raises(ConfigError, match=r"^compare\(\): expected at least one run folder, but got none$"):
        flexlogger.compare([])


def test_runs_sharing_a_uid_are_named_by_their_folders(tmp_path: Path) -> None:
    first, second = make_run(tmp_path, "e", "same", 0, 2), make_run(tmp_path, "e", "same", 1, 2)
    assert second.name == "same-2"
    assert [row["run"] for row in hparams_table([first, second]).rows] == ["same", "same-2"]


def test_cli_compare_table_and_draw(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path, env: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path, "e", "a", 0, 4, hparams={"lr": 0.5})
    b = make_run(tmp_path, "e", "b", 1, 4, hparams={"lr": 0.25})
    assert main(["compare", str(a), str(b), "--table", "--sort", "train_loss", "--meters", "train_loss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "lr", "train_loss", "best", "train_loss", "last"]
    assert lines[2].split() == ["a", "0.5", "0.25", "0.25"] and lines[3].split() == ["b", "0.25", "1.25", "1.25"]
    assert main(["compare", str(a), str(b), "--plots", "loss", "--names", "A,B", "--env", env,
                 "--port", str(visdom_server.port)]) == 0
    assert "2 run(s), 1 plot(s), 16 point(s)" in capsys.readouterr().out
    assert set(traces(viz, env, "compare_loss")) == {"A/train_loss", "A/test_loss", "B/train_loss", "B/test_loss"}
    assert main(["compare", str(a), "--plots", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flexlogger compare: error: compare(): no run has plot(s) 'nope'") and err.count("\n") == 1


def model_run(root: Path, uid: str, lr: float) -> Path:
    """A run of a FlexLogger's loss beside a TooledModelLogger's per-layer statistics (the defaults, and a bias)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with flexlogger.get_preset_logger("loss", phases=("train",), env="e", uid=uid, server=None,
                                      log_dir=root) as stat:
        stat.log_hparams({"lr": lr})
        with flexlogger.TooledModelLogger(model, logger=stat, params=["bias"], hold=0) as tml:
            for step in range(4):
                loss = model(torch.randn(8, 4)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                tml.step(log=True)
                stat.add({"train_loss": loss.item()})
                stat.log(step)
        assert stat.run.dir is not None
        return stat.run.dir


def test_the_table_shows_the_user_s_meters_unless_asked_for_the_per_layer_statistics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = model_run(tmp_path, "a", 0.1), model_run(tmp_path, "b", 0.01)
    assert hparams_table([a, b]).headers == ["run", "lr", "train_loss best", "train_loss last"]
    everything = hparams_table([a, b], all_meters=True).headers
    assert "0.Grad_out.std best" in everything and "2.Weights.update_ratio last" in everything
    assert "0.bias.std best" in everything and "0.bias_grad.std best" in everything
    assert len(everything) > 30  # what the default leaves out
    weights = hparams_table([a, b], meters=["*.Weights.std", "train_loss"]).headers
    assert weights == ["run", "lr", "0.Weights.std best", "0.Weights.std last", "2.Weights.std best",
                       "2.Weights.std last", "train_loss best", "train_loss last"]
    with pytest.raises(UnknownNameError, match=r"^compare\(\): no run has meter\(s\) '\*\.Wieghts\.std'"):
        hparams_table([a, b], meters=["*.Wieghts.std"])

    assert main(["compare", str(a), str(b), "--table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "lr", "train_loss", "best", "train_loss", "last"] and len(lines) == 4
    assert max(len(line) for line in lines) < 60
    assert main(["compare", str(a), str(b), "--table", "--all"]) == 0
    assert "0.Grad_out.std best" in capsys.readouterr().out


def test_model_statistics_names_the_per_layer_series_only() -> None:
    names = ["train_loss", "val.acc.top1", "fc1.Grad_out.std", "conv1.Weights.update_ratio", "fc1.bias.norm",
             "fc1.bias_grad.norm", "fc1.Weights.values", "layer.0.attn.Outputs.snr", "a.b.c"]
    assert model_statistics(names) == {"fc1.Grad_out.std", "conv1.Weights.update_ratio", "fc1.bias.norm",
                                       "fc1.bias_grad.norm", "fc1.Weights.values", "layer.0.attn.Outputs.snr"}


def test_the_follower_reads_whole_lines_only_and_skips_damaged_ones(tmp_path: Path) -> None:
    run = tmp_path / "e" / "u"
    run.mkdir(parents=True)
    points = run / "points.jsonl"
    points.write_text('{"run": {"env": "e", "uid": "u", "windows": "w", "format": 2}}\n'
                      '{"plot": "loss", "kind": "line", "opts": {}}\n{"seq": 1, "plot": "loss", "step": 0, "da')
    follower = RecordFollower(run)
    assert follower.poll() == [] and (follower.env, follower.window_uid) == ("e", "w")
    with open(points, "a") as file:
        file.write('ta": {"train": 0.5}}\n{"seq": 2, "plot": "acc", "step": 0, "data": {"x": 1}}\n')
    with pytest.warns(RuntimeWarning, match=r"points.jsonl:4: skipping an update of plot 'acc', which no line "
                                            r"before declared"):
        updates = follower.poll()
    assert [(u.plot, u.step, dict(u.data)) for u in updates] == [("loss", 0, {"train": 0.5})]
    assert follower.damaged == 1 and not follower.finished
    with open(points, "a") as file:
        file.write('{"seq": 3, "plot": "loss", "step": 1, "data": {"train": "nan"}}\n')
    (update,) = follower.poll()
    assert update.step == 1 and update.data["train"] != update.data["train"]  # "nan" read back as NaN


def test_replay_follow_draws_lines_appended_by_a_shell(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                       tmp_path: Path, env: str) -> None:
    run = tmp_path / env / "shell"
    run.mkdir(parents=True)
    points = run / "points.jsonl"
    points.write_text('{"plot": "loss", "kind": "line", "opts": {}}\n')
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "replay", "--follow", str(run), "--port",
                             str(visdom_server.port), "--env", env, "--poll", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for step in range(3):
            line = json.dumps({"seq": step + 1, "plot": "loss", "step": step, "data": {"train": 0.5 / (step + 1)}})
            subprocess.run(["sh", "-c", f"echo '{line}' >> '{points}'"], check=True)
        deadline = time.monotonic() + 20
        drawn: dict[str, Any] = {}
        while time.monotonic() < deadline and drawn.get("train", ([], []))[0] != [0, 1, 2]:
            time.sleep(0.1)
            try:
                drawn = traces(viz, env, "shell_loss")
            except (ValueError, KeyError, TypeError):  # not drawn yet
                pass
        assert drawn["train"] == ([0, 1, 2], [0.5, 0.25, 0.5 / 3])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Replayed" in out and "1 window(s), 3 update(s), 3 point(s)" in out


def test_replay_follow_ends_when_the_run_finishes(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path,
                                                  env: str) -> None:
    live = FlexLogger({"loss": {"type": "line"}}, {"train_loss": METERS["train_loss"]}, env=env, uid="live",
                      server=None, log_dir=tmp_path)
    live.add({"train_loss": 1.0})
    live.log(0)
    live.flush()
    assert live.run.dir is not None
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(flexlogger.replay(
        live.run.dir, port=visdom_server.port, follow=True, poll=0.05)))
    thread.start()
    time.sleep(0.2)
    for step in range(1, 20):
        live.add({"train_loss": float(step)})
        live.log(step)
    live.close()
    thread.join(30)
    assert results and results[0].updates == 20
    assert traces(viz, env, "live_loss")["train_loss"] == (list(range(20)), [1.0, *map(float, range(1, 20))])


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", r"hparams\.json: expected a JSON object of hyperparameters, but it is not JSON \("),
    ("[1, 2]", r"hparams\.json: expected a JSON object of hyperparameters, but got list$"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, r"hparams\.json: expected a JSON object of hyperparameters, but it "
                                               r"is nested too deeply to read$"),
    ('{"a": ' * 40 + "1" + "}" * 40, r"hparams\.json: expected hyperparameters nested at most 32 deep, but "
                                     r"'a\.a\..*' holds more$"),
    ('{"a": "' + "x" * (9 << 20) + '"}', r"hparams\.json: 9437193 bytes; expected a JSON object of hyperparameters "
                                         r"of at most 8388608 bytes$"),
])
def test_a_damaged_hparams_file_is_an_error_naming_it(tmp_path: Path, text: str, match: str) -> None:
    run = make_run(tmp_path, "e", "r", 0, 2)
    (run / "hparams.json").write_text(text)
    with pytest.raises(RecordError, match=match):
        hparams_table([run])


def test_ctrl_c_stops_a_compare_without_follow_at_once(tmp_path: Path) -> None:
    """Without ``--follow`` nothing waits on a stop event, so Ctrl-C interrupts the command (it used to be held
    until the compare ended on its own)."""
    run = make_run(tmp_path, "e", "r1", 0, 3)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    port = silent.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "compare", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        silent.settimeout(60)
        conn, _ = silent.accept()  # the command is talking to the "server"
        proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - began < 5, err
        assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
        conn.close()
    finally:
        proc.kill()
        silent.close()
