"""Replay: a run made with no server at all is drawn afterwards exactly as a live run draws it."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import visdom
from test_record import ALL_METERS, ALL_PLOTS, feed_all

import flexlogger
from flexlogger import DeliveryError, FlexLogger
from flexlogger.sinks.record import RecordError
from flexlogger.tools.cli import main
from flexlogger.tools.server import VisdomServer, find_free_port


def contents(viz: visdom.Visdom, env: str, windows: dict[str, str]) -> dict[str, Any]:
    out = {}
    for plot, win in windows.items():
        data = json.loads(viz.get_window_data(win, env))
        out[plot] = (data["type"], data["title"], data["content"])
    return out


def test_a_run_without_server_replays_like_a_live_run(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                      tmp_path: Path, env: str) -> None:
    with FlexLogger(ALL_PLOTS, ALL_METERS, env=f"{env}-offline", uid="run", server=None, log_dir=tmp_path) as stat:
        feed_all(stat, 12)
    live = FlexLogger(ALL_PLOTS, ALL_METERS, env=f"{env}-live", uid="run", port=visdom_server.port, log_dir=None)
    feed_all(live, 12)
    assert live.flush(30) == 0
    windows = live.windows
    with pytest.warns(RuntimeWarning, match="NaN/Inf"):
        live.close()
    with pytest.warns(RuntimeWarning, match="NaN/Inf"):
        result = flexlogger.replay(tmp_path / f"{env}-offline" / "run", port=visdom_server.port,
                                   env=f"{env}-replayed")
    assert result.windows == windows and result.env == f"{env}-replayed"
    assert (result.updates, result.points) == (12 * len(ALL_PLOTS), 24)
    assert str(result) == f"8 window(s), 96 update(s), 24 point(s) in env '{env}-replayed'"
    assert contents(viz, f"{env}-replayed", windows) == contents(viz, f"{env}-live", windows)


def test_replay_into_the_recorded_env_by_default(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path,
                                                 env: str) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="u1", server=None, log_dir=tmp_path) as stat:
        for step in range(5000):
            stat.add({"v": float(step % 100)})
            stat.log(step)
    result = flexlogger.replay(tmp_path / env / "u1", port=visdom_server.port, max_points=100)
    data = json.loads(viz.get_window_data("u1_loss", env))["content"]["data"][0]
    assert result.env == env and result.points == 5000
    assert len(data["x"]) <= 100 and data["x"][-1] == 4999 and (min(data["y"]), max(data["y"])) == (0.0, 99.0)


def test_cli_replay(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path, env: str,
                    capsys: pytest.CaptureFixture[str]) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="run", server=None, log_dir=tmp_path) as stat:
        for step in range(3):
            stat.add({"v": step * 2.0})
            stat.log(step)
    folder = tmp_path / env / "run"
    assert main(["replay", str(folder), "--port", str(visdom_server.port), "--env", f"{env}-cli"]) == 0
    assert f"1 window(s), 3 update(s), 3 point(s) in env '{env}-cli'" in capsys.readouterr().out
    data = json.loads(viz.get_window_data("run_loss", f"{env}-cli"))["content"]["data"][0]
    assert (data["x"], data["y"]) == ([0, 1, 2], [0.0, 2.0, 4.0])


def test_replay_without_a_server_says_how_to_start_one(tmp_path: Path, env: str) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {}, env=env, uid="run", server=None, log_dir=tmp_path):
        pass
    port = find_free_port()
    with pytest.raises(DeliveryError, match=rf"no Visdom server answers at http://localhost:{port} .*"
                                            rf"`flexlogger serve --port {port}`"):
        flexlogger.replay(tmp_path / env / "run", port=port)


def test_replay_of_a_folder_without_record(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"expected a run record folder holding points.jsonl"):
        flexlogger.replay(tmp_path)


def test_replay_draws_the_windows_the_run_drew_and_uid_draws_elsewhere(visdom_server: VisdomServer,
                                                                       viz: visdom.Visdom, tmp_path: Path,
                                                                       env: str) -> None:
    for value in (1.0, 2.0):  # a fixed uid run twice: folders exp1 and exp1-2, both drawn as exp1_loss
        with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                        uid="exp1", server=None, log_dir=tmp_path) as stat:
            stat.add({"v": value})
            stat.log(0)
    result = flexlogger.replay(tmp_path / env / "exp1-2", port=visdom_server.port)
    assert result.windows == {"loss": "exp1_loss"}
    assert json.loads(viz.get_window_data("exp1_loss", env))["content"]["data"][0]["y"] == [2.0]
    other = flexlogger.replay(tmp_path / env / "exp1-2", port=visdom_server.port, uid="elsewhere")
    assert other.windows == {"loss": "elsewhere_loss"}
    assert json.loads(viz.get_window_data("elsewhere_loss", env))["content"]["data"][0]["y"] == [2.0]


@contextlib.contextmanager
def http_404_server() -> Iterator[int]:
    """A plain http.server that answers 404 to everything."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404, "no such page")

        do_POST = do_GET  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, name="test-http-404", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def recorded(tmp_path: Path, env: str) -> Path:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="run", server=None, log_dir=tmp_path) as stat:
        stat.add({"v": 1.0})
        stat.log(0)
    return tmp_path / env / "run"


def replay_fails_fast(folder: Path, port: int, within: float, match: str) -> None:
    """Replaying ``folder`` to ``port`` raises a DeliveryError matching ``match`` within ``within`` seconds."""
    start = time.monotonic()
    with pytest.raises(DeliveryError, match=match):
        flexlogger.replay(folder, port=port)
    assert time.monotonic() - start < within


def test_replay_to_a_web_server_that_is_not_visdom_fails_fast(tmp_path: Path, env: str) -> None:
    folder = recorded(tmp_path, env)
    with http_404_server() as port:
        replay_fails_fast(folder, port, 10.0, rf"the server at http://localhost:{port} is not a Visdom server: "
                                              r"POST /win_exists answered HTTP 404 .*expected a Visdom server, "
                                              r"which answers true or false; start one with `flexlogger serve")


def test_replay_to_a_port_that_accepts_and_never_answers_fails_fast(tmp_path: Path, env: str) -> None:
    folder = recorded(tmp_path, env)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        port = listener.getsockname()[1]
        replay_fails_fast(folder, port, 15.0, rf"no Visdom server answers at http://localhost:{port}: something "
                                              r"accepted the connection but sent no answer within 5 s; expected a "
                                              r"Visdom server there")


def test_cli_replay_of_a_damaged_record_skips_and_warns(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                        tmp_path: Path, env: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = recorded(tmp_path, env)
    points = folder / "points.jsonl"
    lines = points.read_bytes().split(b"\n")[:-1]
    points.write_bytes(b"\n".join([*lines[:2], b"\xff\xfe junk", b'{"plot": "x", "kind": "sparkline"}',
                                   *lines[2:]]) + b"\n")
    with pytest.warns(RuntimeWarning) as caught:
        assert main(["replay", str(folder), "--port", str(visdom_server.port)]) == 0
    messages = [str(w.message) for w in caught]
    assert any(m.endswith("points.jsonl:3: skipping a damaged line (not UTF-8 text)") for m in messages)
    assert any("points.jsonl:4: skipping plot 'x' of unknown kind 'sparkline'" in m for m in messages)
    assert "1 window(s), 1 update(s), 1 point(s)" in capsys.readouterr().out
    assert json.loads(viz.get_window_data("run_loss", env))["content"]["data"][0]["y"] == [1.0]
