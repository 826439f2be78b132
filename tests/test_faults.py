"""Faults with real Visdom server processes: no server at start, a server killed and restarted mid-run, a server
restarted between two requests, a plot that cannot be drawn. Each test runs its own server (the session one is not
disturbed) and reads the windows back with ``get_window_data``: every point, in order, once."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visdom

from flexlogger import FlexLogger
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer, find_free_port, start_server

pytestmark = pytest.mark.slow  # real server processes stopped and restarted

PLOTS = {"loss": {"type": "line"}}
METERS = {"train": {"type": "AverageValueMeter", "target": "loss"},
          "test": {"type": "ValueMeter", "target": "loss"}}


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[VisdomServer]:
    """A Visdom server for this test only, which the test may stop and restart."""
    server = start_server(env_path=tmp_path / "visdom", log_path=tmp_path / "server.log")
    yield server
    server.stop()


def client(port: int) -> visdom.Visdom:
    return visdom.Visdom(port=port, raise_exceptions=True, use_incoming_socket=False)


def log_steps(stat: FlexLogger, steps: range) -> None:
    for step in steps:
        stat.add({"train": float(step), "test": -float(step)})
        stat.add({"train": float(step) + 1.0})
        stat.log(step)


def expected(steps: range) -> dict[str, tuple[list[Any], list[Any]]]:
    return {"train": (list(steps), [s + 0.5 for s in steps]), "test": (list(steps), [-float(s) for s in steps])}


def window_traces(port: int, stat: FlexLogger) -> dict[str, tuple[list[Any], list[Any]]]:
    assert stat.flush(60) == 0
    data = json.loads(client(port).get_window_data(stat.windows["loss"], stat.env))
    return {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]}


def test_no_server_at_start_then_one_comes_up(tmp_path: Path, env: str) -> None:
    port = find_free_port()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stat = FlexLogger(PLOTS, METERS, env=env, uid="run", port=port, log_dir=tmp_path / "runs")
        try:
            log_steps(stat, range(0, 20))
            assert stat.flush(0.5) > 0  # training went on; nothing reached a server
            log_steps(stat, range(20, 30))
            server = start_server(port=port, env_path=tmp_path / "visdom", log_path=tmp_path / "server.log")
            try:
                log_steps(stat, range(30, 40))
                assert window_traces(port, stat) == expected(range(40))
            finally:
                stat.close()
                server.stop()
        finally:
            stat.close()
    notices = [str(w.message) for w in caught if "does not answer" in str(w.message)]
    assert len(notices) == 1
    assert f"Visdom server at http://localhost:{port} does not answer" in notices[0]
    assert f"Start one with `flexlogger serve --port {port}`" in notices[0]
    assert len(read_record(tmp_path / "runs" / env / "run").updates) == 40


def test_server_killed_and_restarted_mid_run(own_server: VisdomServer, tmp_path: Path, env: str) -> None:
    with FlexLogger(PLOTS, METERS, env=env, uid="run", port=own_server.port, log_dir=None) as stat:
        log_steps(stat, range(0, 20))
        assert window_traces(own_server.port, stat) == expected(range(20))
        own_server.stop()
        with pytest.warns(RuntimeWarning, match="does not answer"):
            log_steps(stat, range(20, 40))  # no exception reaches the loop
            assert stat.flush(2) > 0
        own_server.restart()
        log_steps(stat, range(40, 60))
        assert window_traces(own_server.port, stat) == expected(range(60))


@pytest.mark.parametrize("saved", [False, True], ids=["env-lost", "stale-saved-env"])
def test_server_restarted_between_two_requests(own_server: VisdomServer, env: str, saved: bool) -> None:
    """No request fails: the restarted server lacks the windows or reloaded an older saved copy of them. A window
    that gets new points is resent whole anyway; one that gets none ('acc') is resent because the sender sees
    its HTTP connection was reopened."""
    plots = {**PLOTS, "acc": {"type": "line"}}
    meters = {**METERS, "accuracy": {"type": "ValueMeter", "target": "acc"}}
    with FlexLogger(plots, meters, env=env, uid="run", port=own_server.port, log_dir=None,
                    save_every=3600) as stat:
        for step in range(20):
            stat.add({"accuracy": step / 100})
            log_steps(stat, range(step, step + 1))
            if step == 9:
                assert stat.flush(10) == 0
                if saved:
                    client(own_server.port).save([env])  # the server's disk copy stops at step 9
        assert stat.flush(10) == 0
        own_server.restart()
        log_steps(stat, range(20, 30))  # only the loss window changes
        assert window_traces(own_server.port, stat) == expected(range(30))
        acc = json.loads(client(own_server.port).get_window_data(stat.windows["acc"], env))["content"]["data"]
        assert (acc[0]["x"], acc[0]["y"]) == (list(range(20)), [s / 100 for s in range(20)])


def test_a_plot_that_cannot_be_drawn_does_not_stop_the_others(visdom_server: VisdomServer, tmp_path: Path,
                                                               env: str) -> None:
    """A heatmap whose rownames do not fit its matrix cannot be drawn (a 3-d array would be refused by add()): one
    warning naming it, and every point of the line plot still arrives (before the fix, the sender died and every
    later log() raised)."""
    plots = {**PLOTS, "confusion": {"type": "heatmap", "opts": {"rownames": ["only one"]}}}
    meters = {**METERS, "matrix": {"type": "ValueMeter", "target": "confusion"}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stat = FlexLogger(plots, meters, env=env, uid="run", port=visdom_server.port, log_dir=tmp_path)
        try:
            for step in range(30):
                stat.add({"matrix": np.full((2, 3), float(step))})  # 2 rows, 1 row name: Visdom refuses it
                log_steps(stat, range(step, step + 1))
                if step % 10 == 0:
                    stat.flush(10)
            assert stat.flush(10) == 1  # the heatmap's content is not delivered; the rest is
            data = json.loads(client(visdom_server.port).get_window_data(stat.windows["loss"], env))
            assert {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]} == expected(range(30))
        finally:
            stat.close()
    drawn = [w for w in caught if "cannot be drawn" in str(w.message)]
    assert len(drawn) == 1 and drawn[0].category is RuntimeWarning
    assert re.match(r"flexlogger: plot 'confusion' \(heatmap\) cannot be drawn and is skipped until its data "
                    r"changes \(the other plots go on\): AssertionError: ", str(drawn[0].message))
    assert any("1 point(s) could not be delivered" in str(w.message) for w in caught)
    assert not client(visdom_server.port).win_exists(stat.windows["confusion"], env)
    assert len(read_record(tmp_path / env / "run").updates) == 60  # the record has every update of both plots


def test_a_window_that_cannot_be_drawn_is_retried_when_it_changes(visdom_server: VisdomServer, tmp_path: Path,
                                                                  env: str) -> None:
    plots = {**PLOTS, "confusion": {"type": "heatmap", "opts": {"rownames": ["only one"]}}}
    meters = {**METERS, "matrix": {"type": "ValueMeter", "target": "confusion"}}
    with FlexLogger(plots, meters, env=env, uid="run", port=visdom_server.port, log_dir=None) as stat:
        stat.add({"matrix": np.zeros((2, 3))})  # 2 rows, 1 row name
        log_steps(stat, range(1))
        with pytest.warns(RuntimeWarning, match=r"plot 'confusion' \(heatmap\) cannot be drawn"):
            assert stat.flush(10) == 1
        stat.add({"matrix": np.array([[1.0, 2.0]])})
        log_steps(stat, range(1, 2))
        assert stat.flush(10) == 0
        data = json.loads(client(visdom_server.port).get_window_data(stat.windows["confusion"], env))
        assert data["content"]["data"][0]["z"] == [[1.0, 2.0]]


def test_opts_visdom_rejects_when_drawing_skip_the_plot_with_one_warning(visdom_server: VisdomServer,
                                                                         tmp_path: Path, env: str) -> None:
    plots = {"loss": {"type": "line", "opts": {"textlabels": ["a", "b"]}}}  # Visdom's client rejects it when drawing
    stat = FlexLogger(plots, METERS, env=env, uid="run", port=visdom_server.port, log_dir=tmp_path)
    skipped = (r"^flexlogger: plot 'loss' \(line\) cannot be drawn and is skipped until its data changes \(the "
               r"other plots go on\): AssertionError: textlabels and X should have same shape \(opts "
               r"\{'textlabels': \['a', 'b'\]\}\)$")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(5):
            log_steps(stat, range(step, step + 1))
            assert stat.flush(10) == 2 * (step + 1)  # nothing of it is delivered, and log() goes on
        with pytest.warns(RuntimeWarning, match=r"10 point\(s\) could not be delivered"):
            stat.close()
    assert len([w for w in caught if re.match(skipped, str(w.message))]) == 1
    assert [u.step for u in read_record(tmp_path / env / "run").updates] == [0, 1, 2, 3, 4]  # the record has all


@pytest.mark.parametrize("saved", [False, True], ids=["env-lost", "stale-saved-env"])
@pytest.mark.parametrize("ending", ["close", "flush"])
def test_server_restarted_after_the_last_delivery(own_server: VisdomServer, tmp_path: Path, env: str, saved: bool,
                                                   ending: str) -> None:
    """Every window was delivered, then the server restarted and nothing changed afterwards: flush() and close()
    find out (one small request) and resend every window before returning (and before close() saves the env)."""
    plots = {**PLOTS, "confusion": {"type": "heatmap"}}
    meters = {**METERS, "matrix": {"type": "ValueMeter", "target": "confusion"}}
    stat = FlexLogger(plots, meters, env=env, uid="run", port=own_server.port, log_dir=tmp_path, save_every=3600)
    try:
        for step in range(20):
            if step == 10 and saved:
                assert stat.flush(10) == 0
                client(own_server.port).save([env])  # the server's disk copy stops at step 9
            stat.add({"matrix": np.eye(2) * step})
            log_steps(stat, range(step, step + 1))
        assert stat.flush(10) == 0
        own_server.restart()
        if ending == "flush":
            assert stat.flush(10) == 0
    finally:
        stat.close()
    viz = client(own_server.port)
    data = json.loads(viz.get_window_data(stat.windows["loss"], env))["content"]["data"]
    assert {t["name"]: (t["x"], t["y"]) for t in data} == expected(range(20))
    matrix = json.loads(viz.get_window_data(stat.windows["confusion"], env))["content"]["data"][0]["z"]
    assert matrix == (np.eye(2) * 19).tolist()
    if ending == "close":  # and close() saved the whole env on the restarted server
        saved_env = json.loads((own_server.env_path / f"{env}.json").read_text())
        assert set(saved_env["jsons"]) == {stat.windows["loss"], stat.windows["confusion"]}
        summary = json.loads((tmp_path / env / "run" / "summary.json").read_text())
        assert summary["undelivered"] == 0
