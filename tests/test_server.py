"""The Visdom server manager: start, answer, restart on the same port, stop, clear errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import visdom

from flexlogger.server import (
    VisdomServer,
    VisdomServerError,
    delete_env,
    ensure_server,
    find_free_port,
    is_serving,
    start_server,
)


def test_session_server_answers(visdom_server: VisdomServer, viz: visdom.Visdom) -> None:
    assert visdom_server.running()
    assert is_serving(visdom_server.port)
    assert viz.check_connection()
    assert visdom_server.address == f"http://localhost:{visdom_server.port}"


def test_window_round_trip(viz: visdom.Visdom, env: str) -> None:
    win = viz.line(X=[0, 1], Y=[2.0, 3.0], env=env, opts={"title": "t"})
    data = json.loads(viz.get_window_data(win, env))
    assert data["content"]["data"][0]["y"] == [2.0, 3.0]


def test_start_stop_restart_same_port(tmp_path: Path) -> None:
    with start_server(env_path=tmp_path / "env", log_path=tmp_path / "log") as server:
        port, pid = server.port, server.pid
        client = visdom.Visdom(port=port, raise_exceptions=True, use_incoming_socket=False)
        client.text("hello", win="w", env="e")
        client.save(["e"])
        server.stop()
        assert not server.running() and server.pid is None
        assert not is_serving(port)
        server.restart()
        assert server.running() and server.port == port and server.pid != pid
        assert is_serving(port)
        assert client.win_exists("w", env="e")  # the env saved in env_path is loaded again
    assert not server.running()
    assert not is_serving(port)
    server.stop()  # stopping twice is harmless


def test_find_free_port_is_bindable() -> None:
    port = find_free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_port_used_by_http_server(visdom_server: VisdomServer, tmp_path: Path) -> None:
    with pytest.raises(VisdomServerError, match=rf"Port {visdom_server.port} is already in use"):
        start_server(port=visdom_server.port, env_path=tmp_path)


def test_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as sock:  # holds the port without answering HTTP
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(VisdomServerError, match=r"(?s)exited with code \d+ before answering.*Address already"):
            start_server(port=port, env_path=tmp_path, log_path=tmp_path / "log")


def test_timeout_reports_and_stops(tmp_path: Path) -> None:
    with pytest.raises(VisdomServerError, match=r"did not answer within 0.001 s"):
        start_server(env_path=tmp_path, timeout=0.001)


@pytest.mark.parametrize("kwargs, message", [
    ({"port": 0}, r"Expected `port` to be an integer in 1..65535 or None, but got 0"),
    ({"port": 70000}, r"but got 70000"),
    ({"timeout": 0}, r"Expected `timeout` to be a positive number of seconds, but got 0"),
])
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        start_server(**kwargs)  # type: ignore[arg-type]


def test_launching_twice_is_refused(tmp_path: Path) -> None:
    with start_server(env_path=tmp_path) as server, \
            pytest.raises(VisdomServerError, match=r"already running \(pid \d+\)"):
        server._launch(5.0)


def test_ensure_server_reuses_a_running_server(visdom_server: VisdomServer, tmp_path: Path) -> None:
    assert ensure_server(visdom_server.port, tmp_path, install_assets=False) is None
    assert not (tmp_path / "server.pid").exists()


def test_ensure_server_starts_one_with_a_pid_file(tmp_path: Path) -> None:
    port = find_free_port()
    server = ensure_server(port, tmp_path / "state", install_assets=False)
    assert server is not None
    try:
        assert is_serving(port)
        assert (tmp_path / "state" / "server.pid").read_text() == f"{server.pid}\n"
        assert (tmp_path / "state" / "env").is_dir()
    finally:
        server.stop()


def test_delete_env(visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    viz.text("x", env=env)
    assert env in viz.get_env_list()
    assert delete_env(visdom_server.port, env) is True
    assert env not in viz.get_env_list()
    assert delete_env(visdom_server.port, env) is False


def test_delete_env_without_server() -> None:
    port = find_free_port()
    with pytest.raises(VisdomServerError, match=rf"could not delete env 'e' on the Visdom server at 127.0.0.1:{port}: "
                                                rf".*Start one with `flexlogger serve --port {port}`"):
        delete_env(port, "e")
