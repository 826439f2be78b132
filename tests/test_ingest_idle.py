"""The ingest endpoint over time: idle models closed (threads and files freed) and reopened on their next point, one
record per model continued across reopens and restarts with its windows drawn again from it, the password held only
as a digest, and the limits as flags of ``flexlogger ingest``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import visdom
from test_ingest import ROOT, point

from flexlogger.sinks.record import read_record
from flexlogger.sinks.visdom.auth import PasswordDigest, password_digest
from flexlogger.tools.cli import main
from flexlogger.tools.ingest import IngestServer
from flexlogger.tools.server import VisdomServer, find_free_port


def post(ingest: IngestServer, body: dict[str, Any]) -> requests.Response:
    return requests.post(ingest.url, data=json.dumps(body), timeout=30)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def idle_ingest(visdom_server: VisdomServer, tmp_path: Path, env: str) -> Iterator[IngestServer]:
    with IngestServer(port=0, env=env, visdom_port=visdom_server.port, log_dir=tmp_path, min_interval=0.05,
                      idle_timeout=1.0, close_timeout=5.0) as server:
        yield server


def window(viz: visdom.Visdom, env: str, model: str, plot: str) -> dict[str, tuple[list[Any], list[Any]]]:
    data = json.loads(viz.get_window_data(f"{model}_{plot}", env))["content"]["data"]
    return {t["name"]: (t["x"], t["y"]) for t in data}


def test_idle_models_are_closed_freeing_threads_and_files_and_reopen_on_their_next_point(
        visdom_server: VisdomServer, viz: visdom.Visdom, tmp_path: Path, env: str) -> None:
    models = [f"m{i}" for i in range(30)]
    # an idle timeout longer than posting 30 models takes on a busy machine: all are open at once, then all close
    with IngestServer(port=0, env=env, visdom_port=visdom_server.port, log_dir=tmp_path, min_interval=0.05,
                      idle_timeout=6.0, close_timeout=5.0) as idle_ingest:
        threads, fds = threading.active_count(), open_fds()  # the endpoint's own threads and socket counted
        _idle_models_close_and_reopen(idle_ingest, viz, tmp_path, env, models, threads, fds)


def _idle_models_close_and_reopen(idle_ingest: IngestServer, viz: visdom.Visdom, tmp_path: Path, env: str,
                                  models: list[str], threads: int, fds: int) -> None:
    for model in models:
        assert post(idle_ingest, point(model, "loss", 1.0, 1)).status_code == 200
    assert threading.active_count() - threads >= 2 * len(models)  # a record writer and a sender per model
    assert open_fds() - fds >= len(models)
    assert wait_until(lambda: idle_ingest.idle_closed == len(models), 40), f"open: {sorted(idle_ingest.loggers)}"
    assert not idle_ingest.loggers
    assert wait_until(lambda: threading.active_count() <= threads, 10), threading.enumerate()
    assert open_fds() <= fds + 2  # the requests session's connection, at most

    for model in models[:3]:  # reopened: the same record folder, the window goes on from its first point
        assert post(idle_ingest, point(model, "loss", 2.0, 2)).status_code == 200
    assert idle_ingest.loggers["m0"].flush(10) == 0
    assert window(viz, env, "m0", "loss") == {"loss": ([1, 2], [1.0, 2.0])}
    idle_ingest.stop()
    assert sorted(p.name for p in (tmp_path / env).iterdir()) == sorted(models)
    record = read_record(tmp_path / env / "m0")
    assert [(u.step, u.data) for u in record.updates] == [(1, {"loss": 1.0}), (2, {"loss": 2.0})]
    summary = json.loads((tmp_path / env / "m0" / "summary.json").read_text())
    assert (summary["updates"], summary["points"], summary["last_step"]) == (2, 2, 2)


def test_a_point_during_an_idle_close_waits_and_lands_in_the_reopened_run(idle_ingest: IngestServer,
                                                                           tmp_path: Path, env: str) -> None:
    steps = []
    for step in range(12):  # posts about the idle timeout apart, some while the model closes
        assert post(idle_ingest, point("slow", "loss", float(step), step)).status_code == 200
        steps.append(step)
        time.sleep(0.2 if step % 2 else 1.5)
    idle_ingest.stop()
    assert idle_ingest.idle_closed >= 3
    assert [u.step for u in read_record(tmp_path / env / "slow").updates] == steps


def test_after_a_restart_a_models_window_is_drawn_again_from_its_record(visdom_server: VisdomServer,
                                                                        viz: visdom.Visdom, tmp_path: Path,
                                                                        env: str) -> None:
    options: dict[str, Any] = {"env": env, "visdom_port": visdom_server.port, "log_dir": tmp_path,
                               "min_interval": 0.05}
    with IngestServer(port=0, **options) as first:
        for step in range(3):
            assert post(first, point("model1", "loss", 3.0 - step, step)).status_code == 200
        assert post(first, point("model1", "acc", 0.5, 2)).status_code == 200
    viz.close(env=env)  # the server lost the windows too (a restart without saving)
    with IngestServer(port=0, **options) as second:  # a restart: a new endpoint on the same log_dir
        assert post(second, point("model1", "loss", 0.5, 3)).status_code == 200
        assert second.loggers["model1"].flush(10) == 0
        assert window(viz, env, "model1", "loss") == {"loss": ([0, 1, 2, 3], [3.0, 2.0, 1.0, 0.5])}
        assert window(viz, env, "model1", "acc") == {"acc": ([2], [0.5])}  # drawn again though no point came
    assert [p.name for p in (tmp_path / env).iterdir()] == ["model1"]  # one record, continued
    record = read_record(tmp_path / env / "model1")
    assert [(u.plot, u.step) for u in record.updates] == [("loss", 0), ("loss", 1), ("loss", 2), ("acc", 2),
                                                          ("loss", 3)]


def test_a_record_another_endpoint_holds_open_is_not_continued(tmp_path: Path, env: str) -> None:
    options: dict[str, Any] = {"env": env, "server": None, "log_dir": tmp_path}
    with IngestServer(port=0, **options) as first, IngestServer(port=0, **options) as second:
        assert post(first, point("shared", "loss", 1.0, 1)).status_code == 200
        assert post(second, point("shared", "loss", 2.0, 2)).status_code == 200
    assert [u.step for u in read_record(tmp_path / env / "shared").updates] == [1]
    second_record = read_record(tmp_path / env / "shared-2")
    assert ([u.step for u in second_record.updates], second_record.window_uid) == ([2], "shared")


def reachable(root: object, limit: int = 100_000) -> Iterator[object]:
    """Every object reachable from ``root`` through attributes, slots, containers and closures (not modules,
    classes or functions' globals), breadth first."""
    seen, queue = {id(root)}, [root]
    while queue and len(seen) < limit:
        obj = queue.pop(0)
        yield obj
        if isinstance(obj, (type, type(os))):
            continue
        children: list[object] = []
        if isinstance(obj, dict):
            children += [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        if hasattr(obj, "__dict__") and not callable(obj):
            children += list(vars(obj).values())
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(obj, name):
                    children.append(getattr(obj, name))
        for child in children:
            if id(child) not in seen and not isinstance(child, (type, type(os))):
                seen.add(id(child))
                queue.append(child)


def test_the_password_is_held_only_as_its_digest(tmp_path: Path, env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_PASSWORD", raising=False)
    secret = "s3cret-for-ingest"
    with IngestServer(port=0, env=env, visdom_port=find_free_port(), log_dir=tmp_path, username="me",
                      password=secret, close_timeout=0.5) as ingest:
        with pytest.warns(RuntimeWarning, match="does not answer"):  # no server there: the run opens anyway
            assert post(ingest, point()).status_code == 200
            ingest.loggers["model1"].flush(0.5)
        strings = [o for o in reachable(ingest) if isinstance(o, str)]
        assert strings and not [s for s in strings if secret in s]
        assert isinstance(ingest.run_options["password"], PasswordDigest)
        assert password_digest(ingest.run_options["password"]) == password_digest(secret)
        assert secret not in repr(ingest.run_options) and password_digest(secret) not in repr(ingest.run_options)
        with pytest.warns(RuntimeWarning, match="could not be delivered"):
            ingest.stop()


def test_the_cli_takes_the_limits_as_flags(visdom_server: VisdomServer, tmp_path: Path, env: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    port = find_free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "ingest", "--port", str(port), "--visdom-port",
                             str(visdom_server.port), "--log-dir", str(tmp_path), "--env", env, "--max-models", "1",
                             "--idle-timeout", "1",
                             "--max-connections", "4", "--timeout", "2", "--sync-timeout", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}/data"
    try:
        assert wait_until(lambda: _answers(url), 30), proc.stderr.read().decode() if proc.poll() is not None else ""
        assert requests.post(url, json=point("a"), timeout=10).status_code == 200
        refused = requests.post(url, json=point("b"), timeout=10)
        assert (refused.status_code, "max_models=1" in refused.text) == (503, True)
        time.sleep(1.6)  # a is closed for being idle: b may open
        assert requests.post(url, json=point("b"), timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert main(["ingest", "--idle-timeout", "0"]) == 2
    assert "argument --idle-timeout: expected a positive number of seconds, got '0'" in capsys.readouterr().err


def _answers(url: str) -> bool:
    try:
        return requests.get(url.rsplit("/", 1)[0] + "/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
