"""The base of the experiment-record calls: drawing a window through the run, writing a run file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..sinks.base import Update
from .common import HTML_OPT, write_file


class RunCalls:
    """What every experiment-record call of a :class:`~flexlogger.run.Run` uses: the run's attributes, the state
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
        _record: Any
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
                "drawing": False}
        return state

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
        state["drawing"] = True
        try:
            self.write([Update(plot, kind, 0 if step is None else step, dict(data), seen, self.next_seq())])
        finally:
            state["drawing"] = False

    def _draw_html(self, plot: str, html: str, step: float | None) -> None:
        self._draw(plot, "text", {plot: html}, step, {HTML_OPT: True})

    def _file(self, relative: str, data: str | bytes) -> Path | None:
        """Write a file of the run folder whole; None (nothing written) without a run folder."""
        if self.dir is None:
            return None
        return write_file(self.dir / relative, data)
