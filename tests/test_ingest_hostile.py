"""The ingest endpoint under hostile or unlucky use: acknowledged means on the disk, stalled clients and new models
cannot exhaust threads, web pages and rebound hosts are refused, and odd names and numbers get 400, not 500."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_ingest import ROOT, point

from flexlogger.sinks.record import read_record
from flexlogger.tools.ingest import IngestServer
from flexlogger.tools.server import VisdomServer, find_free_port


@pytest.fixture
def ingest(tmp_path: Path, env: str) -> Iterator[IngestServer]:
    with IngestServer(port=0, env=env, server=None, log_dir=tmp_path, max_connections=8, max_models=3,
                      timeout=1.0) as server:
        yield server


def post(ingest: IngestServer, body: Any, **headers: str) -> requests.Response:
    return requests.post(ingest.url, data=body if isinstance(body, (str, bytes)) else json.dumps(body),
                         headers=headers, timeout=10)


def test_every_acknowledged_point_survives_a_kill_right_after(visdom_server: VisdomServer, tmp_path: Path,
                                                              env: str) -> None:
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "ingest", "--port", str(port), "--visdom-port",
                             str(visdom_server.port), "--log-dir", str(tmp_path), "--env", env],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}/data"
    acknowledged = []
    try:
        deadline = time.monotonic() + 30
        with requests.Session() as session:
            for step in range(200):
                while True:
                    try:
                        answer = session.post(url, json=point("durable", "loss", float(step), step), timeout=10)
                        break
                    except requests.ConnectionError:
                        assert step == 0 and time.monotonic() < deadline and proc.poll() is None, "no endpoint"
                        time.sleep(0.1)
                if answer.status_code == 200:
                    acknowledged.append(step)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert len(acknowledged) == 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run was killed: no summary, maybe a torn line never acknowledged
        record = read_record(tmp_path / env / "durable")
    assert [u.step for u in record.updates] == acknowledged


def test_stalled_clients_hold_no_more_than_the_limit_and_are_dropped(ingest: IngestServer) -> None:
    before = threading.active_count()
    stalled = []
    for _ in range(40):  # headers begun, never finished
        sock = socket.create_connection(("127.0.0.1", ingest.port), timeout=5)
        sock.sendall(b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        stalled.append(sock)
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= 8  # max_connections handler threads, no more
        start = time.monotonic()
        answer = None
        while time.monotonic() - start < 10:  # the stalled ones time out after 1 s; then a poster gets through
            try:
                answer = post(ingest, point())
            except requests.ConnectionError:
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert time.monotonic() - start < 5
    finally:
        for sock in stalled:
            sock.close()


def test_one_connection_over_the_limit_is_answered_503_at_once(tmp_path: Path, env: str) -> None:
    with IngestServer(port=0, env=env, server=None, log_dir=tmp_path, max_connections=8, timeout=30) as ingest:
        held = [socket.create_connection(("127.0.0.1", ingest.port), timeout=5) for _ in range(8)]
        try:
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", ingest.port), timeout=5) as extra:
                extra.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert extra.recv(200).startswith(b"HTTP/1.1 503 Service Unavailable")
        finally:
            for sock in held:
                sock.close()


def test_models_beyond_the_limit_get_503_and_open_nothing(ingest: IngestServer) -> None:
    for model in ("a", "b", "c"):
        assert post(ingest, point(model=model)).status_code == 200
    def model_threads() -> int:  # a model's record writer and Visdom sender (connection threads come and go)
        return sum(t.name.startswith(("flexlogger-record", "flexlogger-sender")) for t in threading.enumerate())

    threads = model_threads()
    answer = post(ingest, point(model="d"))
    assert answer.status_code == 503
    assert answer.text == "modelName: 3 models are open, the most this endpoint takes (max_models=3); 'd' is refused\n"
    assert set(ingest.loggers) == {"a", "b", "c"} and model_threads() == threads >= 3  # nothing opened for d


@pytest.mark.parametrize(("headers", "match"), [
    ({"Origin": "http://localhost:8097"}, "Origin: requests from web pages are refused (got 'http://localhost:8097')"),
    ({"Origin": "null", "Content-Type": "text/plain"}, "Origin: requests from web pages are refused"),
    ({"Host": "evil.example:8120"}, "Host: expected one of 127.0.0.1, [::1], localhost (the endpoint listens on "
                                    "127.0.0.1), but got 'evil.example:8120'"),
])
def test_web_pages_and_rebound_hosts_are_refused(ingest: IngestServer, tmp_path: Path, headers: dict[str, str],
                                                 match: str) -> None:
    answer = post(ingest, point(), **headers)
    assert answer.status_code == 403 and answer.text.startswith(match)
    assert ingest.loggers == {} and not any(tmp_path.iterdir())
    assert post(ingest, point(), Host=f"localhost:{ingest.port}").status_code == 200


@pytest.mark.parametrize(("body", "match"), [
    ('{"modelName": "m", "pointType": "t", "pointValue": 1, "globalStep": 1' + "0" * 400 + "}",
     "globalStep: expected a number within float range (about 1.8e308), but got an integer of 401 digits"),
    ('{"modelName": "m", "pointType": "t", "pointValue": -1' + "0" * 400 + ', "globalStep": 1}',
     "pointValue: expected a number within float range"),
    (json.dumps(point(model="a\x00b")), "modelName: expected a non-empty string of at most 200 bytes of UTF-8 without "
                                        "control characters, but got"),
    ('{"modelName": "\\ud800", "pointType": "t", "pointValue": 1, "globalStep": 1}', "modelName: expected"),
    (json.dumps(point(model="€" * 200)), "modelName: expected a non-empty string of at most 200 bytes"),
    (json.dumps(point(kind="\n")), "pointType: expected"),
])
def test_odd_numbers_and_names_get_400_naming_the_field(ingest: IngestServer, tmp_path: Path, body: str,
                                                        match: str) -> None:
    answer = post(ingest, body.encode())
    assert answer.status_code == 400 and answer.text.startswith(match), answer.text
    assert ingest.loggers == {} and not any(tmp_path.iterdir())
