"""The base of the experiment-record calls: drawing a window through the run, writing a run file."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from flexlogger.errors import ConfigError
from flexlogger.experiment.common import HTML_OPT, safe_name, write_file
from flexlogger.sinks.base import Update

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


class RunCalls:
    """What every experiment-record call of a :class:`~flexlogger.core.run.Run` uses: the run's attributes, the state
    the calls keep on the run (made on first use), drawing a window through the run's sinks and writing a file of
    the run folder."""

    if TYPE_CHECKING:  # given by Run
        env: str
        uid: str
        dir: Path | None
        disabled: bool
        status: str
        started: float
        max_steps: int | None
        options: dict[str, Any]
        _record: Any
        _pid: int
        _opened: bool
        _closed: bool
        _summary: dict[str, Any]

        def write(self, updates: Iterable[Update]) -> None: ...

        def next_seq(self) -> int: ...

        def claim(self, owner: object, plots: Iterable[str]) -> None: ...

    # state, windows, files ---------------------------------------------------------------------------------
    def _record_state(self) -> dict[str, Any]:
        state: dict[str, Any] | None = self.__dict__.get("_record_calls")
        if state is None:
            state = self.__dict__["_record_calls"] = {
                "opts": {}, "hparams": {}, "best": {}, "last_update": None, "last_step": None, "written": 0.0,
                "drawing": False, "files_unwritten": 0, "kinds": {}, "files_failing": False, "fork_warned": False}
        return state

    def _file_stem(self, name: str) -> str:
        """``safe_name(name)``, unique in the run: a name whose safe form another name of the run already has
        (``~``, ``€`` and ``\\ud800`` are all ``_``) gets a hash of itself appended, so neither file overwrites
        the other."""
        stems: dict[str, str] = self._record_state().setdefault("stems", {})
        stem = safe_name(name)
        if stems.setdefault(stem, name) != name:
            stem = f"{stem}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
            stems.setdefault(stem, name)
        return stem

    def _check_open(self, call: str) -> None:
        """A call that draws a window needs an open run: refused before any file is written."""
        if self._closed:
            raise ConfigError(f"{call}: run {self.uid!r} (env {self.env!r}) is closed; create a new one to log again")

    def _draw(self, plot: str, kind: str, data: Mapping[str, Any], step: float | None,
              opts: Mapping[str, Any] | None = None) -> None:
        """Draw one window through the run's sinks (the record stores it, the Visdom sender draws it)."""
        self.claim(self, [plot])
        state = self._record_state()
        cache: dict[str, Mapping[str, Any]] = state["opts"]
        given = MappingProxyType({"title": plot, **(opts or {})})
        seen = cache.get(plot)
        if seen is None or dict(seen) != dict(given):  # the same object each time: the record declares it once
            seen = cache[plot] = given
        state["kinds"][plot] = kind
        state["drawing"] = True
        try:
            self.write([Update(plot, kind, 0 if step is None else step, dict(data), seen, self.next_seq())])
        finally:
            state["drawing"] = False

    def _draw_html(self, plot: str, html: str, step: float | None) -> None:
        self._draw(plot, "text", {plot: html}, step, {HTML_OPT: True})

    def _file(self, call: str, relative: str, data: str | bytes) -> Path | None:
        """Write a file of the run folder whole; None (nothing written) without a run folder, in a forked child or
        when the disk refuses it (warned, never raised: a full disk must not stop training)."""
        if self.dir is None:
            return None
        target = self.dir / relative
        return self._run_file(call, target, lambda: write_file(target, data))

    def _run_file(self, call: str, path: Path, write: Callable[[], W]) -> W | None:
        """Run ``write`` (which writes ``path`` of the run folder) unless this is a forked child (the parent owns
        the folder); an ``OSError`` (full disk, vanished or read-only folder) is counted in ``summary.json``
        (``files_unwritten``) and warned about once per outage instead of raised into the training loop."""
        state = self._record_state()
        if self._pid != os.getpid():
            if not state["fork_warned"]:
                state["fork_warned"] = True
                warnings.warn(f"{call}: the run folder {self.dir} belongs to process {self._pid}; this forked child "
                              f"(pid {os.getpid()}) writes nothing to it (make a new Run in the child to log there)",
                              RuntimeWarning, stacklevel=user_stacklevel())
            return None
        try:
            done = write()
        except OSError as exc:
            state["files_unwritten"] += 1
            if not state["files_failing"]:
                state["files_failing"] = True
                warnings.warn(f"{call}: {path} could not be written ({exc.strerror or exc}); training goes on, and "
                              f"summary.json counts the files not written (files_unwritten)", RuntimeWarning,
                              stacklevel=user_stacklevel())
            return None
        state["files_failing"] = False
        return done
