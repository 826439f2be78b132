"""Run: one run, many writers; one validation path (constructors and load_config agree); keyword errors."""

from __future__ import annotations

import inspect
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import visdom
from readback import traces
from torch import nn

import flexlogger
from flexlogger import ConfigError, FlexLogger, InvalidConfigError, Run, TooledModelLogger, load_config
from flexlogger.experiment import RECORD_CALLS, RecordCallError
from flexlogger.experiment.checks import STATUS_EVERY, STATUS_PLOT
from flexlogger.sinks.record import POINTS, read_record
from flexlogger.tools.server import VisdomServer

LOSS = {"loss": {"type": "line"}}
TRAIN = {"train_loss": {"type": "AverageValueMeter", "target": "loss"}}


def sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flexlogger-sender")]


def test_two_loggers_on_one_run_write_one_record_through_one_sender(
        tmp_path: Path, visdom_server: VisdomServer, env: str, viz: visdom.Visdom) -> None:
    before = len(sender_threads())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    with Run(env=env, port=visdom_server.port, log_dir=tmp_path, min_interval=0.05) as run:
        stat = FlexLogger(LOSS, TRAIN, run=run)
        tml = TooledModelLogger(model, logger=stat, groups=["Weights"], stats=["mean"], mode="by_layer")
        assert len(sender_threads()) == before + 1  # one sender for the run, whatever the loggers
        assert stat.run is run and tml.logger is stat and stat.env == env and stat.uid == run.uid
        for step in range(3):
            optim.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optim.step()
            stat.add({"train_loss": loss.item()})
            tml.step(log=True)
            stat.log(step, keys="loss")
        assert run.flush(10) == 0
        assert [xs for xs, _ in traces(viz, stat, "loss").values()] == [[0, 1, 2]]
        assert traces(viz, stat, "0")["0.Weights.mean"][0] == [0, 1, 2]  # both sets of windows, one env
        tml.close()
        stat.close()
        assert not run.closed  # the loggers were given the run: it is the run's to close
    folders = [p for p in (tmp_path / env).iterdir()]
    assert folders == [run.dir]
    record = read_record(run.dir)
    assert {u.plot for u in record.updates} == {"loss", "0", "2"}
    assert [u.seq for u in record.updates] == sorted({u.seq for u in record.updates})  # one sequence per run
    config = json.loads((run.dir / "config.json").read_text())
    assert set(config["plots"]) == {"loss", "0", "2"} and "train_loss" in config["meters"]


def test_two_loggers_cannot_draw_the_same_window() -> None:
    with Run(server=None, log_dir=None) as run:
        FlexLogger(LOSS, TRAIN, run=run)
        with pytest.raises(ConfigError, match=r"^FlexLogger\(\)|plot\(s\) 'loss' are already drawn by another logger "
                                              r"of run"):
            FlexLogger(LOSS, {"test_loss": {"type": "AverageValueMeter", "target": "loss"}}, run=run)


def test_a_logger_without_run_makes_and_closes_its_own(tmp_path: Path) -> None:
    with FlexLogger(LOSS, TRAIN, server=None, log_dir=tmp_path, env="e", uid="u") as stat:
        assert isinstance(stat.run, Run) and stat.run_dir == tmp_path / "e" / "u" and stat.run.dir == stat.run_dir
    assert stat.run.closed


def test_default_uids_differ_within_a_second() -> None:
    uids = {Run(server=None, log_dir=None).uid for _ in range(20)}
    assert len(uids) == 20
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", uid) for uid in uids)


