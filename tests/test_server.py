"""The Visdom server manager: start, answer, restart on the same port, stop, login, clear errors, orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import visdom

from flexlogger.errors import ConfigError
from flexlogger.tools.server import (
    VisdomServer,
    VisdomServerError,
    check_port,
    delete_env,
    ensure_server,
    find_free_port,
    is_serving,
    start_server,
)

VISDOM_03 = tuple(int(p) for p in visdom.__version__.split(".")[:2]) >= (0, 3)
USER, PASSWORD = "alice", "s3cret-pa$$word"


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


def test_port_used_by_http_server_names_it(visdom_server: VisdomServer, tmp_path: Path) -> None:
    with pytest.raises(VisdomServerError, match=rf"^Port {visdom_server.port} is already in use by pid "
                                                rf"{visdom_server.pid} \(.*visdom.*\), which answers HTTP at "
                                                rf"http://localhost:{visdom_server.port}; pass another port "
                                                rf"\(e.g. port={visdom_server.port + 1}\), or port=None"):
        start_server(port=visdom_server.port, env_path=tmp_path)


def test_busy_port_is_detected_before_starting(tmp_path: Path) -> None:
    """A port held by a socket that does not answer HTTP: refused at once, naming this process, no child started
    (visdom 0.3 would move to another port; the old code waited for an answer on the asked one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(VisdomServerError, match=rf"^Port {port} is already in use by pid {os.getpid()} \("):
            start_server(port=port, env_path=tmp_path, log_path=tmp_path / "log")
        assert time.monotonic() - began < 5
        assert not (tmp_path / "log").exists() or (tmp_path / "log").read_text() == ""
        with pytest.raises(VisdomServerError, match=rf"Port {port} is already in use .*; use --port {port + 1}"):
            check_port(port, hint=f"use --port {port + 1}")


def test_port_public_checks_every_interface(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(VisdomServerError, match=rf"Port {port} is already in use"):
            check_port(port, public=True)


def test_port_taken_after_the_check_is_never_accepted(tmp_path: Path) -> None:
    """The port is taken between the check and the server's bind: visdom 0.2.4 exits, visdom 0.3 moves to another
    port; either way start_server fails at once and leaves no server behind."""
    port = find_free_port()
    holder = socket.socket()

    def take_port() -> None:
        time.sleep(0.2)  # after the check (milliseconds), before the child has imported tornado (a second)
        holder.bind(("127.0.0.1", port))
        holder.listen()

    thread = threading.Thread(target=take_port)
    thread.start()
    try:
        message = rf"asked for port {port} listens on port \d+ instead" if VISDOM_03 else \
            r"(?s)exited with code \d+ before answering.*Address already in use"
        began = time.monotonic()
        with pytest.raises(VisdomServerError, match=message):
            start_server(port=port, env_path=tmp_path, log_path=tmp_path / "log", timeout=20)
        assert time.monotonic() - began < 15
    finally:
        thread.join()
        holder.close()


def test_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    with pytest.raises(VisdomServerError, match=r"(?s)exited with code \d+ before answering.*logging level"):
        start_server(env_path=tmp_path, log_path=tmp_path / "log", logging_level="NO_SUCH_LEVEL")


def test_timeout_reports_and_stops(tmp_path: Path) -> None:
    with pytest.raises(VisdomServerError, match=r"did not answer within 0.001 s"):
        start_server(env_path=tmp_path, timeout=0.001)


@pytest.mark.parametrize("kwargs, message", [
    ({"port": 0}, r"Expected `port` to be an integer in 1..65535 or None, but got 0"),
    ({"port": 70000}, r"but got 70000"),
    ({"timeout": 0}, r"Expected `timeout` to be a positive number of seconds, but got 0"),
    ({"base_url": "visdom"}, r"Expected `base_url` to be a path such as '/visdom' .*but got 'visdom'"),
    ({"base_url": "/visdom/"}, r"no trailing '/'.*but got '/visdom/'"),
    ({"username": "alice"}, r"Expected both `username` and `password` .* but got no password"),
    ({"password": "x"}, r"but got no username"),
])
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        start_server(**kwargs)  # type: ignore[arg-type]


def test_launching_twice_is_refused(tmp_path: Path) -> None:
    with start_server(env_path=tmp_path) as server, \
            pytest.raises(VisdomServerError, match=r"already running \(pid \d+\)"):
        server._launch(5.0)


def test_ensure_server_reuses_a_running_server(visdom_server: VisdomServer, tmp_path: Path) -> None:
    assert ensure_server(visdom_server.port, tmp_path, install_assets=False) is None
    assert not list(tmp_path.glob("server*.pid"))


def test_ensure_server_starts_one_with_a_pid_file(tmp_path: Path) -> None:
    port = find_free_port()
    server = ensure_server(port, tmp_path / "state", install_assets=False)
    assert server is not None
    try:
        assert server.detached
        assert is_serving(port)
        assert (tmp_path / "state" / f"server-{port}.pid").read_text() == f"{server.pid}\n"
        assert (tmp_path / "state" / "env").is_dir()
    finally:
        server.stop()


def _make_stop(state: Path, *args: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-s", "-C", str(repo), "stop", f"STATE={state}", *args], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout


def _wait_stopped(port: int) -> bool:
    deadline = time.monotonic() + 10
    while is_serving(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not is_serving(port)


@pytest.mark.slow
def test_make_stop_stops_the_demo_server_whatever_started_after_it(tmp_path: Path) -> None:
    """``make demo PORT=P`` then an example on the default port: ``make stop`` stops both, ``PORT=`` one."""
    state = tmp_path / "state"
    demo_port, example_port, third_port = find_free_port(), find_free_port(), find_free_port()
    servers = [ensure_server(p, state, install_assets=False) for p in (demo_port, example_port, third_port)]
    try:
        assert all(s is not None for s in servers)
        out = _make_stop(state, f"PORT={third_port}")
        assert f"server-{third_port}.pid" in out and _wait_stopped(third_port)
        assert is_serving(demo_port) and is_serving(example_port)
        out = _make_stop(state)
        assert out.count("stopped Visdom server") == 2, out
        assert _wait_stopped(demo_port) and _wait_stopped(example_port)
        assert not list(state.glob("server*.pid"))
        assert "no server started" in _make_stop(state)
    finally:
        for server in servers:
            if server is not None:
                server.stop()


# --- delete_env: the env found by its windows, on visdom 0.2.4 and 0.3 alike ------------------------------------


def test_delete_env(visdom_server: VisdomServer, viz: visdom.Visdom, env: str) -> None:
    viz.text("x", env=env)
    assert delete_env(visdom_server.port, env) is True
    assert not (visdom_server.env_path / f"{env}.json").exists()
    assert delete_env(visdom_server.port, env) is False


def test_delete_env_saved_only(tmp_path: Path, env: str) -> None:
    """An env the server loaded from its saved file at start (no window drawn since) is found and deleted."""
    with start_server(env_path=tmp_path / "env") as server:
        client = visdom.Visdom(port=server.port, raise_exceptions=True, use_incoming_socket=False)
        client.text("x", env=env)
        client.save([env])
        server.restart()
        assert delete_env(server.port, env) is True
        assert not (tmp_path / "env" / f"{env}.json").exists()


def test_delete_env_without_server() -> None:
    port = find_free_port()
    with pytest.raises(VisdomServerError, match=rf"could not delete env 'e' on the Visdom server at 127.0.0.1:{port}: "
                                                rf".*Start one with `flexlogger serve --port {port}`"):
        delete_env(port, "e")


# --- login -----------------------------------------------------------------------------------------------------


@pytest.fixture
def login_server(tmp_path: Path) -> VisdomServer:
    server = start_server(env_path=tmp_path / "env", log_path=tmp_path / "log", username=USER, password=PASSWORD)
    yield server  # type: ignore[misc]
    server.stop()


def _post(port: int, endpoint: str, message: dict[str, object], cookie: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{endpoint}", data=json.dumps(message).encode(),
                                     method="POST", headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _login_cookie(port: int, password: str = PASSWORD) -> str:
    import hashlib

    request = urllib.request.Request(f"http://127.0.0.1:{port}", method="POST", data=json.dumps(
        {"username": USER, "password": hashlib.sha256(password.encode()).hexdigest()}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Set-Cookie"]).split(";")[0]


def test_login_server_refuses_requests_without_the_cookie(login_server: VisdomServer, env: str) -> None:
    assert login_server.login and login_server.username == USER
    assert _post(login_server.port, "env_state", {}) in (400, 401)  # 0.2.4: 400, 0.3: 401
    assert _post(login_server.port, "env_state", {}, cookie=_login_cookie(login_server.port)) == 200
    client = visdom.Visdom(port=login_server.port, username=USER, password=PASSWORD, raise_exceptions=True,
                           use_incoming_socket=False)
    client.text("x", env=env)
    assert delete_env(login_server.port, env, username=USER, password=PASSWORD) is True


def test_login_server_never_shows_the_password(login_server: VisdomServer) -> None:
    cmdline = Path(f"/proc/{login_server.pid}/cmdline").read_bytes()
    assert b"-enable_login" in cmdline and PASSWORD.encode() not in cmdline
    assert PASSWORD not in repr(login_server) and PASSWORD not in login_server.log_tail()
    assert PASSWORD not in json.dumps(vars(login_server), default=str).replace(f'"_password": "{PASSWORD}"', "")


def test_login_server_restart_makes_a_new_cookie(login_server: VisdomServer) -> None:
    cookie = _login_cookie(login_server.port)
    login_server.restart()
    assert _post(login_server.port, "env_state", {}, cookie=cookie) in (400, 401)
    assert _post(login_server.port, "env_state", {}, cookie=_login_cookie(login_server.port)) == 200


def test_delete_env_with_a_wrong_password(login_server: VisdomServer) -> None:
    with pytest.raises(VisdomServerError, match=rf"refused the login of user '{USER}' \(HTTP 400\): wrong username "
                                                r"or password\?"):
        delete_env(login_server.port, "e", username=USER, password="wrong")


def test_delete_env_without_credentials_on_a_login_server(login_server: VisdomServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_USERNAME", raising=False)
    monkeypatch.delenv("VISDOM_PASSWORD", raising=False)
    with pytest.raises(VisdomServerError, match=r"could not delete env 'e' .*: HTTP 40[01]; it demands a login: set "
                                                r"VISDOM_USERNAME and VISDOM_PASSWORD"):
        delete_env(login_server.port, "e")


def test_delete_env_reads_credentials_from_the_environment(login_server: VisdomServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISDOM_USERNAME", USER)
    monkeypatch.setenv("VISDOM_PASSWORD", PASSWORD)
    assert delete_env(login_server.port, "no-such-env") is False
    monkeypatch.delenv("VISDOM_PASSWORD")
    with pytest.raises(ConfigError, match=r"needs a username and a password, but the password is missing: pass "
                                          r"`password=` or set VISDOM_PASSWORD"):
        delete_env(login_server.port, "e")


def test_base_url(tmp_path: Path, env: str) -> None:
    with start_server(env_path=tmp_path, base_url="/visdom") as server:
        assert server.address == f"http://localhost:{server.port}/visdom"
        assert "-base_url" in server.command()
        client = visdom.Visdom(port=server.port, base_url="/visdom", raise_exceptions=True,
                               use_incoming_socket=False)
        client.text("x", env=env)
        assert delete_env(server.port, env, base_url="/visdom") is True


# --- a server never outlives the process that started it, unless detached --------------------------------------


STARTER = textwrap.dedent("""
    import os, signal, sys
    from flexlogger.tools.server import start_server
    server = start_server(env_path=sys.argv[1], detached=sys.argv[2] == "detached")
    print(server.port, server.pid, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError("the training script crashed")
""")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _run_starter(tmp_path: Path, how: str) -> tuple[int, int, subprocess.CompletedProcess[str]]:
    done = subprocess.run([sys.executable, "-c", STARTER, str(tmp_path), how], capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    port, pid = (int(v) for v in done.stdout.split())
    return port, pid, done


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _pid_alive(pid)


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_server_dies_with_its_starter(tmp_path: Path, how: str) -> None:
    port, pid, done = _run_starter(tmp_path, how)
    assert done.returncode == (1 if how == "raise" else -signal.SIGKILL), done.stderr
    if how == "raise":
        assert "RuntimeError: the training script crashed" in done.stderr
    assert _wait_gone(pid), f"Visdom server pid {pid} outlived its starter"
    assert not is_serving(port)


def test_detached_server_outlives_its_starter(tmp_path: Path) -> None:
    port, pid, done = _run_starter(tmp_path, "detached")
    try:
        assert done.returncode == 1
        time.sleep(1.0)
        assert _pid_alive(pid) and is_serving(port)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert _wait_gone(pid)


def test_a_dropped_reference_does_not_stop_the_server(tmp_path: Path) -> None:
    import gc

    server = start_server(env_path=tmp_path)
    port, pid = server.port, server.pid
    assert pid is not None
    del server
    gc.collect()
    time.sleep(0.5)
    try:
        assert is_serving(port)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert _wait_gone(pid)
