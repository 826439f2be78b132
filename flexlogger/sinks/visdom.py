"""The Visdom sink: a background sender that never blocks the training loop and never loses a point.

``write()`` (called from ``log()``) only merges the update into its window's state under a lock; a sender thread
sends each window that changed in ONE request (``/events``), which creates or replaces the whole window.

Policy (what the server sees):

- ``line``/``scatter`` windows keep their points, at most ``max_points`` per trace (default 2000). Past it, a
  trace is downsampled: its x range is cut into ``max_points // 4`` buckets and each bucket keeps its minimum,
  its maximum and its first NaN/Inf (a gap), in order, so spikes stay visible; the last point always stays.
  Points then append again until the next downsampling, which re-buckets the whole range (the resolution stays
  uniform in x). The run record keeps every point.
- Other windows (bar, heatmap, image, text, curve) keep only their latest content.
- Every request replaces the whole window, never a Visdom append: Visdom 0.2.4's ``/update`` deep-copies and
  JSON-diffs the window, so an append of one point to a 6-trace window costs about 290 ms at 1,000 points per
  trace and 2.8 s at 10,000, whereas replacing the whole window costs 9 ms and 34 ms (measured here). With the
  window bounded, the server's cost per update is bounded too. Replacing also makes every send self-healing:
  a server that lost the window (restart) gets all of it back with the next request. Nothing asks the server
  whether a window exists.
- Coalescing: a window is sent at most once per ``min_interval`` seconds (default 0.2 s: at most 5 updates per
  second per window), however often ``log()`` is called; ``flush()`` sends at once.

Backlog: there is no queue of messages. The backlog is the per-window state, bounded by construction: at most
``max_points`` points per trace of a line/scatter window, one content per other window. ``write()`` never waits
and never drops: when the server is slow or down, new points are merged into the state (and downsampled past
``max_points``), and the next request carries all of it. Every point is in the run record in any case.

Faults:

- No server, or a failed request: one warning per outage, raised in the training thread (with how to start a
  server); training goes on, every window is marked for resending, and requests are retried with exponential
  backoff (0.1 s doubling to 5 s). Once the server answers, every window is sent whole: every point logged during
  the outage arrives, in order, once.
- A server that restarts between two requests (no request fails): a window that changes afterwards is resent
  whole anyway. One that does not change (e.g. a confusion matrix drawn once per epoch) could stay missing, or
  stale when the server reloaded an older saved copy of the env; so the sender's HTTP session counts the TCP
  connections it opens: the restart closed the keep-alive connection, and after any new connection (but the
  first) every window is resent. A false alarm (a connection closed for another reason) costs one send per window.
- NaN and Inf are sent as ``null`` (gaps in Visdom), counted, and reported in one warning at ``close()``.
- A message that cannot be built (e.g. opts Visdom rejects) or any other error kills the sender thread; the next
  ``write()`` (so the next ``log()``) raises :class:`~flexlogger.errors.DeliveryError` saying why.
- The env is saved on the server every ``save_every`` seconds (when something was sent) and at ``close()``.
  ``close()`` flushes (up to ``close_timeout``; one last try only when the server is down) and warns with the
  count of points that could not be delivered. An atexit handler closes the sinks a user forgot to close.

Sender cost: turning floats into JSON text is most of a send's cost (about 1 us a number here), so each trace
keeps the JSON text of the points it already encoded (through downsamplings too, which keep a subset of them),
and a send encodes only the points new since the last one: a steady send of a 6 x 2000-point window costs about
0.6 ms of the sender thread instead of 18 ms, and the training loop can take the GIL between any two numbers.

This is the only module that imports visdom. Its client is used offline (``send=False``) to build each trace's
options and the layout (once per trace); the sender posts the windows with its own HTTP session, with timeouts.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import html
import json
import logging
import math
import re
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
import visdom
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from ..errors import ConfigError, DeliveryError
from ..plots import PLOT_TYPES, Histogram
from .base import Update

APPEND_KINDS = frozenset(p.name for p in PLOT_TYPES if p.append)
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
MIN_MAX_POINTS = 16


@dataclass
class _Trace:
    xs: list[float] = field(default_factory=list)  # what the window shows (downsampled past max_points)
    ys: list[float] = field(default_factory=list)
    logged: int = 0  # points written since the start
    delivered: int = 0  # of those, how many reached the server
    generation: int = 0  # bumped by each downsampling
    kept: np.ndarray | None = None  # the indices the last downsampling kept
    # the sender thread's cache of the JSON text of the first points of `text_generation` (float -> text is most
    # of a send's cost): a send encodes only the points new since the last one
    text_generation: int = 0
    x_parts: list[str] = field(default_factory=list)
    y_parts: list[str] = field(default_factory=list)


@dataclass
class _Window:
    plot: str
    kind: str
    opts: Mapping[str, Any]
    traces: dict[str, _Trace] = field(default_factory=dict)  # line/scatter: the points to draw
    latest: Update | None = None  # other kinds: the content to draw
    version: int = 0  # bumped by every write
    sent_version: int = 0  # the version the server has; -1: it may have lost the window
    last_sent: float = -math.inf
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # sender: each trace's Visdom message
    per_point: bool = False  # sender: opts with per-point fields; each send is built by Visdom's client

    @property
    def dirty(self) -> bool:
        return self.version != self.sent_version and (bool(self.traces) or self.latest is not None)

    def pending(self) -> int:
        """Logged points (one per window content for other kinds) the server does not have yet."""
        if not self.dirty:
            return 0
        if self.kind not in APPEND_KINDS:
            return 1
        return max(1, sum(t.logged - t.delivered for t in self.traces.values()))


@dataclass(frozen=True)
class _Message:
    window: _Window
    version: int
    logged: dict[str, int]  # trace -> points logged when the message was made
    body: Any  # copied under the lock: {trace: (start, xs[start:], ys[start:])} or the latest Update


def downsample(xs: list[float], ys: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """Keep, in each of ``buckets`` equal x ranges, the minimum, the maximum and the first non-finite point; and
    the last point.

    Example:
        >>> downsample([0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 1, 2, 3, -5, 4, 4], 2)
        ([0.0, 1.0, 5.0, 6.0, 7.0], [0.0, 9.0, -5.0, 4.0, 4.0])
    """
    keep = downsample_indices(xs, ys, buckets)
    return [float(xs[i]) for i in keep], [float(ys[i]) for i in keep]


def downsample_indices(xs: list[float], ys: list[float], buckets: int) -> np.ndarray:
    """The sorted indices of the points :func:`downsample` keeps."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        index = np.minimum(((x - lo) * (buckets / (hi - lo))).astype(np.int64), buckets - 1)
    else:
        index = np.zeros(x.size, dtype=np.int64)
    finite = np.isfinite(y)
    keep = np.zeros(x.size, dtype=bool)
    position = np.arange(x.size)
    for key in (np.where(finite, y, np.inf), np.where(finite, -y, np.inf), finite.astype(np.int8)):
        order = np.lexsort((position, key, index))  # by bucket, then key, then position
        sorted_index = index[order]
        firsts = order[np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])]
        keep[firsts if key.dtype != np.int8 else firsts[~finite[firsts]]] = True
    keep &= finite | ~np.r_[False, ~finite[:-1]]  # one non-finite point per run of them is a gap enough
    keep[-1] = True  # the window always shows the last step
    return np.flatnonzero(keep)