# keyword errors name the public function ------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "match"), [
    (lambda: FlexLogger(LOSS, TRAIN, enviroment="x"),
     r"^FlexLogger\(\): unknown keyword argument 'enviroment' \(did you mean 'env'\?\); valid keyword arguments: "
     r"plots, meters, run, sinks, env, uid"),
    (lambda: Run(prot=8097),
     r"^Run\(\): unknown keyword argument 'prot' \(did you mean 'port'\?\); valid keyword arguments: env, uid, server"),
    (lambda: TooledModelLogger(nn.Linear(2, 2), enviroment="x", server=None),
     r"^TooledModelLogger\(\): unknown keyword argument 'enviroment' \(did you mean 'env'\?\)"),
    (lambda: flexlogger.get_preset_logger("loss", enviroment="x"),
     r"^get_preset_logger\(\): unknown keyword argument 'enviroment' \(did you mean 'env'\?\); valid keyword "
     r"arguments: names, phases, preset_args, run, sinks, env, "),
    (lambda: FlexLogger(LOSS, TRAIN, run=Run(server=None, log_dir=None), env="x"),
     r"^FlexLogger\(\): env: options of the run, but a run was given \(run=\); expected them on the Run"),
    (lambda: TooledModelLogger(nn.Linear(2, 2), logger=FlexLogger(server=None, log_dir=None), env="x"),
     r"^TooledModelLogger\(\): env: options of a FlexLogger, but a logger was given"),
    (lambda: FlexLogger("loss"),  # type: ignore[arg-type]
     r"^FlexLogger\(\): expected `plots` to be a mapping of name -> definition \(a dict\), but got str 'loss'"),
    (lambda: FlexLogger(LOSS, TRAIN, uid=123),
     r"^FlexLogger\(\): uid: expected a non-empty string without NUL characters, or None .*, but got 123"),
    (lambda: FlexLogger(LOSS, TRAIN, log_dir=123),
     r"^FlexLogger\(\): log_dir: expected a folder \(str or Path\) for the run record, or None .*, but got 123"),
    (lambda: FlexLogger(LOSS, TRAIN, run="main"),  # type: ignore[arg-type]
     r"^FlexLogger\(\): expected `run` to be a flexlogger.Run or None, but got str 'main'"),
    (lambda: flexlogger.get_preset_logger(123),  # type: ignore[arg-type]
     r"^get_preset_logger\(\): expected preset names such as 'loss\+acc' or \['loss', 'acc'\], but got int 123"),
])
def test_bad_keywords_name_the_public_function(call: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidConfigError) as info:
        FlexLogger({"l": {"type": "lines"}}, TRAIN, port=0, enviroment="x")
    text = str(info.value)
    assert text.startswith("FlexLogger(): 4 problems:")
    for part in ("port: expected an int from 1 to 65535", "unknown keyword argument 'enviroment'",
                 "plots.l.type: unknown plot type 'lines'", "meters.train_loss.target: unknown plot 'loss'"):
        assert part in text


def test_add_and_log_type_errors() -> None:
    with FlexLogger(LOSS, TRAIN, server=None, log_dir=None) as stat:
        with pytest.raises(flexlogger.MeterInputError, match=r"^add\(\): expected a mapping of meter name -> value, "
                                                             r"e.g. \{'train_loss': 0.7\}, but got list \[1, 2\]"):
            stat.add([1, 2])  # type: ignore[arg-type]
        stat(train_loss=0.5)  # the original flexilogger's call style
        stat({'train_loss': 1.0}, train_loss=1.5)  # a mapping first, keywords win
        assert stat.value()["train_loss"][0] == 1.0
        with pytest.raises(flexlogger.ArgumentTypeError, match=r"^expected `keys` to be a meter or plot name, or a "
                                                               r"list of them, but got int 5") as info:
            stat.log(keys=5)  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError) and not isinstance(info.value, ConfigError)


def test_a_3d_array_for_a_heatmap_is_refused_at_add() -> None:
    with FlexLogger({"h": {"type": "heatmap"}}, {"m": {"type": "ValueMeter", "target": "h"}}, server=None,
                    log_dir=None) as stat:
        with pytest.raises(flexlogger.MeterInputError, match=r"^add\(\): meter 'm' feeds the heatmap plot 'h', which "
                                                             r"draws a 2-d matrix; got an array of shape \(2, 3, 4\)"):
            stat.add({"m": torch.zeros(2, 3, 4)})
        stat.add({"m": torch.zeros(2, 3)})


