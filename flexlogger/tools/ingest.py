"""Logging from any language: an HTTP endpoint that takes pastalog's points, ``flexlogger ingest --port P``.

``POST /data`` with pastalog's body, unchanged::

    curl -X POST -H 'Content-Type: application/json' http://localhost:8120/data \
         -d '{"modelName": "model1", "pointType": "validLoss", "pointValue": 2.5, "globalStep": 1}'

- Each ``modelName`` becomes a run (:class:`flexlogger.Run`, uid from the model name, in env ``env``, recorded under
  ``log_dir``) with a :class:`flexlogger.FlexLogger`; each ``pointType`` becomes, on first sight, a line plot of that
  name fed by a ``ValueMeter`` of that name (as pastalog draws a plot per point type). A point is logged at
  ``x = globalStep``; without one (missing or ``null``, which pastalog's server takes too) at the next step of its
  series (the last one + 1, 0 for the first). The run's uid is the model name, escaped when it holds ``_``, ``~``
  or ``%`` (:func:`model_uid`: ``resnet_48`` -> ``resnet~48``), so that window ids ``<uid>_<pointType>`` of two
  models never meet.
- Fields other than pastalog's four are ignored, as pastalog's server ignores them; the answer names them.
- Answers: 200 when the point is on the disk: its line in the run record is written and ``fsync``'d (it survives
  the endpoint being killed) and it is queued for Visdom; 400 naming the bad field for a body that is not that
  shape (not JSON, not an object, a missing ``modelName``, ``pointType`` or ``pointValue``, a string where a
  number belongs, a number beyond float range, an empty name or one with control characters or of more than 200
  bytes); 403 for a request from a web page (an ``Origin`` header) or, unless ``public``, with a ``Host`` other
  than this machine's loopback names (DNS rebinding); 411 without ``Content-Length``; 413 for a body over
  ``max_body`` bytes (64 KiB), not read; 404 for other paths; 503 when ``max_models`` models are open and a new
  one comes, when ``max_connections`` are open, or when the point could not be put on the disk within
  ``sync_timeout``; 507 when the disk did not take it. A refused body stores nothing. Points are logged under one
  lock (the loggers are not thread-safe).
- Limits: at most ``max_connections`` connections at once (more are answered 503 and closed at once); a
  connection that sends nothing for ``timeout`` seconds is closed (a stalled client holds no thread for long).
- Binds 127.0.0.1 unless ``public=True`` (then every interface: anyone who reaches the port can write runs).
- Idle models: a model that gets no point for ``idle_timeout`` seconds (300) is closed (its run: the record's
  summary written, its threads and files freed); its next point opens it again.
- One record per model: a model's run record is ``<log_dir>/<env>/<modelName>/``, continued (appended to) each time
  the model is opened again, after an idle close or a restart of the endpoint, so replay and compare read a model's
  whole history from one folder. On opening, the model's windows are drawn again from that record, then the new
  points are added: a restart does not leave a window showing only the points posted since. (When another process
  still has the record open, the model gets a fresh folder ``<modelName>-2``, drawn on the same windows.)
- A Visdom login (``username=``, ``password=``) is held only as the password's digest from construction on.
"""

from __future__ import annotations

import errno
import json
import math
import sys
import threading
import time
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flexlogger import defaults
from flexlogger.closing import call_each
from flexlogger.config.options import check_options, raise_problems
from flexlogger.core.logger import FlexLogger
from flexlogger.core.run import Run
from flexlogger.defaults import DEFAULT_LOG_DIR, DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import ConfigError, FlexLoggerError
from flexlogger.sinks.record import RecordError, RecordSink
from flexlogger.sinks.visdom.auth import PasswordDigest
from flexlogger.sinks.visdom.sender import VisdomSink

__all__ = ["FIELDS", "MAX_BODY", "REQUIRED", "IngestError", "IngestServer", "Point", "PointError", "model_uid",
           "parse_point"]

