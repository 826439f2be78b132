"""Reading a run record back (``points.jsonl``), tolerant of damage: a line that fails the checks of
:mod:`flexlogger.sinks.record_lines` is skipped with a ``RuntimeWarning`` naming it (``points.jsonl:LINE``), and
every other line is read. A torn last line (the run was killed mid-write) is skipped the same way and flagged in
:attr:`RecordedRun.torn`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexlogger.sinks.base import Update
from flexlogger.sinks.record_format import POINTS, RecordError
from flexlogger.sinks.record_lines import DamagedLineError, LineReader

MAX_WARNINGS = 10  # damaged lines warned about one by one; the rest in one warning


@dataclass(frozen=True)
class RecordedRun:
    """A run record read back by :func:`read_record`.

    Attributes:
        path: the run folder.
        env: as recorded.
        uid: the run folder's name (``exp1-2`` for the second run of uid ``exp1``).
        plots: plot -> (kind, opts), as last declared (plots of an unknown kind left out).
        updates: every readable update in order, with decoded data.
        torn: True when the last line was incomplete (the run crashed mid-write) and was skipped.
        window_uid: the uid the run drew its Visdom windows under (``exp1``); records of format 1 did not say,
            and give :attr:`uid`.
        damaged: the numbers of the lines skipped (the torn last line included).
    """

    path: Path
    env: str
    uid: str
    plots: dict[str, tuple[str, dict[str, Any]]]
    updates: list[Update]
    torn: bool = False
    window_uid: str = ""
    damaged: tuple[int, ...] = field(default=())


class _Skipper:
    """Collects skipped lines and warns about each (up to MAX_WARNINGS, then once for the rest)."""

    def __init__(self, points: Path) -> None:
        self.points = points
        self.lines: list[int] = []
        self.warned = 0
        self.quiet: list[int] = []

    def skip(self, number: int, why: str, where: str | None = None) -> None:
        self.lines.append(number)
        if self.warned < MAX_WARNINGS:
            self.warned += 1
            where = f"{self.points}:{number}" if where is None else where
            warnings.warn(f"{where}: skipping {why}", RuntimeWarning, stacklevel=4)
        else:
            self.quiet.append(number)

    def done(self) -> None:
        if self.quiet:
            warnings.warn(f"{self.points}: skipped {len(self.quiet)} more damaged line(s) (lines "
                          f"{self.quiet[0]}..{self.quiet[-1]})", RuntimeWarning, stacklevel=3)


def points_file(run_dir: str | Path) -> Path:
    """The ``points.jsonl`` of a run folder.

    Raises:
        RecordError: the folder has none (the message lists run folders found under it).
    """
    path = Path(run_dir)
    points = path / POINTS
    if not points.is_file():
        found = sorted(str(p.parent) for p in path.glob(f"*/*/{POINTS}"))[:5] if path.is_dir() else []
        hint = f"; run folders under it: {', '.join(found)}" if found else ""
        raise RecordError(f"expected a run record folder holding {POINTS}, but {str(path)!r} has none{hint}")
    return points


def read_record(run_dir: str | Path) -> RecordedRun:
    """Read ``points.jsonl`` of a run folder back into :class:`~flexlogger.sinks.base.Update` objects.

    Damaged lines are skipped with a ``RuntimeWarning`` naming each (``.../points.jsonl:LINE``); see the module
    docstring.

    Raises:
        RecordError: the folder has no ``points.jsonl`` (the message lists run folders found under it), or it
            cannot be read.
    """
    points = points_file(run_dir)
    path = points.parent
    try:
        raw = points.read_bytes()
    except OSError as exc:
        raise RecordError(f"{points} could not be read: {exc.strerror or exc}") from None
    reader = LineReader(str(points))
    torn = False
    skipper = _Skipper(points)
    updates: list[Update] = []
    lines = raw.split(b"\n")
    complete = lines[-1] == b""  # the file ends with a newline: every line is whole
    body = lines[:-1] if complete else lines
    for index, data in enumerate(body):
        number = index + 1
        if not data.strip():
            continue
        try:
            update = reader.read(data)
        except DamagedLineError as exc:
            if exc.quiet:
                skipper.lines.append(number)
            elif exc.syntax and index == len(body) - 1 and not complete:
                torn = True
                skipper.skip(number, f"the incomplete last line {number} (the run stopped mid-write)", str(points))
            else:
                skipper.skip(number, str(exc))
            continue
        if update is not None:
            updates.append(update)
    skipper.done()
    uid = reader.uid if reader.uid is not None else path.name
    return RecordedRun(path, reader.env if reader.env is not None else path.parent.name, uid, reader.plots, updates,
                       torn, reader.window_uid if reader.window_uid is not None else uid, tuple(skipper.lines))

