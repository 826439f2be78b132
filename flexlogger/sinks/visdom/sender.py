"""The Visdom sink: a background sender that never blocks the training loop and never loses a point. It ties the
buffer (per-window state), the renderer (messages) and the transport (HTTP) together with one thread.

``write()`` (called from ``log()``) only merges the update into its window's state under a lock; the sender thread
sends each window that changed in one request (``/events``) that replaces the whole window, at most once per
``min_interval`` seconds per window (``flush()`` sends at once).

Faults:

- No server, or a failed request: one warning per outage, raised in the training thread (with how to start a
  server); training goes on, every window is marked for resending, and requests are retried with backoff. Once the
  server answers, every window is sent whole: every point logged during the outage arrives, in order, once.
- A server that restarts between two requests: after any request on a new connection (but the first) every window
  is resent, so a window that does not change (a confusion matrix drawn once per epoch) is not left missing or
  stale. A server that restarts after the last delivery: ``flush()`` and ``close()``, once everything is delivered,
  ask it whether it still has one delivered window (``/win_exists``) and resend every window when it does not.
- NaN and Inf are sent as ``null`` (gaps in Visdom), counted, and reported in one warning at ``close()``.
- A window whose message cannot be built (data or opts Visdom's client rejects) is reported once, as a
  RuntimeWarning naming the plot, its kind and why, and skipped until it changes; the other windows keep being
  delivered. Any other error in the sender thread (a bug) kills it; the next ``write()`` raises
  :class:`~flexlogger.errors.DeliveryError` saying why.
- The env is saved on the server every ``save_every`` seconds (when something was sent) and at ``close()``, which
  flushes (up to ``close_timeout``; one last try only when the server is down) and warns with the count of points
  that could not be delivered. An atexit handler closes the sinks a user forgot to close.
- Forked children: a sink belongs to the process that made it. In another process ``close()``, ``flush()`` and the
  atexit closer return at once, and ``write()`` raises :class:`~flexlogger.errors.DeliveryError`.
- Non-finite durations (``timeout``, ``min_interval``, ...) are taken as "no limit" (capped where a wait must end).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections import deque
from typing import Any

from flexlogger import defaults
from flexlogger.closing import SENDERS, close_each, on_exit
from flexlogger.config.options import check_options, raise_problems
from flexlogger.defaults import DEFAULT_ENV, DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import ConfigError, DeliveryError
from flexlogger.sinks.base import Update
from flexlogger.sinks.interrupts import HOLD
from flexlogger.sinks.visdom import render
from flexlogger.sinks.visdom.auth import resolve_credentials
from flexlogger.sinks.visdom.buffer import Buffer, Message, Window
from flexlogger.sinks.visdom.rules import check_env
from flexlogger.sinks.visdom.transport import QUICK_CHECK_S, Backoff, Transport

JOIN_GRACE_S = 0.5  # close() waits at least this long for the sender thread to stop, even past close_timeout
WAIT_STEP_S = 0.1  # flush() waits in steps this long: a Ctrl-C (held while the lock is) ends the wait within one


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
        username: the login of a server started with one (``flexlogger serve --public``); None reads
            ``VISDOM_USERNAME``.
        password: its password; None reads ``VISDOM_PASSWORD``. Only the transport's session holds it (as the
            digest Visdom's client sends): no attribute, config, record or repr of the sink shows it. A
            :class:`~flexlogger.sinks.visdom.auth.PasswordDigest` logs in as its password would.
        label: a second line under each chart's title, such as ``run <uid>`` (a run's and a replay's sinks set it),
            so that the windows of several runs in one env can be told apart; None: none.

    Raises:
        ConfigError: a bad ``server``, ``port``, ``max_points``, ``min_interval``, ``timeout``, ``save_every`` or
            ``env`` (one Visdom rewrites or cannot show); only one of username and password; the server refused
            the login, or demands one and none was given, and said so within ``QUICK_CHECK_S`` (1 s). A server
            that answers later is checked by the sender thread, and a refusal then is raised by the next
            ``write()``, ``flush()`` or ``close()``; a server that does not answer is no error: points are kept and
            sent when it comes up.
    """

    def __init__(self, server: str = DEFAULT_SERVER, port: int = DEFAULT_PORT, env: str = DEFAULT_ENV,
                 uid: str = "run", *,
                 max_points: int = 2000, min_interval: float = 0.2, timeout: float = 10.0,
                 close_timeout: float = 10.0, save_every: float = 60.0, base_url: str = "",
                 username: str | None = None, password: str | None = None, label: str | None = None) -> None:
        server, port = defaults.resolve("server", server), defaults.resolve("port", port)
        # the checks of every run option live in config.options (the constructors and load_config use them too)
        problems = check_options({"server": server, "port": port, "max_points": max_points,
                                  "min_interval": min_interval, "timeout": timeout, "close_timeout": close_timeout,
                                  "save_every": save_every, "base_url": base_url}, "VisdomSink()",
                                 owners=("run", "visdom"))
        if server is None:
            problems.insert(0, "server: expected a URL with its scheme, such as 'http://localhost', but got None")
        raise_problems("VisdomSink()", problems)
        check_env(env)
        login = resolve_credentials(username, password)
        self.url = f"{server.rstrip('/')}:{port}{base_url}"
        self.port = port
        self.env, self.uid = env, uid
        self.label = label  # a second line under each chart's title ("run <uid>"): runs told apart in one env
        self.max_points = max_points
        self.min_interval, self.timeout = min_interval, timeout
        self.close_timeout, self.save_every = close_timeout, save_every
        self.reconnections = 0
        # the last requests, for benchmarks: (plot, points in the message, seconds to the response)
        self.request_log: deque[tuple[str, int, float]] = deque(maxlen=1000)
        self._pid = os.getpid()
        self._builder = render.make_builder(server, port, env)
        self._buffer = Buffer(max_points)
        self._transport = Transport(self.url, timeout, *(login or (None, None)))
        del login, password
        # a wrong password is an error now when the server answers at once; a server slow to answer does not hold
        # up the training's start: the sender thread checks, and the next write/flush/close reports a refusal
        self._login_checked = self._transport.check_login(min(QUICK_CHECK_S, timeout))
        self._backoff = Backoff()
        self._cond = threading.Condition()
        self._urgent = 0
        self._checks_asked = 0  # flush() asks the sender to check the server still has the windows ...
        self._checks_done = 0  # ... and waits until it did
        self._stopping = False
        self._closed = False
        self._error: BaseException | None = None
        self._failing = False
        self._attempts = 0
        self._retry_at = 0.0
        self._notices: list[str] = []
        self._last_save = time.monotonic()
        self._unsaved = False
        self._thread = threading.Thread(target=self._run, name=f"flexlogger-sender-{env}", daemon=True)
        self._thread.start()
        _open_sinks.add(self)

    def window_id(self, plot: str) -> str:
        return f"{self.uid}_{plot}"

    @property
    def sent_requests(self) -> int:
        """HTTP requests posted (windows, checks)."""
        return self._transport.sent_requests

    @property
    def failed_requests(self) -> int:
        """Of those, the ones that failed."""
        return self._transport.failed_requests

    @property
    def downsamplings(self) -> int:
        """How many times a trace was downsampled."""
        return self._buffer.downsamplings

    # called from the training loop -------------------------------------------------------------------------
    def write(self, update: Update) -> None:
        """Merge ``update`` into its window's state; the sender thread sends it. Never waits on the network.

        Raises:
            DeliveryError: the sender thread died (the message says why), the sink is closed, or this is a forked
                child of the process that made the sink.
            ConfigError: the sender thread found the login refused (a server slow to answer at construction).
        """
        if self._error is not None:
            self._raise_dead()
        if self._closed:
            raise DeliveryError(f"write() to the Visdom sink of env {self.env!r} after close()")
        if self._forked():
            raise DeliveryError(f"this Visdom sink belongs to process {self._pid}; a forked child (process "
                                f"{os.getpid()}) cannot use it; create a logger in the child")
        if self._notices:
            self._warn_notices()
        with HOLD, self._cond:  # a Ctrl-C waits until the window's state is whole and the lock released
            if self._buffer.write(update):  # it was clean: wake the sender
                self._cond.notify()

    def pending(self) -> int:
        """Points (line/scatter) and window contents (other plots) logged but not yet on the server; 0 in a forked
        child (the sink belongs to the parent, and its lock may have been held when the child was made)."""
        if self._forked():
            return 0
        with HOLD, self._cond:
            return self._buffer.pending()

    def held_points(self) -> int:
        """The points the sink holds in memory for its windows (bounded by ``max_points`` per trace)."""
        with HOLD, self._cond:
            return self._buffer.held_points()

    def flush(self, timeout: float | None = None) -> int:
        """Send everything now and wait until the server has it, or ``timeout`` seconds. Once everything is sent,
        the server is asked whether it still has the windows (it may have restarted since): when it lost them,
        they are sent again.

        Returns:
            How many points (or window contents) are still pending: 0 when everything arrived. After
            ``close()``, at once: what was never delivered. In a forked child, at once: 0 (the sink belongs to
            the parent).

        Raises:
            DeliveryError: the sender thread died.
            ConfigError: the sender thread found the login refused (a server slow to answer at construction).
        """
        if self._forked():
            return 0
        if self._stopping:  # closed: the sender is gone, nothing more will arrive
            return self.pending()
        deadline = None if timeout is None else time.monotonic() + timeout
        urgent = False
        try:  # each step under HOLD (state whole, lock released), so a Ctrl-C ends the wait within WAIT_STEP_S
            with HOLD, self._cond:
                self._urgent += 1
                urgent = True
                self._checks_asked += 1
                asked = self._checks_asked
                self._cond.notify_all()
            while True:
                with HOLD, self._cond:
                    left = None if deadline is None else deadline - time.monotonic()
                    if (self._error is not None or not (self._buffer.any_dirty() or self._checks_done < asked)
                            or (left is not None and left <= 0)):
                        pending = self._buffer.pending()
                        break
                    self._cond.wait(min(left, WAIT_STEP_S) if left is not None else WAIT_STEP_S)
        finally:
            if urgent:
                with HOLD, self._cond:
                    self._urgent -= 1
        if self._error is not None:
            self._raise_dead()
        if self._notices:
            self._warn_notices()
        return pending

    def close(self) -> None:
        """Flush (up to ``close_timeout``; one last try when the server is down), save the env, stop the thread.
        In a forked child, return at once (the sink belongs to the parent).

        Warns with the count of points that could not be delivered, and of NaN/Inf values logged.
        """
        if self._closed or self._forked():
            return
        self._closed = True
        deadline = time.monotonic() + self.close_timeout  # for all of close(): flushing and stopping the thread
        if self._error is None:
            with HOLD, self._cond:
                if self._failing:  # the server is down: one last try now rather than a long wait
                    self._retry_at = 0.0
                    attempts = self._attempts
                    self._urgent += 1
                    self._cond.notify_all()
                    while (self._error is None and self._attempts == attempts and time.monotonic() < deadline
                           and self._buffer.any_dirty()):
                        self._cond.wait(0.05)
                    self._urgent -= 1
            if self._error is None:
                self.flush(0 if self._failing else max(0.0, deadline - time.monotonic()))
        with HOLD, self._cond:
            self._stopping = True
            self._cond.notify_all()
        # a request in flight (a server that accepts and never answers) is not waited for past the deadline: the
        # thread is a daemon and ends when its request times out
        self._thread.join(_seconds(max(deadline - time.monotonic(), JOIN_GRACE_S)))
        if self._error is None and not self._failing and self._unsaved and not self._thread.is_alive():
            self._save()
        pending = self.pending()
        _open_sinks.discard(self)
        self._transport.close()
        if self._notices:
            self._warn_notices()
        if pending:
            warnings.warn(f"{pending} point(s) could not be delivered to the Visdom server at {self.url} "
                          f"(env {self.env!r}); they are in the run record: `flexlogger replay RUN_DIR "
                          f"--port {self.port}` draws them", RuntimeWarning, stacklevel=2)
        if self._buffer.nonfinite:
            warnings.warn(f"{self._buffer.nonfinite} NaN/Inf value(s) were logged (env {self.env!r}); they are "
                          "shown as gaps (the run record keeps them)", RuntimeWarning, stacklevel=2)
        if isinstance(self._error, ConfigError):
            self._raise_dead()

    def _forked(self) -> bool:
        return os.getpid() != self._pid

    def _raise_dead(self) -> None:
        if isinstance(self._error, ConfigError):  # the login, refused when the sender thread checked it
            raise ConfigError(f"{self._error}; nothing is sent to {self.url} (the run record, if on, still has every "
                              "point)") from None
        raise DeliveryError(f"the Visdom sender thread of env {self.env!r} died: {self._error}; nothing is sent "
                            f"to {self.url} any more (the run record, if on, still has every point)") from self._error

    def _warn_notices(self) -> None:
        with HOLD, self._cond:
            notices, self._notices = self._notices, []
        for notice in notices:
            warnings.warn(notice, RuntimeWarning, stacklevel=4)

    # the sender thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if not self._login_checked:  # raises ConfigError for a refused login: reported as self._error
                self._login_checked = self._transport.check_login()
            while True:
                with self._cond:
                    work = self._wait_for_work()
                    if work is None:
                        return
                    messages = [self._buffer.snapshot(w) for w in work]
                if not messages:  # flush() asked whether the server still has the windows
                    self._check_server()
                for message in messages:
                    if not self._send(message):
                        break  # every window is marked lost: start over after the backoff
                if not self._failing and self._unsaved and time.monotonic() - self._last_save > self.save_every:
                    self._save()
        except BaseException as exc:  # a bug, not one window's data: reported to the training loop on the next log()
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _wait_for_work(self) -> list[Window] | None:
        """The windows to send now (waiting as needed); [] when flush() asked for a check of the server; None
        when closing."""
        while True:
            if self._stopping:
                return None
            now = time.monotonic()
            if now < self._retry_at:
                _wait(self._cond, self._retry_at - now)
                continue
            ready, wait = self._buffer.ready(now, self.min_interval, self._urgent > 0)
            if ready:
                return ready
            if wait is None and self._checks_done < self._checks_asked:
                return []
            _wait(self._cond, wait)

    def _send(self, message: Message) -> bool:
        """Build and post ``message``; False when the request failed (the server is down?)."""
        window = message.window
        try:
            body = self._build(message)
        except Exception as exc:  # this window's data or opts: skip it until it changes, deliver the others
            with self._cond:
                if window.broken_version < 0:  # drawn (or never tried) before: report it once
                    self._notices.append(
                        f"flexlogger: plot {window.plot!r} ({window.kind}) cannot be drawn and is skipped until "
                        f"its data changes (the other plots go on): {type(exc).__name__}: {exc} (opts "
                        f"{dict(window.opts)!r})")
                self._buffer.mark_broken(message, time.monotonic())
                self._cond.notify_all()
            return True
        start = time.perf_counter()
        ok = self._transport.post("events", body)
        elapsed = time.perf_counter() - start
        with self._cond:
            self._attempts += 1
            self.request_log.append((window.plot, message.size(), elapsed))
            reconnected = ok and self._transport.reconnected()
            self.reconnections += reconnected
            self._unsaved = self._unsaved or ok
            self._buffer.settle(message, time.monotonic(), ok, reconnected)
            self._outcome(ok)
            self._cond.notify_all()
        return ok

    def _build(self, message: Message) -> str:
        """The request body (JSON) for ``message``; raises what Visdom's client raises for data it cannot draw."""
        window, win = message.window, self.window_id(message.window.plot)
        if not isinstance(message.body, dict):  # a window replaced by its latest content
            return render.render(self._builder, win, self.env, message.body, self.label)
        if not window.per_point:
            lines = self._lines_body(win, window, message.body)
            if lines is not None:
                return lines
        traces = {name: (xs, ys) for name, (_, xs, ys) in message.body.items()}
        return render.body(render.render_traces(self._builder, win, self.env, window.plot, window.kind, window.opts,
                                                traces), self.label)

    def _lines_body(self, win: str, window: Window,
                    body: dict[str, tuple[int, list[float], list[float]]]) -> str | None:
        """A whole line/scatter window as JSON: each trace's options and the layout come from Visdom's client
        (built once per trace, from one point); the points are JSON text, cached, so only new points are encoded.
        None when a trace has per-point options: Visdom's client builds the window, this send and every next."""
        parts: list[tuple[dict[str, Any], str, str]] = []
        for name, (start, xs, ys) in body.items():
            template = window.templates.get(name)
            if template is None:
                template = render.trace_template(self._builder, win, self.env, window.plot, window.kind,
                                                 window.opts, name)
                if template is None:
                    window.per_point = True
                    return None
                window.templates[name] = template
            trace = window.traces[name]
            if len(trace.x_parts) == start:  # else the trace was reset meanwhile: the next send redoes it
                trace.x_parts += render.encode_xs(xs)
                trace.y_parts += render.encode_ys(ys)
            parts.append((template, ",".join(trace.x_parts[: start + len(xs)]),
                          ",".join(trace.y_parts[: start + len(ys)])))
        return render.assemble_lines(parts, self.label)

    def _outcome(self, ok: bool) -> None:
        """After a request (under the lock): reset or extend the backoff; one notice per outage."""
        if ok:
            self._backoff.succeed()
            self._failing = False
            return
        self._retry_at = time.monotonic() + self._backoff.fail()
        if not self._failing:
            self._failing = True
            self._notices.append(
                f"flexlogger: the Visdom server at {self.url} does not answer ({self._transport.failure}); training "
                f"goes on, points are kept (and in the run record) and sent when it comes up, retried with "
                f"backoff. Start one with `flexlogger serve --port {self.port}`.")

    def _check_server(self) -> None:
        """Ask the server whether it still has a delivered window (flush() and close() ask for it): when it lost
        it, or the request went on a new connection (a restart since the last delivery), resend every window."""
        with self._cond:
            asked = self._checks_asked
            window = None if self._failing else self._buffer.a_delivered_window()
        exists = None if window is None else self._transport.win_exists(self.window_id(window.plot), self.env)
        with self._cond:
            if window is not None:
                self._attempts += 1
                ok = exists is not None
                reconnected = ok and self._transport.reconnected()
                if not ok or not exists or reconnected:
                    self.reconnections += reconnected
                    self._buffer.mark_lost()
                self._outcome(ok)
            self._checks_done = asked
            self._cond.notify_all()

    def _save(self) -> None:
        self._last_save = time.monotonic()
        self._unsaved = not self._transport.save(self.env)


def _seconds(value: float | None) -> float | None:
    """A duration a wait can take: None (no limit) for one that is not finite or too long for the platform."""
    if value is None or not value < threading.TIMEOUT_MAX:
        return None
    return max(value, 0.0)


def _wait(cond: threading.Condition, seconds: float | None) -> None:
    cond.wait(_seconds(seconds))


_open_sinks: weakref.WeakSet[VisdomSink] = weakref.WeakSet()


def _close_open_sinks() -> None:
    """Close the sinks a user forgot to close, so that a script's last points reach the server."""
    close_each(_open_sinks, VisdomSink.close)


on_exit(SENDERS, _close_open_sinks)