MAX_BODY = 64 * 1024
FIELDS = ("modelName", "pointType", "pointValue", "globalStep")
MAX_NAME = 200  # bytes of UTF-8: a model name is a folder name
MAX_CONNECTIONS = 64
MAX_MODELS = 100
TIMEOUT = 10.0  # s a connection may stay silent (while sending a request, or between two)
SYNC_TIMEOUT = 10.0  # s a point may take to reach the disk before the answer is 503
IDLE_TIMEOUT = 300.0  # s without a point after which a model's run is closed (reopened on its next point)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class PointError(FlexLoggerError, ValueError):
    """A body that is not a pastalog point (answered with 400)."""


class IngestError(FlexLoggerError, RuntimeError):
    """The endpoint cannot listen on its port."""


class BusyError(FlexLoggerError, RuntimeError):
    """A point the endpoint cannot take now (answered with 503): too many models, or the disk is slow."""


@dataclass(frozen=True)
class Point:
    """One pastalog point (``step`` None: the body had no ``globalStep``, or ``null``)."""

    model: str
    series: str
    value: float
    step: float | None
    ignored: tuple[str, ...] = ()
    """The body's fields other than :data:`FIELDS` (pastalog's server keeps a point with extra fields; so does
    this one, without them)."""


REQUIRED = FIELDS[:3]
"""The fields pastalog's server requires: ``globalStep`` may be missing or ``null``."""


def parse_point(body: bytes) -> Point:
    """The pastalog point in a request body, taken as pastalog's own server takes it: ``modelName``, ``pointType``
    and ``pointValue`` required; ``globalStep`` missing or ``null`` gives ``step=None`` (the series' next step,
    :meth:`IngestServer.store`); other fields are ignored and named in :attr:`Point.ignored`.

    Raises:
        PointError: the body is not ``{"modelName": str, "pointType": str, "pointValue": number, "globalStep":
            number or null}``; the message names the bad field, what was expected and what came.
    """
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PointError(f"expected a JSON object with fields {', '.join(FIELDS)}, but the body is not JSON "
                         f"({exc})") from None
    if not isinstance(obj, Mapping):
        raise PointError(f"expected a JSON object with fields {', '.join(FIELDS)}, but got a {type(obj).__name__}")
    missing = [f for f in REQUIRED if f not in obj]
    if missing:
        raise PointError(f"{missing[0]}: missing; expected a JSON object with fields {', '.join(REQUIRED)} "
                         "(and globalStep, a number or null)")
    for name in ("modelName", "pointType"):
        value = obj[name]
        if (not isinstance(value, str) or not value.strip() or len(value.encode("utf-8", "surrogatepass")) > MAX_NAME
                or any(unicodedata.category(c)[0] == "C" for c in value)):
            raise PointError(f"{name}: expected a non-empty string of at most {MAX_NAME} bytes of UTF-8 without "
                             f"control characters, but got {_shown(value)}")
    value = _number("pointValue", obj["pointValue"], "")
    step = obj.get("globalStep")
    if step is not None and not math.isfinite(_number("globalStep", step, " or null")):
        raise PointError(f"globalStep: expected a finite number or null, but got {step!r}")
    ignored = tuple(sorted(str(k) for k in obj if k not in FIELDS))
    return Point(obj["modelName"], obj["pointType"], value, step, ignored)


