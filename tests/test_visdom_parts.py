"""The Visdom sink's parts alone: the buffer (no threads, no HTTP), the backoff schedule, and the transport against
a real server and a port nobody listens on."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np

from flexlogger.core.plots import Histogram
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.buffer import Buffer
from flexlogger.sinks.visdom.render import make_builder, render
from flexlogger.sinks.visdom.transport import BACKOFF_MAX, BACKOFF_START, Backoff, Transport
from flexlogger.tools.server import VisdomServer, find_free_port


def line(step: float, **values: float) -> Update:
    return Update("loss", "line", step, values, {}, 0)


def test_buffer_merges_writes_and_counts_what_is_pending() -> None:
    buffer = Buffer(max_points=16)
    assert buffer.write(line(0, a=1.0, b=math.nan)) is True  # a new window: wake the sender
    assert buffer.write(line(1, a=2.0)) is False  # already dirty
    assert buffer.pending() == 3 and buffer.nonfinite == 1
    window = buffer.windows["loss"]
    message = buffer.snapshot(window)
    assert message.body["a"] == (0, [0.0, 1.0], [1.0, 2.0]) and message.size() == 3
    start, xs, ys = message.body["b"]
    assert (start, xs) == (0, [0.0]) and math.isnan(ys[0])
    buffer.write(line(2, a=3.0))  # written while the message is in flight
    buffer.settle(message, now=1.0, ok=True)
    assert buffer.pending() == 1 and window.dirty
    buffer.settle(buffer.snapshot(window), now=2.0, ok=True)
    assert buffer.pending() == 0 and not buffer.any_dirty()


def test_buffer_keeps_replace_windows_latest_content_per_meter() -> None:
    buffer = Buffer(max_points=16)
    buffer.write(Update("b", "bar", 0, {"train": 1.0, "test": 2.0}, {}, 1))
    buffer.write(Update("b", "bar", 1, {"train": 3.0}, {}, 2))
    assert dict(buffer.windows["b"].latest.data) == {"train": 3.0, "test": 2.0}  # type: ignore[union-attr]
    assert buffer.pending() == 1


def test_buffer_downsamples_past_max_points() -> None:
    buffer = Buffer(max_points=16)
    for step in range(100):
        buffer.write(line(step, a=float(step % 7)))
    assert buffer.held_points() <= 16 and buffer.downsamplings > 0
    trace = buffer.windows["loss"].traces["a"]
    assert trace.xs[-1] == 99.0 and trace.logged == 100


def test_a_broken_window_is_skipped_until_it_changes_and_counts_as_pending() -> None:
    buffer = Buffer(max_points=16)
    buffer.write(Update("h", "heatmap", 0, {"m": np.zeros((2, 2, 2))}, {}, 1))
    buffer.mark_broken(buffer.snapshot(buffer.windows["h"]), now=0.0)
    assert not buffer.any_dirty() and buffer.pending() == 1
    assert buffer.ready(now=10.0, min_interval=0.2, urgent=True) == ([], None)
    assert buffer.write(Update("h", "heatmap", 1, {"m": np.eye(2)}, {}, 2)) is True  # changed: tried again
    assert buffer.any_dirty()


def test_a_lost_server_marks_every_window_for_resending() -> None:
    buffer = Buffer(max_points=16)
    buffer.write(line(0, a=1.0))
    buffer.write(Update("b", "bar", 0, {"x": 1.0}, {}, 1))
    for window in list(buffer.windows.values()):
        buffer.settle(buffer.snapshot(window), now=0.0, ok=True)
    assert not buffer.any_dirty() and buffer.a_delivered_window() is not None
    buffer.mark_lost()
    assert [w.plot for w in buffer.ready(now=1.0, min_interval=0.2, urgent=False)[0]] == ["loss", "b"]
    assert buffer.a_delivered_window() is None


def test_coalescing_waits_min_interval() -> None:
    buffer = Buffer(max_points=16)
    buffer.write(line(0, a=1.0))
    window = buffer.windows["loss"]
    buffer.settle(buffer.snapshot(window), now=5.0, ok=True)
    buffer.write(line(1, a=1.0))
    ready, wait = buffer.ready(now=5.05, min_interval=0.2, urgent=False)
    assert ready == [] and wait is not None and math.isclose(wait, 0.15)
    assert buffer.ready(now=5.05, min_interval=0.2, urgent=True)[0] == [window]


def test_backoff_doubles_to_its_limit_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.fail() for _ in range(10)]
    assert delays[0] == BACKOFF_START and delays[-1] == BACKOFF_MAX
    assert all(b == min(2 * a, BACKOFF_MAX) for a, b in itertools.pairwise(delays))
    assert backoff.succeed() == 0.0 and backoff.fail() == BACKOFF_START


def test_transport_posts_checks_windows_and_counts_connections(visdom_server: VisdomServer, env: str) -> None:
    transport = Transport(f"{visdom_server.url}:{visdom_server.port}", math.inf)  # inf: no limit, no error
    try:
        assert transport.win_exists("run_h", env) is False
        assert transport.reconnected() is False  # the first connection is not a reconnection
        body = render(make_builder(visdom_server.url, visdom_server.port, env), "run_h", env,
                      Update("h", "histogram", 0, {"w": Histogram((1.0, 2.0), 0.0, 1.0)}, {}, 1))
        assert transport.post("events", body) and transport.failure is None
        assert transport.win_exists("run_h", env) is True
        assert transport.reconnected() is False  # one keep-alive connection
        assert (transport.sent_requests, transport.failed_requests) == (3, 0)
    finally:
        transport.close()


def test_transport_to_no_server_says_why() -> None:
    transport = Transport(f"http://localhost:{find_free_port()}", 2.0)
    try:
        assert transport.post("events", json.dumps({})) is False
        assert transport.failure == "ConnectionError"
        assert transport.win_exists("w", "e") is None and transport.failed_requests == 2
    finally:
        transport.close()
