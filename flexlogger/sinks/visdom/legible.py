"""Legibility: the touches that make a window readable at the size Visdom creates it. Pure functions on a finished
Visdom message (a JSON-able dict), an image array or a text window's HTML; no state, no visdom import.

Each touch only fills in what the user's opts left unset (``setdefault``), so a plot spec can still say otherwise:

- a trace with few points shows its points (markers), so a chart logged once per epoch is not empty at first;
- step axes tick at whole steps when the steps are whole and few, and a line window's x axis is titled ``step``;
- log axes label numbers as numbers (``0.05``, never a bare ``5`` nor ``100µ`` beside ``0.001``);
- a crowded legend moves to rows between the title and the plot, never over the x axis title, with room kept
  for them whatever top margin the page sets (:func:`_reserve_top`);
- long titles shrink to fit the window instead of being clipped;
- heatmaps tick every row and column (:data:`MAX_TICKED`), small images are scaled up (:func:`upscale`);
- every chart says which run drew it (:func:`label_run`), and text windows are typeset for the window
  (:func:`text_page`).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

MARKER_POINTS = 30
"""A trace of at most this many points is drawn with markers (one point alone is otherwise invisible)."""

WHOLE_STEP_SPAN = 12
"""Whole-number steps spanning at most this many get a tick at every step."""

MAX_TICKED = 30
"""Heatmaps with at most this many rows (columns) label every row (column)."""

WINDOW_WIDTH = 400
"""The width Visdom gives a new plot window, in pixels: titles are sized for it."""

MIN_IMAGE_SIDE = 256
"""An image whose longer side is shorter is scaled up by a whole factor for the window."""

BAR_FONT = 11
"""The font size of a window's title bar on Visdom's page, px."""

BAR_BUTTONS = 105
"""A plot window's title-bar buttons on Visdom 0.3's page (close, export, export metadata, comment, properties; 103 px
with their margins in Chromium) and the window's border, px."""

TEXT_CLASS = "flexlogger-text"
"""The class of the element every text window is wrapped in; the window's style rules apply inside it only."""

_TEXT_STYLE = (
    f".{TEXT_CLASS}{{font-size:13px;line-height:1.4;padding:2px 6px;overflow-wrap:break-word}}"
    f".{TEXT_CLASS} h1{{font-size:18px;margin:4px 0 6px}}"
    f".{TEXT_CLASS} h2{{font-size:16px;margin:8px 0 4px}}"
    f".{TEXT_CLASS} h3,.{TEXT_CLASS} h4,.{TEXT_CLASS} h5,.{TEXT_CLASS} h6{{font-size:14px;margin:6px 0 4px}}"
    f".{TEXT_CLASS} table{{border-collapse:collapse;margin:4px 0}}"
    f".{TEXT_CLASS} th,.{TEXT_CLASS} td{{padding:2px 12px 2px 0;text-align:left;vertical-align:top}}"
    f".{TEXT_CLASS} td:first-child{{white-space:nowrap}}"
    f".{TEXT_CLASS} tr+tr td{{border-top:1px solid #eee}}"
    f".{TEXT_CLASS} pre{{white-space:pre-wrap;margin:4px 0}}"
)

TOP_ROOM_MENU = "flexlogger-top-room"
"""The name of the empty menu that holds the room above a plot (:func:`_reserve_top`)."""

_MENU_PUSH = 10  # an empty menu is 2 px shorter than its padding, and Plotly (2.11) pushes a margin 12 px past it
_TITLE_SIZE = 17  # Plotly's default title font size, px
_TITLE_CHAR = 0.56  # the width of an average character, in font sizes


def legible_traces(msg: dict[str, Any], counts: Sequence[int], x_range: tuple[float, float] | None) -> dict[str, Any]:
    """Fill in a line/scatter window's layout and traces (in place; returned for chaining).

    Args:
        msg: the window's Visdom message (``data``: the traces in order, ``layout``).
        counts: the number of points of each trace of ``msg['data']``, in order.
        x_range: the smallest and largest step of the window, or None when unknown (then no whole-step ticks).
    """
    data = msg.get("data") or []
    for trace, count in zip(data, counts):
        if trace.get("type", "scatter") == "scatter" and trace.get("mode") == "lines" and count <= MARKER_POINTS:
            trace["mode"] = "lines+markers"
            marker = dict(trace.get("marker") or {})
            marker["size"] = 8 if count <= 1 else 6
            marker.pop("line", None)  # Visdom's black outline makes small markers look like dots of dirt
            trace["marker"] = marker
    layout = msg.setdefault("layout", {})
    xaxis = _axis(layout, "xaxis")
    if not _title_text(xaxis.get("title")):
        xaxis["title"] = "step"
    if x_range is not None:
        lo, hi = x_range
        if _whole(lo) and _whole(hi) and hi - lo <= WHOLE_STEP_SPAN:
            xaxis.setdefault("dtick", 1)
            xaxis.setdefault("tickformat", "d")
            if hi == lo:  # one step: a range around it, not Plotly's -1..1 with 0.5 ticks
                xaxis.setdefault("range", [lo - 1, hi + 1])
    _readable_log_axes(layout)
    names = [str(t.get("name", "")) for t in data if t.get("showlegend", True) is not False]
    _legend_below(layout, names)
    _fit_title(msg)
    return msg


