"""Candlestick statistics and exponential smoothing of dense line series: pure functions, no state kept here.

A line plot may declare ``aggregate`` and ``smooth`` beside ``type`` and ``opts`` (see ``flexlogger.config.specs``):

- ``aggregate: candlestick``: each trace is drawn as boxes, the exact :func:`five_numbers` of each bucket of steps.
  ``aggregate: auto`` draws lines until a trace holds more than ``max_points`` points, then boxes.
- Buckets: equal ranges of steps from the trace's first, their width a power of two that doubles whenever the trace
  would need more than ``max_boxes`` (:func:`bucket_width`), so a window shows ``max_boxes / 2`` to ``max_boxes``.
- ``smooth: w`` (0 < w < 1): :func:`smooth`'s moving average drawn beside the raw trace, which stays, fainter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["AGGREGATES", "COLORS_KEY", "PALETTE", "QUANTILES", "SMOOTHED_SUFFIX", "Box", "Candlesticks", "EmaState",
           "boxes_of", "bucket_index", "bucket_width", "color", "five_numbers", "smooth"]

AGGREGATES: tuple[str, ...] = ("candlestick", "auto")
"""The values of a line plot spec's ``aggregate`` key."""
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
SMOOTHED_SUFFIX = " (smoothed)"
"""A smoothed trace is named after its raw trace with this suffix (``train_loss (smoothed)``)."""
RAW_OPACITY = 0.35
"""The opacity of a raw trace drawn beside its smoothed one (given as the alpha of its colour: Visdom's page resets
every line trace's ``opacity``)."""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
"""Plotly's default colours: a series, its smoothed trace and its boxes share one."""
COLORS_KEY = "series_colors"
"""The opts key under which a window's series get their colour index (set by the Visdom sink's buffer)."""


@dataclass(frozen=True)
class Box:
    """The five numbers of one bucket of a trace, and where it sits.

    Attributes:
        x: the box's position: the middle of its bucket's steps.
        lo, q1, median, q3, hi: minimum, quartiles, median, maximum of the bucket's finite values.
        count: finite values in the bucket.
        nonfinite: NaN/Inf values in the bucket (left out of the statistics).
        first, last: the first and last step of the bucket.
    """

    x: float
    lo: float
    q1: float
    median: float
    q3: float
    hi: float
    count: int
    nonfinite: int
    first: float
    last: float


@dataclass
class Candlesticks:
    """A whole candlestick window, as the Visdom sink's buffer hands it to the renderer.

    Attributes:
        plot: the plot name.
        opts: the plot's opts.
        sources: trace -> a function computing its boxes in step order. The buffer makes them under the sink's lock
            from a snapshot of the trace's points; they run outside it (in the sender thread, when the message is
            built), so that ``log()`` never waits on the statistics.
        lines: trace -> (xs, ys) drawn as lines beside the boxes (the smoothed traces).
    """

    plot: str
    opts: dict[str, object]
    sources: dict[str, Callable[[], list[Box]]]
    lines: dict[str, tuple[list[float], list[float]]]

    @cached_property
    def boxes(self) -> dict[str, list[Box]]:
        """trace -> its boxes (computed once, on first use)."""
        return {name: source() for name, source in self.sources.items()}

    def size(self) -> int:
        """Boxes and line points in the window."""
        return sum(len(b) for b in self.boxes.values()) + sum(len(xs) for xs, _ in self.lines.values())


