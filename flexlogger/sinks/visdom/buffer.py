"""The per-window state of a Visdom sink: merging of writes, downsampling and delivery accounting. No threads (the
sender holds its lock around every call), no HTTP.

Policy (what the server sees):

- ``line``/``scatter`` windows keep their points, at most ``max_points`` per trace (default 2000). Past it, a
  trace is downsampled: its x range is cut into ``max_points // 4`` buckets and each bucket keeps its minimum,
  its maximum and its first NaN/Inf (a gap), in order, so spikes stay visible; the last point always stays.
  Points then append again until the next downsampling, which re-buckets the whole range (the resolution stays
  uniform in x). The run record keeps every point.
- Other windows (bar, heatmap, image, text, curve, histogram) keep only their latest content; meters not logged
  this time (``log(keys=...)``, or empty) keep their latest content in the window.

Backlog: there is no queue of messages. The backlog is the per-window state, bounded by construction: at most
``max_points`` points per trace of a line/scatter window, one content per other window. A write never waits and
never drops: when the server is slow or down, new points are merged into the state (and downsampled past
``max_points``), and the next request carries all of it. Every point is in the run record in any case.

Delivery accounting: each window counts its writes (``version``) and the version the server has
(``sent_version``; -1 when the server may have lost the window); each trace counts the points logged and, of
those, delivered. A window whose message could not be built is ``broken`` at that version: it is not sent again
until it changes, and its content counts as undelivered.

Sender cost: each trace keeps the JSON text of the points it already encoded (through downsamplings too, which
keep a subset of them), so a send encodes only the points new since the last one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...options import MIN_MAX_POINTS  # noqa: F401 - the least max_points, checked with the other options
from ...plots import APPEND_KINDS
from ..base import Update


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
        return max(1, sum(t.logged - t.delivered for t in self.traces.values()))


@dataclass(frozen=True)
class Message:
    """What to send for a window, copied from its state (the request body is built from it outside the lock)."""

    window: Window
    version: int
    logged: dict[str, int]  # trace -> points logged when the message was made
    body: Any  # {trace: (start, xs[start:], ys[start:])} (points new since the cached text) or the latest Update

    def size(self) -> int:
        """Points in the message (1 for a window replaced by its latest content)."""
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
        self.windows: dict[str, Window] = {}
        self.downsamplings = 0
        self.nonfinite = 0  # NaN/Inf values written

    def write(self, update: Update) -> bool:
        """Merge ``update`` into its window. Returns True when the window was clean (the sender should wake)."""
        window = self.windows.get(update.plot)
        if window is None or window.kind != update.kind:
            window = self.windows[update.plot] = Window(update.plot, update.kind, update.opts)
        elif update.opts is not window.opts and update.opts != window.opts:  # e.g. a legend with a new best value
            window.opts = update.opts
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
            y = float(value)
            if y - y != 0:  # NaN or +-inf
                self.nonfinite += 1
            trace.xs.append(x)
            trace.ys.append(y)
            trace.logged += 1
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
        """The points held for line/scatter windows (bounded by ``max_points`` per trace)."""
        return sum(len(t.xs) for w in self.windows.values() for t in w.traces.values())

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