# one validation path: what a constructor refuses, load_config reports, with its path ----------------------------
BAD_DEFINITIONS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"loss": {"type": "line", "opts": {"markersize": -1}}}, TRAIN, "plots.loss.opts"),
    ({"loss": {"type": "histogram", "opts": {"numbins": 1}}}, {}, "plots.loss.opts.numbins"),
    ({"loss": {"type": "line", "opts": {"legend": ["a"]}}}, TRAIN, "plots.loss.opts.legend"),
    ({"loss": {"type": "lines"}}, {}, "plots.loss.type"),
    (LOSS, {"m": {"type": "AverageMeter", "target": "loss"}}, "meters.m.type"),
    (LOSS, {"m": {"type": "ConfusionMeter", "target": "loss", "args": {"k": 3}}}, "meters.m.target"),
    (LOSS, {"m": {"type": "ConfusionMeter", "target": "h", "args": {"k": "ten"}}}, "meters.m.args"),
    (LOSS, {"loss": {"type": "ValueMeter", "target": "other"}, "x": {"type": "ValueMeter", "target": "loss"}},
     "meters.loss"),
    ({"h": {"type": "heatmap"}}, {"a": {"type": "ValueMeter", "target": "h"}, "b": {"type": "ValueMeter",
                                                                                   "target": "h"}}, "plots.h"),
]
BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"max_points": 5}, "max_points"), ({"server": "localhost"}, "server"), ({"timeout": float("inf")}, "timeout"),
    ({"port": 0}, "port"), ({"min_interval": -1}, "min_interval"), ({"env": ""}, "env"), ({"strict": "yes"}, "strict"),
    ({"base_url": "visdom/"}, "base_url"), ({"save_every": float("nan")}, "save_every"),
]


@pytest.mark.parametrize(("plots", "meters", "path"), BAD_DEFINITIONS)
def test_a_definition_the_constructor_refuses_load_config_reports(plots: dict[str, Any], meters: dict[str, Any],
                                                                  path: str) -> None:
    with pytest.raises(ConfigError) as built:
        FlexLogger(plots, meters, server=None, log_dir=None)
    with pytest.raises(InvalidConfigError) as loaded:
        load_config({"plots": plots, "meters": meters})
    assert str(built.value).startswith("FlexLogger(): ") and f"{path}: " in str(built.value)
    assert any(p.startswith(path) for p in loaded.value.problems), loaded.value.problems


@pytest.mark.parametrize(("options", "path"), BAD_OPTIONS)
def test_an_option_the_constructor_refuses_load_config_reports(options: dict[str, Any], path: str,
                                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^FlexLogger\(\): {path}: expected "):
        FlexLogger(LOSS, TRAIN, log_dir=tmp_path, **options)
    assert not list(tmp_path.iterdir())  # refused before any folder or thread was made
    with pytest.raises(InvalidConfigError) as loaded:
        load_config({"plots": LOSS, "meters": TRAIN, **options})
    assert [p.split(":")[0] for p in loaded.value.problems] == [path]


def test_preset_info_takes_composed_names() -> None:
    info = flexlogger.preset_info("loss+Acc")
    assert info["name"] == "loss+acc" and [p["name"] for p in info["presets"]] == ["loss", "acc"]
    assert info["meter_names"] == ["train_loss", "test_loss", "train_acc", "test_acc"]
    assert set(info["plots"]) == {"loss", "acc"}
    with pytest.raises(flexlogger.UnknownNameError, match=r"unknown preset 'acx'"):
        flexlogger.preset_info("loss+acx")


# histograms are bin counts: the record does not grow with the model --------------------------------------------
def record_bytes_per_step(model: nn.Module, tmp_path: Path, name: str) -> int:
    with TooledModelLogger(model, histograms=True, groups=["Weights", "Weight_grad"], stats=["mean"],
                           env=name, server=None, log_dir=tmp_path) as tml:
        x = torch.randn(4, model[0].in_features)
        sizes = []
        for _ in range(3):
            model.zero_grad()
            model(x).sum().backward()
            before = (tml.logger.run_dir / POINTS).stat().st_size
            tml.step(log=True)
            tml.flush()
            sizes.append((tml.logger.run_dir / POINTS).stat().st_size - before)
    return max(sizes[1:])  # the first step also declares the plots


def test_histogram_record_holds_counts_only(tmp_path: Path) -> None:
    small = nn.Sequential(nn.Linear(100, 100))  # 10k parameters
    large = nn.Sequential(nn.Linear(2236, 2236))  # 5M parameters
    small_bytes = record_bytes_per_step(small, tmp_path, "small")
    large_bytes = record_bytes_per_step(large, tmp_path, "large")
    assert small_bytes < 8_000 and large_bytes < 8_000  # 2 histograms of 30 counts + 4 means: a few kB
    assert abs(large_bytes - small_bytes) < 200  # the same, up to the digits of the numbers
    hist = [u for u in read_record(next((tmp_path / "large").iterdir())).updates if u.kind == "histogram"][-1]
    counts = next(iter(hist.data.values())).counts
    assert len(counts) == 30 and sum(counts) == 2236 * 2236


def test_a_password_is_never_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"password: a secret, which a config file must not hold"):
        load_config({"password": "hunter2"})
    with FlexLogger(LOSS, TRAIN, server=None, log_dir=tmp_path, env="e") as stat:
        assert "password" not in stat.to_config() and "password" not in stat.run.options
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): password: expected a non-empty string, or None .*, but "
                                          r"got \(hidden\)$"):
        FlexLogger(LOSS, TRAIN, password=12345)