def five_numbers(values: Sequence[float] | np.ndarray) -> tuple[float, float, float, float, float, int, int]:
    """``(min, q1, median, q3, max, finite count, non-finite count)`` of ``values``: ``np.quantile`` (method
    ``linear``) of the finite values, all five NaN when none is.

    Example:
        >>> five_numbers([1.0, 2.0, 3.0, 4.0, float('nan')])
        (1.0, 1.75, 2.5, 3.25, 4.0, 4, 1)
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = array[np.isfinite(array)]
    bad = int(array.size - finite.size)
    if not finite.size:
        return (math.nan,) * 5 + (0, bad)  # type: ignore[return-value]
    q = np.quantile(finite, QUANTILES, method="linear")
    return float(q[0]), float(q[1]), float(q[2]), float(q[3]), float(q[4]), int(finite.size), bad


def bucket_width(first: float, last: float, max_boxes: int) -> float:
    """The smallest power of two ``w`` such that steps ``first..last`` fit in ``max_boxes`` buckets of width ``w``.

    Example:
        >>> bucket_width(0, 999, 100), bucket_width(0, 0, 100)
        (16.0, 1.0)
    """
    span = float(last) - float(first)
    if not span > 0:
        return 1.0
    width = 2.0 ** math.ceil(math.log2(span / max_boxes)) if span / max_boxes > 0 else 1.0
    while (span // width) + 1 > max_boxes:  # floating-point edge: one more doubling
        width *= 2.0
    return width


def bucket_index(xs: np.ndarray, first: float, width: float) -> np.ndarray:
    """The bucket of each step: ``floor((x - first) / width)`` (buckets are ``[first + b w, first + (b+1) w)``)."""
    return np.floor((np.asarray(xs, dtype=np.float64) - first) / width).astype(np.int64)


def boxes_of(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, first: float, width: float,
             buckets: np.ndarray | None = None) -> dict[int, Box]:
    """Every bucket's :class:`Box` (bucket index -> box) of the points ``(xs, ys)``; buckets with no finite value
    are left out. ``buckets`` restricts the result to those bucket indices (the others are not computed)."""
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    index = bucket_index(x, first, width)
    if buckets is not None:
        keep = np.isin(index, buckets)
        x, y, index = x[keep], y[keep], index[keep]
    if not index.size:
        return {}
    order = np.argsort(index, kind="stable")
    index, x, y = index[order], x[order], y[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    ends = np.r_[starts[1:], index.size]
    out: dict[int, Box] = {}
    for start, end in zip(starts.tolist(), ends.tolist()):
        lo, q1, median, q3, hi, count, bad = five_numbers(y[start:end])
        if not count:
            continue
        bx = x[start:end]
        first_x, last_x = float(bx.min()), float(bx.max())
        out[int(index[start])] = Box((first_x + last_x) / 2, lo, q1, median, q3, hi, count, bad, first_x, last_x)
    return out


@dataclass
class EmaState:
    """The running state of :func:`smooth`: the biased average and the weight of its terms."""

    average: float = 0.0
    weight: float = 0.0  # 1 - w**n after n finite values


def smooth(values: Sequence[float], weight: float, state: EmaState | None = None) -> tuple[list[float], EmaState]:
    """The exponentially weighted moving average of ``values``, debiased (as TensorBoard smooths):
    ``s_n = w s_(n-1) + (1 - w) y_n``, shown as ``s_n / (1 - w^n)``, so the first smoothed value is the first value.

    Non-finite values give NaN (a gap) and leave the average as it was. Pass the returned state to continue a
    series (the result is the same as smoothing it whole).

    Example:
        >>> smooth([1.0, 3.0], 0.5)[0]
        [1.0, 2.333333333333333]
    """
    state = EmaState(state.average, state.weight) if state is not None else EmaState()
    out: list[float] = []
    for y in values:
        if y - y != 0:  # NaN or +-Inf
            out.append(math.nan)
            continue
        state.average = weight * state.average + (1.0 - weight) * y
        state.weight = weight * state.weight + (1.0 - weight)
        out.append(state.average / state.weight)
    return out, state


def color(index: int, alpha: float = 1.0) -> str:
    """The palette's colour ``index`` (wrapping), as ``#rrggbb`` or, with ``alpha`` < 1, ``rgba(r,g,b,alpha)``.

    Example:
        >>> color(0), color(11, 0.5)
        ('#1f77b4', 'rgba(255,127,14,0.5)')
    """
    hex_ = PALETTE[index % len(PALETTE)]
    if alpha >= 1:
        return hex_
    r, g, b = (int(hex_[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"
