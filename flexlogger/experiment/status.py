"""The status of a run in ``summary.json`` and the ``run_status`` window: running (with the time of the last
update), finished, crashed, interrupted; progress and ETA with ``max_steps``; the best values of ``best`` meters."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flexlogger.config.options import check_option
from flexlogger.errors import short_repr
from flexlogger.experiment.base import RunCalls
from flexlogger.experiment.common import (
    STATUS_EVERY,
    STATUS_PLOT,
    RecordCallError,
    RecordCallTypeError,
    duration,
    iso,
    jsonable,
)
from flexlogger.sinks.base import Update


class StatusCalls(RunCalls):
    """The run's status, progress (``max_steps``) and best values, in ``summary.json`` and a status window."""

    # status, progress, best ------------------------------------------------------------------------------------
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
        self.max_steps = max_steps
        self.options["max_steps"] = max_steps  # to_config() writes the run's current value

    def track_best(self, owner: object, best: Callable[[], Mapping[str, tuple[float, float]]],
                   modes: Callable[[], Mapping[str, str]]) -> None:
        """Register a logger's ``best()`` (``{meter: (value, step)}``) and its meters' modes for the summary."""
        self._record_state()["best"][id(owner)] = (best, modes)

    def best(self) -> dict[str, tuple[float, float]]:
        """The best logged value of every ``best: min|max`` meter of the run's loggers and its step."""
        out: dict[str, tuple[float, float]] = {}
        for best, _ in self._record_state()["best"].values():
            out.update(best())
        return out

    def _note_updates(self, updates: Sequence[Update]) -> None:
        """After a write: the time of the last update, the last step logged; the summary now and then."""
        state = self._record_state()
        now = time.time()
        state["last_update"] = now
        if not state["drawing"]:
            steps = [u.step for u in updates]
            if steps:
                last = max(steps)
                state["last_step"] = last if state["last_step"] is None else max(state["last_step"], last)
        if now - state["written"] >= STATUS_EVERY and not state["drawing"]:
            self._write_status()

    def progress_info(self) -> dict[str, Any]:
        """``{'step', 'max_steps', 'progress', 'elapsed', 'eta_seconds', 'eta'}``: steps done count from 0 (a run
        that logged step 9 of ``max_steps=100`` is 10 % done); the ETA extrapolates the time per step so far."""
        state = self._record_state()
        last = state["last_step"]
        elapsed = (state["last_update"] or time.time()) - self.started
        out: dict[str, Any] = {"step": last, "max_steps": self.max_steps, "elapsed": round(elapsed, 3)}
        if self.max_steps:
            done = 0.0 if last is None else min(float(last) + 1, float(self.max_steps))
            out["progress"] = done / self.max_steps
            if done > 0:
                eta = elapsed / done * (self.max_steps - done)
                out["eta_seconds"], out["eta"] = round(eta, 3), duration(eta)
            else:
                out["eta_seconds"], out["eta"] = None, None
        return out

    def status_line(self) -> str:
        """``running, step 9 of 100 (10.0%), elapsed 12.00 s, ETA 0:01:48`` (without ``max_steps``: ``running, step
        9, elapsed 12.00 s``)."""
        info = self.progress_info()
        step = "-" if info["step"] is None else f"{info['step']:g}"
        if not self.max_steps:
            return f"{self.status}, step {step}, elapsed {duration(info['elapsed'])}"
        eta = info["eta"] or "-"
        return (f"{self.status}, step {step} of {self.max_steps} ({100 * info['progress']:.1f}%), elapsed "
                f"{duration(info['elapsed'])}, ETA {eta}")

    def summary_fields(self) -> dict[str, Any]:
        """What the run adds to ``summary.json``: its status (``running``, ``finished``, ``crashed``,
        ``interrupted``), the time of the last update, the error and traceback of a crash, progress and ETA
        (with ``max_steps``), the run files the disk refused (``files_unwritten``) and the best values
        (``{meter: {'value', 'step', 'mode'}}``)."""
        state = self._record_state()
        out: dict[str, Any] = {"status": self.status, "last_update": iso(state["last_update"]),
                               "last_update_unix": state["last_update"], "files_unwritten": state["files_unwritten"]}
        out.update(self.progress_info())
        best: dict[str, Any] = {}
        for get, modes in state["best"].values():
            kinds = modes()
            best.update({name: {"value": jsonable(value), "step": step, "mode": kinds.get(name)}
                         for name, (value, step) in get().items()})
        if best:
            out["best"] = best
        out.update(self._summary)
        return out

    def add_to_summary(self, key: str, value: Any) -> None:
        """Add a field of your own (or of a tool, e.g. the flight recorder's ``anomalies``) to ``summary.json``:
        plain JSON data; written now and at every later rewrite of the summary. The run's own fields cannot be
        replaced."""
        own = {"status", "last_update", "last_update_unix", "files_unwritten", "best", "error", "traceback",
               "undelivered", "unwritten", "progress", "eta", "elapsed", "max_steps", "step"}
        if not isinstance(key, str) or not key or key in own:
            raise RecordCallError(f"add_to_summary(): expected `key` to be a non-empty string other than the run's "
                                  f"own fields ({', '.join(sorted(own))}), but got {short_repr(key)}")
        self._summary[key] = jsonable(value)
        if not self._closed:
            self._write_status()

    def _write_status(self) -> None:
        """Rewrite ``summary.json`` (status ``running`` while the run lives) and the status window."""
        if self.disabled:
            return
        state = self._record_state()
        state["written"] = time.time()
        if self.max_steps:
            self._draw(STATUS_PLOT, "text", self._status_rows(), None)
        if self._record is not None:
            self._record.write_summary(self.summary_fields())

    def _status_rows(self) -> dict[str, str]:
        info = self.progress_info()
        rows = {"status": self.status, "step": "-" if info["step"] is None else f"{info['step']:g}"}
        if self.max_steps:
            rows["progress"] = f"{100 * info['progress']:.1f}% of {self.max_steps} steps"
            rows["ETA"] = info["eta"] or "-"
        rows["elapsed"] = duration(info["elapsed"])
        for name, (value, step) in self.best().items():
            rows[f"best {name}"] = f"{value:.4g} @ {step:g}"
        return rows

    def _final_status(self) -> None:
        """The status window as the run ends (with ``max_steps``)."""
        if self.max_steps and not self.disabled:
            self._draw(STATUS_PLOT, "text", self._status_rows(), None)
