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
from urllib.parse import urljoin

import pytest
import requests
import visdom

from flexlogger import ConfigError
from flexlogger.sinks.record import read_record
from flexlogger.tools.cli import main
from flexlogger.tools.ingest import IngestError, IngestServer, PointError, model_uid, parse_point
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
    data = json.loads(viz.get_window_data(ingest.loggers[model].window_id(plot), ingest.env))["content"]["data"]
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
    ({k: v for k, v in point().items() if k != "pointValue"},
     r"^pointValue: missing; expected a JSON object with fields modelName, pointType, pointValue \(and globalStep, "
     r"a number or null\)$"),
    ({k: v for k, v in point().items() if k != "modelName"}, r"^modelName: missing; expected a JSON object with"),
    (point(step="1"), r'^globalStep: expected a number or null, but got "1" \(a string\)$'),
    (point(value=None), r"^pointValue: expected a number, but got null \(a NoneType\)$"),
    (point(model=""), r"^modelName: expected a non-empty string of at most 200 bytes of UTF-8 without control "
                      r"characters, but got \"\" \(a string\)$"),
    (point(kind=7), r"^pointType: expected a non-empty string .* but got 7 \(a int\)$"),
    (point(step=True), r"^globalStep: expected a number or null, but got true \(a bool\)$"),
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


def pastalog_post(url: str, model_name: str, series_name: str, value: Any, step: Any) -> requests.Response:
    """What pastalog's Python client sends: ``pastalog.Log(url, model_name).post(series_name, value, step)``
    (rewonc/pastalog, ``pastalog/pastalog/__init__.py``) is ``requests.post(urljoin(url, 'data'), json=payload)``
    with ``payload = {"modelName": model_name, "pointType": series_name, "pointValue": value, "globalStep":
    step}``. The client is Python 2 only on PyPI, so its body is written here as its ``requests`` wrote it:
    ``json.dumps(payload)`` (NaN as ``NaN``: requests of its time did not refuse it), ``Content-Type:
    application/json``."""
    payload = {"modelName": model_name, "pointType": series_name, "pointValue": value, "globalStep": step}
    return requests.post(urljoin(url, "data"), data=json.dumps(payload).encode(),
                         headers={"Content-Type": "application/json"}, timeout=10)


def test_what_pastalogs_own_client_and_server_take_is_taken(ingest: IngestServer, viz: visdom.Visdom,
                                                           tmp_path: Path) -> None:
    """pastalog's server (``src/server/routes.js``) answers 200 to any body with modelName, pointType and
    pointValue: a missing or null globalStep and extra fields are no reason for a 400 here either."""
    base = f"http://127.0.0.1:{ingest.port}"
    for step, value in enumerate([2.7, 2.15, 1.32]):  # pastalog's README example, through its client's body
        assert pastalog_post(base, "resnet_48_A_V5", "trainLoss", value, step + 1).status_code == 200
    assert pastalog_post(base, "resnet_48_A_V5", "trainLoss", float("nan"), None).status_code == 200  # step 4
    assert pastalog_post(base + "/", "resnet_48_A_V5", "validLoss", 1.56, None).status_code == 200  # step 0
    no_step = {"modelName": "resnet_48_A_V5", "pointType": "validLoss", "pointValue": 1.2}
    assert curl(ingest.url, json.dumps(no_step)) == (200, "ok")  # step 1
    extra = {**point("resnet_48_A_V5", "validLoss", 1.1, 6), "wallTime": 1.5e9, "tags": ["a"]}
    assert curl(ingest.url, json.dumps(extra)) == (
        200, "ok; ignored fields: tags, wallTime (taken: modelName, pointType, pointValue, globalStep)")
    assert pastalog_post(base, "resnet_48_A_V5", "validLoss", 1.0, None).status_code == 200  # step 7
    assert ingest.refused == 0 and ingest.points == 8
    train = window(viz, ingest, "resnet_48_A_V5", "trainLoss")["trainLoss"]
    assert train[0] == [1, 2, 3, 4] and train[1][:3] == [2.7, 2.15, 1.32]
    assert window(viz, ingest, "resnet_48_A_V5", "validLoss") == {"validLoss": ([0, 1, 6, 7], [1.56, 1.2, 1.1, 1.0])}
    record = read_record(tmp_path / ingest.env / "resnet~48~A~V5")
    assert [(u.plot, u.step) for u in record.updates] == [
        ("trainLoss", 1), ("trainLoss", 2), ("trainLoss", 3), ("trainLoss", 4),
        ("validLoss", 0), ("validLoss", 1), ("validLoss", 6), ("validLoss", 7)]


def test_two_models_whose_names_and_series_meet_at_an_underscore_get_two_windows(
        ingest: IngestServer, viz: visdom.Visdom, tmp_path: Path) -> None:
    """Model ``a_b`` with series ``c`` and model ``a`` with series ``b_c`` were both window ``a_b_c``: the second
    overwrote the first. Model uids hold no ``_``, so each gets its own window and its own record."""
    assert requests.post(ingest.url, json=point("a_b", "c", 1.0, 0), timeout=10).status_code == 200
    assert requests.post(ingest.url, json=point("a", "b_c", 2.0, 0), timeout=10).status_code == 200
    assert requests.post(ingest.url, json=point("a_run", "status", 3.0, 0), timeout=10).status_code == 200
    ids = {ingest.loggers[m].window_id(p) for m, p in (("a_b", "c"), ("a", "b_c"), ("a_run", "status"))}
    assert ids == {"a~b_c", "a_b_c", "a~run_status"}
    assert window(viz, ingest, "a_b", "c") == {"c": ([0], [1.0])}
    assert window(viz, ingest, "a", "b_c") == {"b_c": ([0], [2.0])}
    assert window(viz, ingest, "a_run", "status") == {"status": ([0], [3.0])}
    assert sorted(p.name for p in (tmp_path / ingest.env).iterdir()) == ["a", "a~b", "a~run"]


@pytest.mark.parametrize("names", [("a_b", "a~b"), ("a~b", "a%7Eb"), ("a%b", "a%25b"), ("x", "x"), ("_", "~")])
def test_model_uids_keep_plain_names_and_never_share_an_escaped_one(names: tuple[str, str]) -> None:
    plain, other = names
    uids = {model_uid(n) for n in (plain, other)}
    assert len(uids) == len(set(names)) and not any("_" in u for u in uids)
    assert model_uid("modelA") == "modelA" and model_uid("resnet_48") == "resnet~48"


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
