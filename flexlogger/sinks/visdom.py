"""The Visdom sink: a background sender that never blocks the training loop and never loses a point.

``write()`` (called from ``log()``) only merges the update into the window's state under a lock and wakes the
sender thread; the thread sends each window that has something new in ONE request:

- ``line``/``scatter`` windows keep their points. A window the server does not have yet (or may have lost: after
  a failed request or a new trace) is sent whole (``/events``, which creates or replaces it); otherwise only the
  new points of every trace go, in one ``/update`` append. So nothing asks the server whether a window exists,
  and after an outage every point logged meanwhile arrives once, in order.
- other windows (bar, heatmap, ...) keep only their latest content, which replaces the window.
- updates to a window are coalesced: a window is sent at most once per ``min_interval`` seconds, however often
  ``log()`` is called (``flush()`` sends at once).

This is the only module that imports visdom. Its client is used offline (``send=False``) to build the messages;
the sender posts them with its own HTTP session, with timeouts and retries with backoff.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
import visdom

from ..errors import DeliveryError
from ..plots import PLOT_TYPES
from .base import Update

APPEND_KINDS = frozenset(p.name for p in PLOT_TYPES if p.append)


@dataclass
class _Trace:
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    sent: int = 0  # points of xs/ys the server has


@dataclass
class _Window:
    plot: str
    kind: str
    opts: Mapping[str, Any]
    traces: dict[str, _Trace] = field(default_factory=dict)
    on_server: tuple[str, ...] | None = None  # trace order on the server; None: send the window whole
    latest: Update | None = None  # replace kinds: the content to draw
    dirty: bool = False
    version: int = 0  # replace kinds: bumped by every write
    last_sent: float = -math.inf
    failures: int = 0

    def pending(self) -> int:
        """Points (or, for replace kinds, one content) the server does not have."""
        if self.kind in APPEND_KINDS:
            if self.on_server is None:
                return sum(len(t.xs) for t in self.traces.values())
            return sum(len(t.xs) - t.sent for t in self.traces.values())
        return int(self.dirty)

    def lost(self) -> None:
        """The server may have lost this window (a request failed, it may have restarted): send it whole."""
        self.on_server = None
        if self.kind in APPEND_KINDS:
            self.dirty = bool(self.traces)
        else:
            self.dirty = self.latest is not None


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


class VisdomSink:
    """Sends updates to a Visdom server from a background thread.

    Args:
        server, port, env, uid: where windows go; window ids are ``<uid>_<plot>``.
        min_interval: the least time between two requests for one window (coalescing).
        timeout: seconds an HTTP request may take.
        close_timeout: how long ``close()`` waits for pending points before warning about them.
        save_every: seconds between saves of the env on the server (it is also saved at ``close()``).
        base_url: the server's base URL path, if any.
    """

    def __init__(self, server: str = "http://localhost", port: int = 8097, env: str = "main", uid: str = "run", *,
                 min_interval: float = 0.2, timeout: float = 10.0, close_timeout: float = 10.0,
                 save_every: float = 60.0, base_url: str = "") -> None:
        self.url = f"{server.rstrip('/')}:{port}{base_url}"
        self.env, self.uid = env, uid
        self.min_interval, self.timeout = min_interval, timeout
        self.close_timeout, self.save_every = close_timeout, save_every
        self.sent_requests = 0
        self.failed_requests = 0
        with _quiet_visdom():  # its client logs set-up chatter meant for interactive use
            self._builder: Any = visdom.Visdom(server=server, port=port, env=env, send=False, use_incoming_socket=False,
                                          raise_exceptions=True)
        self._http = requests.Session()
        self._windows: dict[str, _Window] = {}
        self._cond = threading.Condition()
        self._urgent = False
        self._stopping = False
        self._error: BaseException | None = None
        self._unreachable_warned = False
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
        if self._error is not None:
            raise DeliveryError(f"the Visdom sender thread died: {self._error!r}; nothing is sent to {self.url} "
                                "any more (the run record, if on, still has every point)") from self._error
        if self._stopping:
            raise DeliveryError("write() after close()")
        with self._cond:
            window = self._windows.get(update.plot)
            if window is None or window.kind != update.kind:
                window = self._windows[update.plot] = _Window(update.plot, update.kind, update.opts)
            if update.kind in APPEND_KINDS:
                x = float(update.step)
                for name, y in update.data.items():
                    trace = window.traces.get(name)
                    if trace is None:
                        trace = window.traces[name] = _Trace()
                    y = float(y)
                    if not math.isfinite(y):
                        self._nonfinite += 1
                    trace.xs.append(x)
                    trace.ys.append(y)
            else:
                window.latest = update
                window.version += 1
            window.dirty = True
            self._cond.notify()

    def pending(self) -> int:
        """Points (line/scatter) and window contents (other plots) not yet on the server."""
        with self._cond:
            return sum(w.pending() for w in self._windows.values())

    def flush(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._error is None and self.pending():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left if left is not None else 1.0)
            pending = self.pending()
            self._urgent = False
        if self._error is not None:
            raise DeliveryError(f"the Visdom sender thread died: {self._error!r}") from self._error
        return pending

    def close(self) -> None:
        if self._stopping:
            return
        pending = self.flush(self.close_timeout) if self._error is None else self.pending()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self.timeout + 1.0)
        if pending == 0 and self._error is None:
            self._save()
        _open_sinks.discard(self)
        self._http.close()
        if pending:
            warnings.warn(f"{pending} point(s) could not be delivered to the Visdom server at {self.url} "
                          f"(env {self.env!r}); they are in the run record: `flexlogger replay RUN_DIR` draws them",
                          RuntimeWarning, stacklevel=2)
        if self._nonfinite:
            warnings.warn(f"{self._nonfinite} NaN/Inf value(s) were logged (env {self.env!r}); they are shown as "
                          "gaps", RuntimeWarning, stacklevel=2)

    # the sender thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        try:
            while True:
                with self._cond:
                    batch = self._wait_for_work(backoff)
                    if batch is None:
                        return
                    messages = [(w, *self._message(w)) for w in batch]
                ok = True
                for window, endpoint, msg, marks in messages:
                    sent = self._post(endpoint, msg)
                    with self._cond:
                        self._settle(window, sent, marks)
                        self._cond.notify_all()
                    ok = ok and sent
                backoff = 0.0 if ok else min(max(2 * backoff, 0.1), 5.0)
                if ok and self._unsaved and time.monotonic() - self._last_save > self.save_every:
                    self._save()
        except BaseException as exc:  # reported to the training loop on the next log()
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _wait_for_work(self, backoff: float) -> list[_Window] | None:
        """The windows to send now (waiting as needed); None when closing with nothing left to send."""
        if backoff:
            self._cond.wait(backoff)
        while True:
            now = time.monotonic()
            dirty = [w for w in self._windows.values() if w.dirty]
            if self._stopping and (not dirty or backoff):
                return None
            ready = [w for w in dirty if self._urgent or self._stopping or now - w.last_sent >= self.min_interval]
            if ready:
                return ready
            waits = [w.last_sent + self.min_interval - now for w in dirty]
            self._cond.wait(min(waits) if waits else None)

    def _message(self, window: _Window) -> tuple[str, dict[str, Any], dict[str, int]]:
        """(endpoint, message, marks) for what the window has new; marks remember what the message covers."""
        win = self.window_id(window.plot)
        if window.kind not in APPEND_KINDS:
            assert window.latest is not None
            return "events", self._replace_message(win, window.latest), {"version": window.version}
        marks = {name: len(t.xs) for name, t in window.traces.items()}
        names = tuple(window.traces)
        if window.on_server != names:
            return "events", self._lines_message(win, window, names), marks
        data = [{"x": t.xs[t.sent:], "y": _finite(t.ys[t.sent:])} for t in window.traces.values()]
        return "update", {"data": data, "win": win, "eid": self.env, "append": True, "name": None}, marks

    def _settle(self, window: _Window, sent: bool, marks: dict[str, int]) -> None:
        window.last_sent = time.monotonic()
        if not sent:
            window.failures += 1
            for each in self._windows.values():  # the server may have restarted: resend every window whole
                each.lost()
            return
        window.failures = 0
        self._unsaved = True
        if window.kind in APPEND_KINDS:
            for name, mark in marks.items():
                window.traces[name].sent = mark
            window.on_server = tuple(marks)
            window.dirty = window.pending() > 0
        else:
            window.dirty = window.version != marks["version"]  # a newer content came while sending

    def _post(self, endpoint: str, msg: dict[str, Any]) -> bool:
        try:
            response = self._http.post(f"{self.url}/{endpoint}", data=json.dumps(msg), timeout=self.timeout)
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        self.sent_requests += 1
        if not ok:
            self.failed_requests += 1
            if not self._unreachable_warned:
                self._unreachable_warned = True
                warnings.warn(f"flexlogger: the Visdom server at {self.url} does not answer; training goes on and "
                              "points are kept and sent when it comes up. Start one with `flexlogger serve`.",
                              RuntimeWarning, stacklevel=1)
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

    def _lines_message(self, win: str, window: _Window, names: tuple[str, ...]) -> dict[str, Any]:
        traces = {n: (window.traces[n].xs, window.traces[n].ys) for n in names}
        return self._curves_message(win, window.plot, window.kind, window.opts, traces)

    def _curves_message(self, win: str, plot: str, kind: str, opts: Mapping[str, Any],
                        traces: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
        draw = self._builder.scatter if kind == "scatter" else self._builder.line
        data: list[dict[str, Any]] = []
        msg: dict[str, Any] = {}
        for name, (xs, ys) in traces.items():
            x = np.asarray(xs, dtype=np.float64).reshape(-1)
            y = np.asarray(ys, dtype=np.float64).reshape(-1)
            y = np.where(np.isfinite(y), y, np.nan)
            if kind == "scatter":
                msg, _ = draw(X=np.column_stack([x, y]), win=win, env=self.env, opts=self._opts(plot, opts), name=name)
            else:
                msg, _ = draw(Y=y, X=x, win=win, env=self.env, opts=self._opts(plot, opts), name=name)
            data += msg["data"]
        msg["data"] = data
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
                msg, _ = b.bar(X=np.array([v[0] for v in values]), win=win, env=env,
                               opts=self._opts(plot, opts, rownames=names))
            else:
                width = max(v.size for v in values)
                table = np.full((width, len(values)), np.nan)
                for i, v in enumerate(values):
                    table[: v.size, i] = v
                msg, _ = b.bar(X=table, win=win, env=env, opts=self._opts(plot, opts))
                for trace, name in zip(msg["data"], names):
                    trace["name"] = name  # the legend is the meters' names
                msg["layout"]["showlegend"] = True
        elif update.kind == "histogram":
            flat = np.asarray(next(iter(data.values())), dtype=np.float64).reshape(-1)
            flat = flat[np.isfinite(flat)]
            msg, _ = b.histogram(X=flat if flat.size > 1 else np.r_[flat, flat], win=win, env=env,
                                 opts=self._opts(plot, opts))
        elif update.kind == "heatmap":
            matrix = np.asarray(next(iter(data.values())), dtype=np.float64)
            msg, _ = b.heatmap(X=matrix, win=win, env=env, opts=self._opts(plot, opts))
        elif update.kind == "image":
            msg, _ = b.image(np.asarray(next(iter(data.values()))), win=win, env=env, opts=self._opts(plot, opts))
        elif update.kind == "text":
            rows = "".join(f"<tr><td><b>{n}</b></td><td>{v}</td></tr>" for n, v in data.items())
            msg, _ = b.text(f"<table>{rows}</table>", win=win, env=env, opts=self._opts(plot, opts))
        else:
            raise ValueError(f"no Visdom drawing for plot type {update.kind!r}")
        return dict(msg)


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
