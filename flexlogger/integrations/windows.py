"""The windows of the wandb- and TensorBoard-style APIs and of ``flexlogger import``: named keys in, line and
histogram windows out.

Each value becomes one :class:`~flexlogger.sinks.base.Update` of the run, with no meter between (the values come
reduced already), so the record, the Visdom sender, ``replay`` and ``compare`` take these windows like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from flexlogger.core.plots import Histogram
from flexlogger.core.run import Run
from flexlogger.errors import ConfigError
from flexlogger.integrations.common import PHASES, Guard
from flexlogger.model.stats import histogram
from flexlogger.sinks.base import Update

__all__ = ["Windows", "bin_counts", "split_key"]


def bin_counts(values: Any, bins: int) -> Histogram:
    """The counts of ``values`` (a sequence, an array or a tensor) in ``bins`` equal bins from their min to their
    max, binned by :func:`~flexlogger.model.stats.histogram` as the model statistics are (NaN and Inf left out)."""
    data = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values, np.float64))
    counts = histogram(data.to(torch.float64), bins).tolist()
    return Histogram(tuple(counts[:bins]), counts[bins], counts[bins + 1])


def split_key(key: str) -> tuple[str, str]:
    """``(window, trace)`` of a key: its first path part names the trace and the rest the window (``train/loss`` ->
    ``('loss', 'train')``), except that a last part naming a phase (:data:`~flexlogger.integrations.common.PHASES`)
    while the first does not is the trace (TensorBoard's ``Loss/train`` -> ``('Loss', 'train')``). A key without
    ``/`` (or with an empty part) is its own window and trace."""
    head, sep, rest = key.partition("/")
    if not (sep and head and rest):
        return key, key
    body, _, last = key.rpartition("/")
    if head.lower() not in PHASES and last.lower() in PHASES and body and last:
        return body, last
    return rest, head


def as_float(value: Any) -> float:
    """A number, a one-element tensor or array, as a Python float (float32 kept exactly)."""
    if type(value) is float:
        return value
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return float(value.item())
    return float(value)


class Windows:
    """Line and histogram windows of one run, claimed on the run when a key first needs them.

    Args:
        run: the run the windows belong to.
        guard: warns once about a key no window can take (its name is drawn by another writer of the run).

    Attributes:
        points: the values drawn so far.
    """

    def __init__(self, run: Run, guard: Guard) -> None:
        self.run = run
        self.guard = guard
        self.points = 0
        self._kind: dict[str, str] = {}  # window -> line | histogram
        self._opts: dict[str, Mapping[str, Any]] = {}  # one object per window: the record declares it once
        self._place: dict[tuple[str, str], tuple[str, str] | None] = {}  # (key, kind) -> (window, trace)

    def place(self, key: str, kind: str = "line") -> tuple[str, str] | None:
        """``(window, trace)`` that ``key`` is drawn in (:func:`split_key`, else ``<window>.<kind>``); None with
        one warning when no window can take it."""
        found = self._place.get((key, kind), ())
        if found != ():  # the hot path: a key seen before
            return found  # type: ignore[return-value]
        window, trace = split_key(key)
        return self.place_at(key, [window, f"{window}.{kind}"], trace, kind)

    def place_at(self, key: str, candidates: list[str], trace: str, kind: str = "line") -> tuple[str, str] | None:
        """``(window, trace)``: the first of the ``candidates`` windows that can draw ``kind`` (claimed now if new);
        None with one warning naming ``key`` when none can."""
        found = self._place.get((key, kind), ())
        if found != ():
            return found  # type: ignore[return-value]
        errors: list[str] = []
        result: tuple[str, str] | None = None
        for window in candidates:
            if self._kind.get(window, kind) != kind:
                errors.append(f"window {window!r} is a {self._kind[window]} window")
                continue
            if window not in self._kind:
                try:
                    self.run.claim(self, [window])
                except ConfigError as exc:
                    errors.append(str(exc))
                    continue
                self._kind[window] = kind
                self._opts[window] = MappingProxyType(
                    {"title": window, "xlabel": "step"} if kind == "line" else {"title": window})
            result = (window, trace)
            break
        if result is None:
            self.guard.warn("log", f"key {key!r}: no window could take it ({'; '.join(errors)}): skipped")
        self._place[(key, kind)] = result
        return result

    def draw(self, window: str, values: Mapping[str, Any], step: float) -> None:
        """Draw ``{trace: value}`` in a placed ``window`` at ``x=step``: numbers in a line window,
        :class:`~flexlogger.core.plots.Histogram` counts in a histogram window."""
        kind = self._kind[window]
        data = {t: as_float(v) for t, v in values.items()} if kind == "line" else dict(values)
        self.run.write([Update(window, kind, step, data, self._opts[window], self.run.next_seq())])
        self.points += len(data)
