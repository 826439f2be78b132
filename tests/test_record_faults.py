"""The run record under faults: a full disk, forked children, SIGKILL, damaged files, large arrays, every data form."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from disk import fill

from flexlogger import FlexLogger, Update
from flexlogger.core.plots import DATA_FORMS, PLOT_TYPES, Histogram
from flexlogger.sinks.record import RecordSink, read_record
from flexlogger.sinks.record_format import FORMS

LINE = {"loss": {"type": "line"}}
VALUE = {"v": {"type": "ValueMeter", "target": "loss"}}
ROOT = Path(__file__).resolve().parents[1]

SAMPLES: dict[str, dict[str, Any]] = {
    "points": {"a": 1.5, "b": math.nan, "c": math.inf, "d": -math.inf, "e": 0.1 + 0.2},
    "vector": {"m": np.array([1.0, math.nan, math.inf, -math.inf, 1e-300]), "s": -2.0},
    "matrix": {"m": np.array([[1.0, math.nan], [-math.inf, 0.5]])},
    "histogram": {"w": Histogram((1.0, 0.0, 3.0), -1.0, 2.0), "z": Histogram((0.0,), math.nan, math.inf)},
    "curve": {"roc": (np.array([0.0, 0.5, 1.0]), np.array([math.nan, math.inf, 1.0]))},
    "text": {"t": "nan", "u": "héllo \"quoted\"\n"},
}


def assert_same(got: Any, want: Any) -> None:
    """Exact equality, NaN equal to NaN."""
    if isinstance(want, Histogram):
        assert isinstance(got, Histogram)
        np.testing.assert_array_equal(np.array(got.counts), np.array(want.counts))
        np.testing.assert_array_equal(np.array([got.lo, got.hi]), np.array([want.lo, want.hi]))
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    elif isinstance(want, str):
        assert got == want
    else:
        assert type(got) is type(want) or isinstance(got, np.ndarray) == isinstance(want, np.ndarray)
        np.testing.assert_array_equal(got, want)


def test_every_data_form_has_a_row_and_a_sample() -> None:
    assert set(FORMS) == set(DATA_FORMS) == set(SAMPLES)
    assert {p.data for p in PLOT_TYPES} <= set(FORMS)


@pytest.mark.parametrize("form", DATA_FORMS)
def test_every_data_form_round_trips_exactly(tmp_path: Path, form: str) -> None:
    kind = next(p.name for p in PLOT_TYPES if p.data == form)
    sink = RecordSink(tmp_path, "e", "run")
    sink.write(Update("p", kind, 3, SAMPLES[form], {}, 1))
    sink.close()
    (update,) = read_record(tmp_path / "e" / "run").updates
    assert (update.plot, update.kind, update.step, update.seq) == ("p", kind, 3, 1)
    assert list(update.data) == list(SAMPLES[form])
    for name, value in SAMPLES[form].items():
        assert_same(update.data[name], value)


# a full disk -------------------------------------------------------------------------------------------------------
def test_a_full_disk_never_raises_keeps_whole_lines_counts_unwritten_and_resumes(small_disk: Path) -> None:
    logged = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stat = FlexLogger({"loss": {"type": "line"}, "txt": {"type": "text"}},
                          {"v": {"type": "ValueMeter", "target": "loss"}, "t": {"type": "ValueMeter",
                                                                                 "target": "txt"}},
                          env="e", uid="run", server=None, log_dir=small_disk)
        for step in range(50):  # some lines before the disk fills
            stat.add({"v": float(step), "t": f"step {step} " + "y" * (step * 7 % 300)})
            stat.log(step)
            logged += 1
        assert stat.flush(10) == 0
        filler = fill(small_disk)
        for step in range(50, 450):  # the disk is full: log() goes on, lines that do not fit are not written
            stat.add({"v": float(step), "t": f"step {step} " + "y" * (step * 7 % 300)})
            stat.log(step)
            logged += 1
        assert stat.flush(10) == 0
        filler.unlink()  # space returns: writing resumes
        for step in range(450, 500):
            stat.add({"v": float(step), "t": "z"})
            stat.log(step)
            logged += 1
        stat.close()
    messages = [str(w.message) for w in caught]
    cannot = [m for m in messages if "cannot be written (No space left on device" in m]
    assert len(cannot) == 1, messages  # once per outage
    assert any(re.search(r"run: \d+ of 1000 update\(s\) could not be written \(the disk was full or gone\), counted in "
                         r"summary.json 'unwritten'", m) for m in messages)
    folder = small_disk / "e" / "run"
    summary = json.loads((folder / "summary.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one damaged line: no torn line was left in the middle
        record = read_record(folder)
    assert summary["unwritten"] > 0 and summary["updates"] == 2 * logged
    assert len(record.updates) == summary["updates"] - summary["unwritten"] and record.damaged == ()
    seqs = [u.seq for u in record.updates]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    steps = [u.step for u in record.updates if u.plot == "loss"]
    assert steps[:50] == list(range(50)) and steps[-50:] == list(range(450, 500))  # before and after: all kept
    for line in (folder / "points.jsonl").read_bytes().split(b"\n")[:-1]:
        json.loads(line)


def test_a_full_disk_at_close_warns_instead_of_raising(small_disk: Path) -> None:
    stat = FlexLogger(LINE, VALUE, env="e", uid="run", server=None, log_dir=small_disk)
    stat.add({"v": 1.0})
    stat.log(0)
    stat.flush(10)
    fill(small_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 200):
            stat.add({"v": float(step)})
            stat.log(step)
        stat.close()
    messages = [str(w.message) for w in caught]
    assert any(re.search(r"run cannot be written \(No space left on device", m) for m in messages), messages
    assert any(re.search(r"run: summary.json could not be written \(No space left on device\)", m) for m in messages)


# forked children ---------------------------------------------------------------------------------------------------
def test_a_forked_child_never_writes_or_closes_the_parents_record(tmp_path: Path) -> None:
    stat = FlexLogger(LINE, VALUE, env="e", uid="run", server=None, log_dir=tmp_path)
    for step in range(3):
        stat.add({"v": float(step)})
        stat.log(step)
    stat.flush(10)
    record = stat.run.sinks[0]
    assert isinstance(record, RecordSink)
    pid = os.fork()
    if pid == 0:  # the child: write, log, close; then leave without running the parent's test machinery
        code = 0
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                record.write(Update("loss", "line", 99, {"v": 99.0}, {}, 99))
                record.write(Update("loss", "line", 98, {"v": 98.0}, {}, 98))
                record.close({"status": "child"})
                stat.close()  # the Run's close in a forked child: nothing (the parent owns the run)
            forked = [w for w in caught if "this forked child" in str(w.message)]
            code = 0 if len(forked) == 1 else 3  # warned once
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's summary says running (the run writes it while alive); a child's close would have said child
    assert json.loads((tmp_path / "e" / "run" / "summary.json").read_text())["status"] == "running"
    for step in range(3, 5):
        stat.add({"v": float(step)})
        stat.log(step)
    stat.close()
    record_read = read_record(tmp_path / "e" / "run")
    assert [u.data["v"] for u in record_read.updates] == [0.0, 1.0, 2.0, 3.0, 4.0]
    summary = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert summary["updates"] == 5 and summary["status"] == "finished"  # the parent's, not the child's


def test_a_forked_child_exiting_normally_leaves_the_record_to_the_parent(tmp_path: Path) -> None:
    """The atexit closer runs in the child too: it must not write the parent's summary or lines."""
    script = textwrap.dedent(f"""
        import os, sys, flexlogger
        stat = flexlogger.FlexLogger({LINE!r}, {VALUE!r}, env="e", uid="run", server=None, log_dir={str(tmp_path)!r})
        stat.add({{"v": 1.0}}); stat.log(0)
        pid = os.fork()
        if pid == 0:
            stat.add({{"v": 7.0}}); stat.log(7)
            sys.exit(0)  # atexit handlers run here, in the child
        os.waitpid(pid, 0)
        import json  # the parent's running summary: the child's atexit closer would have said finished
        assert json.load(open({str(tmp_path / "e" / "run" / "summary.json")!r}))["status"] == "running"
        stat.add({{"v": 2.0}}); stat.log(1)
        stat.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "this forked child" in result.stderr
    record = read_record(tmp_path / "e" / "run")
    assert [u.data["v"] for u in record.updates] == [1.0, 2.0]
    assert json.loads((tmp_path / "e" / "run" / "summary.json").read_text())["updates"] == 2


# SIGKILL -----------------------------------------------------------------------------------------------------------
def test_sigkill_mid_run_leaves_every_written_line_readable(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, numpy as np, flexlogger
        stat = flexlogger.FlexLogger({{"loss": {{"type": "line"}}, "map": {{"type": "heatmap"}}}},
                                     {{"v": {{"type": "ValueMeter", "target": "loss"}},
                                       "m": {{"type": "ValueMeter", "target": "map"}}}},
                                     env="e", uid="run", server=None, log_dir={str(tmp_path)!r})
        step = 0
        while True:
            stat.add({{"v": float(step), "m": np.full((60, 60), float(step))}})
            stat.log(step)
            if step == 100:
                stat.flush()
                print("flushed", flush=True)
            step += 1
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "flushed"
        time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = read_record(tmp_path / "e" / "run")
    assert all("incomplete last line" in str(w.message) for w in caught)  # at most a torn last line
    assert len(record.damaged) <= 1
    seqs = [u.seq for u in record.updates]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 202  # a prefix, up to the flush at least
    for update in record.updates:
        if update.plot == "map":
            np.testing.assert_array_equal(update.data["m"], np.full((60, 60), float(update.step)))


# damaged records ---------------------------------------------------------------------------------------------------
def damaged_record(tmp_path: Path) -> Path:
    with FlexLogger(LINE, VALUE, env="e", uid="run", server=None, log_dir=tmp_path) as stat:
        for step in range(4):
            stat.add({"v": float(step)})
            stat.log(step)
    points = tmp_path / "e" / "run" / "points.jsonl"
    lines = points.read_bytes().split(b"\n")[:-1]  # header, plot, 4 updates
    bad = [b"\xff\xfe\x00 not text", b'{"plot": "spark", "kind": "sparkline", "opts": {}}',
           b'{"seq": 90, "plot": "spark", "step": 1, "data": {"a": 1}}',
           b'{"seq": 91, "plot": "nowhere", "step": 1, "data": {"a": 1}}',
           b'{"seq": 92, "plot": "loss", "step": 1, "data": {"v": "not a number"}}', b"[1, 2]"]
    points.write_bytes(b"\n".join([*lines[:3], *bad, *lines[3:]]) + b"\n")
    return points


def test_damaged_lines_anywhere_are_skipped_with_a_warning_naming_each(tmp_path: Path) -> None:
    points = damaged_record(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = read_record(points.parent)
    messages = [str(w.message) for w in caught]
    assert messages[0] == f"{points}:4: skipping a damaged line (not UTF-8 text)"
    assert messages[1].startswith(f"{points}:5: skipping plot 'spark' of unknown kind 'sparkline' and its updates; "
                                  "expected one of line, scatter")
    assert messages[2] == f"{points}:7: skipping an update of plot 'nowhere', which no line before declared"
    assert messages[3].startswith(f"{points}:8: skipping a damaged line") and "expected a number" in messages[3]
    assert messages[4].startswith(f"{points}:9: skipping a damaged line: expected a JSON object, but got '[1, 2]'")
    assert len(messages) == 5
    assert [u.data["v"] for u in record.updates] == [0.0, 1.0, 2.0, 3.0]
    assert record.damaged == (4, 5, 6, 7, 8, 9) and not record.torn and set(record.plots) == {"loss"}


def test_many_damaged_lines_give_ten_warnings_and_one_for_the_rest(tmp_path: Path) -> None:
    points = damaged_record(tmp_path)
    with open(points, "ab") as file:
        file.write(b"junk\n" * 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = read_record(points.parent)
    assert len(caught) == 11 and len(record.damaged) == 36
    assert str(caught[-1].message) == f"{points}: skipped 25 more damaged line(s) (lines 18..42)"


def test_old_format_1_records_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "e" / "exp-2"
    folder.mkdir(parents=True)
    (folder / "points.jsonl").write_text(
        '{"run":{"env":"e","uid":"exp","format":1,"started":"2026-01-01T00:00:00+0000"}}\n'
        '{"plot":"loss","kind":"line","opts":{}}\n{"seq":1,"plot":"loss","step":0,"data":{"v":"nan"}}\n')
    record = read_record(folder)
    assert (record.uid, record.window_uid) == ("exp", "exp") and math.isnan(record.updates[0].data["v"])


def test_a_second_run_of_a_uid_names_its_folder_and_its_windows(tmp_path: Path) -> None:
    for _ in range(2):
        with FlexLogger(LINE, VALUE, env="e", uid="exp1", server=None, log_dir=tmp_path) as stat:
            stat.add({"v": 1.0})
            stat.log(0)
    header = json.loads((tmp_path / "e" / "exp1-2" / "points.jsonl").read_text().splitlines()[0])["run"]
    assert (header["uid"], header["windows"]) == ("exp1-2", "exp1")
    record = read_record(tmp_path / "e" / "exp1-2")
    assert (record.uid, record.window_uid) == ("exp1-2", "exp1")
    summary = json.loads((tmp_path / "e" / "exp1-2" / "summary.json").read_text())
    assert (summary["uid"], summary["windows"]) == ("exp1-2", "exp1")


# close(summary), write_summary -------------------------------------------------------------------------------------
def test_close_merges_the_runs_summary_and_write_summary_replaces_it_while_running(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, "e", "run")
    opts: dict[str, Any] = {}
    for step in range(3):
        sink.write(Update("loss", "line", step, {"a": float(step)}, opts, step + 1))
    sink.flush(10)
    sink.write_summary({"status": "running"})
    running = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert (running["status"], running["closed"], running["updates"], running["points"]) == ("running", None, 3, 3)
    assert not list((tmp_path / "e" / "run").glob("*.tmp"))
    sink.close({"undelivered": 2, "status": "finished"})
    summary = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert (summary["status"], summary["undelivered"], summary["unwritten"]) == ("finished", 2, 0)
    assert summary["closed"] is not None
    sink.close({"status": "again"})  # a second close does nothing
    assert json.loads((tmp_path / "e" / "run" / "summary.json").read_text())["status"] == "finished"


# large arrays ------------------------------------------------------------------------------------------------------
def test_log_of_a_large_matrix_does_not_wait_for_its_encoding(tmp_path: Path) -> None:
    matrix = np.random.default_rng(0).random((2000, 2000))
    with FlexLogger({"map": {"type": "heatmap"}}, {"m": {"type": "ValueMeter", "target": "map"}}, env="e",
                    uid="run", server=None, log_dir=tmp_path) as stat:
        stat.add({"m": matrix})
        start = time.perf_counter()
        stat.log(0)
        blocked = time.perf_counter() - start
        stat.flush()
    assert blocked < 0.5  # encoding it takes seconds: it happens on the record's writer thread
    (update,) = read_record(tmp_path / "e" / "run").updates
    np.testing.assert_array_equal(update.data["m"], matrix)


def test_a_histogram_is_recorded_as_its_bin_counts(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, "e", "run")
    sink.write(Update("h", "histogram", 0, {"w": Histogram((5.0, 0.0, 2.0), -1.0, 1.0)}, {}, 1))
    sink.close()
    line = json.loads((tmp_path / "e" / "run" / "points.jsonl").read_text().splitlines()[-1])
    assert line["data"] == {"w": {"counts": [5.0, 0.0, 2.0], "lo": -1.0, "hi": 1.0}}
    assert read_record(tmp_path / "e" / "run").updates[0].data["w"] == Histogram((5.0, 0.0, 2.0), -1.0, 1.0)


def test_a_vanished_run_folder_never_raises_from_log_or_close(tmp_path: Path) -> None:
    stat = FlexLogger(LINE, VALUE, env="e", uid="run", server=None, log_dir=tmp_path)
    stat.add({"v": 1.0})
    stat.log(0)
    stat.flush(10)
    shutil.rmtree(tmp_path / "e")  # the disk or the folder is gone
    with pytest.warns(RuntimeWarning, match=r"run: summary.json could not be written \(No such file or directory\)"):
        for step in range(1, 50):
            stat.add({"v": float(step)})
            stat.log(step)
        stat.close()
