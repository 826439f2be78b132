"""Following a run record as it grows: :class:`RecordFollower` reads the lines appended to ``points.jsonl`` since
its last read, whole lines only. Used by ``flexlogger replay --follow`` and ``flexlogger compare --follow``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from flexlogger.sinks.base import Update
from flexlogger.sinks.record import POINTS, SUMMARY, RecordError
from flexlogger.sinks.record_lines import DamagedLineError, LineReader
from flexlogger.sinks.record_read import MAX_WARNINGS

__all__ = ["RecordFollower"]


class RecordFollower:
    """Reads a run record as it grows: each :meth:`poll` returns the updates of the lines appended since the last
    one, whole lines only (a line still being written is kept for the next poll).

    Lines are the run record's (``flexlogger.sinks.record``): the ``{"run": ...}`` header, plot declarations
    ``{"plot", "kind", "opts"}`` and updates ``{"seq", "plot", "step", "data"}``, read as untrusted input through
    the same checks as :func:`~flexlogger.sinks.record.read_record` (:mod:`flexlogger.sinks.record_lines`): a line
    that fails them is skipped and counted in :attr:`damaged`, with a warning naming it (``points.jsonl:LINE``) for
    the first ``MAX_WARNINGS`` of a record.

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
        self._reader = LineReader(str(self.file))
        self.plots: dict[str, tuple[str, dict[str, Any]]] = self._reader.plots
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
        for raw in data[:cut].split(b"\n")[:-1]:
            self.lines += 1
            if raw.strip():
                self._line(raw, updates)
        return updates

    def _line(self, raw: bytes, updates: list[Update]) -> None:
        try:
            update = self._reader.read(raw)
        except DamagedLineError as exc:
            self.damaged += 1
            if exc.quiet or self.damaged > MAX_WARNINGS:
                return
            more = " (further damaged lines of this record are skipped without a warning)" \
                if self.damaged == MAX_WARNINGS else ""
            warnings.warn(f"{self.file}:{self.lines}: skipping {exc}{more}", RuntimeWarning, stacklevel=4)
            return
        if update is not None:
            updates.append(update)
        else:  # a header (the recorded env and uids) or a declaration
            self.env = self._reader.env or self.env
            self.uid = self._reader.uid or self.uid
            self.window_uid = self._reader.window_uid or self.uid