def test_a_plot_spec_cannot_ask_for_raw_html() -> None:
    """``opts.html`` draws a text window unescaped: only the run's own calls (which escape user text) set it."""
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): plots.t.opts.html: expected no `html`: text windows show "
                                          r"what meters hold as text, escaped"):
        FlexLogger({"t": {"type": "text", "opts": {"html": True}}}, {}, server=None, log_dir=None)


def test_specs_pickle() -> None:
    """Specs travel to spawned workers (DDP spawn, multiprocessing) and come back equal."""
    import pickle

    from flexlogger.config.specs import parse_meter, parse_plot

    plot = parse_plot("l", {"type": "line", "opts": {"title": "x"}})
    meter = parse_meter("m", {"type": "AverageValueMeter", "target": "l", "best": "min", "display": {"dash": "dot"}})
    assert pickle.loads(pickle.dumps(plot)) == plot and pickle.loads(pickle.dumps(meter)) == meter


class KeptUpdates:
    """A sink that keeps every update it gets (the routing, without a server)."""

    def __init__(self) -> None:
        self.updates: list[flexlogger.Update] = []

    def write(self, update: flexlogger.Update) -> None:
        self.updates.append(update)

    def flush(self, timeout: float | None = None) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", RECORD_CALLS)
def test_each_record_call_is_one_delegation_with_the_calls_own_signature(tmp_path: Path, name: str) -> None:
    """`run.<call>` and `Stat.<call>` are the bound method of the run's RecordCalls (or of their console, for the
    printing calls): same signature, same docstring."""
    with Run(env="e", server=None, log_dir=tmp_path) as run:
        stat = FlexLogger(LOSS, TRAIN, run=run)
        owner = run.calls if hasattr(run.calls, name) else run.calls.console  # the printing calls: its console
        own = getattr(owner, name)
        assert getattr(run, name) == own and getattr(stat, name) == own
        assert inspect.signature(getattr(run, name)) == inspect.signature(own)
        assert getattr(Run, name).__doc__ == getattr(FlexLogger, name).__doc__ == getattr(type(owner), name).__doc__
        assert getattr(Run, name).__doc__


