"""Rendering: pure functions turning an :class:`~flexlogger.sinks.base.Update` (or a line window's points) into the
Visdom message that creates or replaces its whole window. No threads, no HTTP, no state.

Every plot kind has a renderer in :data:`RENDERERS`: ``renderer(builder, win, env, update)``, where the builder is
Visdom's client used offline (``send=False``: it returns the message instead of posting it).

- ``line``/``scatter``: a whole window of traces (:func:`render_traces`); the sender's steady path
  (:func:`trace_template`, :func:`encode_xs`, :func:`assemble_lines`) reuses each trace's options and the JSON
  text of the points it already encoded.
- ``histogram``: drawn from bin counts as Visdom's own ``histogram`` draws them; a raw array is binned here
  (``opts.numbins``, default 30).
- Other kinds draw the latest content of their window. NaN and Inf are sent as ``null`` (gaps); contents Visdom's
  client rejects as such (one bar, a histogram with no finite value, a curve with NaN) are drawn anyway.

User strings are shown as written, never as markup: Plotly reads titles, legends and tick labels as HTML-like text,
so :func:`escape_plotly` escapes ``<``, ``>`` and ``&`` in each; a text window is raw HTML in Visdom (visdom issue
1506), so its cells are escaped (:func:`as_html`). The opts given to Visdom's client are always a fresh copy (it
mutates them).
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import visdom

from flexlogger.core.aggregate import COLORS_KEY, RAW_OPACITY, SMOOTHED_SUFFIX, Candlesticks, color
from flexlogger.core.plots import bin_values
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.legible import (
    histogram_title,
    label_run,
    legible_heatmap,
    legible_layout,
    legible_traces,
    text_page,
    upscale,
    upscale_factor,
)
from flexlogger.sinks.visdom.rules import quiet_visdom

Renderer = Callable[[Any, str, str, Update], dict[str, Any]]
"""``renderer(builder, win, env, update) -> message``: the Visdom message (a JSON-able dict) for the window."""


def make_builder(server: str, port: int, env: str) -> Any:
    """Visdom's client, offline: its drawing functions return the message instead of posting it."""
    with quiet_visdom():  # its client logs set-up chatter meant for interactive use
        return visdom.Visdom(server=server, port=port, env=env, send=False, use_incoming_socket=False,
                             raise_exceptions=True)


def render(builder: Any, win: str, env: str, update: Update | Candlesticks, label: str | None = None) -> str:
    """The request body (JSON text) that draws ``update`` whole in window ``win`` (or a candlestick window);
    a chart's title gets ``label`` (the run) as a second line (:func:`~.legible.label_run`).

    Raises:
        Exception: whatever Visdom's client raises for data or opts it cannot draw (e.g. an AssertionError for a
            3-d heatmap), or ``KeyError`` for a kind without a renderer.
    """
    if isinstance(update, Candlesticks):
        return body(render_candlesticks(builder, win, env, update), label)
    return body(RENDERERS[update.kind](builder, win, env, update), label)


def body(msg: dict[str, Any], label: str | None = None) -> str:
    """The request body (JSON text) of ``msg``, its title labelled with ``label`` (:func:`~.legible.label_run`)."""
    return json.dumps(label_run(msg, label), allow_nan=False)


DRAWING_KEYS = ("aggregate", "smooth", COLORS_KEY)
"""Keys of a line plot's opts that flexlogger draws itself (set beside ``type`` in its spec, and the series' colours
the buffer assigns), never given to Visdom."""


