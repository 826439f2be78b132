"""Plot kinds, declared once: for each kind, the meter view it draws, whether it appends, and the form of its data.

This table is the one place a plot kind is described. The logger turns a meter's view into an
:class:`~flexlogger.sinks.base.Update` whose ``data`` has the kind's ``data`` form; the Visdom sink draws each kind
with the renderer registered for it (``flexlogger.sinks.visdom.render.RENDERERS``); the run record stores and
reads back each data form (``flexlogger.sinks.record``); replay draws what the record read. Adding a kind means a
row here and a renderer; ``tests/test_plots.py`` checks that every kind has every column filled.

Data forms (one value per meter, or per trace for ``points``):

- ``points``: ``{trace: float}``, a point per trace at ``x=step`` (NaN/Inf kept: shown as gaps).
- ``vector``: ``{meter: 1-d array}``, or ``{trace: float}`` for a bar per scalar series.
- ``matrix``: ``{meter: 2-d or 3-d array}`` (an image may be C x H x W or H x W x C).
- ``histogram``: ``{meter: Histogram}``: bin counts, computed where the values are (on the device for
  TooledModel), so only the counts reach the host, the record and the server, whatever the size of the array.
- ``curve``: ``{meter: (x, y)}``, two 1-d arrays.
- ``text``: ``{meter: str}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DATA_FORMS: tuple[str, ...] = ("points", "vector", "matrix", "histogram", "curve", "text")
DEFAULT_BINS = 30  # Visdom's own default numbins


@dataclass(frozen=True)
class Histogram:
    """Counts of values in ``len(counts)`` equal bins between ``lo`` and ``hi`` (NaN/Inf values are not counted).

    Example:
        >>> Histogram((1.0, 3.0), 0.0, 2.0).edges
        [0.0, 1.0, 2.0]
    """

    counts: tuple[float, ...]
    lo: float
    hi: float

    @property
    def edges(self) -> list[float]:
        """The ``bins + 1`` bin edges."""
        n = len(self.counts)
        return [self.lo + (self.hi - self.lo) * i / n for i in range(n + 1)]

    @property
    def total(self) -> float:
        """How many values were counted."""
        return float(sum(self.counts))


def bin_values(value: Any, opts: Mapping[str, Any] | None = None) -> Histogram:
    """``value`` as bin counts: a :class:`Histogram` as it is; an array's finite values counted in
    ``opts['numbins']`` equal bins (default :data:`DEFAULT_BINS`) between their min and max.

    The one host binning (the logger's histogram windows and the Visdom renderer both call it), and the same as
    the device's ``flexlogger.model.stats.histogram``: ``np.histogram`` over ``(min, max)``, a constant array over
    ``(v - 0.5, v + 0.5)`` (numpy's widening), no finite value at all zero counts over ``(-0.5, 0.5)``. NaN and
    Inf are not counted.

    Example:
        >>> bin_values([2.0, 2.0], {'numbins': 2})
        Histogram(counts=(0.0, 2.0), lo=1.5, hi=2.5)
    """
    if isinstance(value, Histogram):
        return value
    bins = int((opts or {}).get("numbins", DEFAULT_BINS))
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts = np.histogram(flat, bins=bins, range=(lo, hi))[0]
    return Histogram(tuple(float(c) for c in counts), lo, hi)


@dataclass(frozen=True)
class PlotType:
    """A kind of window.

    Attributes:
        name: the ``type`` used in plot specs.
        views: the meter views it can draw, in order of preference (see ``flexlogger.meters``).
        append: True when each ``log()`` appends a point per trace at ``x=step`` (the window keeps history);
            False when each ``log()`` replaces the window's content with the latest values.
        max_meters: how many meters one window of this type can show (None: any number).
        data: the form of an update's data (one of ``DATA_FORMS``): how the logger builds it, the record stores
            it and the renderer draws it.
        description: what it shows, for ``plot_info``.
    """

    name: str
    views: tuple[str, ...]
    append: bool
    max_meters: int | None
    data: str
    description: str


PLOT_TYPES: tuple[PlotType, ...] = (
    PlotType("line", ("scalar",), True, None, "points",
             "lines over steps: one trace per meter series (e.g. train_loss, test_loss), a point per log()"),
    PlotType("scatter", ("scalar",), True, None, "points",
             "markers over steps: one trace per meter series, a point per log()"),
    PlotType("bar", ("vector", "scalar"), False, None, "vector",
             "bars of the latest values: a bar per element of a vector meter (e.g. APMeter: one per class), "
             "grouped by meter; or one bar per scalar series"),
    PlotType("histogram", ("vector",), False, 1, "histogram",
             "a histogram of the latest array (e.g. a ValueMeter fed weights); opts.numbins sets the bins (default "
             "30); only the bin counts are sent and recorded"),
    PlotType("heatmap", ("matrix",), False, 1, "matrix",
             "a heatmap of the latest matrix (e.g. ConfusionMeter: rows targets, columns predictions)"),
    PlotType("image", ("matrix",), False, 1, "matrix",
             "an image from the latest H x W, C x H x W or H x W x C array (values in [0, 1] or [0, 255])"),
    PlotType("text", ("text",), False, None, "text",
             "a table of the latest value of each meter"),
    PlotType("curve", ("curve",), False, None, "curve",
             "x/y curves replaced on each log(), one per meter (e.g. AUCMeter's ROC curve)"),
)
PLOT_KINDS: dict[str, PlotType] = {p.name: p for p in PLOT_TYPES}
APPEND_KINDS: frozenset[str] = frozenset(p.name for p in PLOT_TYPES if p.append)