def legible_heatmap(msg: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
    """Tick every row and column of a heatmap of ``shape`` (rows, columns) up to :data:`MAX_TICKED`, titled axes
    kept readable (in place; returned)."""
    layout = msg.setdefault("layout", {})
    if len(shape) >= 2:
        rows, cols = shape[0], shape[1]
        for key, n in (("xaxis", cols), ("yaxis", rows)):
            axis = _axis(layout, key)
            if n <= MAX_TICKED and axis.get("type") != "category":
                axis.setdefault("dtick", 1)
            axis.setdefault("automargin", True)
    _fit_title(msg)
    return msg


def legible_layout(msg: dict[str, Any]) -> dict[str, Any]:
    """The touches every Plotly window gets (log axes, the title's size), in place; returned."""
    _readable_log_axes(msg.setdefault("layout", {}))
    _fit_title(msg)
    return msg


def label_run(msg: dict[str, Any], label: str | None) -> dict[str, Any]:
    """Put ``label`` (``run <uid>``; escaped here) as a small grey second line under the chart's title, and make
    room for it (in place; returned). No label, or no title: unchanged."""
    layout = msg.get("layout")
    if not label or not isinstance(layout, dict):
        return msg
    title = layout.get("title")
    text = _title_text(title)
    if not text:
        return msg
    line = f'{text}<br><span style="font-size:11px;color:#777">{html.escape(label, quote=False)}</span>'
    layout["title"] = {**title, "text": line} if isinstance(title, dict) else {"text": line}
    margin = dict(layout.get("margin") or {})
    margin["t"] = int(margin.get("t", 60)) + 16  # the second line, at its smaller size
    layout["margin"] = margin
    if any(_is_top_room(menu) for menu in layout.get("updatemenus") or ()):
        _reserve_top(layout)  # the legend's room grows by the line too
    return msg


def title_size(title: str, width: int = WINDOW_WIDTH) -> int:
    """The font size (px) at which ``title`` fits in a window ``width`` pixels wide (Plotly's 17 when it fits,
    never below 10).

    Example:
        >>> title_size("loss")
        17
        >>> title_size("a title of sixty characters, which Plotly would clip at 17px")
        10
    """
    room = width - 40  # the window's side margins
    fits = room / (_TITLE_CHAR * max(len(title), 1))
    return int(max(10, min(_TITLE_SIZE, math.floor(fits))))


def histogram_title(title: str, step: float) -> str:
    """A histogram window's title: a histogram shows one step, so it says which.

    Example:
        >>> histogram_title("fc1 (Linear) Weights", 11)
        'fc1 (Linear) Weights (step 11)'
    """
    return f"{title} (step {step:g})"


def bar_width(title: str) -> int:
    """The narrowest Visdom 0.3's page draws a plot window titled ``title``: its title bar on one line, px.

    The page (0.3) gives every grid item ``min-width: fit-content``, and the bar's buttons and title (floats, never
    wrapped) are its content: a window narrower than its bar grows past its grid cell, over the window beside it,
    while the grid still places that one by the cell. Visdom 0.2 clips the bar instead. The title's characters are
    counted at the width :func:`title_size` counts (the bar's font is Open Sans or the browser's sans-serif).

    Example:
        >>> bar_width("loss"), bar_width("conv1 (Conv2d) Weight_grad (step 11)")
        (130, 327)
    """
    return BAR_BUTTONS + math.ceil(_TITLE_CHAR * BAR_FONT * len(title))


def _readable_log_axes(layout: dict[str, Any]) -> None:
    for key, axis in list(layout.items()):
        if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict) and axis.get("type") == "log":
            axis.setdefault("tickformat", "~g")  # 0.05, not a bare 5 between the decades
            axis.setdefault("nticks", 3)  # labels at 1-2-5 or at decades, never 0.07 on 0.08 on 0.09
            axis.setdefault("exponentformat", "none")  # 0.0001, not 100µ beside 0.001


