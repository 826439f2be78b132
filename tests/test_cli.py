"""The ``flexlogger`` command, called in-process through ``main(argv)`` (and ``serve`` as a real subprocess)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import visdom

import flexlogger
from flexlogger.cli import _api, build_parser, main
from flexlogger.server import VisdomServer, find_free_port, is_serving

SUBCOMMANDS = ["serve", "presets", "preset-info", "meters", "plots", "replay", "compare", "ingest", "demo"]


def test_parser_has_every_subcommand() -> None:
    actions = [a for a in build_parser()._actions if a.dest == "command"]
    assert sorted(actions[0].choices) == sorted(SUBCOMMANDS)  # type: ignore[arg-type]


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: flexlogger")
    for command in SUBCOMMANDS:
        assert command in out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: flexlogger {command}")


@pytest.mark.parametrize("argv, message", [
    ([], r"^flexlogger: error: the following arguments are required: COMMAND \(see `flexlogger --help`\)$"),
    (["bogus"], r"^flexlogger: error: argument COMMAND: invalid choice: 'bogus' \(choose from .*'serve'"),
    (["serve", "--port", "x"], r"^flexlogger serve: error: argument --port: expected a port number in 1..65535, "
                               r"got 'x' \(see `flexlogger serve --help`\)$"),
    (["serve", "--port", "70000"], r"expected a port number in 1..65535, got 70000"),
    (["serve", "--bogus"], r"^flexlogger: error: unrecognized arguments: --bogus"),
    (["meters", "a", "b"], r"unrecognized arguments: b"),
    (["preset-info"], r"^flexlogger preset-info: error: the following arguments are required: name"),
    (["replay"], r"^flexlogger replay: error: the following arguments are required: run_dir"),
    (["demo", "--epochs", "0"], r"^flexlogger demo: error: argument --epochs: expected a positive integer, got '0'"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert re.search(message, captured.err.strip()), captured.err


def test_meters_lists_every_meter_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meters"]) == 0
    out = capsys.readouterr().out
    for name in flexlogger.meter_types():
        assert f"\n{name} " in out
    assert "add(output, target)" in out


@pytest.mark.parametrize("name", flexlogger.meter_types())
def test_meter_info(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meters", name]) == 0
    out = capsys.readouterr().out
    info = flexlogger.meter_info(name)
    assert out.startswith("type:")
    assert f" {info['add']}\n" in out


@pytest.mark.parametrize("name", flexlogger.plot_types())
def test_plot_info(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plots", name]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^type:\s+{re.escape(name)}$", out, re.MULTILINE)
    assert re.search(r"^description:\s+\S", out, re.MULTILINE)


def test_plots_lists_every_plot_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plots"]) == 0
    out = capsys.readouterr().out
    for name in flexlogger.plot_types():
        assert f"\n{name} " in out


@pytest.mark.parametrize("command, name, message", [
    ("meters", "AverageMeter", r"^flexlogger meters: error: unknown meter type 'AverageMeter' \(did you mean "
                               r"'AverageValueMeter'"),
    ("plots", "lines", r"^flexlogger plots: error: unknown plot type 'lines' \(did you mean 'line'"),
])
def test_unknown_names_exit_2(command: str, name: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(message, err)


def test_missing_api_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"`flexlogger.no_such_api` is not available in this version"):
        _api("no_such_api")


def test_presets_lists_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["preset", "source"]
    assert [line.split() for line in lines[2:]] == [[n, s] for n, s in flexlogger.preset_names().items()]


def test_preset_info(capsys: pytest.CaptureFixture[str]) -> None:
    name = sorted(flexlogger.preset_names())[0]  # type: ignore[attr-defined]
    assert main(["preset-info", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"name:        {name}\nsource:      built-in\n")
    assert main(["preset-info", "Loss + acc"]) == 0  # composed names, as get_preset_logger takes them
    loss, acc = capsys.readouterr().out.split("\n\n")
    assert loss.startswith("name:        loss\n") and "meter_names: train_loss, test_loss\n" in loss
    assert acc.startswith("name:        acc\n") and acc.endswith("meter_names: train_acc, test_acc\nplot_names:  acc\n")


def test_unknown_preset_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preset-info", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flexlogger preset-info: error:") and "no-such-preset" in err
    assert main(["preset-info", "loss+acurracy"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("flexlogger preset-info: error: unknown preset 'acurracy' (did you mean")


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "flexlogger", "serve", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: flexlogger serve")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_runs_until_interrupted(signum: int, tmp_path: Path) -> None:
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "serve", "--port", str(port), "--env-path",
                             str(tmp_path), "--no-assets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"Visdom server running at http://localhost:{port} "), line + proc.stderr.read()
        assert is_serving(port)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Stopping the Visdom server." in out
    assert not is_serving(port)  # the server child is gone too


def test_serve_on_a_port_in_use_says_which_option_to_change(visdom_server: VisdomServer, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--port", str(visdom_server.port), "--env-path", str(tmp_path)]  # assets not skipped
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert re.fullmatch(rf"flexlogger serve: error: port {visdom_server.port} is already in use .*; expected a free "
                        rf"port, e.g. --port {visdom_server.port + 1}\n", err), err
    assert visdom_server.running() and not any(tmp_path.iterdir())


def test_replay_draws_a_recorded_run(visdom_server: VisdomServer, viz: visdom.Visdom, env: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    plots = {"loss": {"type": "line"}}
    meters = {"train_loss": {"type": "AverageValueMeter", "target": "loss"}}
    with flexlogger.FlexLogger(plots, meters, env=env, port=visdom_server.port, log_dir=tmp_path) as Stat:
        for step, value in enumerate([3.0, 2.0, 1.5]):
            Stat.add({"train_loss": value})
            Stat.log(step)
    (run_dir,) = (p.parent for p in tmp_path.rglob("points.jsonl"))
    replayed = f"{env}-replay"
    assert main(["replay", str(run_dir), "--port", str(visdom_server.port), "--env", replayed]) == 0
    assert capsys.readouterr().out.startswith(f"Replayed {run_dir} to http://localhost:{visdom_server.port}: ")
    (window,) = json.loads(viz.get_window_data(None, replayed)).values()
    (trace,) = window["content"]["data"]
    assert (window["title"], trace["name"], trace["x"], trace["y"]) == ("loss", "train_loss", [0, 1, 2],
                                                                        [3.0, 2.0, 1.5])


def test_replay_of_a_folder_without_record_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flexlogger replay: error: ") and str(tmp_path) in err
