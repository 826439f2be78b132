"""The ``flexlogger`` command, called in-process through ``main(argv)`` (and ``serve`` as a real subprocess)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import visdom

import flexlogger
from flexlogger.tools.cli import build_parser, main
from flexlogger.tools.server import VisdomServer, find_free_port, is_serving

SUBCOMMANDS = ["serve", "presets", "preset-info", "meters", "plots", "replay", "compare", "ingest", "demo", "import"]


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
    assert re.fullmatch(rf"flexlogger serve: error: Port {visdom_server.port} is already in use by pid "
                        rf"{visdom_server.pid} \(.*\), which answers HTTP at http://localhost:{visdom_server.port}; "
                        rf"expected a free port, e.g. --port {visdom_server.port + 1}.\n", err), err
    assert visdom_server.running() and not any(tmp_path.iterdir())


# --- serve with a login ------------------------------------------------------------------------------------------

USER, PASSWORD = "alice", "pa$$-w0rd-never-shown"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VISDOM_* credentials in the environment, and a stdin that is not a terminal (no prompt)."""
    for var in ("VISDOM_USERNAME", "VISDOM_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())


@pytest.mark.parametrize("extra, missing", [([], "username"), (["--username", USER], "password")])
def test_serve_public_without_credentials_refuses_to_start(no_credentials: None, extra: list[str], missing: str,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = find_free_port()
    assert main(["serve", "--public", "--port", str(port), "--env-path", str(tmp_path), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err == (f"flexlogger serve: error: serving on every interface (--public) needs a login, but no {missing} "
                   "was given: set VISDOM_USERNAME (or pass --username) and VISDOM_PASSWORD, or run it in a terminal "
                   "to be asked for the password; --public --no-login serves without a login.\n")
    assert not is_serving(port) and not any(tmp_path.iterdir())


def test_serve_login_options_that_contradict(no_credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--login", "--no-login", "--port", str(find_free_port())]) == 2
    assert capsys.readouterr().err == ("flexlogger serve: error: --no-login contradicts --login and --username; "
                                       "drop one of them.\n")


def _serve(args: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flexlogger", "serve", "--no-assets", *args], text=True,
                            env=env, **popen)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out or "", err or ""


def _status_without_cookie(port: int, path: str = "") -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}/env_state", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_public_with_a_login_from_the_environment(tmp_path: Path, env: str) -> None:
    port = find_free_port()
    proc = _serve(["--public", "--port", str(port), "--env-path", str(tmp_path)],
                  dict(os.environ, VISDOM_USERNAME=USER, VISDOM_PASSWORD=PASSWORD),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"Visdom server running at http://localhost:{port} ")
        assert f"login as '{USER}')" in line
        assert _status_without_cookie(port) in (400, 401)  # refused without the login cookie
        client = visdom.Visdom(port=port, username=USER, password=PASSWORD, raise_exceptions=True,
                               use_incoming_socket=False)
        win = client.text("logged in", env=env)
        assert "logged in" in json.dumps(json.loads(client.get_window_data(win, env)))
    finally:
        out, err = _stop(proc)
    assert PASSWORD not in line + out + err
    assert proc.returncode == 0, err


def test_serve_asks_for_the_password_in_a_terminal(tmp_path: Path) -> None:
    port = find_free_port()
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("VISDOM_USERNAME", "VISDOM_PASSWORD")}
    proc = _serve(["--public", "--username", USER, "--port", str(port), "--env-path", str(tmp_path)], env,
                  stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen, typed = "", False
    try:
        deadline = time.monotonic() + 60
        while "Visdom server running" not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 1.0)[0]:
                seen += os.read(controller, 4096).decode(errors="replace")
            if f"Password for Visdom user '{USER}': " in seen and not typed:
                os.write(controller, PASSWORD.encode() + b"\n")
                typed = True
        assert "Visdom server running" in seen, seen
        assert _status_without_cookie(port) in (400, 401)
        assert visdom.Visdom(port=port, username=USER, password=PASSWORD, use_incoming_socket=False,
                             raise_exceptions=True).check_connection()
    finally:
        _stop(proc)
        os.close(controller)
    assert PASSWORD not in seen  # not echoed


def test_serve_public_no_login_warns_what_is_exposed(tmp_path: Path) -> None:
    port = find_free_port()
    proc = _serve(["--public", "--no-login", "--port", str(port), "--env-path", str(tmp_path)], dict(os.environ),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith(f"Visdom server running at http://localhost:{port} "), line
        warning = proc.stderr.readline()
        assert _status_without_cookie(port) == 200
    finally:
        _stop(proc)
    assert warning == (f"flexlogger serve: warning: --public --no-login: anyone who can reach port {port} of this "
                       f"machine can read, change and delete every env of this server (envs saved in "
                       f"{tmp_path.resolve()}).\n")


def test_serve_base_url(tmp_path: Path) -> None:
    port = find_free_port()
    proc = _serve(["--base-url", "/visdom", "--port", str(port), "--env-path", str(tmp_path)], dict(os.environ),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"Visdom server running at http://localhost:{port}/visdom "), line
        assert _status_without_cookie(port, "/visdom") == 200
    finally:
        _stop(proc)


# --- a missing optional package: one line naming the extra, no traceback ---------------------------------------


def test_demo_without_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails as if it were not installed
    for name in [m for m in sys.modules if m.startswith("sklearn.")]:  # imported by an earlier test's demo
        monkeypatch.setitem(sys.modules, name, None)
    import flexlogger.tools

    monkeypatch.delitem(sys.modules, "flexlogger.tools.demo", raising=False)
    monkeypatch.delattr(flexlogger.tools, "demo", raising=False)  # the import would reuse an earlier one (which
    # would start a server, then fail on scikit-learn's own lazy imports)
    assert main(["demo", "--port", str(find_free_port()), "--epochs", "1"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "flexlogger demo needs scikit-learn: pip install 'flexlogger[demo]'\n")


def test_demo_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import flexlogger.tools

    for name in ("tqdm", "tqdm.auto", "tqdm.std"):  # as if not installed, also where an earlier test imported it
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "flexlogger.tools.demo", raising=False)
    monkeypatch.delattr(flexlogger.tools, "demo", raising=False)  # the import would reuse an earlier one
    assert main(["demo", "--port", str(find_free_port())]) == 1
    assert capsys.readouterr().err == "flexlogger demo needs tqdm: pip install 'flexlogger[demo]'\n"


def test_presets_without_tabulate_says_to_reinstall(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tabulate", None)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.fullmatch(r"flexlogger presets needs tabulate, which flexlogger depends on \(.*\): reinstall it with "
                        r"`pip install flexlogger`\n", err), err


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


def test_demo_logs_in_with_credentials_from_the_environment(tmp_path: Path, env: str,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The demo against a server with a login: its old env is deleted (found by its windows, as on visdom 0.3) and
    every window arrives, logged in with VISDOM_USERNAME / VISDOM_PASSWORD."""
    from flexlogger.tools.server import start_server

    monkeypatch.chdir(tmp_path)  # the demo's run record goes to ./runs
    monkeypatch.setenv("VISDOM_USERNAME", USER)
    monkeypatch.setenv("VISDOM_PASSWORD", PASSWORD)
    with start_server(env_path=tmp_path / "env", username=USER, password=PASSWORD) as server:
        client = visdom.Visdom(port=server.port, username=USER, password=PASSWORD, raise_exceptions=True,
                               use_incoming_socket=False)
        client.text("from the last run", win="stale", env=env)
        assert main(["demo", "--port", str(server.port), "--epochs", "1", "--env", env]) == 0
        windows = json.loads(client.get_window_data(None, env))
        assert "stale" not in windows
        titles = {w["title"] for w in windows.values()}
        assert {"loss", "test confusion (rows: true digit)", "Weights std (log scale)"} <= titles, titles
    assert f"Open http://localhost:{server.port}/env/{env}" in capsys.readouterr().out