def options(plot: str, opts: Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
    """A fresh opts dict with the plot's name as title (visdom's client mutates the opts it is given), without
    flexlogger's own drawing keys (:data:`DRAWING_KEYS`)."""
    out = {"title": plot, **defaults}
    out.update(opts)
    for key in DRAWING_KEYS:
        out.pop(key, None)
    return out


# line / scatter -----------------------------------------------------------------------------------------------
def render_traces(builder: Any, win: str, env: str, plot: str, kind: str, opts: Mapping[str, Any],
                  traces: Mapping[str, tuple[Any, Any]], *, steps: bool = True, touch: bool = True) -> dict[str, Any]:
    """A whole line/scatter window of ``traces`` (name -> (xs, ys)). Visdom's client builds each trace from its
    first point (options, layout); the points are then put in as lists, with NaN/Inf as None (a gap): no array
    round trips per send.

    ``steps``: the xs are steps (whole-step ticks where they fit; a curve's xs are not). ``touch``: apply the
    legibility touches (:mod:`.legible`); a template for :func:`assemble_lines` is left bare, and the touches are
    made per send with the real point counts."""
    data: list[dict[str, Any]] = []
    msg: dict[str, Any] = {}
    counts: list[int] = []
    x_lo, x_hi = math.inf, -math.inf
    if opts.get("smooth") is not None and COLORS_KEY not in opts:  # drawn whole: colours in the traces' order
        series = [n for n in traces if not n.endswith(SMOOTHED_SUFFIX)]
        opts = {**opts, COLORS_KEY: {n: i for i, n in enumerate(series)}}

    def draw(name: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        if kind == "scatter":
            return builder.scatter(X=np.column_stack([x, y]), win=win, env=env, opts=options(plot, opts), name=name)[0]
        return builder.line(Y=y, X=x, win=win, env=env, opts=options(plot, opts), name=name)[0]

    for name, (xs, ys) in traces.items():
        x = np.asarray(xs, dtype=np.float64).reshape(-1)
        y = np.asarray(ys, dtype=np.float64).reshape(-1)
        y = np.where(np.isfinite(y), y, np.nan)
        msg = draw(name, x[:1], y[:1]) if x.size and y.size else draw(name, np.zeros(1), np.zeros(1))
        trace = msg["data"][0]
        if len(msg["data"]) == 1 and not per_point_fields(trace):
            trace["x"], trace["y"] = nulls(x.tolist()), nulls(y.tolist())  # a curve's x may be NaN
        else:  # per-point options (e.g. one marker colour per point): let visdom build all of it
            msg = draw(name, x, y)
            msg["data"] = scrub(msg["data"])
        for each in msg["data"]:
            trace_style(opts, name, each)
        data += msg["data"]
        counts += [int(x.size)] * len(msg["data"])
        finite = x[np.isfinite(x)]
        if finite.size:
            x_lo, x_hi = min(x_lo, float(finite.min())), max(x_hi, float(finite.max()))
    msg["data"] = data
    msg["layout"] = scrub(msg["layout"])
    msg["layout"]["showlegend"] = bool(opts.get("showlegend", True))
    msg = escape_plotly(msg)
    if touch:
        legible_traces(msg, counts, (x_lo, x_hi) if steps and x_lo <= x_hi else None)
    return msg


def render_points(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """A line/scatter window of one point per trace at ``x=step`` (the sender draws whole windows of points with
    :func:`render_traces`)."""
    traces = {name: ([float(update.step)], [float(value)]) for name, value in update.data.items()}
    return render_traces(builder, win, env, update.plot, update.kind, update.opts, traces)


def trace_template(builder: Any, win: str, env: str, plot: str, kind: str, opts: Mapping[str, Any],
                   name: str) -> dict[str, Any] | None:
    """The message of a one-point trace ``name``, whose options are reused for every send of the trace; None when
    the opts set per-point fields (then each send is built whole by :func:`render_traces`)."""
    template = render_traces(builder, win, env, plot, kind, opts, {name: ([0.0], [0.0])}, touch=False)
    if len(template["data"]) != 1 or per_point_fields(template["data"][0]):
        return None
    return template


def trace_style(opts: Mapping[str, Any], name: str, trace: dict[str, Any]) -> None:
    """Style ``trace`` of a smoothed window: a series and its smoothed trace share a colour (by the series' index
    in ``opts[COLORS_KEY]``), the raw one fainter (:data:`~flexlogger.core.aggregate.RAW_OPACITY`, as the colour's
    alpha: Visdom's page resets a line trace's ``opacity``)."""
    if opts.get("smooth") is None:
        return
    smoothed = name.endswith(SMOOTHED_SUFFIX)
    base = name[: -len(SMOOTHED_SUFFIX)] if smoothed else name
    colors = opts.get(COLORS_KEY) or {}
    shade = series_color(opts, base, colors.get(base, len(colors)), 1.0 if smoothed else RAW_OPACITY)
    trace["line"] = {**trace.get("line", {}), "color": shade}
    trace["marker"] = {**trace.get("marker", {}), "color": shade}


def series_color(opts: Mapping[str, Any], name: str, index: int, alpha: float = 1.0) -> str:
    """The colour of series ``name``: its meter's ``display`` colour (``opts.traceopts.plotly[name]``) when it has
    one, else the palette's ``index``; with ``alpha`` (a ``#rgb``, ``#rrggbb`` or ``rgb()`` colour; a named one
    stays as it is)."""
    style = ((opts.get("traceopts") or {}).get("plotly") or {}).get(name) or {}
    given = (style.get("line") or {}).get("color") or (style.get("marker") or {}).get("color")
    if not isinstance(given, str):
        return color(index, alpha)
    if alpha >= 1:
        return given
    text = given.strip()
    if re.fullmatch(r"#[0-9a-fA-F]{3}", text):
        text = "#" + "".join(c * 2 for c in text[1:])
    if re.fullmatch(r"#[0-9a-fA-F]{6}", text):
        r, g, b = (int(text[i:i + 2], 16) for i in (1, 3, 5))
        return f"rgba({r},{g},{b},{alpha:g})"
    found = re.fullmatch(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*[0-9.]+\s*)?\)", text)
    if found:
        return f"rgba({found[1]},{found[2]},{found[3]},{alpha:g})"
    return given


def series_name(opts: Mapping[str, Any], name: str) -> str:
    """The legend name of series ``name`` (a ``best`` meter's shows its best value: ``opts.traceopts``)."""
    style = ((opts.get("traceopts") or {}).get("plotly") or {}).get(name) or {}
    shown = style.get("name")
    return shown if isinstance(shown, str) else name


def encode_xs(values: Sequence[float]) -> list[str]:
    """JSON text of finite floats (x values are steps)."""
    return [float.__repr__(x) for x in values]


def encode_ys(values: Sequence[float]) -> list[str]:
    """JSON text of floats, NaN/Inf as ``null`` (a gap)."""
    return [float.__repr__(y) if y - y == 0 else "null" for y in values]


def assemble_lines(parts: Sequence[tuple[dict[str, Any], str, str]], label: str | None = None) -> str:
    """A whole line/scatter window as JSON text from each trace's ``(template, x text, y text)``, where the texts
    are the comma-joined JSON numbers of the trace's points (see :func:`encode_xs`, :func:`encode_ys`)."""
    data: list[dict[str, Any]] = []
    arrays: list[str] = []
    msg: dict[str, Any] = {}
    counts: list[int] = []
    x_lo, x_hi = math.inf, -math.inf
    for template, x_text, y_text in parts:
        msg = template
        data.append({**template["data"][0], "x": f"@@flexlogger:{len(arrays)}@@",
                     "y": f"@@flexlogger:{len(arrays) + 1}@@"})
        arrays += [x_text, y_text]
        counts.append(x_text.count(",") + 1 if x_text else 0)
        if x_text:  # steps come in order: the first and the last are the trace's range
            comma = x_text.find(",")
            first, last = float(x_text if comma < 0 else x_text[:comma]), float(x_text[x_text.rfind(",") + 1:])
            x_lo, x_hi = min(x_lo, first, last), max(x_hi, first, last)
    window = {**msg, "data": data, "layout": copy.deepcopy(msg.get("layout", {}))}  # templates are reused: copy
    label_run(legible_traces(window, counts, (x_lo, x_hi) if x_lo <= x_hi else None), label)
    text = _JSON.encode(window)
    return _PLACEHOLDER.sub(lambda m: f"[{arrays[int(m[1])]}]", text)


# windows replaced by their latest content ---------------------------------------------------------------------
def render_bar(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """A bar per scalar meter, or a group of bars per element of vector meters (the legend: the meters)."""
    names, data = list(update.data), update.data
    values = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in data.values()]
    if all(v.size == 1 for v in values) and not any(isinstance(v, np.ndarray) for v in data.values()):
        return legible_layout(escape_plotly(bars(builder, np.array([[v[0]] for v in values]), win, env,
                                                 options(update.plot, update.opts, rownames=names))))
    width = max(v.size for v in values)
    table = np.full((width, len(values)), np.nan)
    for i, v in enumerate(values):
        table[: v.size, i] = v
    msg = bars(builder, table, win, env, options(update.plot, update.opts))
    for trace, name in zip(msg["data"], names):
        trace["name"] = name  # the legend is the meters' names
    msg["layout"]["showlegend"] = True
    return legible_layout(escape_plotly(msg))


def render_histogram(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """Visdom's own histogram message (a bar of the counts over ``linspace(lo, hi, bins)``), from bin counts."""
    hist = bin_values(next(iter(update.data.values())), update.opts)
    counts = np.asarray(hist.counts, dtype=np.float64)
    if counts.ndim != 1 or not counts.size:
        raise ValueError(f"expected at least one bin count, but got {hist.counts!r}")
    opts = options(update.plot, update.opts)
    opts["numbins"] = counts.size
    opts["title"] = histogram_title(opts["title"], update.step)
    positions = np.linspace(hist.lo, hist.hi, counts.size)
    return legible_layout(escape_plotly(bars(builder, counts[:, None], win, env, opts, positions)))


def render_heatmap(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """A heatmap of the latest matrix."""
    matrix = np.asarray(next(iter(update.data.values())), dtype=np.float64)
    msg, _ = builder.heatmap(X=matrix, win=win, env=env, opts=options(update.plot, update.opts))
    return legible_heatmap(escape_plotly(scrub(dict(msg))), matrix.shape)


def render_image(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """An image of the latest array (see :func:`image_array` for the layouts and dtypes)."""
    img = image_array(next(iter(update.data.values())))
    img = upscale(img, upscale_factor(*img.shape[-2:]))  # a 32 x 32 image in a 32 px window cannot be read
    opts = options(update.plot, update.opts)
    opts.setdefault("width", img.shape[-1] + 20)  # the pane fits the image (Visdom's page adds its title bar)
    opts.setdefault("height", img.shape[-2] + 60)
    msg, _ = builder.image(img, win=win, env=env, opts=opts)
    return scrub(dict(msg))


def render_text(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """A table of each meter's latest text, shown as written (escaped). A window made by a run's own calls
    (``log_text``, ``log_markdown``, ...) carries ``opts['html'] = True``: its one value is HTML in which every piece
    of user text was escaped already, drawn as it is (a user's plot spec cannot set ``html``: see ``specs``)."""
    opts = dict(update.opts)
    if opts.pop("html", False) is True:
        body = "".join(map(str, update.data.values()))
    else:
        body = "<table>" + "".join(f"<tr><td><b>{as_html(n)}</b></td><td>{as_html(v)}</td></tr>"
                                   for n, v in update.data.items()) + "</table>"
    msg, _ = builder.text(text_page(body), win=win, env=env, opts=options(update.plot, opts))
    return scrub(dict(msg))


def render_curve(builder: Any, win: str, env: str, update: Update) -> dict[str, Any]:
    """An x/y curve per meter (e.g. a ROC curve)."""
    return render_traces(builder, win, env, update.plot, "line", update.opts, update.data, steps=False)


def render_candlesticks(builder: Any, win: str, env: str, window: Candlesticks) -> dict[str, Any]:
    """A line window drawn as boxes (plotly ``box`` traces with precomputed quartiles: ``lowerfence`` the minimum,
    ``upperfence`` the maximum), one trace per series, and the smoothed traces as lines beside them. Each box's
    hover text gives its steps, its count and its NaN/Inf count."""
    colors = {name: i for i, name in enumerate(window.boxes)}
    opts = {**window.opts, COLORS_KEY: colors}
    lines = {name: xy for name, xy in window.lines.items()} or {"": ([0.0], [0.0])}
    msg = render_traces(builder, win, env, window.plot, "line", opts, lines)
    data: list[dict[str, Any]] = []
    for name, boxes in window.boxes.items():
        shade = series_color(window.opts, name, colors[name])
        data.append({
            "type": "box", "name": series_name(window.opts, name), "marker": {"color": shade},
            "line": {"color": shade}, "x": [b.x for b in boxes], "lowerfence": [b.lo for b in boxes],
            "q1": [b.q1 for b in boxes], "median": [b.median for b in boxes], "q3": [b.q3 for b in boxes],
            "upperfence": [b.hi for b in boxes], "boxpoints": False, "hoverinfo": "x+y+text",
            "text": [f"steps {b.first:g}-{b.last:g}: {b.count} point(s)" + (f", {b.nonfinite} NaN/Inf"
                                                                             if b.nonfinite else "")
                     for b in boxes]})
    data = escape_plotly({"data": data})["data"]  # the lines' message came escaped from render_traces
    data += msg["data"] if window.lines else []  # the smoothed lines over the boxes
    msg["data"] = scrub(data)
    msg["layout"]["showlegend"] = bool(opts.get("showlegend", True))
    msg["layout"]["boxmode"] = "group"  # several series: their boxes of a bucket side by side
    return msg


RENDERERS: dict[str, Renderer] = {
    "line": render_points,
    "scatter": render_points,
    "bar": render_bar,
    "histogram": render_histogram,
    "heatmap": render_heatmap,
    "image": render_image,
    "text": render_text,
    "curve": render_curve,
}


# helpers ------------------------------------------------------------------------------------------------------
def bars(builder: Any, table: np.ndarray, win: str, env: str, opts: dict[str, Any],
         positions: np.ndarray | None = None) -> dict[str, Any]:
    """Visdom's bar message for a rows x columns ``table`` (at x ``positions``, if given), also for fewer than two
    rows (its client squeezes the table, so it rejects one row and mistakes one row of several columns for one
    column)."""
    rows = table.shape[0]
    if rows < 2:  # drawn with NaN rows added, which are then taken out again
        table = np.concatenate([table, np.full((2 - rows, table.shape[1]), np.nan)])
        if opts.get("rownames") is not None:
            opts["rownames"] = [*opts["rownames"], *[""] * (2 - rows)]
        if positions is not None:
            positions = np.concatenate([positions, positions[-1:] + 1.0])
    if positions is None:
        msg, _ = builder.bar(X=table, win=win, env=env, opts=opts)
    else:
        msg, _ = builder.bar(X=table, Y=positions, win=win, env=env, opts=opts)
    if rows < 2:
        for trace in msg["data"]:
            trace["x"], trace["y"] = trace["x"][:rows], trace["y"][:rows]
    return scrub(dict(msg))


def image_array(value: Any) -> np.ndarray:
    """An image as Visdom's client takes it (C x H x W or H x W; floats in [0, 1] or uint8): an H x W x C array
    (as PIL, OpenCV and matplotlib hold images) is moved to C x H x W, other integers become uint8."""
    img = np.asarray(value)
    if img.ndim == 3 and img.shape[0] not in (1, 3) and img.shape[-1] in (1, 3):
        img = np.moveaxis(img, -1, 0)
    if img.dtype.kind == "b":
        img = img.astype(np.uint8) * 255
    elif img.dtype.kind in "iu" and img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def plotly_text(value: str) -> str:
    """A user string as Plotly shows it literally (``<``, ``>`` and ``&`` escaped; Plotly decodes the entities).

    Example:
        >>> plotly_text("loss <b>&</b> acc")
        'loss &lt;b&gt;&amp;&lt;/b&gt; acc'
    """
    return html.escape(value, quote=False)


def _escape_title(holder: dict[str, Any]) -> None:
    title = holder.get("title")
    if isinstance(title, str):
        holder["title"] = plotly_text(title)
    elif isinstance(title, dict) and isinstance(title.get("text"), str):
        holder["title"] = {**title, "text": plotly_text(title["text"])}


_AXIS = re.compile(r"[xyz]axis\d*")


def escape_plotly(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` (a Visdom message of a Plotly window) with every string Plotly draws as text escaped, in place: the
    title, axis titles and tick texts (also of a 3-d scene), the legend title, trace names, category labels
    (``x``/``y`` strings: bar and heatmap row and column names) and hover texts."""
    layout = msg.get("layout")
    if isinstance(layout, dict):
        _escape_title(layout)
        for holder in (layout, layout.get("scene")):
            if not isinstance(holder, dict):
                continue
            for key, axis in holder.items():
                if _AXIS.fullmatch(key) and isinstance(axis, dict):
                    _escape_title(axis)
                    if isinstance(axis.get("ticktext"), list):
                        axis["ticktext"] = [plotly_text(t) if isinstance(t, str) else t for t in axis["ticktext"]]
        if isinstance(layout.get("legend"), dict):
            _escape_title(layout["legend"])
    for trace in msg.get("data", []):
        if not isinstance(trace, dict):
            continue
        if isinstance(trace.get("name"), str):
            trace["name"] = plotly_text(trace["name"])
        for key in ("x", "y", "text", "hovertext"):
            value = trace.get(key)
            if isinstance(value, str):
                trace[key] = plotly_text(value)
            elif isinstance(value, list) and any(isinstance(v, str) for v in value):
                trace[key] = [plotly_text(v) if isinstance(v, str) else v for v in value]
    return msg


def as_html(value: Any) -> str:
    """``value`` as HTML text: ``<unk>`` and ``a & b`` shown as written, line breaks kept."""
    return html.escape(str(value)).replace("\n", "<br>")


def nulls(values: list[float]) -> list[float | None]:
    """``values`` with NaN/Inf as None."""
    return [v if v - v == 0 else None for v in values]  # v - v is nan for nan and +-inf


def scrub(value: Any) -> Any:
    """``value`` with NaN/Inf floats replaced by None (JSON has no NaN; Visdom draws None as a gap)."""
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def per_point_fields(trace: Mapping[str, Any]) -> bool:
    """Whether a one-point trace has list fields other than x and y (per-point options)."""
    return any(isinstance(v, list) for k, v in trace.items() if k not in ("x", "y")) or any(
        isinstance(v, list) for v in trace.get("marker", {}).values())


_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_PLACEHOLDER = re.compile(r'"@@flexlogger:(\d+)@@"')
