"""Plot and meter specs: the validated, immutable form of ``{'type': ..., 'target': ..., 'args': ...}`` dicts.

Every error names where the bad value sits (``meters.train_loss.type``), what was expected and the valid choices,
so a config file with several problems can report them all (``flexlogger.config.config`` collects them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from flexlogger.config.registry import METERS, PLOTS, make_meter, meter_args, meter_class, view_for
from flexlogger.core.aggregate import AGGREGATES
from flexlogger.errors import ConfigError, Problem, UnknownNameError, short_repr, unknown_name_message
from flexlogger.meters import Meter
from flexlogger.sinks.visdom.rules import check_opts

PLOT_KEYS = ("type", "opts", "aggregate", "smooth")
DRAWING_KEYS = ("aggregate", "smooth")  # line plots only; carried in the plot's opts to its sinks and record
METER_KEYS = ("type", "target", "args", "best", "display")
BEST_MODES = ("min", "max")
DISPLAY_KEYS = ("dash", "color", "width", "marker")
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
MARKERS = ("circle", "square", "diamond", "cross", "x", "triangle-up", "triangle-down", "triangle-left",
           "triangle-right", "pentagon", "hexagon", "star", "hourglass", "bowtie")
MAX_WIDTH = 20
_COLOR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]+|"
                    r"rgba?\(\s*\d+\s*,\s*\d+\s*,\s*\d+\s*(,\s*[0-9.]+\s*)?\)")


@dataclass(frozen=True)
class PlotSpec:
    """A window: its plot ``type`` and the Visdom ``opts`` it is drawn with (title defaults to the plot name).

    A line plot's ``aggregate`` and ``smooth`` (see :mod:`flexlogger.core.aggregate`) are kept in ``opts`` under those
    names, so that they reach the sinks and the run record with the plot (Visdom never sees them); the spec dict
    (:meth:`to_dict`) has them beside ``type``.
    """

    type: str
    opts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def aggregate(self) -> str | None:
        """``candlestick``, ``auto`` or None."""
        return self.opts.get("aggregate")

    @property
    def smooth(self) -> float | None:
        """The smoothing weight, or None."""
        return self.opts.get("smooth")

    def to_dict(self) -> dict[str, Any]:
        opts = {k: v for k, v in self.opts.items() if k not in DRAWING_KEYS}
        out: dict[str, Any] = {"type": self.type, "opts": opts} if opts else {"type": self.type}
        out.update({k: self.opts[k] for k in DRAWING_KEYS if k in self.opts})
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # a mappingproxy does not pickle (multiprocessing, DDP spawn)
        return _plot_spec, (self.type, dict(self.opts))


@dataclass(frozen=True)
class MeterSpec:
    """A meter: its ``type``, the plot(s) it feeds (``target``) and its constructor ``args``; optionally ``best``
    (``'min'`` or ``'max'``: the logger tracks its best logged value and the step it came at) and ``display``
    (the style of its line/scatter/curve traces: ``dash``, ``color``, ``width``, ``marker``)."""

    type: str
    target: tuple[str, ...]
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    best: str | None = None
    display: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "target": self.target[0] if len(self.target) == 1
                               else list(self.target)}
        if self.args:
            out["args"] = dict(self.args)
        if self.best is not None:
            out["best"] = self.best
        if self.display:
            out["display"] = dict(self.display)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return _meter_spec, (self.type, self.target, dict(self.args), self.best, dict(self.display))


def _plot_spec(type_: str, opts: dict[str, Any]) -> PlotSpec:
    return PlotSpec(type_, MappingProxyType(opts))


def _meter_spec(type_: str, target: tuple[str, ...], args: dict[str, Any], best: str | None,
                display: dict[str, Any]) -> MeterSpec:
    return MeterSpec(type_, target, MappingProxyType(args), best, MappingProxyType(display))


def _check_mapping(where: str, raw: Any, keys: tuple[str, ...], main: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """``raw`` as a mapping of ``keys``; a non-mapping is refused naming the ``main`` keys (default: all)."""
    if isinstance(raw, (PlotSpec, MeterSpec)):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(main or keys)}, but got "
                          f"{type(raw).__name__} {raw!r}")
    extra = sorted(set(raw) - set(keys), key=str)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; valid keys: {', '.join(keys)}")
    return raw


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts, all the way down: the form a YAML/JSON file gives back, so that a
    saved-then-loaded spec equals the original."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):  # np.int64(4) from a computation: the number
        return value.item()
    return value


def _check_name(where: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: expected a non-empty string as name, but got {name!r}")


def _check_type(where: str, raw: Mapping[str, Any], kind: str, table: Mapping[str, Any]) -> None:
    if "type" not in raw:
        raise ConfigError(f"{where}.type: missing; valid {kind}s: {', '.join(sorted(table))}")
    if not isinstance(raw["type"], str) or raw["type"] not in table:  # a list or dict would not even hash
        raise UnknownNameError(f"{where}.type: " + unknown_name_message(kind, raw["type"], table))


def parse_plot(name: str, raw: Any, where: str = "") -> PlotSpec:
    """Validate a plot definition; ``where`` prefixes errors (default ``plots.<name>``)."""
    where = where or f"plots.{name}"
    _check_name(where, name)
    raw = _check_mapping(where, raw, PLOT_KEYS)
    _check_type(where, raw, "plot type", PLOTS)
    opts = _plain(raw.get("opts") or {})
    if not isinstance(opts, Mapping):
        raise ConfigError(f"{where}.opts: expected a mapping of Visdom options, but got {short_repr(opts)}")
    if "html" in opts:  # reserved for the run's own windows, whose user text is escaped before it is drawn
        raise ConfigError(f"{where}.opts.html: expected no `html`: text windows show what meters hold as text, "
                          "escaped; for rendered text use log_markdown() or log_text()")
    if "legend" in opts:  # Visdom would name every trace of a line after its first entry
        raise ConfigError(f"{where}.opts.legend: expected no `legend`: a window's legend is the names of the meters "
                          "that feed it (e.g. train_err@1, train_err@5); name the meters as they should be shown")
    check_opts(f"{where}.opts", opts)
    drawing = _drawing_keys(where, raw, opts)
    return PlotSpec(raw["type"], MappingProxyType({**_plain(opts), **drawing}))


def _drawing_keys(where: str, raw: Mapping[str, Any], opts: Mapping[str, Any]) -> dict[str, Any]:
    """The checked ``aggregate`` and ``smooth`` of a plot spec (line plots only)."""
    inside = [k for k in DRAWING_KEYS if k in opts]
    if inside:
        raise ConfigError(f"{where}.opts.{inside[0]}: expected `{inside[0]}` beside `type` and `opts` in the plot "
                          f"spec (e.g. {{'type': 'line', '{inside[0]}': ...}}), not inside the Visdom opts")
    given = {k: raw[k] for k in DRAWING_KEYS if raw.get(k) is not None}
    if given and raw["type"] != "line":
        key = next(iter(given))
        raise ConfigError(f"{where}.{key}: only a 'line' plot can be drawn with `{key}`, but this plot's type is "
                          f"{raw['type']!r}; expected type 'line', or no `{key}`")
    aggregate = given.get("aggregate")
    if aggregate is not None and (not isinstance(aggregate, str) or aggregate not in AGGREGATES):
        raise ConfigError(f"{where}.aggregate: expected one of {', '.join(map(repr, AGGREGATES))}, but got "
                          f"{short_repr(aggregate)}")
    weight = given.get("smooth")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                               or not 0 < weight < 1):
        raise ConfigError(f"{where}.smooth: expected a smoothing weight w with 0 < w < 1 (e.g. 0.9: the smoothed "
                          f"value keeps 90% of the previous one), but got {short_repr(weight)}")
    return {k: (float(v) if k == "smooth" else v) for k, v in given.items()}


def parse_meter(name: str, raw: Any, where: str = "") -> MeterSpec:
    """Validate a meter definition on its own (targets are checked against plots by :func:`check_targets`)."""
    where = where or f"meters.{name}"
    _check_name(where, name)
    raw = _check_mapping(where, raw, METER_KEYS, METER_KEYS[:3])  # best and display: optional extras
    if "type" not in raw:
        raise ConfigError(f"{where}.type: missing; valid meter types: {', '.join(sorted(METERS))}")
    try:
        meter_class(raw["type"])  # our own types, or torchmetrics.<ClassName> (with why a name is refused)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{where}.type: {exc}") from None
    if "target" not in raw:
        raise ConfigError(f"{where}.target: missing; expected the name of the plot (or a list of plots) it feeds")
    target = raw["target"]
    targets = (target,) if isinstance(target, str) else tuple(target) if isinstance(target, (list, tuple)) else None
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(f"{where}.target: expected a plot name or a non-empty list of plot names, but got {target!r}")
    args = raw.get("args") or {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"{where}.args: expected a mapping of {raw['type']} arguments, but got {args!r}")
    valid = meter_args(raw["type"])
    unknown = sorted(set(args) - set(valid), key=str)
    if unknown:
        raise ConfigError(f"{where}.args: unknown argument(s) {', '.join(map(repr, unknown))} for {raw['type']}; "
                          f"valid arguments: {', '.join(valid) or '(none)'}")
    best = raw.get("best")
    if best is not None:
        if best not in BEST_MODES:
            raise ConfigError(f"{where}.best: expected 'min' or 'max' (is a lower or a higher value better?), but got "
                              f"{short_repr(best, 60)}")
        if "scalar" not in meter_class(raw["type"]).views:
            raise ConfigError(f"{where}.best: a {raw['type']} has no scalar value to track; expected `best` only on "
                              "a meter with a scalar value (AverageValueMeter, ClassErrorMeter, MSEMeter, ...)")
    display = parse_display(f"{where}.display", raw.get("display"))
    return MeterSpec(raw["type"], targets, MappingProxyType(_plain(args)), best, display)


def parse_display(where: str, raw: Any) -> Mapping[str, Any]:
    """Check a meter's ``display`` (its traces' style) and return it in the form plotly takes: ``color`` as a CSS
    colour (an ``[r, g, b]`` list becomes ``'rgb(r,g,b)'``).

    Raises:
        ConfigError: not a mapping, an unknown key, or a value outside the valid ones (listed in the message).
    """
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(DISPLAY_KEYS)}, but got "
                          f"{type(raw).__name__} {short_repr(raw, 60)}")
    unknown = sorted(str(k) for k in raw if k not in DISPLAY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
                          f"{', '.join(DISPLAY_KEYS)}")
    out: dict[str, Any] = {}
    if "dash" in raw:
        if raw["dash"] not in DASHES:
            raise ConfigError(f"{where}.dash: expected one of {', '.join(DASHES)}, but got {short_repr(raw['dash'])}")
        out["dash"] = raw["dash"]
    if "color" in raw:
        color = _plain(raw["color"])
        if isinstance(color, list) and len(color) == 3 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color):
            color = f"rgb({color[0]},{color[1]},{color[2]})"
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise ConfigError(f"{where}.color: expected a CSS colour ('#1f77b4', 'rgb(31,119,180)', 'red') or "
                              f"[r, g, b] with ints 0-255, but got {short_repr(raw['color'], 60)}")
        out["color"] = color
    if "width" in raw:
        width = raw["width"]
        if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= MAX_WIDTH:
            raise ConfigError(f"{where}.width: expected a line width in pixels, a number > 0 and <= {MAX_WIDTH}, but "
                              f"got {short_repr(width, 60)}")
        out["width"] = width
    if "marker" in raw:
        if raw["marker"] not in MARKERS:
            raise ConfigError(f"{where}.marker: expected one of {', '.join(MARKERS)}, but got "
                              f"{short_repr(raw['marker'], 60)}")
        out["marker"] = raw["marker"]
    return MappingProxyType(out)


def trace_style(display: Mapping[str, Any], kind: str = "line") -> dict[str, Any]:
    """A meter's ``display`` as the plotly trace fields Visdom's ``opts['traceopts']['plotly'][trace]`` takes
    (Visdom's client updates each trace it draws with them, by the trace's name). On a ``scatter`` plot only the
    marker and its colour apply."""
    out: dict[str, Any] = {}
    line = {k: display[k] for k in ("dash", "color", "width") if k in display}
    if line and kind != "scatter":
        out["line"] = line
    if "marker" in display or (kind == "scatter" and "color" in display):
        if kind != "scatter":
            out["mode"] = "lines+markers"
        out["marker"] = {"symbol": display.get("marker", "circle"), "size": 8,
                         **({"color": display["color"]} if "color" in display else {})}
    return out


def _check_targets(meter: MeterSpec, plots: Mapping[str, PlotSpec], where: str) -> None:
    """Check that every plot ``meter`` targets exists and can draw it."""
    for target in meter.target:
        if target not in plots:
            raise UnknownNameError(f"{where}.target: " + unknown_name_message("plot", target, plots))
        plot = PLOTS[plots[target].type]
        if view_for(plot, METERS[meter.type]) is None:
            able = sorted(p for p, t in PLOTS.items() if view_for(t, METERS[meter.type]))
            raise ConfigError(f"{where}.target: plot {target!r} is a {plot.name!r} plot, which cannot draw a "
                              f"{meter.type} ({METERS[meter.type].plots_as}); plot types that can: {', '.join(able)}")


def _capacity_problems(plots: Mapping[str, PlotSpec], meters: Mapping[str, MeterSpec]) -> list[str]:
    """A problem for each plot that more meters target than its type can show (e.g. one matrix per heatmap)."""
    problems = []
    for name, plot in plots.items():
        limit = PLOTS[plot.type].max_meters
        fed = [m for m, spec in meters.items() if name in spec.target]
        if limit is not None and len(fed) > limit:
            problems.append(f"plots.{name}: a {plot.type!r} plot shows at most {limit} meter(s), but "
                            f"{', '.join(fed)} target it; give each its own plot")
    return problems


def _shared_name_problems(plots: Mapping[str, PlotSpec], meters: Mapping[str, MeterSpec]) -> list[str]:
    """Names used by both a plot and a meter, where that is ambiguous: ``log(keys=name)`` selects a plot's
    meters or the meter of that name, so a plot and a meter may share a name only when that meter is the one meter
    feeding that plot (``{'lr': line}`` with ``{'lr': ValueMeter -> lr}``): both readings then select the same."""
    problems = []
    for name in sorted(set(plots) & set(meters), key=str):
        fed = [m for m, spec in meters.items() if name in spec.target]
        if fed != [name]:
            others = [m for m in fed if m != name]
            why = (f"meter {name!r} does not feed plot {name!r}" if name not in fed else
                   f"plot {name!r} is also fed by {', '.join(map(repr, others))}")
            problems.append(f"meters.{name}: {name!r} names both a plot and a meter, and {why}: "
                            "log(keys=...) would be ambiguous; expected distinct names, or a plot fed only by the "
                            "meter of its name")
    return problems


class Checked(NamedTuple):
    """The valid new definitions :func:`check_definitions` found, and their meters, built."""

    plots: dict[str, PlotSpec]
    meters: dict[str, MeterSpec]
    built: dict[str, Meter]


def check_definitions(plots_raw: Any, meters_raw: Any, problems: list[str],
                      existing_plots: Mapping[str, PlotSpec] | None = None,
                      existing_meters: Mapping[str, MeterSpec] | None = None, build: bool = True,
                      check_shared: bool = True) -> Checked:
    """Validate ``plots`` and ``meters`` sections together, appending every problem to ``problems``.

    The one place where definitions are checked (``FlexLogger(...)``, ``update_config``, ``load_config`` and
    presets): each spec on its own (type, keys, Visdom opts, meter args), targets, names clashing with existing
    ones, names shared by a plot and a meter, plot capacity. Each meter is built here, which reports bad argument
    values too, and the caller uses the meters built: a meter is built once.

    Args:
        plots_raw, meters_raw: the new definitions (mappings of name -> dict or spec).
        problems: where problems go, each prefixed with its path (``meters.train_loss.type: ...``).
        existing_plots, existing_meters: a logger's definitions, which the new ones join.
        build: build the meters (off for a preset's templates, built with their final arguments when expanded).
        check_shared: check names shared by a plot and a meter (off for a preset's per-phase templates, which may
            share their plot's name: the meter ``loss`` becomes ``train_loss``).
    """
    old_plots, old_meters = dict(existing_plots or {}), dict(existing_meters or {})
    sections = {key: _section(key, raw, problems) for key, raw in (("plots", plots_raw), ("meters", meters_raw))}
    for key, old in (("plots", old_plots), ("meters", old_meters)):
        problems.extend(f"{key}.{name}: {name!r} already defined; remove() it first"
                        for name in sections[key] if name in old)
    checked = Checked({}, {}, {})
    for name, raw in sections["plots"].items():
        try:
            if name not in old_plots:
                checked.plots[name] = parse_plot(name, raw, f"plots.{name}")
        except ConfigError as exc:
            problems.append(Problem.of(exc))
    all_plots = {**old_plots, **checked.plots}
    parsed = _parse_meters(sections["meters"], sections["plots"], all_plots, old_meters, problems, checked,
                           build)
    if check_shared:
        problems.extend(_shared_name_problems(all_plots, {**old_meters, **parsed}))
    problems.extend(_capacity_problems(all_plots, {**old_meters, **checked.meters}))
    return checked


def _section(key: str, raw: Any, problems: list[str]) -> Mapping[str, Any]:
    """The ``plots`` or ``meters`` section ``raw`` as a mapping (empty, with a problem, when it is not one)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        what = "{type, opts}" if key == "plots" else "{type, target, args}"
        problems.append(f"{key}: expected a mapping of {key[:-1]} name -> {what}, "
                        f"but got {type(raw).__name__} {short_repr(raw)}")
        return {}
    return raw


def _parse_meters(section: Mapping[str, Any], plot_section: Mapping[str, Any], all_plots: Mapping[str, PlotSpec],
                  old_meters: Mapping[str, MeterSpec], problems: list[str], checked: Checked,
                  build: bool) -> dict[str, MeterSpec]:
    """Put the meters of ``section`` that parse and target plots of ``all_plots`` into ``checked`` (built, with
    ``build``); return every meter that parses, valid targets or not (for the name check)."""
    parsed: dict[str, MeterSpec] = {}
    for name, raw in section.items():
        if name in old_meters:
            continue
        where = f"meters.{name}"
        try:
            spec = parsed[name] = parse_meter(name, raw, where)
        except ConfigError as exc:
            problems.append(Problem.of(exc))
            continue
        try:
            if all(t in all_plots for t in spec.target if t in plot_section):  # a broken plot: reported
                _check_targets(spec, all_plots, where)
            checked.meters[name] = spec
        except ConfigError as exc:
            problems.append(Problem.of(exc))
        if not build:
            continue
        try:
            checked.built[name] = make_meter(name, spec.type, dict(spec.args))
        except (ConfigError, TypeError, ValueError) as exc:
            problems.append(Problem.of(exc, f"{where}.args: ") if isinstance(exc, ConfigError)
                            else f"{where}.args: {exc}")
    return parsed