def legend_rows(names: Sequence[str], width: int = WINDOW_WIDTH) -> int:
    """The rows a legend of ``names`` takes between a window's title and its plot (0: it fits at the plot's right,
    where Plotly puts it).

    Example:
        >>> legend_rows(["train_loss", "test_loss"]), legend_rows(["conv1.Weights.update_ratio"] * 4)
        (0, 4)
    """
    if not names:
        return 0
    longest = max(len(n) for n in names)
    if len(names) <= 3 and longest <= 14:
        return 0
    per_row = max(1, min(len(names), (width - 60) // (longest * 7 + 50)))  # Plotly's symbol and gap: ~50 px
    return math.ceil(len(names) / per_row)


def _legend_below(layout: dict[str, Any], names: Sequence[str]) -> None:
    """Move a crowded legend from the plot's right to rows between the title and the plot (Plotly 2.11, which
    Visdom ships, places a horizontal legend under the plot by a fraction of the plot's height, which lands on
    the x axis title in a small window; the top margin is in pixels, so the rows fit whatever the window's
    size)."""
    if "legend" in layout or not layout.get("showlegend", True) or not names:
        return
    rows = legend_rows(names)
    if not rows:
        return  # Plotly's legend at the right fits beside the plot
    layout["legend"] = {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}
    margin = dict(layout.get("margin") or {})
    # the title, then the legend's rows (19-21 px each, by Plotly's version)
    margin["t"] = max(int(margin.get("t", 60)), 50 + 22 * rows)
    margin["r"] = min(int(margin.get("r", 60)), 20)  # no legend at the right: give the plot the width
    layout["margin"] = margin
    _reserve_top(layout)
    text = _title_text(layout.get("title"))
    if text:  # the title at the top of the window, above the legend (Plotly centres it in the top margin)
        title = layout["title"] if isinstance(layout.get("title"), dict) else {"text": text}
        layout["title"] = {**title, "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 12}}


def _reserve_top(layout: dict[str, Any]) -> None:
    """Keep the plot ``layout['margin']['t']`` pixels below the window's top even where the page sets the top
    margin itself: visdom 0.3's page sets it to 85 px in every titled window, which leaves the legend's rows no room
    between the title and the plot.

    The room is held by an empty Plotly menu (:data:`TOP_ROOM_MENU`: no buttons, so nothing is drawn and nothing
    can be clicked) standing on the plot's top edge, padded to the margin's height: Plotly's automatic margins keep
    the plot below it, whatever ``margin.t`` says. Where the page keeps ``margin.t`` (visdom 0.2.4) both ask for
    the same room and nothing moves. Called again, it resizes the menu it added.
    """
    # visible: Plotly hides a menu without buttons by default, and a hidden menu pushes no margin
    room = {"name": TOP_ROOM_MENU, "type": "buttons", "buttons": [], "visible": True, "showactive": False,
            "x": 0, "xanchor": "left", "y": 1, "yanchor": "bottom",
            "pad": {"t": max(0, int(layout["margin"]["t"]) - _MENU_PUSH), "r": 0, "b": 0, "l": 0}}
    menus = [m for m in layout.get("updatemenus") or () if not _is_top_room(m)]
    layout["updatemenus"] = [*menus, room]


def _is_top_room(menu: Any) -> bool:
    return isinstance(menu, dict) and menu.get("name") == TOP_ROOM_MENU


def _fit_title(msg: dict[str, Any]) -> None:
    """Shrink the title to the window's width (Visdom's message keeps it in ``opts``; default
    :data:`WINDOW_WIDTH`)."""
    layout = msg.setdefault("layout", {})
    width = (msg.get("opts") or {}).get("width")
    title = layout.get("title")
    text = _title_text(title)
    if not text:
        return
    size = title_size(re.sub(r"<br>.*", "", text), int(width) if isinstance(width, (int, float)) else WINDOW_WIDTH)
    if size >= _TITLE_SIZE:
        return
    if isinstance(title, dict):
        font = dict(title.get("font") or {})
        font.setdefault("size", size)
        layout["title"] = {**title, "font": font}
    else:
        layout["title"] = {"text": text, "font": {"size": size}}


def _axis(layout: dict[str, Any], key: str) -> dict[str, Any]:
    axis = layout.get(key)
    if not isinstance(axis, dict):
        axis = layout[key] = {}
    return axis


def _title_text(title: Any) -> str:
    if isinstance(title, str):
        return title
    if isinstance(title, dict) and isinstance(title.get("text"), str):
        return str(title["text"])
    return ""


def _whole(x: float) -> bool:
    return math.isfinite(x) and x == int(x)


def upscale_factor(height: int, width: int) -> int:
    """The whole factor that brings an image's longer side to at least :data:`MIN_IMAGE_SIDE` (1: big enough).

    Example:
        >>> upscale_factor(32, 32), upscale_factor(28, 100), upscale_factor(300, 20)
        (8, 3, 1)
    """
    side = max(height, width, 1)
    return 1 if side >= MIN_IMAGE_SIDE else math.ceil(MIN_IMAGE_SIDE / side)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (``... x H x W`` with ``channels_last=False``) with each pixel repeated ``factor`` times down and
    across: a nearest-neighbour scale-up that keeps every pixel a sharp square."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=-2), factor, axis=-1)


def text_page(body: str) -> str:
    """``body`` (HTML whose user text is escaped already) wrapped in the element the window's style rules apply
    to: the rules are scoped by :data:`TEXT_CLASS`, so they change no other window of the page."""
    return f'<div class="{TEXT_CLASS}"><style>{_TEXT_STYLE}</style>{body}</div>'
