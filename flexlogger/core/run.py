"""Run: one training run: its folder, its sinks (the run record, the Visdom sender) and its status.

The loggers given one run write one run record, share one Visdom sender thread and draw in one env; a logger made
without ``run=`` makes its own. Data flows one way: loggers hand the run updates (:meth:`Run.write`) and push what
its summary and ``config.json`` need (:meth:`Run.set_best`, :meth:`Run.set_config`); the run never calls back into
a logger. A run left open is closed at interpreter exit (``crashed`` when the script died of an uncaught
exception); a child made with ``os.fork()`` never closes or writes its parent's run.

Example:
    >>> with flexlogger.Run(env='mnist') as run:
    ...     Stat = flexlogger.FlexLogger(plots, meters, run=run)
    ...     TMLogger = flexlogger.TooledModelLogger(model, logger=Stat)
    ...     ...                              # one folder runs/mnist/<uid>, one sender thread, one env
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from flexlogger.closing import RUNS, call_each, close_each, on_exit
from flexlogger.config.config import merge_configs
from flexlogger.config.options import SECRET, check_option, check_options, defaults, raise_problems
from flexlogger.core import distributed as distributed_
from flexlogger.defaults import DEFAULT_ENV, DEFAULT_LOG_DIR, DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.defaults import resolve as resolve_default
from flexlogger.errors import ConfigError, RunFolderError, short_repr
from flexlogger.experiment.calls import RecordCalls
from flexlogger.experiment.checks import STATUS_PLOT, RecordCallTypeError
from flexlogger.experiment.folder import RunFolder
from flexlogger.experiment.forward import ShowsRecordCalls
from flexlogger.experiment.status import RunStatus
from flexlogger.sinks.base import Sink, Update
from flexlogger.sinks.record import RecordSink
from flexlogger.sinks.visdom.sender import VisdomSink

__all__ = ["Run", "default_uid"]


def default_uid() -> str:
    """A run id unique to this run and readable: the local start time and a random suffix,
    e.g. ``2026-11-30_10-58-26_3fa2c1`` (two runs of a sweep started in the same second get different ids)."""
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"


class Run(ShowsRecordCalls):
    """A training run: where its points go, and its status.

    Args:
        env: the Visdom environment the run's windows go to.
        uid: the run id: window ids are ``<uid>_<plot>``, the run record is ``<log_dir>/<env>/<uid>``. Default: the
            start time and a random suffix (:func:`default_uid`), so each run gets its own windows; pass a fixed uid
            to redraw the same windows on every run (the record then goes to ``<uid>-2``, ... : never overwritten).
        log_dir: the run record's root folder; None turns the record off.
        server, port: the Visdom server; ``server=None`` sends nothing to Visdom (the record still works).
        sinks: extra sinks that receive every update (anything with ``write``/``flush``/``close``).
        disabled: True makes the run write nothing (no folder, no thread, no server contacted) while the loggers'
            meters keep working. Default: disabled on ``torch.distributed`` ranks other than 0 (rank 0 draws).
        max_steps: the number of steps the run will log, counted from 0: progress and an ETA in a ``run_status``
            window and in ``summary.json`` (see :meth:`set_max_steps`); None: no progress.
        **visdom_options: the Visdom sender's options (``max_points``, ``min_interval``, ``timeout``,
            ``close_timeout``, ``save_every``, ``base_url``; see ``flexlogger.config.options``).

    Attributes:
        env, uid: as given (uid as chosen).
        started: the start time, seconds since the epoch (:attr:`start_time`: as local date and time).
        dir: the run record's folder (``<log_dir>/<env>/<uid>``), or None without a record.
        status: ``running``, then ``finished``, ``crashed`` or ``interrupted``.
        calls: the run's :class:`~flexlogger.experiment.calls.RecordCalls`; each is shown on the run
            (``run.log_text(...)``, the documented path) with its own signature.

    Raises:
        ConfigError: a bad or unknown option (naming ``Run()``, the bad value and the valid choices).
        RunFolderError: (an ``OSError``) the run record's folder cannot be made under ``log_dir``.
    """

    def __init__(self, env: str = DEFAULT_ENV, uid: str | None = None, log_dir: str | Path | None = DEFAULT_LOG_DIR,
                 server: str | None = DEFAULT_SERVER, port: int = DEFAULT_PORT, *, sinks: Iterable[Sink] = (),
                 disabled: bool | None = None, max_steps: int | None = None, **visdom_options: Any) -> None:
        self._init("Run()", {"env": env, "uid": uid, "log_dir": log_dir, "server": server, "port": port,
                             "disabled": disabled, "max_steps": max_steps, **visdom_options}, sinks)

    @classmethod
    def _from_options(cls, caller: str, options: Mapping[str, Any], sinks: Iterable[Sink] = ()) -> Run:
        """A run from already-gathered options, errors naming ``caller`` (a logger making its own run)."""
        run = cls.__new__(cls)
        run._init(caller, options, sinks)
        return run

    def _init(self, caller: str, options: Mapping[str, Any], sinks: Iterable[Sink]) -> None:
        raise_problems(caller, check_options(options, caller, owners=("run", "visdom")))
        given = {**defaults("run"), **options}  # the option table holds every default
        env, uid, log_dir, server, port, disabled, max_steps = (
            given.pop(name) for name in ("env", "uid", "log_dir", "server", "port", "disabled", "max_steps"))
        # a keyword left at its default takes $FLEXLOGGER_LOG_DIR, $FLEXLOGGER_SERVER, $FLEXLOGGER_PORT when set
        log_dir, server, port = (resolve_default(n, v) for n, v in (("log_dir", log_dir), ("server", server),
                                                                    ("port", port)))
        sinks = list(sinks)
        for sink in sinks:
            if not all(callable(getattr(sink, m, None)) for m in ("write", "flush", "close")):
                raise ConfigError(f"{caller}: expected `sinks` to hold objects with write(), flush() and close(), "
                                  f"but got {type(sink).__name__}")
        self.env: str = env
        self.uid: str = uid or default_uid()
        self.server, self.port, self.log_dir = server, port, log_dir
        self.disabled: bool = distributed_.rank() != 0 if disabled is None else disabled
        # for to_config(): every option's value (defaults included), never a secret
        self.options: dict[str, Any] = {"env": env, "uid": uid, "server": server, "port": port, "log_dir": log_dir,
                                        "disabled": disabled, "max_steps": max_steps,
                                        **{k: v for k, v in given.items() if k not in SECRET}}
        self.status = "running"
        self.started = time.time()
        self._pid = os.getpid()
        self._seq = 0
        self._closed = False
        self._owners: dict[str, int] = {}  # plot -> id of the logger that draws it
        self._configs: dict[int, Mapping[str, Any]] = {}  # owner id -> its config, as it last pushed it
        self._folder = RunFolder()
        self._status = RunStatus(self.started, max_steps)
        self.calls = RecordCalls(env=self.env, uid=self.uid, started=self.started, folder=self._folder,
                                 deliver=lambda update: self._deliver([update], steps=False),
                                 claim=lambda plots: self.claim(self, plots), next_seq=self.next_seq,
                                 disabled=lambda: self.disabled, check_open=self._check_open)
        self._record: Any = None
        self._visdom: Any = None
        self._extra: list[Sink] = sinks
        self._sink_options = given
        self._opened = False
        if not self.disabled:
            self._open(caller, log_dir, server, port, given)
        _open_runs.add(self)

    def _record_calls(self) -> RecordCalls:
        return self.calls

    @property
    def start_time(self) -> str:
        """When the run started, local time as ``2026-11-30 10:58:26`` (lavd's ``get_start_time``); the number of
        seconds since the epoch is :attr:`started`."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))

    @property
    def hparams(self) -> dict[str, Any]:
        """The hyperparameters logged so far (as stored in ``hparams.json``)."""
        return self.calls.hparams

    @property
    def dir(self) -> Path | None:
        """The run record's folder (``<log_dir>/<env>/<uid>``), or None without a record."""
        return self._folder.path

    @property
    def max_steps(self) -> int | None:
        """The number of steps the run will log (see :meth:`set_max_steps`), or None."""
        return self._status.max_steps

    def _check_open(self, call: str) -> None:
        """A call that draws a window needs an open run: refused before any file is written."""
        if self._closed:
            raise ConfigError(f"{call}: run {self.uid!r} (env {self.env!r}) is closed; create a new one to log again")

    def disable(self) -> None:
        """Make every logging call of the run a no-op (``log()``, ``log_text()``, ``println()``, ...), until
        :meth:`enable`. Meters, ``value()`` and ``best()`` keep working."""
        self.disabled = True

    def enable(self) -> None:
        """Log again after :meth:`disable`. A run made with ``disabled=True`` opens its folder and its Visdom sender
        now (the first time)."""
        self._check_open("enable()")
        if not self._opened:
            self._open("enable()", self.log_dir, self.server, self.port, self._sink_options)
        self.disabled = False

    def _open(self, caller: str, log_dir: str | Path | None, server: str | None, port: int,
              visdom_options: dict[str, Any]) -> None:
        if self._status.max_steps:
            self.claim(self, [STATUS_PLOT])
        if log_dir is not None:
            try:
                self._record = RecordSink(Path(log_dir), env=self.env, uid=self.uid, config=self.to_config())
            except OSError as exc:  # a run must not start without its record: said here, naming the call
                where = f" ({exc.filename})" if exc.filename else ""
                raise RunFolderError(f"{caller}: the run record cannot be made under log_dir {str(log_dir)!r}: "
                                     f"{exc.strerror or exc}{where}; expected `log_dir` to be a folder this process "
                                     f"can write, or None to turn the record off") from exc
            self._folder.path = self._record.path
        if server is not None:
            try:
                self._visdom = VisdomSink(server=server, port=port, env=self.env, uid=self.uid,
                                          label=f"run {self.uid}", **visdom_options)
            except BaseException:
                if self._record is not None:  # not opened: a later enable() tries again, in a new folder
                    self._record.close({"status": "failed to start"})
                    self._record, self._folder.path = None, None
                raise
        self._opened = True
        self._sink_options = {}  # the sink made its login from them: the password is not kept here
        if self._record is not None:
            self._drain_status()  # summary.json says running from the start

    # the loggers' side -------------------------------------------------------------------------------------
    @property
    def sinks(self) -> list[Sink]:
        """The sinks every update goes to: the record first (it has every point even when Visdom fails)."""
        return [s for s in (self._record, self._visdom) if s is not None] + self._extra

    def sync(self, timeout: float | None = None) -> int:
        """Put every update logged so far on the disk (the run record's ``points.jsonl``, ``fsync``'d); 0 when it is
        there (and when the run has no record), else how many updates are not written yet after ``timeout`` s.

        Raises:
            OSError: the disk did not confirm the write.
        """
        return 0 if self._record is None else self._record.sync(timeout)

    def window_id(self, plot: str) -> str:
        """The Visdom window id of ``plot``: ``<uid>_<plot>``."""
        return f"{self.uid}_{plot}"

    def set_config(self, owner: object, config: Mapping[str, Any]) -> None:
        """Take a logger's config (its plots and meters) for the run's ``config.json``; a logger pushes it again
        whenever its plots or meters change."""
        self._configs[id(owner)] = config

    def set_best(self, owner: object, values: Mapping[str, tuple[float, float]], modes: Mapping[str, str]) -> None:
        """Take a logger's best values (``{trace: (value, step)}``) and their modes (``min``/``max``) for the summary
        and the status window; a logger pushes them again whenever one improves."""
        self._status.best[id(owner)] = (dict(values), dict(modes))

    def claim(self, owner: object, plots: Iterable[str]) -> None:
        """Reserve window names for ``owner``: two loggers of one run cannot draw the same window.

        Raises:
            ConfigError: another logger of this run draws a window of that name.
        """
        plots = list(plots)
        taken = [p for p in plots if self._owners.get(p, id(owner)) != id(owner)]
        if taken:
            raise ConfigError(f"plot(s) {', '.join(map(repr, taken))} are already drawn by another logger of run "
                              f"{self.uid!r} (env {self.env!r}); expected plot names that are free in the run")
        for p in plots:
            self._owners[p] = id(owner)

    def release(self, owner: object, plots: Iterable[str]) -> None:
        """Give back window names (a logger removed a plot)."""
        for p in plots:
            if self._owners.get(p) == id(owner):
                del self._owners[p]

    def next_seq(self) -> int:
        """The run's running count of updates (unique across its loggers)."""
        self._seq += 1
        return self._seq

    def write(self, updates: Iterable[Update]) -> None:
        """Hand updates to every sink. A sink that raises (a dead Visdom sender) does not keep the others (the
        record) from any update; the first error is raised once every sink got every update."""
        if self._closed:
            raise ConfigError(f"run {self.uid!r} (env {self.env!r}) is closed; create a new one to log again")
        self._deliver(list(updates), steps=True)

    def _deliver(self, updates: list[Update], steps: bool) -> None:
        """Hand ``updates`` to every sink; note them in the status (their steps when ``steps``: a logger's points,
        not a record call's window). When the summary is due, ``summary.json`` is rewritten and the status window
        goes with this batch: nothing here calls back into :meth:`write`."""
        sinks = self.sinks
        if not sinks or self.disabled:
            return
        if self._status.note(updates, steps, time.time()):
            updates.extend(self._write_status())
        call_each(updates, lambda update: call_each(sinks, lambda sink: sink.write(update)))

    def to_config(self) -> dict[str, Any]:
        """The run's options and the plots and meters of every logger that writes to it (for ``config.json``)."""
        return merge_configs(self.options, list(self._configs.values()))

    # status ------------------------------------------------------------------------------------------------
    def set_max_steps(self, max_steps: int | None) -> None:
        """Set the number of steps the run will log (progress and ETA in the status window and the summary).

        Raises:
            RecordCallTypeError: not a positive int or None.
        """
        problem = check_option("max_steps", max_steps)  # the option table's check, as Run() and configs use it
        if problem:
            raise RecordCallTypeError(f"set_max_steps(): {problem}")
        if max_steps and not self.disabled and self._opened:
            self.claim(self, [STATUS_PLOT])
        self._status.max_steps = max_steps
        self.options["max_steps"] = max_steps  # to_config() writes the run's current value

    def best(self) -> dict[str, tuple[float, float]]:
        """The best logged value of every ``best: min|max`` meter of the run's loggers and its step."""
        return self._status.best_values()

    def progress_info(self) -> dict[str, Any]:
        """``{'step', 'max_steps', 'progress', 'elapsed', 'eta_seconds', 'eta'}``: steps done count from 0 (a run
        that logged step 9 of ``max_steps=100`` is 10 % done); the ETA extrapolates the time per step so far."""
        return self._status.progress_info()

    def status_line(self) -> str:
        """``running, step 9 of 100 (10.0%), elapsed 12.00 s, ETA 0:01:48`` (without ``max_steps``: ``running, step
        9, elapsed 12.00 s``)."""
        return self._status.line(self.status)

    def summary_fields(self) -> dict[str, Any]:
        """What the run adds to ``summary.json``: its status (``running``, ``finished``, ``crashed``,
        ``interrupted``), the time of the last update, the error and traceback of a crash, progress and ETA
        (with ``max_steps``), the run files the disk refused (``files_unwritten``) and the best values
        (``{meter: {'value', 'step', 'mode'}}``)."""
        return self._status.fields(self.status, self._folder.state.unwritten)

    def add_to_summary(self, key: str, value: Any) -> None:
        """Add a field of your own (or of a tool, e.g. the flight recorder's ``anomalies``) to ``summary.json``:
        plain JSON data; written now and at every later rewrite of the summary. The run's own fields cannot be
        replaced.

        Raises:
            RecordCallError: ``key`` is not a non-empty string, or is one of the run's own fields.
        """
        self._status.add(key, value)
        if not self._closed:
            self._drain_status()

    def _write_status(self) -> list[Update]:
        """Rewrite ``summary.json`` (status ``running`` while the run lives); return the status window's update
        (with ``max_steps``) for the caller to deliver."""
        if self.disabled:
            return []
        self._status.written = time.time()
        if self._record is not None:
            self._record.write_summary(self.summary_fields())
        return self._status_window()

    def _status_window(self) -> list[Update]:
        """The status window's update (none without ``max_steps``)."""
        if not self._status.max_steps:
            return []
        return [self.calls.window_update(STATUS_PLOT, "text", self._status.rows(self.status), None)]

    def _drain_status(self) -> None:
        """Write the status now (at an edge: ``flush()``, ``close()``, ``add_to_summary()``, opening)."""
        for update in self._write_status():
            self._deliver([update], steps=False)

    # status and closing ------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> int:
        """Block until every update reached every sink (or ``timeout`` s passed); return how many are pending.

        Raises:
            ConfigError: ``timeout`` is not None or a number of seconds >= 0.
        """
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or not timeout >= 0):  # NaN too
            raise ConfigError(f"flush(): expected `timeout` to be a number of seconds >= 0 or None (wait until "
                              f"delivered), but got {short_repr(timeout, 60)}")
        if self._pid != os.getpid():
            return 0
        if not self.disabled and not self._closed:
            self._drain_status()  # summary.json: running, with the time of the last update; the status window
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = 0
        for sink in self.sinks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            pending += sink.flush(left)
        return pending

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, status: str = "finished", error: BaseException | None = None) -> None:
        """Flush and close the sinks: the Visdom sender first, then the record with the run's summary (the points
        the server did not get; ``status`` and ``error``, as the end of a ``with`` block sets them: ``crashed`` or
        ``interrupted`` with its exception, ``finished`` for ``sys.exit(0)``). Closing twice is harmless."""
        if self._closed:
            return
        self._sink_options = {}  # the login (a password) is not kept after it can no longer be used
        if self._pid != os.getpid():
            self._closed = True
            return
        self.status = status
        if error is not None:
            self._status.extra["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
            self._status.extra["traceback"] = "".join(traceback.format_exception(type(error), error,
                                                                            error.__traceback__))
        first: BaseException | None = None
        try:
            window = [] if self.disabled else self._status_window()
            if window:  # before the sinks close
                self._deliver(window, steps=False)
        except Exception as exc:
            first = exc
        self._closed = True
        _open_runs.discard(self)
        try:
            call_each([*reversed(self._extra), *([self._visdom] if self._visdom else [])], lambda sink: sink.close())
        except Exception as exc:
            first = first or exc
        if self._record is not None:  # last: its summary counts what the server did not get
            undelivered = self._visdom.pending() if self._visdom is not None else None
            # summary.json: the status, error, best values, progress
            self._record.close(summary={"undelivered": undelivered, **self.summary_fields()}, config=self.to_config())
        if first is not None:
            raise first

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):  # sys.exit(0): a normal end
            self.close()
        elif isinstance(exc, KeyboardInterrupt):
            self.close("interrupted", exc)
        else:
            self.close("crashed", exc)

    def __repr__(self) -> str:
        where = f", dir={str(self.dir)!r}" if self.dir else ""
        state = "disabled" if self.disabled else self.status
        return f"Run(env={self.env!r}, uid={self.uid!r}, server={self.server!r}, port={self.port}{where}, {state})"


# held strongly: a run dropped without close() (a notebook cell run again) is still closed at exit
_open_runs: set[Run] = set()


def _exit_status() -> tuple[str, BaseException | None]:
    """How the program ends, for the runs closed at exit: ``crashed`` (or ``interrupted``) with the exception when a
    script dies of an uncaught exception (Python keeps it in ``sys.last_value``), else ``finished``. An interactive
    session (a REPL, IPython, Jupyter) keeps the last error it showed there too, long after: it counts as finished."""
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if error is None or hasattr(sys, "ps1") or sys.flags.interactive or "IPython" in sys.modules:
        return "finished", None
    return ("interrupted" if isinstance(error, KeyboardInterrupt) else "crashed"), error


def _close_open_runs() -> None:
    """Close the runs a user forgot to close, so that the last points reach the server and the summary is written
    with the status (``crashed`` with the error when the script died of an uncaught exception)."""
    if not _open_runs:
        return
    status, error = _exit_status()
    close_each(_open_runs, lambda run: run.close(status, error))


on_exit(RUNS, _close_open_runs)
