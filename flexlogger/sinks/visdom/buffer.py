"""The per-window state of a Visdom sink: merging of writes, downsampling and delivery accounting. No threads (the
sender holds its lock around every call), no HTTP.

Policy (what the server sees; the run record keeps every point in any case):

- ``line``/``scatter`` windows keep at most ``max_points`` points per trace (default 2000). Past it, a trace is
  downsampled (:func:`downsample`): its x range is cut into ``max_points // 4`` buckets, each keeping its minimum,
  its maximum and its first NaN/Inf (a gap), so spikes stay visible; the last point always stays. Points then
  append again until the next downsampling, which re-buckets the whole range.
- ``aggregate: candlestick`` line windows are drawn as boxes (:mod:`flexlogger.core.aggregate`): each trace keeps
  every point (:class:`BoxSeries`), and a send recomputes only the buckets that got points since the last, in the
  sender thread outside the lock. ``aggregate: auto`` draws lines until a trace holds more than ``max_points``
  points. ``smooth: w`` adds a trace per trace, smoothed from every point as it is written.
- Other windows keep only their latest content; meters not logged this time (``log(keys=...)``) keep theirs.

There is no queue of messages: the backlog is this state, bounded by construction. A write never waits and never
drops; while the server is slow or down, points merge into the state and the next request carries all of it.

Delivery accounting: each window counts its writes (``version``) and the version the server has (``sent_version``;
-1 when the server may have lost the window); each trace counts the points logged and delivered. A window whose
message could not be built is ``broken`` at that version: not sent again until it changes.

Sender cost: turning floats into JSON text is most of a send's cost, so each trace keeps the text of the points it
already encoded (through downsamplings too, which keep a subset of them) and a send encodes only the new points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flexlogger.core.aggregate import (
    COLORS_KEY,
    SMOOTHED_SUFFIX,
    Box,
    Candlesticks,
    EmaState,
    boxes_of,
    bucket_index,
    bucket_width,
    smooth,
)
from flexlogger.core.plots import APPEND_KINDS
from flexlogger.sinks.base import Update


@dataclass
class Trace:
    """One line/scatter trace: its points as shown, and how many were logged and delivered."""

    xs: list[float] = field(default_factory=list)  # what the window shows (downsampled past max_points)
    ys: list[float] = field(default_factory=list)
    logged: int = 0  # points written since the start
    delivered: int = 0  # of those, how many reached the server
    generation: int = 0  # bumped by each downsampling
    kept: np.ndarray | None = None  # the indices the last downsampling kept
    # the sender's cache of the JSON text of the first points of `text_generation` (float -> text is most of a
    # send's cost): a send encodes only the points new since the last one
    text_generation: int = 0
    x_parts: list[str] = field(default_factory=list)
    y_parts: list[str] = field(default_factory=list)
    derived: bool = False  # a smoothed trace: computed from another one, not counted as logged points
    ema: EmaState | None = None  # the smoothing state of this (raw) trace


class BoxSeries:
    """Every point of one trace of a candlestick window (numpy arrays grown by doubling), and the exact boxes of its
    buckets (see :mod:`flexlogger.core.aggregate`).

    :meth:`append` (the training thread, under the sink's lock) only adds points; :meth:`source` (under the lock)
    snapshots them as a function that computes the boxes later, outside the lock, with this series' cache of boxes
    (the sender thread's only). All buckets are recomputed only when the bucket width doubles (or a step before
    the first arrives).

    Args:
        max_boxes: the most buckets the trace is cut into; the bucket width doubles to stay under it.
    """

    def __init__(self, max_boxes: int) -> None:
        self.max_boxes = max_boxes
        self.xs = np.empty(64, dtype=np.float64)
        self.ys = np.empty(64, dtype=np.float64)
        self.size = 0
        self.lo = math.inf  # the least and greatest step seen
        self.hi = -math.inf
        self.ordered = True  # every step >= the one before: a bucket's points are a slice
        # the cache, the sender thread's only
        self.width = 0.0  # the bucket width the cached boxes were computed with (0: none yet)
        self.first = math.nan  # ... and the first step they start at
        self.done = 0  # the points the cached boxes include
        self.boxes: dict[int, Box] = {}

    def append(self, x: float, y: float) -> None:
        if self.size == self.xs.size:  # a new array: a snapshot being read keeps the old one
            self.xs = np.concatenate([self.xs, np.empty_like(self.xs)])
            self.ys = np.concatenate([self.ys, np.empty_like(self.ys)])
        if self.size and x < self.xs[self.size - 1]:
            self.ordered = False
        self.xs[self.size], self.ys[self.size] = x, y
        self.size += 1
        self.lo = min(self.lo, x)
        self.hi = max(self.hi, x)

    def source(self) -> Callable[[], list[Box]]:
        """A function computing the boxes of the points appended so far (call it outside the lock)."""
        xs, ys, size, lo, hi, ordered = self.xs, self.ys, self.size, self.lo, self.hi, self.ordered
        return lambda: self.compute(xs[:size], ys[:size], lo, hi, ordered)

    def compute(self, xs: np.ndarray, ys: np.ndarray, lo: float, hi: float, ordered: bool) -> list[Box]:
        """The boxes of points ``xs, ys`` (a snapshot: the cache's points and maybe more), in step order."""
        if not xs.size:
            return []
        width = bucket_width(lo, hi, self.max_boxes)
        if width != self.width or lo != self.first or xs.size < self.done:
            self.boxes = boxes_of(xs, ys, lo, width)
        elif xs.size > self.done:
            new = np.unique(bucket_index(xs[self.done:], lo, width))
            if ordered:  # the changed buckets' points are one slice (from a bucket early: rounding at its edge)
                start = int(np.searchsorted(xs, lo + (int(new[0]) - 1) * width, side="left"))
                fresh = boxes_of(xs[start:], ys[start:], lo, width)
            else:
                fresh = boxes_of(xs, ys, lo, width, new)
            for bucket in new.tolist():
                self.boxes.pop(bucket, None)
                if bucket in fresh:  # (a bucket of NaN only has no box)
                    self.boxes[bucket] = fresh[bucket]
        self.width, self.first, self.done = width, lo, xs.size
        return [self.boxes[b] for b in sorted(self.boxes)]


@dataclass
class Window:
    """One plot's window: its content, and what the server has of it."""

    plot: str
    kind: str
    opts: Mapping[str, Any]
    traces: dict[str, Trace] = field(default_factory=dict)  # line/scatter: the points to draw
    latest: Update | None = None  # other kinds: the content to draw
    version: int = 0  # bumped by every write
    sent_version: int = 0  # the version the server has; -1: it may have lost the window
    broken_version: int = -1  # the version whose message could not be built (not sent again until it changes)
    last_sent: float = -math.inf
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # sender: each trace's Visdom message
    per_point: bool = False  # sender: opts with per-point fields; each send is built by Visdom's client
    aggregate: str | None = None  # 'candlestick' or 'auto' (line windows whose spec says so)
    smooth: float | None = None  # the smoothing weight (line windows whose spec says so)
    series: dict[str, BoxSeries] = field(default_factory=dict)  # aggregate: every point of each raw trace
    boxed: bool = False  # drawn as boxes (candlestick, or auto past max_points)
    colors: dict[str, int] = field(default_factory=dict)  # smooth: each series' colour index (see render)
    given: Mapping[str, Any] | None = None  # the opts as the updates give them (``opts`` may add the colours)

    def __post_init__(self) -> None:
        if self.kind == "line":
            aggregate, weight = self.opts.get("aggregate"), self.opts.get("smooth")
            self.aggregate = aggregate if isinstance(aggregate, str) else None
            self.smooth = float(weight) if isinstance(weight, (int, float)) and 0 < weight < 1 else None
            self.boxed = self.aggregate == "candlestick"
        self.set_opts(self.opts)

    def new_opts(self, opts: Mapping[str, Any]) -> bool:
        """Whether ``opts`` differ from the opts the window was given last."""
        return opts is not self.given and opts != self.given

    def set_opts(self, opts: Mapping[str, Any]) -> None:
        """Take ``opts`` (a smoothed window adds its series' colours, shared with their smoothed traces)."""
        self.given = opts
        self.opts = {**opts, COLORS_KEY: self.colors} if self.smooth is not None else opts

    @property
    def has_content(self) -> bool:
        return bool(self.traces) or self.latest is not None

    @property
    def dirty(self) -> bool:
        """Whether the window has content the server lacks and can be sent."""
        return self.version != self.sent_version and self.version != self.broken_version and self.has_content

    @property
    def delivered(self) -> bool:
        """Whether the server has the latest content (as far as the sender knows)."""
        return self.version == self.sent_version and self.has_content

    def pending(self) -> int:
        """Logged points (one per window content for other kinds) the server does not have yet."""
        if self.version == self.sent_version or not self.has_content:
            return 0
        if self.kind not in APPEND_KINDS:
            return 1
        return max(1, sum(t.logged - t.delivered for t in self.traces.values() if not t.derived))


@dataclass(frozen=True)
class Message:
    """What to send for a window, copied from its state (the request body is built from it outside the lock)."""

    window: Window
    version: int
    logged: dict[str, int]  # trace -> points logged when the message was made
    body: Any  # {trace: (start, xs[start:], ys[start:])} (points new since the cached text), the latest Update or
    # the window's Candlesticks

    def size(self) -> int:
        """Points in the message (1 for a window replaced by its latest content; boxes for a candlestick one)."""
        if isinstance(self.body, Candlesticks):
            return self.body.size()
        if self.window.kind not in APPEND_KINDS:
            return 1
        return sum(start + len(xs) for start, xs, _ in self.body.values())


class Buffer:
    """The windows of one sink. Not thread-safe: the caller holds a lock around every call.

    Args:
        max_points: the most points a line/scatter trace holds before it is downsampled.
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.max_boxes = max(8, max_points // 16)  # boxes per trace of a candlestick window
        self.windows: dict[str, Window] = {}
        self.downsamplings = 0
        self.nonfinite = 0  # NaN/Inf values written

    def write(self, update: Update) -> bool:
        """Merge ``update`` into its window. Returns True when the window was clean (the sender should wake)."""
        window = self.windows.get(update.plot)
        if window is None or window.kind != update.kind:
            window = self.windows[update.plot] = Window(update.plot, update.kind, update.opts)
        elif window.new_opts(update.opts):  # e.g. a legend with a new best value
            window.set_opts(update.opts)
            window.templates.clear()
            window.per_point = False
        if update.kind in APPEND_KINDS:
            self._append(window, update)
        elif window.latest is None or window.latest.data.keys() <= update.data.keys():
            window.latest = update
        else:  # meters not logged this time (keys=..., or empty) keep their latest content in the window
            window.latest = dataclasses.replace(update, data={**window.latest.data, **update.data})
        was_clean = window.version == window.sent_version or window.version == window.broken_version
        window.version += 1
        return was_clean

    def _append(self, window: Window, update: Update) -> None:
        x = float(update.step)
        traces = window.traces
        for name, value in update.data.items():
            trace = traces.get(name)
            if trace is None:
                trace = traces[name] = Trace()
                if window.smooth is not None:
                    window.colors[name] = len(window.colors)
            y = float(value)
            if y - y != 0:  # NaN or +-inf
                self.nonfinite += 1
            trace.logged += 1
            if window.aggregate is not None:
                series = window.series.get(name)
                if series is None:
                    series = window.series[name] = BoxSeries(self.max_boxes)
                series.append(x, y)
                if not window.boxed and series.size > self.max_points:  # auto: boxes from now on
                    window.boxed = True
                    for each in traces.values():
                        if not each.derived:  # the series has every point: the lines are not drawn again
                            each.xs, each.ys = [], []
            if not window.boxed:  # a candlestick window draws its boxes from the series, not from these lists
                self._add_point(trace, x, y)
            if window.smooth is not None:
                smoothed, trace.ema = smooth([y], window.smooth, trace.ema)
                derived = traces.get(name + SMOOTHED_SUFFIX)
                if derived is None:
                    derived = traces[name + SMOOTHED_SUFFIX] = Trace(derived=True)
                derived.logged += 1
                self._add_point(derived, x, smoothed[0])

    def _add_point(self, trace: Trace, x: float, y: float) -> None:
        trace.xs.append(x)
        trace.ys.append(y)
        if len(trace.xs) > self.max_points:
            keep = downsample_indices(trace.xs, trace.ys, self.max_points // 4)
            xs, ys = trace.xs, trace.ys
            trace.xs, trace.ys = [xs[i] for i in keep], [ys[i] for i in keep]
            trace.generation += 1
            trace.kept = keep
            self.downsamplings += 1

    def pending(self) -> int:
        """Points (line/scatter) and window contents (other plots) written but not on the server."""
        return sum(w.pending() for w in self.windows.values())

    def held_points(self) -> int:
        """The points held for line/scatter windows (bounded by ``max_points`` per trace, but for the candlestick
        windows' series, which keep every point)."""
        return sum(len(t.xs) for w in self.windows.values() for t in w.traces.values()) + sum(
            s.size for w in self.windows.values() for s in w.series.values())

    def any_dirty(self) -> bool:
        return any(w.dirty for w in self.windows.values())

    def ready(self, now: float, min_interval: float, urgent: bool) -> tuple[list[Window], float | None]:
        """The windows to send at ``now`` (all dirty ones when ``urgent``, else those not sent for
        ``min_interval``), and, when none is, the seconds until one is (None: none is dirty)."""
        dirty = [w for w in self.windows.values() if w.dirty]
        ready = [w for w in dirty if urgent or now - w.last_sent >= min_interval]
        if ready or not dirty:
            return ready, None
        return [], min(w.last_sent + min_interval - now for w in dirty)

    def snapshot(self, window: Window) -> Message:
        """What to send for ``window``: the latest content, or each trace's points not yet in its text cache."""
        if window.kind not in APPEND_KINDS:
            return Message(window, window.version, {}, window.latest)
        logged = {name: t.logged for name, t in window.traces.items()}
        if window.boxed:
            sources = {name: series.source() for name, series in window.series.items()}
            lines = {name: (list(t.xs), list(t.ys)) for name, t in window.traces.items() if t.derived}
            return Message(window, window.version, logged, Candlesticks(window.plot, dict(window.opts), sources,
                                                                        lines))
        body = {}
        for name, t in window.traces.items():
            if t.text_generation != t.generation or window.per_point:
                if t.text_generation == t.generation - 1 and t.kept is not None and not window.per_point:
                    # one downsampling since the last send: keep the text of the points it kept
                    kept = t.kept[: int(np.searchsorted(t.kept, len(t.x_parts)))].tolist()
                    t.x_parts = [t.x_parts[i] for i in kept]
                    t.y_parts = [t.y_parts[i] for i in kept]
                else:
                    t.x_parts, t.y_parts = [], []
                t.text_generation = t.generation
            start = len(t.x_parts)
            body[name] = (start, t.xs[start:], t.ys[start:])
        return Message(window, window.version, logged, body)

    def settle(self, message: Message, now: float, ok: bool, reconnected: bool = False) -> None:
        """Account for a request of ``message``: delivered (``ok``), or failed (the server may have restarted:
        every window is resent). ``reconnected``: it went on a new connection, so the server may hold stale copies
        of the other windows: they are resent too."""
        window = message.window
        window.last_sent = now
        if not ok:
            self.mark_lost()
            return
        window.sent_version = message.version
        window.broken_version = -1
        for name, logged in message.logged.items():
            trace = window.traces[name]
            trace.delivered = max(trace.delivered, logged)
        if reconnected:
            self.mark_lost(but=window)

    def mark_broken(self, message: Message, now: float) -> None:
        """The message of ``message.window`` could not be built: skip the window until it changes."""
        message.window.broken_version = message.version
        message.window.last_sent = now

    def mark_lost(self, but: Window | None = None) -> None:
        """The server may have lost (or hold stale copies of) every window but ``but``: send them all again."""
        for each in self.windows.values():
            if each is not but:
                each.sent_version = -1

    def a_delivered_window(self) -> Window | None:
        """A window the server should have, to ask it whether it still does."""
        return next((w for w in self.windows.values() if w.delivered), None)


def downsample(xs: list[float], ys: list[float], buckets: int) -> tuple[list[float], list[float]]:
    """Keep, in each of ``buckets`` equal x ranges, the minimum, the maximum and the first non-finite point; and
    the last point.

    Example:
        >>> downsample([0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 1, 2, 3, -5, 4, 4], 2)
        ([0.0, 1.0, 5.0, 6.0, 7.0], [0.0, 9.0, -5.0, 4.0, 4.0])
    """
    keep = downsample_indices(xs, ys, buckets)
    return [float(xs[i]) for i in keep], [float(ys[i]) for i in keep]


def downsample_indices(xs: list[float], ys: list[float], buckets: int) -> np.ndarray:
    """The sorted indices of the points :func:`downsample` keeps."""
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        index = np.minimum(((x - lo) * (buckets / (hi - lo))).astype(np.int64), buckets - 1)
    else:
        index = np.zeros(x.size, dtype=np.int64)
    finite = np.isfinite(y)
    keep = np.zeros(x.size, dtype=bool)
    position = np.arange(x.size)
    for key in (np.where(finite, y, np.inf), np.where(finite, -y, np.inf), finite.astype(np.int8)):
        order = np.lexsort((position, key, index))  # by bucket, then key, then position
        sorted_index = index[order]
        firsts = order[np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])]
        keep[firsts if key.dtype != np.int8 else firsts[~finite[firsts]]] = True
    keep &= finite | ~np.r_[False, ~finite[:-1]]  # one non-finite point per run of them is a gap enough
    keep[-1] = True  # the window always shows the last step
    return np.flatnonzero(keep)
