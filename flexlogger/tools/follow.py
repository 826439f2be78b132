"""Following a run record as it grows: :class:`RecordFollower` reads the lines appended to ``points.jsonl`` since
its last read, whole lines only. Used by ``flexlogger replay --follow`` and ``flexlogger compare --follow``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from flexlogger.core.plots import APPEND_KINDS, PLOT_KINDS
from flexlogger.sinks.base import Update
from flexlogger.sinks.record import POINTS, SUMMARY, RecordError, decode_data, decode_number

__all__ = ["RecordFollower"]


class RecordFollower:
    """Reads a run record as it grows: each :meth:`poll` returns the updates of the lines appended since the last
    one, whole lines only (a line still being written is kept for the next poll).

    Lines are the run record's (``flexlogger.sinks.record``): the ``{"run": ...}`` header, plot declarations
    ``{"plot", "kind", "opts"}`` and updates ``{"seq", "plot", "step", "data"}``. As
    :func:`~flexlogger.sinks.record.read_record` does, a whole line that is not valid JSON or not one of these, an
    update of a plot no line before declared, and a plot of an unknown kind are skipped, counted in
    :attr:`damaged` (one warning per record).

    Args:
        run_dir: a run folder holding ``points.jsonl``.

    Raises:
        RecordError: ``run_dir`` has no ``points.jsonl``.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir)
        self.file = self.path / POINTS
        if not self.file.is_file():
            raise RecordError(f"expected a run record folder holding {POINTS}, but {str(self.path)!r} has none")
        self.env, self.uid = self.path.parent.name, self.path.name
        self.window_uid = self.uid  # the uid of the run's windows (the header's "windows")
        self.plots: dict[str, tuple[str, dict[str, Any]]] = {}
        self.offset = 0
        self.damaged = 0
        self.lines = 0
        self._partial = b""

    @property
    def finished(self) -> bool:
        """Whether the run closed: its ``summary.json`` says a status other than ``running`` (a run rewrites it while
        it runs), or none (a record of an older flexlogger): nothing more will be appended."""
        try:
            summary = json.loads((self.path / SUMMARY).read_text())
        except (OSError, ValueError):  # not written yet (or not by flexlogger)
            return False
        return not isinstance(summary, dict) or summary.get("status", "finished") != "running"

    def poll(self) -> list[Update]:
        """The updates of the whole lines appended since the last poll (none when the file did not grow)."""
        size = self.file.stat().st_size
        if size <= self.offset:
            return []
        with open(self.file, "rb") as file:
            file.seek(self.offset)
            chunk = file.read(size - self.offset)
        self.offset += len(chunk)
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        updates: list[Update] = []
        for raw in data[:cut].split(b"\n"):
            if raw.strip():
                self._line(raw, updates)
        return updates

    def _line(self, raw: bytes, updates: list[Update]) -> None:
        self.lines += 1
        try:
            obj = json.loads(raw)
            if "seq" in obj:
                plot = obj["plot"]
                if plot not in self.plots:
                    raise ValueError(f"an update of plot {plot!r}, which no line before declared")
                kind, opts = self.plots[plot]
                step = decode_number(obj["step"])
                if isinstance(step, bool) or not isinstance(step, (int, float)):
                    raise ValueError(f"step {step!r} is not a number")
                data = obj["data"]
                if kind in APPEND_KINDS and isinstance(data, dict):  # the hot path: {trace: number}
                    data = {k: float(v) if type(v) is float or type(v) is int else float(decode_number(v))
                            for k, v in data.items()}
                else:
                    data = decode_data(kind, data)
                updates.append(Update(plot, kind, step, data, opts, int(obj["seq"])))
            elif "plot" in obj:
                if obj["kind"] not in PLOT_KINDS:
                    self.plots.pop(obj["plot"], None)
                    raise ValueError(f"plot {obj['plot']!r} of unknown kind {obj['kind']!r}; expected one of "
                                     f"{', '.join(PLOT_KINDS)}")
                self.plots[obj["plot"]] = (obj["kind"], obj.get("opts") or {})
            elif "run" in obj:
                run = obj["run"]
                self.env, self.uid = str(run.get("env", self.env)), str(run.get("uid", self.uid))
                self.window_uid = str(run.get("windows", self.uid))
            else:
                raise ValueError("not a run record line")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.damaged += 1
            if self.damaged == 1:
                warnings.warn(f"{self.file}: skipping a damaged line ({exc}): {raw[:80]!r}", RuntimeWarning,
                              stacklevel=3)
