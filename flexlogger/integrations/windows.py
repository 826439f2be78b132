"""The windows of the wandb- and TensorBoard-style APIs: named keys in, line and histogram windows out.

A key's first path part names its trace and the rest its window (:func:`split_key`): ``train/loss`` and
``val/loss`` are the traces ``train`` and ``val`` of the window ``loss``, as most scripts mean them. Each window is
one :class:`~flexlogger.core.logger.FlexLogger` of the run with a ``ValueMeter`` per trace, made on first sight, so the
run record, ``replay`` and ``compare`` read these windows like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from flexlogger.core.logger import FlexLogger
from flexlogger.core.plots import Histogram
from flexlogger.core.run import Run
from flexlogger.errors import ConfigError
from flexlogger.integrations.common import PHASES, Guard

__all__ = ["Windows", "bin_counts", "split_key"]


def bin_counts(values: Any, bins: int) -> Histogram:
    """The counts of ``values`` (a sequence, an array or a tensor; NaN and Inf left out) in ``bins`` equal bins from
    their min to their max: what a histogram window draws and the record keeps."""
    data = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    flat = np.asarray(data, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, _ = np.histogram(flat, bins=bins, range=(lo, hi))
    return Histogram(tuple(float(c) for c in counts), lo, hi)


def split_key(key: str) -> tuple[str, str]:
    """``(window, trace)`` of a key: its first path part names the trace and the rest the window (``train/loss`` ->
    ``('loss', 'train')``, ``acc/top1/x`` -> ``('top1/x', 'acc')``), except that a last part naming a phase
    (:data:`~flexlogger.integrations.common.PHASES`) while the first does not is the trace: TensorBoard's
    ``Loss/train`` and ``Loss/test`` are the traces ``train`` and ``test`` of the window ``Loss``. A key without
    ``/`` (or with an empty part) is its own window and trace."""
    head, sep, rest = key.partition("/")
    if not (sep and head and rest):
        return key, key
    body, _, last = key.rpartition("/")
    if head.lower() not in PHASES and last.lower() in PHASES and body and last:
        return body, last
    return rest, head


class Windows:
    """Line and histogram windows of one run, one FlexLogger each, made when a key first needs them.

    Args:
        run: the run the windows belong to.
        guard: warns once about a key no window can take (its name is taken by another kind of window).
    """

    def __init__(self, run: Run, guard: Guard) -> None:
        self.run = run
        self.guard = guard
        self.loggers: dict[str, FlexLogger] = {}  # window -> its logger
        self._kind: dict[str, str] = {}  # window -> line | histogram
        self._place: dict[tuple[str, str], tuple[str, str] | None] = {}  # (key, kind) -> (window, trace)

    def place(self, key: str, kind: str = "line") -> tuple[str, str] | None:
        """``(window, trace)`` that ``key`` is drawn in (its window made now if new); None with one warning when
        no window can take it. A window that cannot take the trace (a key without ``/`` draws a trace named like
        its window, which then has no room for other traces) falls back to a window named by the whole key."""
        found = self._place.get((key, kind), ())
        if found != ():
            return found  # type: ignore[return-value]
        window, trace = split_key(key)
        return self.place_at(key, [window, key] if window != key else [key, f"{key}.value"], trace, kind)

    def place_at(self, key: str, candidates: list[str], trace: str, kind: str = "line") -> tuple[str, str] | None:
        """``(window, trace)``: the first of the ``candidates`` windows that takes the trace ``trace`` (made now if
        new); None with one warning naming ``key`` when none can."""
        found = self._place.get((key, kind), ())
        if found != ():
            return found  # type: ignore[return-value]
        errors: list[str] = []
        result: tuple[str, str] | None = None
        for name in candidates:
            try:
                self._add(name, trace, kind)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            result = (name, trace)
            break
        if result is None:
            self.guard.warn("log", f"key {key!r}: no window could take it ({'; '.join(errors)}): skipped")
        self._place[(key, kind)] = result
        return result

    def _add(self, window: str, trace: str, kind: str) -> None:
        logger = self.loggers.get(window)
        if logger is None:
            opts: dict[str, Any] = {"title": window} if kind == "histogram" else {"title": window, "xlabel": "step"}
            logger = FlexLogger({window: {"type": kind, "opts": opts}},
                                {trace: {"type": "ValueMeter", "target": window}}, run=self.run)
            self.loggers[window] = logger
            self._kind[window] = kind
            return
        if self._kind[window] != kind:
            raise ConfigError(f"window {window!r} is a {self._kind[window]} window, not a {kind} window")
        if trace not in logger.meter_specs:
            logger.add_meter(trace, {"type": "ValueMeter", "target": window})

    def draw(self, window: str, values: Mapping[str, Any], step: float) -> None:
        """Draw ``{trace: value}`` in ``window`` (placed by :meth:`place`) at ``x=step``."""
        logger = self.loggers[window]
        logger.add(values)
        logger.log(step, keys=list(values))