def _number(name: str, value: Any, alternative: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PointError(f"{name}: expected a number{alternative}, but got {_shown(value)}")
    try:
        return float(value)
    except OverflowError:
        raise PointError(f"{name}: expected a number within float range (about 1.8e308), but got an integer "
                         f"of {len(str(abs(value)))} digits") from None


def model_uid(model: str) -> str:
    """The run uid (window-id prefix and record folder) of a ``modelName``: the name itself when it holds no ``_``,
    ``~`` or ``%``; else ``_`` written as ``~``, ``~`` as ``%7E`` and ``%`` as ``%25`` (``resnet_48`` ->
    ``resnet~48``).

    Window ids are ``<uid>_<plot>``: with no ``_`` in any uid, the first ``_`` of a window id ends the model's part,
    so model ``a_b``'s series ``c`` (``a~b_c``) and model ``a``'s series ``b_c`` (``a_b_c``) get two windows, and
    no series of one model can take another model's own windows (``run_status``). The escape is one-to-one: two
    model names never share a uid.
    """
    return model.replace("%", "%25").replace("~", "%7E").replace("_", "~")


def _shown(value: Any) -> str:
    text = json.dumps(value if not isinstance(value, int) or abs(value) < 10**20 else float("inf"))
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (a {'string' if isinstance(value, str) else type(value).__name__})"


class IngestServer:
    """The pastalog endpoint, served from a thread (see the module docstring).

    Args:
        port: the port to listen on (0: a free one; :attr:`port` says which).
        public: listen on every interface instead of 127.0.0.1.
        env: the Visdom env of the models' runs.
        server, visdom_port: the Visdom server the runs draw on (``server=None``: the record only).
        log_dir: the runs' records root (``<log_dir>/<env>/<modelName>``).
        max_body: the largest body accepted, in bytes.
        max_connections: connections served at once; more are answered 503 and closed.
        max_models: models (runs) open at once; a point of one more is answered 503.
        timeout: seconds a connection may stay silent before it is closed.
        sync_timeout: seconds a point may take to reach the disk before the answer is 503.
        idle_timeout: seconds without a point after which a model's run is closed (its next point reopens it,
            continuing its record and windows).
        **run_options: more :class:`flexlogger.Run` options (``min_interval``, ``max_points``, ...). A
            ``password`` is kept only as its digest (:class:`~flexlogger.sinks.visdom.auth.PasswordDigest`).

    Example:
        >>> with IngestServer(port=8120, visdom_port=8097) as ingest:  # doctest: +SKIP
        ...     ingest.serve_forever()
    """

    def __init__(self, port: int = 8120, *, public: bool = False, env: str = "ingest",
                 server: str | None = DEFAULT_SERVER, visdom_port: int = DEFAULT_PORT,
                 log_dir: str | Path | None = DEFAULT_LOG_DIR,
                 max_body: int = MAX_BODY, max_connections: int = MAX_CONNECTIONS, max_models: int = MAX_MODELS,
                 timeout: float = TIMEOUT, sync_timeout: float = SYNC_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 **run_options: Any) -> None:
        server, visdom_port = defaults.resolve("server", server), defaults.resolve("port", visdom_port)
        log_dir = defaults.resolve("log_dir", log_dir)
        options = {"env": env, "server": server, "port": visdom_port, "log_dir": log_dir, **run_options}
        bad = [k for k in ("uid", "port") if k in run_options]
        if bad:
            raise ConfigError(f"IngestServer(): unknown keyword argument {bad[0]!r} (a model's uid is its modelName; "
                              "the Visdom port is visdom_port)")
        raise_problems("IngestServer()", check_options(options, "IngestServer()", owners=("run", "visdom")))
        self.env, self.server, self.visdom_port, self.log_dir = env, server, visdom_port, log_dir
        for name, limit in (("max_connections", max_connections), ("max_models", max_models)):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigError(f"IngestServer(): expected `{name}` to be an int >= 1, but got {limit!r}")
        for name, seconds in (("timeout", timeout), ("sync_timeout", sync_timeout), ("idle_timeout", idle_timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < 1e6:
                raise ConfigError(f"IngestServer(): expected `{name}` to be a number of seconds > 0, but got "
                                  f"{seconds!r}")
        self.max_body, self.max_models = max_body, max_models
        self.timeout, self.sync_timeout = float(timeout), float(sync_timeout)
        self.idle_timeout = float(idle_timeout)
        self.public = public
        if run_options.get("password") is not None:  # the runs opened later log in with the digest
            run_options["password"] = PasswordDigest.of(run_options["password"])
        self.run_options = run_options
        self.loggers: dict[str, FlexLogger] = {}  # model name -> its logger (its run: `.run`)
        self._steps: dict[tuple[str, str], float] = {}  # (model, series) -> its last step
        self.records: dict[str, RecordSink] = {}  # model name -> its run record
        self.idle_closed = 0  # models closed for being idle
        self._last: dict[str, float] = {}  # model name -> when its last point was stored (monotonic)
        self._busy: dict[str, int] = {}  # model name -> points being stored (not closed meanwhile)
        self._closing: dict[str, threading.Event] = {}  # model name -> set once its idle close is done
        self._idle_stop = threading.Event()
        self._idle_thread: threading.Thread | None = None
        self.points = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        host = "" if public else "127.0.0.1"
        try:
            self._httpd = _BoundedServer((host, port), _handler(self), max_connections)
        except OSError as exc:
            other = port + 1 if port < 65535 else 8120
            raise IngestError(f"IngestServer(): cannot listen on {host or '0.0.0.0'}:{port} "
                              f"({exc.strerror or exc}); expected a free port, e.g. {other}") from None
        self._httpd.daemon_threads = True
        self.host = "0.0.0.0" if public else "127.0.0.1"
        self.port: int = self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Where to POST: ``http://127.0.0.1:<port>/data``."""
        return f"http://{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:{self.port}/data"

    def start(self) -> IngestServer:
        """Serve from a background thread; return self."""
        self._start_idle()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="flexlogger-ingest", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (from another thread) or Ctrl-C."""
        self._start_idle()
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop listening, then close every model's logger (its run: the record's summary, the last points sent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._idle_stop.set()
        if self._idle_thread is not None:
            self._idle_thread.join()
            self._idle_thread = None
        with self._lock:
            models = list(self.loggers)
        call_each(models, self._close_model)

    def _start_idle(self) -> None:
        if self._idle_thread is None:
            self._idle_thread = threading.Thread(target=self._close_idle, name="flexlogger-ingest-idle", daemon=True)
            self._idle_thread.start()

    def _close_idle(self) -> None:
        """The idle closer's loop: close the models that got no point for ``idle_timeout`` seconds."""
        tick = min(self.idle_timeout / 4, 5.0)
        while not self._idle_stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                idle = [m for m, t in self._last.items()
                        if now - t >= self.idle_timeout and not self._busy.get(m) and m in self.loggers]
            for model in idle:
                try:
                    self._close_model(model, idle=True)
                except Exception as exc:  # the next points of the model open it again; say why it failed
                    warnings.warn(f"flexlogger ingest: closing idle model {model!r} failed: "
                                  f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=1)

    def _close_model(self, model: str, idle: bool = False) -> None:
        """Close ``model``'s logger, run and record; a point for it meanwhile waits until it is closed, then opens
        it again."""
        with self._lock:
            if idle and (self._busy.get(model) or time.monotonic() - self._last.get(model, 0.0) < self.idle_timeout):
                return  # a point came meanwhile
            logger, record = self.loggers.pop(model, None), self.records.pop(model, None)
            self._last.pop(model, None)
            if logger is None:
                return
            done = self._closing[model] = threading.Event()
        run = logger.run
        try:
            logger.close()
            if record is not None:  # its config as the run ends, before the run closes it
                record.close(config={**run.to_config(), "log_dir": str(self.log_dir)})
            run.close()
        finally:
            with self._lock:
                del self._closing[model]
                self.idle_closed += idle
            done.set()

    def __enter__(self) -> IngestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def store(self, point: Point) -> None:
        """Log ``point`` in its model's run (made on first sight), its series' plot added on first sight, and put it
        on the disk (the record ``fsync``'d).

        Raises:
            BusyError: ``max_models`` models are open and this is a new one, or the point did not reach the disk
                within ``sync_timeout``.
            OSError: the disk did not take the point.
        """
        record = self._log(point)
        try:
            left = record.sync(self.sync_timeout) if record is not None else 0  # outside the lock: others go on
        finally:
            with self._lock:
                self._busy[point.model] -= 1
                if not self._busy[point.model]:
                    del self._busy[point.model]
                self._last[point.model] = time.monotonic()
        if left:
            raise BusyError(f"the point is logged but did not reach the disk within {self.sync_timeout:g} s; it may "
                            "still be written")

    def _log(self, point: Point) -> RecordSink | None:
        """Log ``point`` under the lock (its model opened if need be, counted busy until the caller's sync); the
        model's record, to sync."""
        deadline = time.monotonic() + self.sync_timeout
        while True:
            with self._lock:
                closing = self._closing.get(point.model)
                if closing is None:
                    logger = self.loggers.get(point.model)
                    if logger is None:
                        logger = self._open_model(point.model)
                    if point.series not in logger.get_definitions():
                        logger.update_config({point.series: {"type": "line"}},
                                             {point.series: {"type": "ValueMeter", "target": point.series}})
                    step = point.step
                    if step is None:  # pastalog keeps a point without globalStep: it goes next in its series
                        last = self._steps.get((point.model, point.series))
                        step = 0 if last is None else math.floor(last) + 1
                    logger.add({point.series: point.value})
                    logger.log(step, keys=[point.series])
                    self._steps[(point.model, point.series)] = step
                    self.points += 1
                    self._busy[point.model] = self._busy.get(point.model, 0) + 1
                    self._last[point.model] = time.monotonic()
                    return self.records.get(point.model)
            if not closing.wait(max(0.0, deadline - time.monotonic())):  # closing for being idle: wait, reopen
                raise BusyError(f"modelName: {point.model!r} is being closed (idle) and did not close within "
                                f"{self.sync_timeout:g} s; try again")

    def _open_model(self, model: str) -> FlexLogger:
        """Open ``model``'s run (under the lock): its record continued, its windows drawn again from it."""
        if len(self.loggers) >= self.max_models:
            raise BusyError(f"modelName: {len(self.loggers)} models are open, the most this endpoint takes "
                            f"(max_models={self.max_models}); {model!r} is refused")
        record = None
        if self.log_dir is not None:
            try:
                record = RecordSink(Path(self.log_dir), env=self.env, uid=model_uid(model), resume=True)
            except RecordError as exc:  # a damaged or unreadable record: say so; the model is not opened
                raise ConfigError(f"its run record cannot be continued: {exc}") from None
        try:
            run = Run(env=self.env, uid=model_uid(model), log_dir=None, server=self.server, port=self.visdom_port,
                      sinks=[record] if record is not None else (), **self.run_options)
        except BaseException:
            if record is not None:
                record.close()
            raise
        try:
            logger = FlexLogger(run=run)
        except BaseException:
            run.close()
            raise
        if record is not None and record.resumed is not None:  # the windows as they were, then the new points
            for sink in run.sinks:
                if isinstance(sink, VisdomSink):
                    for update in record.resumed.updates:
                        sink.write(update)
            record.resumed = None  # not kept: the sink has them
        self.loggers[model] = logger
        if record is not None:
            self.records[model] = record
        return logger


def _handler(ingest: IngestServer) -> type[BaseHTTPRequestHandler]:
    """The handler class of one endpoint: :class:`_IngestHandler` bound to ``ingest`` and its timeout."""
    return type("Handler", (_IngestHandler,), {"ingest": ingest, "timeout": ingest.timeout})


class _IngestHandler(BaseHTTPRequestHandler):
    """The endpoint's HTTP handler: POST /data stores a point; every refusal is answered with its reason."""

    server_version = "flexlogger-ingest"
    ingest: IngestServer  # set by :func:`_handler`, with ``timeout`` (per socket operation: a silent connection is
    # closed)

    def do_POST(self) -> None:
        if self._foreign():
            return
        if self.path.split("?")[0].rstrip("/") != "/data":
            self._answer(404, f"no endpoint {self.path}; expected POST /data")
            return
        body = self._body()
        if body is None:
            return
        try:
            point = parse_point(body)
        except PointError as exc:
            self._answer(400, str(exc))
            return
        self._store(point)

    def _body(self) -> bytes | None:
        """The request's body, or None when its size is missing, bad or over ``max_body`` (answered)."""
        length = self.headers.get("Content-Length")
        if length is None:
            self._answer(411, "expected a Content-Length header", close=True)
            return None
        try:
            size = int(length)
        except ValueError:
            self._answer(400, f"Content-Length: expected a number of bytes, but got {length!r}", close=True)
            return None
        if size > self.ingest.max_body or size < 0:  # the body is not read: the connection cannot go on
            self._answer(413, f"body of {size} bytes; expected at most {self.ingest.max_body} bytes", close=True)
            return None
        return self.rfile.read(size)

    def _store(self, point: Point) -> None:
        """Store ``point`` and answer: 200 once it is on the disk, else the code that says why not."""
        try:
            self.ingest.store(point)
        except BusyError as exc:
            self._answer(503, str(exc))
            return
        except ConfigError as exc:  # a name a run cannot take
            self._answer(400, f"modelName: {exc}")
            return
        except OSError as exc:
            self._answer(507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500,
                         f"the point could not be put on the disk: {exc}")
            return
        except Exception as exc:  # our bug or a dead sender: say so, the client may retry
            self._answer(500, f"{type(exc).__name__}: {exc}")
            return
        self._answer(200, "ok" if not point.ignored else
                     f"ok; ignored fields: {', '.join(f[:40] for f in point.ignored[:10])}"
                     f"{' ...' if len(point.ignored) > 10 else ''} (taken: {', '.join(FIELDS)})")

    def do_GET(self) -> None:
        if self._foreign():
            return
        self._answer(200 if self.path == "/" else 404,
                     "flexlogger ingest: POST pastalog points to /data as "
                     '{"modelName": ..., "pointType": ..., "pointValue": ..., "globalStep": ...}')

    def _foreign(self) -> bool:
        """Answer 403 to a request from a web page (any ``Origin``: the endpoint serves programs, not pages) or,
        unless public, one naming a host other than the loopback (DNS rebinding); True when answered."""
        origin = self.headers.get("Origin")
        if origin is not None:
            self._answer(403, f"Origin: requests from web pages are refused (got {origin[:100]!r}); POST from a "
                              "program, which sends no Origin header", close=True)
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not self.ingest.public and name.lower() not in LOOPBACK_HOSTS:
            self._answer(403, f"Host: expected one of {', '.join(sorted(LOOPBACK_HOSTS))} (the endpoint listens "
                              f"on 127.0.0.1), but got {host[:100]!r}", close=True)
            return True
        return False

    def _answer(self, code: int, text: str, close: bool = False) -> None:
        """Answer ``code`` with ``text``; ``close``: then close the connection."""
        self.close_connection = self.close_connection or close
        if code >= 400:
            self.ingest.refused += 1
        data = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request on stderr


class _BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``limit`` connections at once; one more is answered 503 and
    closed without a thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limit: int) -> None:
        self.limit = limit
        self.slots = threading.BoundedSemaphore(limit)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            text = f"{self.limit} connections are open, the most this endpoint serves; try again\n".encode()
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                b"Connection: close\r\nContent-Length: " + str(len(text)).encode() + b"\r\n\r\n"
                                + text)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or went silent is no error of ours (no traceback on stderr); others are."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

