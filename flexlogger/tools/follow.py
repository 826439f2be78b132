"""Following a run record as it grows: :class:`RecordFollower` reads the lines appended to ``points.jsonl`` since
its last read, whole lines only. Used by ``flexlogger replay --follow`` and ``flexlogger compare --follow``.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flexlogger.sinks.base import Update
from flexlogger.sinks.record import SUMMARY
from flexlogger.sinks.record_lines import MAX_LINE, DamagedLineError, LineReader
from flexlogger.sinks.record_read import MAX_WARNINGS, points_file

__all__ = ["READ_CHUNK", "RecordFollower", "appended"]

READ_CHUNK = 16 * 2**20  # bytes read at a time: a poll holds at most this much of the file, plus one line


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
        RecordError: ``run_dir`` has no ``points.jsonl`` (the message lists run folders found under it).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.file = points_file(run_dir)
        self.path = self.file.parent
        self.env, self.uid = self.path.parent.name, self.path.name
        self.window_uid = self.uid  # the uid of the run's windows (the header's "windows")
        self._reader = LineReader(str(self.file))
        self.plots: dict[str, tuple[str, dict[str, Any]]] = self._reader.plots
        self.offset = 0
        self.damaged = 0
        self.lines = 0
        self._partial = b""
        self._oversized = False  # the line being read is longer than MAX_LINE: skipped up to its end

    def _damaged(self, why: str) -> None:
        """Count a skipped line; warn naming it (``points.jsonl:LINE``) for the first MAX_WARNINGS."""
        self.damaged += 1
        if self.damaged > MAX_WARNINGS:
            return
        more = " (further damaged lines of this record are skipped without a warning)" \
            if self.damaged == MAX_WARNINGS else ""
        warnings.warn(f"{self.file}:{self.lines}: skipping {why}{more}", RuntimeWarning, stacklevel=5)

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
        """The updates of the whole lines appended since the last poll (none when the file did not grow).

        The file is read in pieces of at most :data:`READ_CHUNK` bytes; a line longer than
        :data:`~flexlogger.sinks.record_lines.MAX_LINE` is skipped as damaged without being held whole.
        """
        size = self.file.stat().st_size
        updates: list[Update] = []
        if size <= self.offset:
            return updates
        with open(self.file, "rb") as file:
            file.seek(self.offset)
            while self.offset < size:
                chunk = file.read(min(size - self.offset, READ_CHUNK))
                if not chunk:  # the file shrank meanwhile
                    break
                self.offset += len(chunk)
                self._lines(chunk, updates)
        return updates

    def _lines(self, chunk: bytes, updates: list[Update]) -> None:
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        lines = data[:cut].split(b"\n")[:-1]
        if self._oversized and lines:  # the end of a line too long to read
            self._oversized = False
            self.lines += 1
            self._damaged(f"a line longer than {MAX_LINE} bytes")
            lines = lines[1:]
        for raw in lines:
            self.lines += 1
            if raw.strip():
                self._line(raw, updates)
        if len(self._partial) > MAX_LINE:  # no record line is this long: drop it up to its end
            self._partial = b""
            self._oversized = True
        elif self._oversized:
            self._partial = b""

    def _line(self, raw: bytes, updates: list[Update]) -> None:
        try:
            update = self._reader.read(raw)
        except DamagedLineError as exc:
            if exc.quiet:
                self.damaged += 1
            else:
                self._damaged(str(exc))
            return
        if update is not None:
            updates.append(update)
        else:  # a header (the recorded env and uids) or a declaration
            self.env = self._reader.env or self.env
            self.uid = self._reader.uid or self.uid
            self.window_uid = self._reader.window_uid or self.uid


def appended(followers: Sequence[RecordFollower], poll: float,
             stop: threading.Event | None) -> Iterator[list[list[Update]]]:
    """What the records append, every ``poll`` seconds (a batch of updates per follower), until ``stop`` is set or
    every run has finished: then what is left is read once more."""
    while stop is None or not stop.is_set():
        finished = all(f.finished for f in followers)
        if not finished and stop is not None:
            stop.wait(poll)
        elif not finished:
            time.sleep(poll)
        yield [f.poll() for f in followers]
        if finished:
            return
