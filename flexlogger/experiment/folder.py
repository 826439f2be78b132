"""The run folder's readable files (``hparams.json``, ``text/``, ``images/``, ``log.txt``, ``models/``, ...): each
written whole or appended as whole lines (:mod:`flexlogger.io`); a disk that refuses one is counted and warned about,
never raised into the training loop."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flexlogger.io import append_line, atomic_write

W = TypeVar("W")
_PACKAGE = str(Path(__file__).resolve().parents[1])


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside flexlogger (the user's call), for a
    ``warnings.warn`` made by the caller of this function."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


@dataclass
class FolderState:
    """What the run folder's writer keeps between calls."""

    unwritten: int = 0
    """Files (or lines) the disk refused: ``files_unwritten`` in ``summary.json``."""
    failing: bool = False
    """An outage in progress (warned about once, at its start)."""
    fork_warned: bool = False
    """A forked child was told once that it writes nothing to its parent's folder."""


class RunFolder:
    """Writes the files of one run folder, in the process that made the run only.

    Attributes:
        path: the folder (``<log_dir>/<env>/<uid>``), or None while the run has no record (``log_dir=None``, a
            disabled run not yet enabled): every write is then skipped.
        state: the outage and fork bookkeeping (:class:`FolderState`).
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self.state = FolderState()
        self._pid = os.getpid()

    def write(self, call: str, relative: str, data: str | bytes) -> Path | None:
        """Write ``relative`` (a path in the folder) whole; None when nothing was written (see :meth:`run`)."""
        if self.path is None:
            return None
        target = self.path / relative
        return self.run(call, target, lambda: atomic_write(target, data, make_parents=True))

    def append(self, call: str, relative: str, lines: str) -> None:
        """Append whole lines to ``relative`` in one ``write`` (lines of two threads never interleave, a full disk
        never leaves a torn line)."""
        if self.path is None:
            return
        target = self.path / relative
        self.run(call, target, lambda: append_line(target, lines))

    def run(self, call: str, path: Path, write: Callable[[], W]) -> W | None:
        """Run ``write`` (which writes ``path`` of the folder) unless this is a forked child (the parent owns the
        folder); an ``OSError`` (full disk, vanished or read-only folder) is counted (``files_unwritten`` in
        ``summary.json``) and warned about once per outage instead of raised into the training loop."""
        if self._pid != os.getpid():
            if not self.state.fork_warned:
                self.state.fork_warned = True
                warnings.warn(f"{call}: the run folder {self.path} belongs to process {self._pid}; this forked child "
                              f"(pid {os.getpid()}) writes nothing to it (make a new Run in the child to log there)",
                              RuntimeWarning, stacklevel=user_stacklevel())
            return None
        try:
            done = write()
        except OSError as exc:
            self.state.unwritten += 1
            if not self.state.failing:
                self.state.failing = True
                warnings.warn(f"{call}: {path} could not be written ({exc.strerror or exc}); training goes on, and "
                              f"summary.json counts the files not written (files_unwritten)", RuntimeWarning,
                              stacklevel=user_stacklevel())
            return None
        self.state.failing = False
        return done
