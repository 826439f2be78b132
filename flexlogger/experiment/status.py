"""The status of a run in ``summary.json`` and the ``run_status`` window: running (with the time of the last
update), finished, crashed, interrupted; progress and ETA with ``max_steps``; the best values of ``best`` meters.

:class:`RunStatus` only keeps and formats; the run writes ``summary.json`` and draws the window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flexlogger.errors import short_repr
from flexlogger.experiment.checks import STATUS_EVERY, RecordCallError, duration, jsonable
from flexlogger.sinks.base import Update
from flexlogger.sinks.record_format import iso

OWN_FIELDS = frozenset({"status", "last_update", "last_update_unix", "files_unwritten", "best", "error", "traceback",
                        "undelivered", "unwritten", "progress", "eta", "elapsed", "max_steps", "step"})
"""The fields of ``summary.json`` that the run writes itself (``add_to_summary`` cannot replace them)."""


@dataclass
class RunStatus:
    """What the status of a run is made of.

    Attributes:
        started: the run's start time (``time.time()``).
        max_steps: the number of steps the run will log (progress and ETA), or None.
        last_update: when an update last reached the run, or None.
        last_step: the largest step the run's loggers logged, or None (the record calls' windows do not count).
        written: when ``summary.json`` was last rewritten.
        best: owner id -> (``{trace: (best value, step)}``, ``{trace: 'min' | 'max'}``), as each logger last
            pushed them.
        extra: fields added with ``add_to_summary``, and the error and traceback of a crash.
    """

    started: float
    max_steps: int | None = None
    last_update: float | None = None
    last_step: float | None = None
    written: float = 0.0
    best: dict[int, tuple[dict[str, tuple[float, float]], dict[str, str]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self, updates: Sequence[Update], steps: bool, now: float) -> bool:
        """Note updates that reached the run (their steps when ``steps``: a logger's points, not a record call's
        window); True when ``summary.json`` is due for a rewrite (every :data:`STATUS_EVERY` seconds)."""
        self.last_update = now
        if steps and updates:
            last = max(u.step for u in updates)
            self.last_step = last if self.last_step is None else max(self.last_step, last)
        return now - self.written >= STATUS_EVERY

    def best_values(self) -> dict[str, tuple[float, float]]:
        """``{trace: (best value, step)}`` over every logger of the run."""
        out: dict[str, tuple[float, float]] = {}
        for values, _ in self.best.values():
            out.update(values)
        return out

    def progress_info(self) -> dict[str, Any]:
        """``{'step', 'max_steps', 'progress', 'elapsed', 'eta_seconds', 'eta'}``: steps done count from 0 (a run
        that logged step 9 of ``max_steps=100`` is 10 % done); the ETA extrapolates the time per step so far."""
        last = self.last_step
        elapsed = (self.last_update or time.time()) - self.started
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

    def line(self, status: str) -> str:
        """``running, step 9 of 100 (10.0%), elapsed 12.00 s, ETA 0:01:48`` (without ``max_steps``: ``running, step
        9, elapsed 12.00 s``)."""
        info = self.progress_info()
        step = "-" if info["step"] is None else f"{info['step']:g}"
        if not self.max_steps:
            return f"{status}, step {step}, elapsed {duration(info['elapsed'])}"
        eta = info["eta"] or "-"
        return (f"{status}, step {step} of {self.max_steps} ({100 * info['progress']:.1f}%), elapsed "
                f"{duration(info['elapsed'])}, ETA {eta}")

    def fields(self, status: str, files_unwritten: int) -> dict[str, Any]:
        """What the run adds to ``summary.json``: its status, the time of the last update, progress and ETA, the
        run files the disk refused, the best values (``{trace: {'value', 'step', 'mode'}}``) and :attr:`extra`."""
        out: dict[str, Any] = {"status": status, "last_update": iso(self.last_update),
                               "last_update_unix": self.last_update, "files_unwritten": files_unwritten}
        out.update(self.progress_info())
        best: dict[str, Any] = {}
        for values, modes in self.best.values():
            best.update({name: {"value": jsonable(value), "step": step, "mode": modes.get(name)}
                         for name, (value, step) in values.items()})
        if best:
            out["best"] = best
        out.update(self.extra)
        return out

    def rows(self, status: str) -> dict[str, str]:
        """The rows of the ``run_status`` window."""
        info = self.progress_info()
        rows = {"status": status, "step": "-" if info["step"] is None else f"{info['step']:g}"}
        if self.max_steps:
            rows["progress"] = f"{100 * info['progress']:.1f}% of {self.max_steps} steps"
            rows["ETA"] = info["eta"] or "-"
        rows["elapsed"] = duration(info["elapsed"])
        for name, (value, step) in self.best_values().items():
            rows[f"best {name}"] = f"{value:.4g} @ {step:g}"
        return rows

    def add(self, key: str, value: Any) -> None:
        """Add a field of ``add_to_summary`` (plain JSON data).

        Raises:
            RecordCallError: ``key`` is not a non-empty string or is one of the run's own fields.
        """
        if not isinstance(key, str) or not key or key in OWN_FIELDS:
            raise RecordCallError(f"add_to_summary(): expected `key` to be a non-empty string other than the run's "
                                  f"own fields ({', '.join(sorted(OWN_FIELDS))}), but got {short_repr(key)}")
        self.extra[key] = jsonable(value)
