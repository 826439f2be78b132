"""Logging from any language: pastalog's POST /data fed by curl and requests, into run records and a real Visdom
server; bad bodies refused with 400/411/413 and nothing stored."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import visdom

from flexlogger import ConfigError
from flexlogger.sinks.record import read_record
from flexlogger.tools.cli import main
from flexlogger.tools.ingest import IngestError, IngestServer, PointError, parse_point
from flexlogger.tools.server import VisdomServer, find_free_port, is_serving

ROOT = Path(__file__).resolve().parent.parent
CURL = shutil.which("curl")


def point(model: str = "model1", kind: str = "validLoss", value: Any = 2.5, step: Any = 1) -> dict[str, Any]:
    return {"modelName": model, "pointType": kind, "pointValue": value, "globalStep": step}


@pytest.fixture
def ingest(visdom_server: VisdomServer, tmp_path: Path, env: str) -> Iterator[IngestServer]:
    with IngestServer(port=0, env=env, visdom_port=visdom_server.port, log_dir=tmp_path, min_interval=0.05) as server:
        yield server


def curl(url: str, body: str | bytes, *extra: str) -> tuple[int, str]:
    assert CURL is not None, "curl is needed by this test"
    done = subprocess.run([CURL, "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "-H",
                           "Content-Type: application/json", *extra, "--data-binary", "@-", url],
                          input=body if isinstance(body, bytes) else body.encode(), capture_output=True, timeout=30)
    text, _, code = done.stdout.decode().rpartition("\n")
    return int(code), text.strip()


def window(viz: visdom.Visdom, ingest: IngestServer, model: str, plot: str) -> dict[str, tuple[list[Any], list[Any]]]:
    assert ingest.loggers[model].flush(10) == 0
    data = json.loads(viz.get_window_data(f"{model}_{plot}", ingest.env))["content"]["data"]
    return {t["name"]: (t["x"], t["y"]) for t in data}


def test_pastalog_points_from_curl_and_requests_become_runs(ingest: IngestServer, viz: visdom.Visdom,
                                                            tmp_path: Path) -> None:
    for step in range(3):
        assert curl(ingest.url, json.dumps(point(value=2.5 - step, step=step))) == (200, "ok")
    answer = requests.post(ingest.url, json=point("model2", "trainAcc", 0.75, 10), timeout=10)
    assert (answer.status_code, answer.text) == (200, "ok\n")
    requests.post(ingest.url, json=point("model1", "trainLoss", 3, 0), timeout=10)
    assert window(viz, ingest, "model1", "validLoss") == {"validLoss": ([0, 1, 2], [2.5, 1.5, 0.5])}
    assert window(viz, ingest, "model1", "trainLoss") == {"trainLoss": ([0], [3.0])}
    assert window(viz, ingest, "model2", "trainAcc") == {"trainAcc": ([10], [0.75])}
    record = read_record(tmp_path / ingest.env / "model1")
    assert [(u.plot, u.step, dict(u.data)) for u in record.updates] == [
        ("validLoss", 0, {"validLoss": 2.5}), ("validLoss", 1, {"validLoss": 1.5}),
        ("validLoss", 2, {"validLoss": 0.5}), ("trainLoss", 0, {"trainLoss": 3.0})]
    assert ingest.points == 5 and ingest.refused == 0


@pytest.mark.parametrize(("body", "match"), [
    (point(value="2.5"), r'^pointValue: expected a number, but got "2\.5" \(a string\)$'),
    ({k: v for k, v in point().items() if k != "globalStep"},
     r"^globalStep: missing; expected a JSON object with fields modelName, pointType, pointValue, globalStep$"),
    ({**point(), "extra": 1}, r"^extra: unknown field; expected only modelName, pointType, pointValue, globalStep$"),
    (point(model=""), r"^modelName: expected a non-empty string of at most 200 bytes of UTF-8 without control "
                      r"characters, but got \"\" \(a string\)$"),
    (point(kind=7), r"^pointType: expected a non-empty string .* but got 7 \(a int\)$"),
    (point(step=True), r"^globalStep: expected a number, but got true \(a bool\)$"),
    ([point()], r"^expected a JSON object with fields modelName, pointType, pointValue, globalStep, but got a list$"),
    ("{not json", r"^expected a JSON object with fields .*, but the body is not JSON"),
])
def test_bad_bodies_are_refused_with_400_naming_the_field_and_nothing_is_stored(
        ingest: IngestServer, tmp_path: Path, body: Any, match: str) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(PointError, match=match):
        parse_point(text.encode())
    code, answer = curl(ingest.url, text)
    assert code == 400 and answer == str(parse_point_error(text))
    reply = requests.post(ingest.url, data=text, timeout=10)
    assert reply.status_code == 400 and reply.text.strip() == answer
    assert ingest.loggers == {} and not any(tmp_path.iterdir())  # no run, no folder
    assert ingest.refused == 2


def parse_point_error(text: str) -> PointError:
    try:
        parse_point(text.encode())
    except PointError as exc:
        return exc
    raise AssertionError("expected an error")


def test_a_huge_body_gets_413_unread_and_a_good_point_after_it_is_stored(ingest: IngestServer,
                                                                         tmp_path: Path) -> None:
    huge = json.dumps(point(model="x" * 70_000))
    code, answer = curl(ingest.url, huge)
    assert code == 413 and answer == f"body of {len(huge)} bytes; expected at most 65536 bytes"
    assert requests.post(ingest.url, data=huge, timeout=10).status_code == 413
    assert ingest.loggers == {} and not any(tmp_path.iterdir())
    assert requests.post(ingest.url, json=point(), timeout=10).status_code == 200
    ingest.loggers["model1"].flush(10)
    assert [dict(u.data) for u in read_record(tmp_path / ingest.env / "model1").updates] == [{"validLoss": 2.5}]


def test_a_request_without_content_length_gets_411_and_other_paths_404(ingest: IngestServer) -> None:
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as sock:
        sock.sendall(b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 411")
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as sock:
        sock.sendall(b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: many\r\n\r\n")
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 400")
    assert reply.endswith(b"Content-Length: expected a number of bytes, but got 'many'\n")
    missing = requests.post(ingest.url.replace("/data", "/points"), json=point(), timeout=10)
    assert (missing.status_code, missing.text) == (404, "no endpoint /points; expected POST /data\n")
    assert requests.get(ingest.url.replace("/data", "/"), timeout=10).text.startswith("flexlogger ingest: POST")
    assert ingest.loggers == {}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"uid": "x"}, r"^IngestServer\(\): unknown keyword argument 'uid' \(a model's uid is its modelName; "),
    ({"max_points": 3}, r"^IngestServer\(\): max_points: expected an int >= 16 .*, but got 3$"),
    ({"env": ""}, r"^IngestServer\(\): env: expected a non-empty string"),
])
def test_bad_options_are_refused_before_listening(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        IngestServer(port=0, **kwargs)


def test_a_port_in_use_is_refused_with_a_free_one_suggested(ingest: IngestServer,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(IngestError, match=rf"^IngestServer\(\): cannot listen on 127\.0\.0\.1:{ingest.port} \(Address "
                                          rf"already in use\); expected a free port, e.g. {ingest.port + 1}$"):
        IngestServer(port=ingest.port)
    assert main(["ingest", "--port", str(ingest.port)]) == 1
    assert capsys.readouterr().err.startswith(f"flexlogger ingest: error: IngestServer(): cannot listen on "
                                              f"127.0.0.1:{ingest.port}")


def test_it_binds_localhost_unless_public(tmp_path: Path) -> None:
    with IngestServer(port=0, server=None, log_dir=tmp_path) as local:
        assert local.host == "127.0.0.1" and local.url.startswith("http://127.0.0.1:")
    with IngestServer(port=0, server=None, log_dir=tmp_path, public=True) as public:
        assert public.host == "0.0.0.0"
        assert requests.post(public.url, json=point(), timeout=10).status_code == 200


def test_cli_ingest_and_serve_with_ingest_port(visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path,
                                               env: str) -> None:
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "ingest", "--port", str(port), "--visdom-port",
                             str(visdom_server.port), "--log-dir", str(tmp_path), "--env", env],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = f"http://127.0.0.1:{port}/data"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.post(url, json=point("cli", "loss", 1.25, 3), timeout=5)
                break
            except requests.ConnectionError:
                exited = proc.poll() is not None
                assert time.monotonic() < deadline and not exited, proc.stderr.read() if exited else "timed out"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert requests.post(url, json=point("cli", "loss", "bad", 4), timeout=5).status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Stopped: 1 point(s) taken, 1 request(s) refused." in out
    assert json.loads((tmp_path / env / "cli" / "summary.json").read_text())["points"] == 1  # closed: summary
    data = json.loads(viz.get_window_data("cli_loss", env))["content"]["data"]
    assert [(t["name"], t["x"], t["y"]) for t in data] == [("loss", [3], [1.25])]


def test_serve_ingest_port_starts_both(tmp_path: Path) -> None:
    visdom_port, ingest_port = find_free_port(), find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "serve", "--port", str(visdom_port), "--no-assets",
                             "--env-path", str(tmp_path / "envs"), "--ingest-port", str(ingest_port), "--log-dir",
                             str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.post(f"http://127.0.0.1:{ingest_port}/data", json=point("s", "loss", 0.5, 0),
                                       timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert answer.status_code == 200
        view = visdom.Visdom(server="http://localhost", port=visdom_port, use_incoming_socket=False,
                             raise_exceptions=True)
        deadline = time.monotonic() + 20
        while view.win_exists("s_loss", "ingest") is not True:
            assert time.monotonic() < deadline, "the point never reached the Visdom server"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [dict(u.data) for u in read_record(tmp_path / "runs" / "ingest" / "s").updates] == [{"loss": 0.5}]


def test_serve_with_a_busy_ingest_port_stops_its_visdom_server(ingest: IngestServer, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    visdom_port = find_free_port()
    assert main(["serve", "--port", str(visdom_port), "--no-assets", "--env-path", str(tmp_path / "envs"),
                 "--ingest-port", str(ingest.port)]) == 1
    assert f"cannot listen on 127.0.0.1:{ingest.port}" in capsys.readouterr().err
    assert not is_serving(visdom_port)  # the Visdom server it started is stopped again
