"""The run record: runs/<env>/<uid>/ with config.json, points.jsonl (line-atomic, NaN/Inf kept) and summary.json."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flexlogger import FlexLogger, FlexLoggerError, Update
from flexlogger.sinks.record import RecordError, RecordSink, decode_data, encode, read_record
from flexlogger.tools.server import find_free_port

ALL_PLOTS = {"loss": {"type": "line", "opts": {"xlabel": "epoch"}}, "pts": {"type": "scatter"},
             "conf": {"type": "heatmap"}, "ap": {"type": "bar"}, "roc": {"type": "curve"}, "txt": {"type": "text"},
             "hist": {"type": "histogram", "opts": {"numbins": 4}}, "img": {"type": "image"}}
ALL_METERS = {"train": {"type": "AverageValueMeter", "target": ["loss", "pts", "txt"]},
              "cm": {"type": "ConfusionMeter", "target": "conf", "args": {"k": 3}},
              "apm": {"type": "APMeter", "target": "ap"},
              "aucm": {"type": "AUCMeter", "target": "roc"},
              "w": {"type": "ValueMeter", "target": "hist"},
              "pic": {"type": "ValueMeter", "target": "img"}}


def feed_all(stat: FlexLogger, steps: int) -> None:
    """Log every plot type; the loss goes through NaN and Inf."""
    values = [0.5, math.nan, math.inf, -math.inf, 0.25]
    for step in range(steps):
        stat.add({"train": values[step % len(values)],
                  "cm": [torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, step % 3])],
                  "apm": [torch.tensor([[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]]), torch.tensor([[1, 0], [0, 1], [1, 1]])],
                  "aucm": [torch.tensor([0.9, 0.4, 0.4, 0.1]), torch.tensor([1, 1, 0, 0])],
                  "w": torch.tensor([0.0, 1.0, 1.0, 2.0, float(step)]),
                  "pic": torch.full((3, 4, 5), step / 10)})
        stat.log(step)


def run_dir(root: Path, env: str, uid: str = "run") -> Path:
    return root / env / uid


def test_layout_config_points_summary(tmp_path: Path, env: str) -> None:
    with FlexLogger(ALL_PLOTS, ALL_METERS, env=env, uid="run", server=None, log_dir=tmp_path) as stat:
        feed_all(stat, 5)
        config = stat.to_config()
    folder = run_dir(tmp_path, env)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "points.jsonl", "summary.json"]
    assert json.loads((folder / "config.json").read_text()) == json.loads(json.dumps(config))
    lines = [json.loads(line) for line in (folder / "points.jsonl").read_text().splitlines()]
    assert lines[0] == {"run": {"env": env, "uid": "run", "windows": "run", "format": 2,
                                "started": lines[0]["run"]["started"]}}
    assert lines[1] == {"plot": "loss", "kind": "line", "opts": {"xlabel": "epoch"}}
    assert lines[2] == {"seq": 1, "plot": "loss", "step": 0, "data": {"train": 0.5}}
    assert [line["data"]["train"] for line in lines if line.get("plot") == "loss" and "seq" in line] == [
        0.5, "nan", "inf", "-inf", 0.25]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["updates"] == 5 * len(ALL_PLOTS) and summary["points"] == 10 and summary["last_step"] == 4
    assert summary["nonfinite"] == 6 and summary["undelivered"] is None and summary["unwritten"] == 0
    assert summary["plots"]["conf"] == {"kind": "heatmap", "updates": 5, "points": 0, "last_step": 4}


def test_every_update_kind_reads_back_equal(tmp_path: Path, env: str) -> None:
    seen: list[Update] = []

    class Keep:  # a sink that keeps what the logger wrote, to compare with what the record reads back
        def write(self, update: Update) -> None:
            seen.append(update)

        def flush(self, timeout: float | None = None) -> int:
            return 0

        def close(self) -> None:
            pass

    with FlexLogger(ALL_PLOTS, ALL_METERS, env=env, uid="run", server=None, log_dir=tmp_path,
                    sinks=[Keep()]) as stat:
        feed_all(stat, 4)
    record = read_record(run_dir(tmp_path, env))
    assert (record.env, record.uid, record.torn) == (env, "run", False)
    assert set(record.plots) == set(ALL_PLOTS) and record.plots["hist"] == ("histogram", {"numbins": 4})
    assert len(record.updates) == len(seen) == 4 * len(ALL_PLOTS)
    for got, want in zip(record.updates, seen):
        assert (got.plot, got.kind, got.step, got.seq, dict(got.opts)) == (
            want.plot, want.kind, want.step, want.seq, dict(want.opts))
        assert list(got.data) == list(want.data)
        for name, value in want.data.items():
            if isinstance(value, str):
                assert got.data[name] == value
            elif isinstance(value, tuple):
                for a, b in zip(got.data[name], value):
                    np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_array_equal(got.data[name], value)  # NaN == NaN here


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1.5, np.float32(2.5),
                                   np.array([[1.0, math.nan], [-math.inf, 0.0]]), np.arange(3)])
def test_encode_decode_round_trip(value: Any) -> None:
    line = json.loads(json.dumps({"v": encode(value)}, allow_nan=False))
    kind = "line" if np.ndim(value) == 0 else "heatmap"
    np.testing.assert_array_equal(decode_data(kind, line)["v"], value)


def test_text_strings_stay_strings() -> None:
    assert decode_data("text", {"m": "nan"}) == {"m": "nan"}


def test_torn_last_line_is_skipped_and_a_bad_middle_line_too(tmp_path: Path, env: str) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="run", server=None, log_dir=tmp_path) as stat:
        for step in range(3):
            stat.add({"v": float(step)})
            stat.log(step)
    points = run_dir(tmp_path, env) / "points.jsonl"
    with open(points, "a") as file:
        file.write('{"seq": 4, "plot": "loss", "st')  # the run was killed mid-write
    with pytest.warns(RuntimeWarning, match=r"points.jsonl: skipping the incomplete last line 6"):
        record = read_record(points.parent)
    assert record.torn and [u.data["v"] for u in record.updates] == [0.0, 1.0, 2.0] and record.damaged == (6,)
    lines = points.read_text().splitlines()
    points.write_text("\n".join([*lines[:2], "garbage", *lines[2:-1]]) + "\n")
    with pytest.warns(RuntimeWarning, match=r"points.jsonl:3: skipping a damaged line: expected a JSON object, but "
                                            r"got 'garbage'"):
        record = read_record(points.parent)
    assert not record.torn and [u.data["v"] for u in record.updates] == [0.0, 1.0, 2.0] and record.damaged == (3,)


def test_not_a_run_folder_lists_the_runs_under_it(tmp_path: Path, env: str) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {}, env=env, uid="run", server=None, log_dir=tmp_path):
        pass
    with pytest.raises(RecordError, match=rf"expected a run record folder holding points.jsonl, but '{tmp_path}' "
                                          rf"has none; run folders under it: {tmp_path / env / 'run'}"):
        read_record(tmp_path)


def test_a_fixed_uid_run_twice_keeps_both_records(tmp_path: Path, env: str) -> None:
    for value in (1.0, 2.0):
        with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                        uid="fixed", server=None, log_dir=tmp_path) as stat:
            stat.add({"v": value})
            stat.log(0)
    assert sorted(p.name for p in (tmp_path / env).iterdir()) == ["fixed", "fixed-2"]
    assert read_record(tmp_path / env / "fixed-2").updates[0].data == {"v": 2.0}


def test_summary_counts_undelivered_points(tmp_path: Path, env: str) -> None:
    stat = FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                      uid="run", port=find_free_port(), log_dir=tmp_path, close_timeout=0.5)
    with pytest.warns(RuntimeWarning) as caught:  # the outage is reported by whichever call comes after it
        for step in range(7):
            stat.add({"v": float(step)})
            stat.log(step)
        assert stat.flush(2.0) == 7  # long enough for the sender to have tried, however loaded the machine
        stat.close()
    messages = [str(w.message) for w in caught]
    assert any("does not answer" in m for m in messages) and any(m.startswith("7 point(s)") for m in messages)
    summary = json.loads((run_dir(tmp_path, env) / "summary.json").read_text())
    assert summary["undelivered"] == 7 and summary["points"] == 7


def test_lines_are_written_by_the_writer_thread_without_flush(tmp_path: Path, env: str) -> None:
    sink, opts = RecordSink(tmp_path, env, "run"), {"title": "loss"}  # one opts object: the plot is declared once
    sink.write(Update("loss", "line", 0, {"a": 1.0}, opts, 1))
    points = tmp_path / env / "run" / "points.jsonl"
    deadline = time.monotonic() + 5.0  # the writer writes every ~10 ms on its own, without flush() or close()
    while points.read_text().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert points.read_text().count("\n") == 3
    sink.write(Update("loss", "line", 1, {"a": 2.0}, opts, 2))
    assert sink.flush(5.0) == 0 and points.read_text().count("\n") == 4
    sink.close()
    with pytest.raises(FlexLoggerError, match=r"the run record .* is closed"):
        sink.write(Update("loss", "line", 1, {"a": 1.0}, {}, 2))


@pytest.mark.parametrize(("env", "uid", "folder"), [("a/b", "run", "a_b/run"), ("../up", "..", ".._up/__"),
                                                    ("my env", "x\\y", "my env/x_y")])
def test_env_and_uid_are_one_folder_each_inside_log_dir(tmp_path: Path, env: str, uid: str, folder: str) -> None:
    root = tmp_path / "runs"
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env, uid=uid,
                    server=None, log_dir=root) as stat:
        stat.add({"v": 1.0})
        stat.log(0)
    assert stat.run_dir == root / folder
    record = read_record(root / folder)
    assert (record.env, record.uid, record.window_uid, len(record.updates)) == (env, folder.split("/")[1], uid, 1)


def test_a_logger_dropped_without_close_gets_its_summary_at_exit(tmp_path: Path) -> None:
    """A notebook cell run again: the first logger is garbage before the interpreter exits."""
    script = ("import gc, flexlogger\n"
              "def make(uid):\n"
              "    return flexlogger.FlexLogger({'loss': {'type': 'line'}}, {'v': {'type': 'ValueMeter', "
              f"'target': 'loss'}}}}, env='e', uid=uid, server=None, log_dir={str(tmp_path)!r})\n"
              "s = make('first'); s.add({'v': 1.0}); s.log(0)\n"
              "s = make('second'); gc.collect()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    summary = json.loads((tmp_path / "e" / "first" / "summary.json").read_text())
    assert (summary["updates"], summary["last_step"]) == (1, 0)
    assert (tmp_path / "e" / "second" / "summary.json").is_file()
