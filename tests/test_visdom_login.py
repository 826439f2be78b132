"""The Visdom sink on a server with a login: delivery with the right credentials, a clear ConfigError at construction
for a wrong password or a missing login, a restarted server (new cookie secret) survived, the password never kept
where a config, summary or repr could show it."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import visdom

from flexlogger import FlexLogger
from flexlogger.errors import ConfigError
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.sinks.visdom.transport import QUICK_CHECK_S
from flexlogger.tools.server import VisdomServer, find_free_port, start_server

pytestmark = pytest.mark.slow  # a server with a login per module, restarted by one test

USER, PASSWORD = "carol", "correct horse battery staple"
PLOTS = {"loss": {"type": "line"}}
METERS = {"train": {"type": "AverageValueMeter", "target": "loss"}}


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisdomServer]:
    root = tmp_path_factory.mktemp("login")
    server = start_server(env_path=root / "env", log_path=root / "server.log", username=USER, password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_USERNAME", raising=False)
    monkeypatch.delenv("VISDOM_PASSWORD", raising=False)


def reader(server: VisdomServer) -> visdom.Visdom:
    return visdom.Visdom(port=server.port, username=USER, password=PASSWORD, raise_exceptions=True,
                         use_incoming_socket=False)


def traces(server: VisdomServer, stat: FlexLogger) -> dict[str, tuple[list[Any], list[Any]]]:
    assert stat.flush(30) == 0
    data = json.loads(reader(server).get_window_data(stat.windows["loss"], stat.env))
    return {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]}


def log_steps(stat: FlexLogger, steps: range) -> None:
    for step in steps:
        stat.add({"train": float(step)})
        stat.log(step)


def test_credentials_from_the_environment_deliver_every_point(login_server: VisdomServer, env: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("VISDOM_USERNAME", USER)
    monkeypatch.setenv("VISDOM_PASSWORD", PASSWORD)
    with FlexLogger(PLOTS, METERS, env=env, port=login_server.port, log_dir=tmp_path) as stat:
        log_steps(stat, range(50))
        assert traces(login_server, stat) == {"train": (list(range(50)), [float(s) for s in range(50)])}
    for path in tmp_path.rglob("*"):  # the run record, summary.json and config.json never hold it
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path


def test_sink_credentials_as_arguments(login_server: VisdomServer, env: str, no_env_credentials: None) -> None:
    sink = VisdomSink(port=login_server.port, env=env, username=USER, password=PASSWORD)
    try:
        assert PASSWORD not in repr(sink)
        assert PASSWORD not in json.dumps(vars(sink), default=repr)
    finally:
        sink.close()


def test_wrong_password_fails_at_construction(login_server: VisdomServer, env: str, no_env_credentials: None) -> None:
    with pytest.raises(ConfigError, match=rf"the Visdom server at http://localhost:{login_server.port} refused the "
                                          rf"login of user '{USER}': wrong username or password"):
        VisdomSink(port=login_server.port, env=env, username=USER, password="wrong")


@pytest.fixture
def slow_proxy(login_server: VisdomServer) -> Iterator[int]:
    """A port that forwards to the login server, each connection's first answer held back 2 s (a slow network)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)
                    delay = 0.0
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", login_server.port))
            threading.Thread(target=pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, 2.0), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_a_wrong_password_on_a_slow_server_is_raised_at_flush_and_close(slow_proxy: int, env: str,
                                                                        no_env_credentials: None) -> None:
    """The answer comes after the constructor stopped waiting: the sender thread gets it, and the next flush()
    (and close()) raises the same clear error."""
    start = time.monotonic()
    sink = VisdomSink(port=slow_proxy, env=env, username=USER, password="wrong", close_timeout=1.0)
    assert time.monotonic() - start < QUICK_CHECK_S + 0.5
    sink.write(Update("loss", "line", 1, {"train": 1.0}, {}))
    match = rf"refused the login of user '{USER}': wrong username or password"
    with pytest.raises(ConfigError, match=match):
        sink.flush(30)
    with pytest.raises(ConfigError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the point that could not be delivered
        sink.close()


def test_the_right_password_on_a_slow_server_delivers(slow_proxy: int, login_server: VisdomServer, env: str,
                                                      no_env_credentials: None) -> None:
    sink = VisdomSink(port=slow_proxy, env=env, username=USER, password=PASSWORD)
    try:
        sink.write(Update("loss", "line", 2, {"train": 0.5}, {}))
        assert sink.flush(60) == 0
        data = json.loads(reader(login_server).get_window_data(sink.window_id("loss"), env))
        assert [(t["name"], t["x"], t["y"]) for t in data["content"]["data"]] == [("train", [2.0], [0.5])]
    finally:
        sink.close()


def test_a_server_demanding_a_login_without_credentials_fails_at_construction(
        login_server: VisdomServer, env: str, no_env_credentials: None) -> None:
    with pytest.raises(ConfigError, match=rf"the Visdom server at http://localhost:{login_server.port} demands a "
                                          r"login: pass username= and password=, or set VISDOM_USERNAME and "
                                          r"VISDOM_PASSWORD"):
        VisdomSink(port=login_server.port, env=env)


def test_only_one_credential_is_a_config_error(env: str, no_env_credentials: None) -> None:
    with pytest.raises(ConfigError, match=r"A Visdom login needs a username and a password, but the password is "
                                          r"missing: pass `password=` or set VISDOM_PASSWORD"):
        VisdomSink(port=find_free_port(), env=env, username=USER)


def test_a_server_that_is_down_is_no_error_at_construction(tmp_path: Path, env: str,
                                                             no_env_credentials: None) -> None:
    """Down at construction: no error; the sink logs in when the server comes up, and the point arrives."""
    port = find_free_port()
    sink = VisdomSink(port=port, env=env, username=USER, password=PASSWORD)
    with start_server(port=port, env_path=tmp_path, username=USER, password=PASSWORD) as server:
        try:
            sink.write(Update("loss", "line", 3, {"train": 1.5}, {}))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the outage notice of the first tries
                assert sink.flush(30) == 0
            data = json.loads(reader(server).get_window_data(sink.window_id("loss"), env))
            assert [(t["name"], t["x"], t["y"]) for t in data["content"]["data"]] == [("train", [3.0], [1.5])]
        finally:
            sink.close()


def test_delivery_continues_after_a_restart(tmp_path: Path, env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The restarted server has a new cookie secret: the sink logs in again and every point arrives."""
    monkeypatch.setenv("VISDOM_USERNAME", USER)
    monkeypatch.setenv("VISDOM_PASSWORD", PASSWORD)
    server = start_server(env_path=tmp_path / "env", log_path=tmp_path / "log", username=USER, password=PASSWORD)
    try:
        with FlexLogger(PLOTS, METERS, env=env, port=server.port, log_dir=None) as stat:
            log_steps(stat, range(20))
            assert traces(server, stat)["train"][0] == list(range(20))
            server.restart()
            log_steps(stat, range(20, 40))
            assert traces(server, stat) == {"train": (list(range(40)), [float(s) for s in range(40)])}
    finally:
        server.stop()


def test_a_logger_given_credentials_delivers_and_replays_without_keeping_the_password(
        login_server: VisdomServer, env: str, no_env_credentials: None, tmp_path: Path) -> None:
    from flexlogger import replay

    with FlexLogger(PLOTS, METERS, env=env, uid="run", port=login_server.port, log_dir=tmp_path, username=USER,
                    password=PASSWORD) as stat:
        log_steps(stat, range(20))
        assert traces(login_server, stat) == {"train": (list(range(20)), [float(s) for s in range(20)])}
        assert PASSWORD not in repr(stat) and "password" not in stat.to_config()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path
    result = replay(stat.run_dir, port=login_server.port, env=f"{env}-replayed", username=USER, password=PASSWORD)
    assert result.points == 20
    data = json.loads(reader(login_server).get_window_data(result.windows["loss"], f"{env}-replayed"))
    assert data["content"]["data"][0]["y"] == [float(s) for s in range(20)]


def test_replay_and_compare_on_the_command_line_log_in_with_username_and_the_password_variable(
        login_server: VisdomServer, env: str, no_env_credentials: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from flexlogger.tools.cli import main

    with FlexLogger(PLOTS, METERS, env=env, uid="run", server=None, log_dir=tmp_path) as stat:
        log_steps(stat, range(5))
    monkeypatch.setenv("VISDOM_PASSWORD", PASSWORD)  # the password is never an argument
    port = ["--port", str(login_server.port)]
    assert main(["replay", str(stat.run_dir), *port, "--env", f"{env}-r", "--username", USER]) == 0
    assert main(["compare", str(stat.run_dir), *port, "--env", f"{env}-c", "--username", USER]) == 0
    windows = {e: json.loads(reader(login_server).get_window_data(None, e)) for e in (f"{env}-r", f"{env}-c")}
    assert all(windows.values()), windows
    out = capsys.readouterr().out
    assert "Replayed" in out and "Compared" in out and PASSWORD not in out
    # without --username (and no VISDOM_USERNAME) the login is missing: said in one line, naming the variable
    assert main(["replay", str(stat.run_dir), *port, "--env", f"{env}-r"]) != 0
    assert "the username is missing" in capsys.readouterr().err
