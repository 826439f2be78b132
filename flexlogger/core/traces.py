"""The legend of a FlexLogger's line, scatter and curve plots: each meter's ``display`` style, and the best logged
value of its ``best: min|max`` meters (``test_loss (best 0.213 @ 7)``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flexlogger.config.specs import MeterSpec, PlotSpec, trace_style
from flexlogger.meters import Meter

__all__ = ["STYLED_KINDS", "TraceStyles"]

# plot kinds whose traces a meter's `display` styles (and whose legend shows a `best` meter's best value)
STYLED_KINDS = frozenset({"line", "scatter", "curve"})


class TraceStyles:
    """Best values of the ``best: min|max`` meters, and the styled opts of the plots whose traces they name.

    A logger calls :meth:`configure` whenever its definitions change, :meth:`note_traces` as it collects a styled
    meter's scalars, :meth:`track_best` after collecting a step and :meth:`opts` for each plot it draws.
    """

    def __init__(self) -> None:
        self.best: dict[str, tuple[float, float]] = {}  # trace -> (best value, its step)
        self.modes: dict[str, str] = {}  # trace -> min|max
        self._best_meters: dict[str, str] = {}  # meter -> min|max, from its spec
        self.styled: dict[str, list[str]] = {}  # plot -> its meters with a display or best (line/scatter/curve)
        self._trace_names: dict[str, tuple[str, ...]] = {}  # styled meter -> its traces, as last logged
        self._opts_cache: dict[str, tuple[Any, Mapping[str, Any]]] = {}  # plot -> (what its opts show, opts)

    def configure(self, plots: Mapping[str, PlotSpec], meter_specs: Mapping[str, MeterSpec]) -> None:
        """Take the logger's current definitions: which meters track a best value, which plots are styled."""
        self._best_meters = {name: spec.best for name, spec in meter_specs.items() if spec.best}
        self.styled = {}
        for name, spec in meter_specs.items():
            if spec.display or spec.best:
                for plot in spec.target:
                    if plots[plot].type in STYLED_KINDS:
                        self.styled.setdefault(plot, []).append(name)
        self._opts_cache = {}

    @property
    def tracking(self) -> bool:
        """Whether a meter tracks its best value."""
        return bool(self._best_meters)

    def note_traces(self, plot: str, meter: str, traces: tuple[str, ...]) -> None:
        """The traces ``meter`` drew on ``plot`` (styled in the legend when the plot is styled)."""
        if plot in self.styled:
            self._trace_names[meter] = traces

    def track_best(self, meters: Mapping[str, Meter], step: float) -> bool:
        """Keep each ``best: min|max`` meter's best logged value and its step (NaN never counts; a tie keeps the
        earlier step). Returns whether a best value improved."""
        improved = False
        for name, meter in meters.items():
            mode = self._best_meters.get(name)
            if mode is None or meter.count == 0 or "scalar" not in meter.views:
                continue
            for trace, value in meter.scalars().items():
                value = float(value)
                if math.isnan(value):
                    continue
                self.modes[trace] = mode
                old = self.best.get(trace)
                if old is None or (value < old[0] if mode == "min" else value > old[0]):
                    self.best[trace] = (value, step)
                    improved = True
        return improved

    def opts(self, plot: str, spec: PlotSpec, meter_specs: Mapping[str, MeterSpec]) -> Mapping[str, Any]:
        """The plot's opts, with each styled trace's ``display`` and its best value in its legend name, as
        ``opts['traceopts']['plotly'][trace]`` (which Visdom's client applies to the trace of that name). The same
        object while nothing changes (the run record declares a plot's opts only when they change)."""
        meters = self.styled.get(plot)
        if not meters:
            return spec.opts
        styles: dict[str, dict[str, Any]] = {}
        for name in meters:
            style = trace_style(meter_specs[name].display, spec.type)
            for trace in self._trace_names.get(name, (name,)):
                styles[trace] = dict(style)
                best = self.best.get(trace)
                if best is not None:
                    styles[trace]["name"] = f"{trace} (best {best[0]:.4g} @ {best[1]:g})"
        key = repr(sorted(styles.items()))
        cached = self._opts_cache.get(plot)
        if cached is not None and cached[0] == key:
            return cached[1]
        given = dict(spec.opts)
        traceopts = dict(given.get("traceopts") or {})
        plotly = {**dict(traceopts.get("plotly") or {})}
        for trace, style in styles.items():
            plotly[trace] = {**dict(plotly.get(trace) or {}), **style}
        opts = MappingProxyType({**given, "traceopts": {**traceopts, "plotly": plotly}})
        self._opts_cache[plot] = (key, opts)
        return opts