def _nulls(values: list[float]) -> list[float | None]:
    return [v if v - v == 0 else None for v in values]  # v - v is nan for nan and +-inf


class VisdomSink:
    """Sends updates to a Visdom server from a background thread (see the module docstring for the policy).

    Args:
        server, port, env, uid: where windows go; window ids are ``<uid>_<plot>``.
        max_points: the most points a line/scatter trace holds (and shows) before it is downsampled.
        min_interval: the least time between two requests for one window (coalescing).
        timeout: seconds an HTTP request may take.
        close_timeout: how long ``close()`` waits for pending points before warning about them.
        save_every: seconds between saves of the env on the server (it is also saved at ``close()``).
        base_url: the server's base URL path, if any.

    Raises:
        ConfigError: a bad ``server``, ``port``, ``max_points``, ``min_interval``, ``timeout`` or ``save_every``.
    """

    def __init__(self, server: str = "http://localhost", port: int = 8097, env: str = "main", uid: str = "run", *,
                 max_points: int = 2000, min_interval: float = 0.2, timeout: float = 10.0,
                 close_timeout: float = 10.0, save_every: float = 60.0, base_url: str = "") -> None:
        if not isinstance(max_points, int) or isinstance(max_points, bool) or max_points < MIN_MAX_POINTS:
            raise ConfigError(f"expected `max_points` to be an int >= {MIN_MAX_POINTS}, but got {max_points!r}")
        for name, value in (("min_interval", min_interval), ("timeout", timeout), ("close_timeout", close_timeout),
                            ("save_every", save_every)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ConfigError(f"expected `{name}` to be a number of seconds >= 0, but got {value!r}")
        if not isinstance(server, str) or not re.match(r"https?://[^/:]", server):
            raise ConfigError(f"expected `server` to be a URL with its scheme, such as 'http://localhost', but got "
                              f"{server!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"expected `port` to be an int from 1 to 65535, but got {port!r}")
        self.url = f"{server.rstrip('/')}:{port}{base_url}"
        self.port = port
        self.env, self.uid = env, uid
        self.max_points = max_points
        self.min_interval, self.timeout = min_interval, timeout
        self.close_timeout, self.save_every = close_timeout, save_every
        self.sent_requests = 0
        self.failed_requests = 0
        self.reconnections = 0
        self.downsamplings = 0
        # the last requests, for benchmarks: (plot, points in the message, seconds to the response)
        self.request_log: deque[tuple[str, int, float]] = deque(maxlen=1000)
        with _quiet_visdom():  # its client logs set-up chatter meant for interactive use
            self._builder: Any = visdom.Visdom(server=server, port=port, env=env, send=False,
                                               use_incoming_socket=False, raise_exceptions=True)
        self._connects = [0]  # TCP connections opened by self._http
        self._http = _counting_session(self._connects)
        self._connections: int | None = None
        self._windows: dict[str, _Window] = {}
        self._cond = threading.Condition()
        self._urgent = 0
        self._stopping = False
        self._closed = False
        self._error: BaseException | None = None
        self._failing = False
        self._attempts = 0
        self._retry_at = 0.0
        self._notices: list[str] = []
        self._nonfinite = 0
        self._last_save = time.monotonic()
        self._unsaved = False
        self._thread = threading.Thread(target=self._run, name=f"flexlogger-sender-{env}", daemon=True)
        self._thread.start()
        _open_sinks.add(self)

    def window_id(self, plot: str) -> str:
        return f"{self.uid}_{plot}"

    # called from the training loop -------------------------------------------------------------------------
    def write(self, update: Update) -> None:
        """Merge ``update`` into its window's state; the sender thread sends it. Never waits on the network.

        Raises:
            DeliveryError: the sender thread died (the message says why), or the sink is closed.
        """
        if self._error is not None:
            self._raise_dead()
        if self._closed:
            raise DeliveryError(f"write() to the Visdom sink of env {self.env!r} after close()")
        if self._notices:
            self._warn_notices()
        with self._cond:
            window = self._windows.get(update.plot)
            if window is None or window.kind != update.kind:
                window = self._windows[update.plot] = _Window(update.plot, update.kind, update.opts)
            if update.kind in APPEND_KINDS:
                x = float(update.step)
                traces = window.traces
                for name, value in update.data.items():
                    trace = traces.get(name)
                    if trace is None:
                        trace = traces[name] = _Trace()
                    y = float(value)
                    if y - y != 0:  # NaN or +-inf
                        self._nonfinite += 1
                    trace.xs.append(x)
                    trace.ys.append(y)
                    trace.logged += 1
                    if len(trace.xs) > self.max_points:
                        keep = downsample_indices(trace.xs, trace.ys, self.max_points // 4)
                        xs, ys = trace.xs, trace.ys
                        trace.xs, trace.ys = [xs[i] for i in keep], [ys[i] for i in keep]
                        trace.generation += 1
                        trace.kept = keep
                        self.downsamplings += 1
            elif window.latest is None or window.latest.data.keys() <= update.data.keys():
                window.latest = update
            else:  # meters not logged this time (keys=..., or empty) keep their latest content in the window
                window.latest = dataclasses.replace(update, data={**window.latest.data, **update.data})
            if window.version == window.sent_version:  # it was clean: wake the sender
                self._cond.notify()
            window.version += 1

    def pending(self) -> int:
        """Points (line/scatter) and window contents (other plots) logged but not yet on the server."""
        with self._cond:
            return sum(w.pending() for w in self._windows.values())

    def held_points(self) -> int:
        """The points the sink holds in memory for its windows (bounded by ``max_points`` per trace)."""
        with self._cond:
            return sum(len(t.xs) for w in self._windows.values() for t in w.traces.values())

    def flush(self, timeout: float | None = None) -> int:
        """Send everything now and wait until the server has it, or ``timeout`` seconds.

        Returns:
            How many points (or window contents) are still pending: 0 when everything arrived. After
            ``close()``, at once: what was never delivered.

        Raises:
            DeliveryError: the sender thread died.
        """
        if self._stopping:  # closed: the sender is gone, nothing more will arrive
            return self.pending()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while self._error is None and any(w.dirty for w in self._windows.values()):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(min(left, 1.0) if left is not None else 1.0)
                pending = sum(w.pending() for w in self._windows.values())
            finally:
                self._urgent -= 1
        if self._error is not None:
            self._raise_dead()
        if self._notices:
            self._warn_notices()
        return pending

    def close(self) -> None:
        """Flush (up to ``close_timeout``; one last try when the server is down), save the env, stop the thread.

        Warns with the count of points that could not be delivered, and of NaN/Inf values logged.
        """
        if self._closed:
            return
        self._closed = True
        pending = 0
        if self._error is None:
            with self._cond:
                if self._failing:  # the server is down: one last try now rather than a long wait
                    self._retry_at = 0.0
                    attempts = self._attempts
                    deadline = time.monotonic() + self.close_timeout
                    self._urgent += 1
                    self._cond.notify_all()
                    while (self._error is None and self._attempts == attempts and time.monotonic() < deadline
                           and any(w.dirty for w in self._windows.values())):
                        self._cond.wait(0.05)
                    self._urgent -= 1
            pending = self.flush(0 if self._failing else self.close_timeout) if self._error is None else 0
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self.timeout + 1.0)
        if self._error is None and not self._failing and self._unsaved:
            self._save()
        pending = self.pending()
        _open_sinks.discard(self)
        self._http.close()
        if self._notices:
            self._warn_notices()
        if pending:
            warnings.warn(f"{pending} point(s) could not be delivered to the Visdom server at {self.url} "
                          f"(env {self.env!r}); they are in the run record: `flexlogger replay RUN_DIR "
                          f"--port {self.port}` draws them", RuntimeWarning, stacklevel=2)
        if self._nonfinite:
            warnings.warn(f"{self._nonfinite} NaN/Inf value(s) were logged (env {self.env!r}); they are shown as "
                          "gaps (the run record keeps them)", RuntimeWarning, stacklevel=2)

    def _raise_dead(self) -> None:
        raise DeliveryError(f"the Visdom sender thread of env {self.env!r} died: {self._error}; nothing is sent "
                            f"to {self.url} any more (the run record, if on, still has every point)") from self._error

    def _warn_notices(self) -> None:
        with self._cond:
            notices, self._notices = self._notices, []
        for notice in notices:
            warnings.warn(notice, RuntimeWarning, stacklevel=4)

    # the sender thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        try:
            while True:
                with self._cond:
                    batch = self._wait_for_work()
                    if batch is None:
                        return
                    messages = [self._snapshot(w) for w in batch]
                for message in messages:
                    built = self._build(message)
                    start = time.perf_counter()
                    ok = self._post("events", built)
                    elapsed = time.perf_counter() - start
                    with self._cond:
                        self._attempts += 1
                        self.request_log.append((message.window.plot, _size(message), elapsed))
                        self._settle(message, ok)
                        if ok:
                            backoff = 0.0
                            self._failing = False
                        else:
                            backoff = min(max(2 * backoff, BACKOFF_START), BACKOFF_MAX)
                            self._retry_at = time.monotonic() + backoff
                        self._cond.notify_all()
                    if not ok:
                        break  # every window is marked lost: start over after the backoff
                if not self._failing and self._unsaved and time.monotonic() - self._last_save > self.save_every:
                    self._save()
        except BaseException as exc:  # reported to the training loop on the next log()
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _wait_for_work(self) -> list[_Window] | None:
        """The windows to send now (waiting as needed); None when closing."""
        while True:
            if self._stopping:
                return None
            now = time.monotonic()
            if now < self._retry_at:
                self._cond.wait(self._retry_at - now)
                continue
            dirty = [w for w in self._windows.values() if w.dirty]
            urgent = self._urgent > 0
            ready = [w for w in dirty if urgent or now - w.last_sent >= self.min_interval]
            if ready:
                return ready
            waits = [w.last_sent + self.min_interval - now for w in dirty]
            self._cond.wait(min(waits) if waits else None)

    def _snapshot(self, window: _Window) -> _Message:
        """What to send for ``window``, copied under the lock (the message is built outside it)."""
        if window.kind not in APPEND_KINDS:
            return _Message(window, window.version, {}, window.latest)
        logged = {name: t.logged for name, t in window.traces.items()}
        body = {}
        for name, t in window.traces.items():
            if t.text_generation != t.generation or window.per_point:
                if t.text_generation == t.generation - 1 and t.kept is not None and not window.per_point:
                    # one downsampling since the last send: keep the text of the points it kept
                    kept = t.kept[: int(np.searchsorted(t.kept, len(t.x_parts)))].tolist()
                    t.x_parts = [t.x_parts[i] for i in kept]
                    t.y_parts = [t.y_parts[i] for i in kept]
                else:
                    t.x_parts, t.y_parts = [], []
                t.text_generation = t.generation
            start = len(t.x_parts)
            body[name] = (start, t.xs[start:], t.ys[start:])
        return _Message(window, window.version, logged, body)

    def _build(self, message: _Message) -> str:
        """The request body (JSON) for ``message``."""
        window, win = message.window, self.window_id(message.window.plot)
        try:
            if window.kind not in APPEND_KINDS:
                return json.dumps(self._replace_message(win, message.body), allow_nan=False)
            if not window.per_point:
                return self._lines_body(win, window, message.body)
            traces = {name: (xs, ys) for name, (_, xs, ys) in message.body.items()}
            return json.dumps(self._curves_message(win, window.plot, window.kind, window.opts, traces),
                              allow_nan=False)
        except Exception as exc:
            raise DeliveryError(f"could not draw plot {window.plot!r} ({window.kind}) with opts "
                                f"{dict(window.opts)!r}: {type(exc).__name__}: {exc}") from exc

    def _settle(self, message: _Message, ok: bool) -> None:
        window = message.window
        window.last_sent = time.monotonic()
        if not ok:
            for each in self._windows.values():  # the server may have restarted: resend every window
                each.sent_version = -1
            return
        self._unsaved = True
        window.sent_version = message.version
        for name, logged in message.logged.items():
            trace = window.traces[name]
            trace.delivered = max(trace.delivered, logged)
        if self._reconnected():
            self.reconnections += 1
            for each in self._windows.values():  # a restarted server may hold stale copies: resend them
                if each is not window:
                    each.sent_version = -1

    def _reconnected(self) -> bool:
        """True when the last request went on a new TCP connection, after a first one (the server restarted?)."""
        previous, self._connections = self._connections, self._connects[0]
        return previous is not None and self._connections > previous

    def _post(self, endpoint: str, body: str) -> bool:
        try:
            response = self._http.post(f"{self.url}/{endpoint}", data=body.encode(), timeout=self.timeout)
            ok, reason = response.status_code == 200, f"HTTP {response.status_code} on /{endpoint}"
        except requests.RequestException as exc:
            ok, reason = False, type(exc).__name__
        self.sent_requests += 1
        if not ok:
            self.failed_requests += 1
            if not self._failing:
                self._failing = True
                self._notices.append(
                    f"flexlogger: the Visdom server at {self.url} does not answer ({reason}); training goes on, "
                    f"points are kept (and in the run record) and sent when it comes up, retried with backoff. "
                    f"Start one with `flexlogger serve --port {self.port}`.")
        return ok

    def _save(self) -> None:
        self._last_save = time.monotonic()
        self._unsaved = False
        try:
            self._http.post(f"{self.url}/save", data=json.dumps({"data": [self.env]}), timeout=self.timeout)
        except requests.RequestException:
            self._unsaved = True

    # message building (visdom's client, offline) -----------------------------------------------------------
    def _opts(self, plot: str, opts: Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
        out = {"title": plot, **defaults}
        out.update(opts)
        return out  # a fresh dict: visdom's client mutates the opts it is given

    def _lines_body(self, win: str, window: _Window, body: Mapping[str, tuple[int, list[float], list[float]]]) -> str:
        """A whole line/scatter window as JSON: each trace's options and the layout come from Visdom's client
        (built once per trace, from one point); the points are JSON text, cached, so only new points are encoded."""
        data: list[dict[str, Any]] = []
        arrays: list[str] = []
        msg: dict[str, Any] = {}
        for name, (start, xs, ys) in body.items():
            template = window.templates.get(name)
            if template is None:
                template = window.templates[name] = self._curves_message(
                    win, window.plot, window.kind, window.opts, {name: ([0.0], [0.0])})
                if len(template["data"]) != 1 or _per_point_fields(template["data"][0]):
                    window.per_point = True  # from the next send on, Visdom's client builds it all
                    traces = {n: (x, y) for n, (_, x, y) in body.items()}
                    return json.dumps(self._curves_message(win, window.plot, window.kind, window.opts, traces),
                                      allow_nan=False)
            trace = window.traces[name]
            if len(trace.x_parts) == start:  # else the trace was reset meanwhile: the next send redoes it
                trace.x_parts += [float.__repr__(x) for x in xs]  # finite floats: valid JSON numbers
                trace.y_parts += [float.__repr__(y) if y - y == 0 else "null" for y in ys]
            msg = template
            data.append({**template["data"][0], "x": f"@@flexlogger:{len(arrays)}@@",
                         "y": f"@@flexlogger:{len(arrays) + 1}@@"})
            arrays += [",".join(trace.x_parts[: start + len(xs)]), ",".join(trace.y_parts[: start + len(ys)])]
        text = _JSON.encode({**msg, "data": data})
        return _PLACEHOLDER.sub(lambda m: f"[{arrays[int(m[1])]}]", text)

    def _curves_message(self, win: str, plot: str, kind: str, opts: Mapping[str, Any],
                        traces: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
        """A whole line/scatter window. Visdom's client builds each trace from its first point (options, layout);
        the points are then put in as lists, with NaN/Inf as None (a gap): no array round trips per send."""
        draw = self._builder.scatter if kind == "scatter" else self._builder.line
        data: list[dict[str, Any]] = []
        msg: dict[str, Any] = {}
        for name, (xs, ys) in traces.items():
            x = np.asarray(xs, dtype=np.float64).reshape(-1)
            y = np.asarray(ys, dtype=np.float64).reshape(-1)
            y = np.where(np.isfinite(y), y, np.nan)
            hx, hy = (x[:1], y[:1]) if x.size and y.size else (np.zeros(1), np.zeros(1))  # empty: no point
            if kind == "scatter":
                msg, _ = draw(X=np.column_stack([hx, hy]), win=win, env=self.env, opts=self._opts(plot, opts),
                              name=name)
            else:
                msg, _ = draw(Y=hy, X=hx, win=win, env=self.env, opts=self._opts(plot, opts), name=name)
            trace = msg["data"][0]
            if len(msg["data"]) == 1 and not _per_point_fields(trace):
                trace["x"], trace["y"] = _nulls(x.tolist()), _nulls(y.tolist())  # a curve's x may be NaN
            else:  # per-point options (e.g. one marker colour per point): let visdom build all of it
                msg, _ = (draw(X=np.column_stack([x, y]), win=win, env=self.env, opts=self._opts(plot, opts),
                               name=name) if kind == "scatter" else
                          draw(Y=y, X=x, win=win, env=self.env, opts=self._opts(plot, opts), name=name))
                msg["data"] = _scrub(msg["data"])
            data += msg["data"]
        msg["data"] = data
        msg["layout"] = _scrub(msg["layout"])
        msg["layout"]["showlegend"] = bool(opts.get("showlegend", True))
        return msg

    def _replace_message(self, win: str, update: Update) -> dict[str, Any]:
        b, env, plot, opts, data = self._builder, self.env, update.plot, update.opts, update.data
        msg: Any
        if update.kind == "curve":
            return self._curves_message(win, plot, "line", opts, data)
        if update.kind == "bar":
            names = list(data)
            values = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in data.values()]
            if all(v.size == 1 for v in values) and not any(isinstance(v, np.ndarray) for v in data.values()):
                msg = _bars(b, np.array([[v[0]] for v in values]), win, env, self._opts(plot, opts, rownames=names))
            else:
                width = max(v.size for v in values)
                table = np.full((width, len(values)), np.nan)
                for i, v in enumerate(values):
                    table[: v.size, i] = v
                msg = _bars(b, table, win, env, self._opts(plot, opts))
                for trace, name in zip(msg["data"], names):
                    trace["name"] = name  # the legend is the meters' names
                msg["layout"]["showlegend"] = True
        elif update.kind == "histogram" and isinstance(next(iter(data.values())), Histogram):
            hist = next(iter(data.values()))
            counts = np.asarray(hist.counts, dtype=np.float64)
            # as Visdom's own histogram(): a bar of the counts over linspace(min, max, bins)
            msg, _ = b.bar(X=counts if counts.size > 1 else np.r_[counts, 0.0],
                           Y=np.linspace(hist.lo, hist.hi, max(counts.size, 2)), win=win, env=env,
                           opts=self._opts(plot, {k: v for k, v in opts.items() if k != "numbins"}))
        elif update.kind == "histogram":
            flat = np.asarray(next(iter(data.values())), dtype=np.float64).reshape(-1)
            flat = flat[np.isfinite(flat)]
            msg, _ = b.histogram(X=flat if flat.size > 1 else np.r_[flat, flat] if flat.size else np.zeros(2),
                                 win=win, env=env, opts=self._opts(plot, opts))
            if not flat.size:  # no finite value: every bin is empty
                for trace in msg["data"]:
                    trace["y"] = [0] * len(trace["y"])
        elif update.kind == "heatmap":
            matrix = np.asarray(next(iter(data.values())), dtype=np.float64)
            msg, _ = b.heatmap(X=matrix, win=win, env=env, opts=self._opts(plot, opts))
        elif update.kind == "image":
            msg, _ = b.image(_image(next(iter(data.values()))), win=win, env=env, opts=self._opts(plot, opts))
        elif update.kind == "text":
            rows = "".join(f"<tr><td><b>{_html(n)}</b></td><td>{_html(v)}</td></tr>" for n, v in data.items())
            msg, _ = b.text(f"<table>{rows}</table>", win=win, env=env, opts=self._opts(plot, opts))
        else:
            raise ValueError(f"no Visdom drawing for plot type {update.kind!r}")
        return _scrub(dict(msg))


def check_opts(where: str, opts: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` when Visdom's client rejects ``opts`` whatever the data (e.g. a negative
    ``markersize``), or they are not JSON: found when the plot is defined rather than by the sender thread.

    Checks that depend on the data (e.g. ``rownames`` as long as the matrix) are left to drawing.
    """
    try:
        json.dumps(dict(opts), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected Visdom options that are JSON (str, numbers, lists, dicts), but got "
                          f"{dict(opts)!r}: {exc}") from None
    try:
        checked = dict(opts)
        with _quiet_visdom():  # the checks every drawing function of Visdom's client makes
            visdom._title2str(checked)  # type: ignore[attr-defined]
            visdom._assert_opts(checked)  # type: ignore[attr-defined]
    except AssertionError as exc:
        raise ConfigError(f"{where}: Visdom's client rejects {dict(opts)!r}: {exc}") from None
    numbins = opts.get("numbins")
    if numbins is not None and (not isinstance(numbins, int) or isinstance(numbins, bool) or numbins < 2):
        raise ConfigError(f"{where}.numbins: expected an int >= 2 (Visdom cannot draw one bin), but got {numbins!r}")


def _bars(builder: Any, table: np.ndarray, win: str, env: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Visdom's bar message for a rows x columns ``table``, also for fewer than two rows (its client squeezes
    the table, so it rejects one row and mistakes one row of several columns for one column)."""
    rows = table.shape[0]
    if rows < 2:  # drawn with NaN rows added, which are then taken out again
        table = np.concatenate([table, np.full((2 - rows, table.shape[1]), np.nan)])
        if opts.get("rownames") is not None:
            opts["rownames"] = [*opts["rownames"], *[""] * (2 - rows)]
    msg, _ = builder.bar(X=table, win=win, env=env, opts=opts)
    if rows < 2:
        for trace in msg["data"]:
            trace["x"], trace["y"] = trace["x"][:rows], trace["y"][:rows]
    return dict(msg)


def _image(value: Any) -> np.ndarray:
    """An image as Visdom's client takes it (C x H x W or H x W; floats in [0, 1] or uint8): an H x W x C array
    (as PIL, OpenCV and matplotlib hold images) is moved to C x H x W, other integers become uint8."""
    img = np.asarray(value)
    if img.ndim == 3 and img.shape[0] not in (1, 3) and img.shape[-1] in (1, 3):
        img = np.moveaxis(img, -1, 0)
    if img.dtype.kind == "b":
        img = img.astype(np.uint8) * 255
    elif img.dtype.kind in "iu" and img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def _html(value: Any) -> str:
    """``value`` as HTML text: ``<unk>`` and ``a & b`` shown as written, line breaks kept."""
    return html.escape(str(value)).replace("\n", "<br>")


def _scrub(value: Any) -> Any:
    """``value`` with NaN/Inf floats replaced by None (JSON has no NaN; Visdom draws None as a gap)."""
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_PLACEHOLDER = re.compile(r'"@@flexlogger:(\d+)@@"')

def _per_point_fields(trace: Mapping[str, Any]) -> bool:
    """Whether a one-point trace has list fields other than x and y (per-point options)."""
    return any(isinstance(v, list) for k, v in trace.items() if k not in ("x", "y")) or any(
        isinstance(v, list) for v in trace.get("marker", {}).values())


def _size(message: _Message) -> int:
    if message.window.kind not in APPEND_KINDS:
        return 1
    return sum(start + len(xs) for start, xs, _ in message.body.values())


@contextlib.contextmanager
def _quiet_visdom() -> Iterator[None]:
    log = logging.getLogger("visdom")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


_open_sinks: weakref.WeakSet[VisdomSink] = weakref.WeakSet()


@atexit.register
def _close_open_sinks() -> None:
    """Flush the loggers a user forgot to close, so that a script's last points reach the server."""
    for sink in list(_open_sinks):
        try:
            sink.close()
        except Exception:  # never fail interpreter shutdown
            pass


def _counting_session(counter: list[int]) -> requests.Session:
    """A requests session that counts the TCP connections it opens in ``counter[0]``.

    urllib3 reopens a dropped keep-alive connection silently; counting the opens is how the sender learns that
    the server closed it (a restart) even when no request failed.
    """

    class Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            counter[0] += 1

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    session = requests.Session()
    adapter = HTTPAdapter()
    adapter.poolmanager.pool_classes_by_scheme = {**adapter.poolmanager.pool_classes_by_scheme, "http": Pool}
    session.mount("http://", adapter)
    return session