def test_write_never_reenters_itself_and_the_status_window_goes_with_the_batch(tmp_path: Path) -> None:
    """The status window, due every STATUS_EVERY seconds, is delivered in the batch of the write that made it due
    (watched with a profile hook: Run.write and Run._deliver are never on the stack twice)."""
    kept = KeptUpdates()
    watched = {Run.write.__code__, Run._deliver.__code__}
    depth: dict[Any, int] = dict.fromkeys(watched, 0)
    deepest = dict.fromkeys(watched, 0)

    def profile(frame: Any, event: str, arg: Any) -> None:
        if frame.f_code in watched:
            if event == "call":
                depth[frame.f_code] += 1
                deepest[frame.f_code] = max(deepest[frame.f_code], depth[frame.f_code])
            elif event == "return":
                depth[frame.f_code] -= 1

    with Run(env="e", server=None, log_dir=tmp_path, sinks=[kept], max_steps=10) as run:
        stat = FlexLogger(LOSS, TRAIN, run=run)
        time.sleep(STATUS_EVERY + 0.05)  # the status is due at the next write
        sys.setprofile(profile)
        try:
            stat.add({"train_loss": 1.0})
            stat.log(3)
            run.log_text("note", "hello", step=3)
        finally:
            sys.setprofile(None)
    assert deepest == dict.fromkeys(watched, 1)
    plots = [u.plot for u in kept.updates]  # the status: at the start, with the points, at the end
    assert plots == [STATUS_PLOT, "loss", STATUS_PLOT, "note", STATUS_PLOT]
    assert kept.updates[2].data["step"] == "3"  # it counts the step just logged


def test_the_run_holds_what_its_loggers_push_and_never_calls_them(tmp_path: Path) -> None:
    """A logger pushes its config and best values to the run (set_config, set_best); the run's config.json and
    summary are made from what was pushed, also after the logger is gone."""
    with Run(env="e", server=None, log_dir=tmp_path) as run:
        stat = FlexLogger(LOSS, {"train_loss": {"type": "AverageValueMeter", "target": "loss", "best": "min"}},
                          run=run)
        stat.add({"train_loss": 2.0})
        stat.log(0)
        stat.add({"train_loss": 1.0})
        stat.log(1)
        stat.update_config({"lr": {"type": "line"}}, {})
        del stat
        assert run.best() == {"train_loss": (1.0, 1)}
        folder = run.dir
    assert folder is not None
    config = json.loads((folder / "config.json").read_text())
    assert set(config["plots"]) == {"loss", "lr"}
    assert json.loads((folder / "summary.json").read_text())["best"]["train_loss"] == {"value": 1.0, "step": 1,
                                                                                       "mode": "min"}


def test_one_atexit_closer_in_a_fixed_order() -> None:
    from flexlogger import closing
    from flexlogger.core import run as run_module
    from flexlogger.sinks import record
    from flexlogger.sinks.visdom import sender
    from flexlogger.tools import server

    assert closing._closers == {closing.RUNS: run_module._close_open_runs, closing.SENDERS: sender._close_open_sinks,
                                closing.RECORDS: record._close_open_records, closing.SERVERS: server._stop_attached}
    assert closing.RUNS < closing.SENDERS < closing.RECORDS < closing.SERVERS
    with pytest.raises(ValueError, match=r"on_exit\(\): expected `stage` to be one of \(1, 2, 3, 4\), but got 9"):
        closing.on_exit(9, lambda: None)


def test_file_path_and_start_time_stand_for_lavds_get_file_path_and_get_start_time(tmp_path: Path) -> None:
    """``run.file_path(name, step, extension)``: a path of the user's own in the run folder, its folder made;
    ``run.start_time``: the start as local date and time, lavd's ``get_start_time()`` format."""
    with Run(env="e", server=None, log_dir=tmp_path) as run:
        assert run.dir is not None
        path = run.file_path("preds", step=3, extension=".csv")
        assert path == run.dir / "files" / "preds-3.csv" and path.parent.is_dir() and not path.exists()
        assert run.file_path("gan/generator") == run.dir / "files" / "gan_generator"
        assert run.file_path("x", 0.5, ".tar.gz") == run.dir / "files" / "x-0.5.tar.gz"
        with pytest.raises(RecordCallError, match=r"^file_path\(\): expected `extension` to be '' or a file suffix "
                                                  r"such as '\.csv' or '\.tar\.gz', but got '/\.\./x'$"):
            run.file_path("x", extension="/../x")
        with pytest.raises(RecordCallError, match=r"^file_path\(\): expected `name` to be a non-empty string"):
            run.file_path("")
        assert run.start_time == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", run.start_time)
    with Run(env="e", server=None, log_dir=None) as bare:
        assert bare.file_path("preds", 1, ".csv") is None
    with Run(env="e", server=None, log_dir=tmp_path, disabled=True) as off:
        assert off.file_path("preds", 1, ".csv") is None
