"""TooledModelLogger: a :class:`~flexlogger.TooledModel` whose statistics go to Visdom through a FlexLogger.

Example:
    >>> Stat = flexlogger.get_preset_logger('loss+acc', env='mnist')
    >>> TMLogger = TooledModelLogger(model, logger=Stat)     # a window per statistic, a trace per layer
    >>> for inputs, targets in data:
    ...     outputs = model(inputs)
    ...     F.mse_loss(outputs, targets).backward()
    ...     optim.step()
    ...     TMLogger.step(log=True)                          # x = the step index (0, 1, 2, ...)

Meters are :class:`~flexlogger.meters.ValueMeter` named ``<layer>.<Group>.<stat>`` (e.g. ``0.Weights.std``).

What the default draws, and why (``mode='by_metric'``, ``stats=('std', 'update_ratio')``, ``groups=('Outputs',
'Grad_out', 'Weights', 'Weight_grad')``): a window per ``<Group>.<stat>`` with a trace per layer, so that each
window holds one quantity of one kind, whose layers can be compared. Spreads, norms and ratios span orders of
magnitude from layer to layer (a gradient's spread near 1e-4, an output's near 1), so those windows have a log y
axis (``LOG_STATS``); signed statistics (``mean``, ``min``, ``max``) keep a linear one. The legend sits under the
plot. Histogram windows (``histograms=``) are small and come after the line windows. With ``logger=`` (or
windows added with ``TMLogger.logger.update_config``) the model's windows are drawn after the logger's own:
Visdom shows windows in the order they are first drawn, and the loss should come first (see ``hold``).

``mode='by_layer'`` (a window per layer, its groups' statistics side by side) is also available. Histogram
windows are named ``<layer>.<Group>.histogram`` and fed by meters ``<layer>.<Group>.values``.

With a :class:`~flexlogger.model.recorder.FlightRecorder` (``recorder=``), each event is drawn as a layer x step heatmap
per recorder statistic (windows ``recorder.<stat>``: rows the layers in forward order, columns the buffered steps up
to the event), listed in a text window ``recorder.events``, appended to ``anomalies.jsonl`` in the run folder (and
listed, without its history, under ``anomalies`` in ``summary.json``), and the full statistics of the ``after``
steps that follow are drawn whatever ``log`` says.
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import numpy as np
from torch import nn

from flexlogger.config.options import KEYWORD_SYNONYMS, MODEL_LOGGER_MODES, check_options, raise_problems
from flexlogger.core.logger import FlexLogger, LoggerOptions, Released
from flexlogger.errors import UnknownNameError, short_repr, unknown_name_message
from flexlogger.io import append_line
from flexlogger.model.recorder import RECORDER_STATS, AnomalyEvent, FlightRecorder
from flexlogger.model.tooled import GROUPS, Selector, Stats, TooledModel
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.legible import bar_width, histogram_title, legend_rows

__all__ = ["ANOMALIES", "DEFAULT_GROUPS", "DEFAULT_STATS", "LOG_STATS", "MODES", "RECORDER_WINDOWS",
           "TooledModelLogger", "model_statistics"]

MODES: tuple[str, ...] = MODEL_LOGGER_MODES
DEFAULT_STATS: tuple[str, ...] = ("std", "update_ratio")
DEFAULT_GROUPS: tuple[str, ...] = ("Outputs", "Grad_out", "Weights", "Weight_grad")
# never negative and spread over orders of magnitude from layer to layer: drawn on a log axis in by_metric windows
LOG_STATS: frozenset[str] = frozenset({"std", "norm", "abs_mean", "update_ratio", "snr"})
RECORDER_WINDOWS: tuple[str, ...] = (*(f"recorder.{s}" for s in RECORDER_STATS), "recorder.events")
ANOMALIES = "anomalies.jsonl"  # in the run folder: one JSON line per flight-recorder event
EVENTS_SHOWN = 20  # the text window lists the latest events
STEP_LABEL = "training step"  # the x of every model window: TooledModel.step() calls, one per batch, not epochs
SUMMARY_KEYS: tuple[str, ...] = ("step", "layer", "stat", "value", "rule", "rank", "detected_at")
_ACTIVATION_GROUPS = frozenset({"Inputs", "Outputs", "Grad_in", "Grad_out"})
# line windows: a crowded legend (a trace per entry) in rows between the title and the plot (legible.py places it,
# from the names), the window taller by the legend's rows so that the plot keeps its height; all of a logger's line
# windows as tall as the one with the most rows, so that the page's grid lays them out in whole rows (visdom 0.3's
# grid otherwise packs a small histogram window into a gap beside a shorter one)
_METRIC_HEIGHT = 300  # Visdom's default window height, px
# recorder heatmaps: layer names and steps are labels, not numbers (layers '0', '2', '6' would be placed as
# numbers), the first layer on top, as in the model
_HEATMAP_LAYOUT: dict[str, Any] = {"layoutopts": {"plotly": {
    "xaxis": {"type": "category", "title": {"text": STEP_LABEL}, "automargin": True},
    "yaxis": {"type": "category", "title": {"text": "layer (forward order)"}, "autorange": "reversed",
              "automargin": True}}}}
_HISTOGRAM_SIZE = {"width": 260, "height": 230, "margintop": 40, "marginbottom": 30, "marginright": 10,
                   "marginleft": 40}
# histogram windows: all of a logger's as wide as the widest title bar among them, steps up to 999,999 (Visdom
# 0.3 widens a window narrower than its title bar past its grid cell, over its neighbour: legible.bar_width); equal
# widths pack into whole rows
_STEP_ROOM = 999_999


class TooledModelLogger:
    """Per-layer statistics of a model, drawn in Visdom windows from the training loop.

    Args:
        model: the model to watch.
        logger: a :class:`~flexlogger.core.logger.FlexLogger` to add the model's plots and meters to (same run, env,
            record and sender thread as your own metrics). None: a FlexLogger of its own is made from
            ``logger_options``, and closed by :meth:`close`.
        mode: ``'by_metric'`` (a window per group statistic, a trace per layer; the default) or ``'by_layer'``
            (a window per layer, a trace per group statistic; see the module docstring for why ``by_metric`` is the
            default).
        stats, groups, params, layers, every, anomaly: as for :class:`~flexlogger.model.tooled.TooledModel`, except the
            defaults: ``stats=('std', 'update_ratio')`` and ``groups=('Outputs', 'Grad_out', 'Weights',
            'Weight_grad')`` (the inputs and the gradients into a layer are the outputs and output gradients of
            the layer before; ask for them with ``groups=flexlogger.model.tooled.GROUPS``).
        histograms: histogram windows of parameter groups: ``True`` for ``Weights`` and ``Weight_grad``, or a list
            of parameter group names. The bin counts are computed on the device (TooledModel): only ``bins``
            numbers per window reach the host, the run record and the server, whatever the size of the model.
        bins: number of histogram bins.
        recorder: a :class:`~flexlogger.model.recorder.FlightRecorder` for the TooledModel; its events are drawn,
            listed and written to the run folder (see the module docstring). Its meter rules
            (``{'meter': 'train_loss', 'spike': 3}``) watch the values the logger draws at each ``log()``.
        hold: the most logged steps held back until the logger's other windows have been drawn once, so that
            they come first in the env (held steps are drawn then, in order, nothing is lost); ``0`` draws at
            once. Only when the logger has windows of its own (``logger=``, or ``logger.update_config``).
        **logger_options: the options of the :class:`~flexlogger.core.logger.FlexLogger` it makes (``run``, ``env``,
            ``uid``, ``server``, ``port``, ``log_dir``, ...; see ``flexlogger.config.options``); none may be given with
            ``logger=``.

    Attributes:
        tooled: the :class:`~flexlogger.model.tooled.TooledModel` that records the statistics.
        logger: the :class:`~flexlogger.core.logger.FlexLogger` that owns the meters and windows.
        recorder: the flight recorder, or None.

    Raises:
        ConfigError: a bad argument (the message names it and lists the valid choices); the model is left without
            hooks.

    Example:
        >>> Stat = flexlogger.get_preset_logger('loss+acc', env='mnist')
        >>> TMLogger = TooledModelLogger(model, logger=Stat)     # one run: one folder, one sender, one env
    """

    def __init__(self, model: nn.Module, logger: FlexLogger | None = None, *, mode: str = "by_metric",
                 stats: Sequence[Any] = DEFAULT_STATS, groups: Sequence[str] = DEFAULT_GROUPS,
                 params: Sequence[str] = (), layers: Selector | None = None, every: int = 1,
                 histograms: bool | Sequence[str] = False, bins: int = 30, anomaly: bool = True,
                 recorder: FlightRecorder | None = None, hold: int = 100,
                 **logger_options: Unpack[LoggerOptions]) -> None:
        caller = "TooledModelLogger()"
        problems = check_options({"mode": mode, "hold": hold}, caller, owners=("model_logger",))
        if logger is not None and not isinstance(logger, FlexLogger):
            problems.append(f"expected `logger` to be a FlexLogger or None, but got {type(logger).__name__} "
                            f"{short_repr(logger)}")
        check_options({k: v for k, v in logger_options.items() if k not in ("run", "sinks")}, caller,
                      problems=problems, also=_keywords(), synonyms=KEYWORD_SYNONYMS)
        if logger is not None and logger_options:
            problems.append(f"{', '.join(sorted(logger_options))}: options of a FlexLogger, but a logger was given "
                            "(logger=); expected them on that logger, or no logger=")
        raise_problems(caller, problems)
        self.mode = mode
        self.histogram_groups = _histogram_groups(model, groups, params, histograms)
        self.tooled = TooledModel(model, stats=stats, groups=groups, params=params, layers=layers, every=every,
                                  histograms=self.histogram_groups, bins=bins, anomaly=anomaly, recorder=recorder)
        self.recorder = recorder
        self.hold = hold
        self._owns_logger = logger is None
        self._removers: list[Callable[[], None]] = []
        try:
            plots, meters = self._definitions(bins)
            if logger is None:
                logger = FlexLogger.__new__(FlexLogger)  # its errors name TooledModelLogger(), the call made
                o = logger_options
                logger._init(caller, _keywords(), plots, meters, o.get("run"), o.get("strict", True),
                             o.get("sinks", ()), o.get("distributed"),
                             {k: v for k, v in o.items() if k not in _LOGGER_KEYWORDS})
            else:
                logger.update_config(plots, meters)
            if recorder is not None:
                logger.run.claim(self, RECORDER_WINDOWS)
        except BaseException:
            self.tooled.remove()
            if logger is not None and self._owns_logger:
                logger.close()
            raise
        self.logger: FlexLogger = logger
        self._own_plots = list(plots)
        self._own_set = frozenset(plots)
        self._last_step: int | None = None
        self._held: list[tuple[int, dict[str, Any]]] = []  # logged steps waiting for the logger's own first draw
        self._unlogged: dict[str, Any] | None = None  # the last recorded step, not drawn
        self._user_drawn = False
        self._events: list[AnomalyEvent] = []
        self._closed = False
        self._removers.append(logger.observe(self._observed))
        if recorder is not None:
            recorder.listeners.append(self._on_event)
            self._removers.append(lambda: recorder.listeners.remove(self._on_event)
                                  if self._on_event in recorder.listeners else None)

    def _definitions(self, bins: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Line windows first, then the (small) histogram windows: Visdom keeps the order of first drawing."""
        tm = self.tooled
        plots: dict[str, Any] = {}
        meters: dict[str, Any] = {}
        hist_plots: dict[str, Any] = {}
        hist_meters: dict[str, Any] = {}
        modules = tm.modules
        for layer, groups in tm.expected_groups().items():
            kind = type(modules[layer]).__name__
            for group in groups:
                for stat in tm.stats:
                    if stat == "update_ratio" and (group in _ACTIVATION_GROUPS or group.endswith("_grad")):
                        continue
                    if self.mode == "by_layer":
                        plot = layer
                        opts: dict[str, Any] = {"title": f"{layer} ({kind})", "xlabel": STEP_LABEL}
                    else:
                        plot = f"{group}.{stat}"
                        log = stat in LOG_STATS
                        opts = {"title": f"{group} {stat}" + (" (log scale)" if log else ""), "xlabel": STEP_LABEL,
                                "ylabel": stat, **({"ytype": "log"} if log else {})}
                    plots.setdefault(plot, {"type": "line", "opts": opts})
                    meters[f"{layer}.{group}.{stat}"] = {"type": "ValueMeter", "target": plot}
            for group in self.histogram_groups:
                if group in groups:
                    plot = f"{layer}.{group}.histogram"
                    hist_plots[plot] = {"type": "histogram", "opts": {
                        "title": f"{layer} ({kind}) {group}", "numbins": bins, **_HISTOGRAM_SIZE}}
                    hist_meters[f"{layer}.{group}.values"] = {"type": "ValueMeter", "target": plot}
        traces_of: dict[str, list[str]] = {plot: [] for plot in plots}
        for name, spec in meters.items():
            traces_of[spec["target"]].append(name)
        height = _METRIC_HEIGHT + 20 * max((legend_rows(names) for names in traces_of.values()), default=0)
        for spec in plots.values():
            spec["opts"]["height"] = height
        width = max([_HISTOGRAM_SIZE["width"], *(bar_width(histogram_title(spec["opts"]["title"], _STEP_ROOM))
                                                 for spec in hist_plots.values())])
        for spec in hist_plots.values():
            spec["opts"]["width"] = width
        return {**plots, **hist_plots}, {**meters, **hist_meters}

    # ---------------------------------------------------------------------------------------------- the loop
    def step(self, log: bool = False) -> Stats | None:
        """End the current step: move its statistics into the meters and, with ``log=True``, draw them at
        ``x=<step index>``. Steps that ``every`` skips add nothing. The ``after`` steps of a flight-recorder event
        are drawn whatever ``log`` is.

        Returns:
            The statistics of the step (as :meth:`TooledModel.get_dict`), or ``None`` for a skipped step.
        """
        tm = self.tooled
        index = tm.step_index
        after = tm.after_left > 0
        stats = tm.step()
        if stats is None:
            return None
        meters = self.logger.meters
        values: dict[str, Any] = {}
        for layer, groups in stats.items():
            for group, row in groups.items():
                for stat, v in row.items():
                    name = f"{layer}.{group}.{stat}"
                    if name in meters:
                        values[name] = v
        if self.histogram_groups:  # bin counts made on the device with the statistics' one transfer
            for layer, groups_hist in tm.get_histograms().items():
                for group, hist in groups_hist.items():
                    name = f"{layer}.{group}.values"
                    if name in meters:
                        values[name] = hist
        self._last_step = index
        # A step's values reach the meters only when they are drawn (or asked for): a `Stat.log(epoch)` of a
        # shared logger then never draws the model's statistics at x=epoch among its own.
        self._unlogged = None
        if not (log or after):
            self._unlogged = values
        elif self._holding():
            self._held.append((index, values))
            if len(self._held) > self.hold:
                self._release()
        else:
            self.logger.add(values)
            self._draw(index)
        return stats

    def _own_drawn(self) -> list[str]:
        """The model's windows that the logger still has."""
        plots = self.logger.plots
        return [p for p in self._own_plots if p in plots]

    def _draw(self, index: int) -> None:
        self.logger.log(step=index, keys=self._own_drawn())

    def _push(self) -> None:
        """Put the last step that was not drawn into the meters (for :meth:`log` and :meth:`value`)."""
        if self._unlogged is not None:
            self.logger.add(self._unlogged)
            self._unlogged = None

    def _holding(self) -> bool:
        """Whether logged steps wait for the logger's own windows to be drawn first."""
        if self._user_drawn or not self.hold:
            return False
        return any(p not in self._own_set for p in self.logger.plots)

    def _release(self) -> None:
        """Draw the held steps, in order, and stop holding (from this logger's own calls: step(), flush(), close())."""
        self._user_drawn = True
        held, self._held = self._held, []
        for index, values in held:
            self.logger.add(values)
            self._draw(index)

    def _observed(self, step: float, series: dict[str, float], plots: list[str]) -> list[Released]:
        """Called after every step the logger draws: feeds the recorder's meter rules and, once the logger has drawn
        a window of its own, returns the held steps for that ``log()`` to draw next (in order)."""
        if self.recorder is not None:
            for rule in self.recorder.rules:
                if rule.meter is not None and rule.meter in series:
                    self.recorder.observe(rule.meter, series[rule.meter], step)  # events report the logged step
        if self._user_drawn or not any(p not in self._own_set for p in plots):
            return []
        self._user_drawn = True
        held, self._held = self._held, []
        return [(index, values, self._own_drawn()) for index, values in held]

    # ---------------------------------------------------------------------------------------- the recorder
    def _on_event(self, event: AnomalyEvent) -> None:
        """A flight-recorder event: heatmaps of the buffered steps, the events window, ``anomalies.jsonl``."""
        self._events.append(event)
        run = self.logger.run
        if run.closed:
            return
        updates = [*self._heatmaps(event, run.next_seq), self._events_update(event.step, run.next_seq())]
        try:
            run.write(updates)
        finally:
            self._write_event(event)
            # summary.json: where, when and what of every event so far (the history is in anomalies.jsonl)
            run.add_to_summary("anomalies", [_finite({k: e.to_dict()[k] for k in SUMMARY_KEYS})
                                             for e in self._events])

    def _heatmaps(self, event: AnomalyEvent, seq: Callable[[], int]) -> list[Update]:
        """A layer x step heatmap per recorder statistic: rows the layers in forward order, columns the steps."""
        history = event.history
        if not history.steps or not history.layers or self.recorder is None:
            return []
        position = {name: i for i, name in enumerate(history.layers)}
        order = [n for n in self.recorder.layer_order if n in position]
        rows = [position[n] for n in order]
        first, last = history.steps[0], history.steps[-1]
        updates = []
        for stat in RECORDER_STATS:
            table = history.stats.get(stat)
            if not table:
                continue
            matrix = np.asarray(table, dtype=np.float64).T[rows]  # steps x layers -> layers x steps
            opts = {"title": f"recorder {stat}, steps {first}-{last}", "rownames": order,
                    "columnnames": [str(s) for s in history.steps], "colormap": "Viridis", **_HEATMAP_LAYOUT}
            plot = f"recorder.{stat}"
            updates.append(Update(plot, "heatmap", event.step, {plot: matrix}, opts, seq()))
        return updates

    def _events_update(self, step: int, seq: int) -> Update:
        shown = self._events[-EVENTS_SHOWN:]
        start = len(self._events) - len(shown)
        data = {f"#{start + i + 1}": e.message() for i, e in enumerate(shown)}
        opts = {"title": f"flight recorder events ({len(self._events)})", "width": 560, "height": 260}
        return Update("recorder.events", "text", step, data, opts, seq)

    def _write_event(self, event: AnomalyEvent) -> None:
        """Append the event to ``anomalies.jsonl`` in the run folder: one line, one ``write`` (NaN/Inf as null)."""
        folder = self.logger.run.dir
        if folder is None:
            return
        line = (json.dumps(_finite(event.to_dict()), allow_nan=False, separators=(",", ":")) + "\n").encode()
        try:
            append_line(folder / ANOMALIES, line)
        except OSError as exc:  # never stop training for the record
            warnings.warn(f"flight recorder: could not append the event of step {event.step} to "
                          f"{folder / ANOMALIES}: {exc}", RuntimeWarning, stacklevel=2)

    @property
    def events(self) -> list[AnomalyEvent]:
        """The flight-recorder events drawn so far."""
        return list(self._events)

    def add(self, values: Mapping[str, Any]) -> None:
        """Feed meters, as :meth:`FlexLogger.add` (for meters added with ``logger.update_config``)."""
        self.logger.add(values)

    def log(self, step: float | None = None, keys: str | Iterable[str] | None = None, reset: bool = True) -> None:
        """As :meth:`FlexLogger.log`; ``step=None`` logs at the last recorded step's index (if any)."""
        if step is None:
            step = self._last_step
        self._push()
        self.logger.log(step=step, keys=keys, reset=reset)

    def reset(self, keys: str | Iterable[str] | None = None) -> None:
        """As :meth:`FlexLogger.reset`."""
        self.logger.reset(keys)

    def value(self, keys: str | Iterable[str] | None = None) -> dict[str, Any]:
        """As :meth:`FlexLogger.value` (the model's meters hold the last recorded step)."""
        self._push()
        return self.logger.value(keys)

    # ------------------------------------------------------------------------------------------- inspection
    @property
    def env(self) -> str:
        return self.logger.env

    @property
    def windows(self) -> dict[str, str]:
        """``{plot: Visdom window id}``, as :attr:`FlexLogger.windows`, and the flight recorder's windows."""
        windows = self.logger.windows
        if self.recorder is not None:
            windows.update({p: self.logger.window_id(p) for p in RECORDER_WINDOWS})
        return windows

    def get_definitions(self) -> dict[str, list[str]]:
        """``{plot: [meters]}``, as :meth:`FlexLogger.get_definitions`."""
        return self.logger.get_definitions()

    def get_dict(self) -> Stats:
        """The statistics, as :meth:`TooledModel.get_dict`."""
        return self.tooled.get_dict()

    def table(self, **kwargs: Any) -> str:
        """Print and return the statistics table, as :meth:`TooledModel.table`."""
        return self.tooled.table(**kwargs)

    # ---------------------------------------------------------------------------------------------- closing
    def flush(self, timeout: float | None = None) -> int:
        """Draw the held steps (if any), then as :meth:`FlexLogger.flush`: wait until every logged point is
        delivered; return how many are pending."""
        if self._held and not self.logger.closed:
            self._release()
        return self.logger.flush(timeout)

    def close(self, error: BaseException | None = None) -> None:
        """Draw the held steps, remove the hooks from the model and close the logger if it made it (flushing it);
        a logger given with ``logger=`` stays open for its own metrics. Closing twice is harmless.

        Args:
            error: the exception that ends the training, if any (see :meth:`FlexLogger.close`).
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._held and not self.logger.closed:
                self._release()
        finally:
            self.tooled.remove()
            for remove in self._removers:
                remove()
            if self.recorder is not None:
                self.logger.run.release(self, RECORDER_WINDOWS)
            if self._owns_logger:
                self.logger.close(error)

    def __enter__(self) -> TooledModelLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exc)

    def __repr__(self) -> str:
        return (f"TooledModelLogger(mode={self.mode!r}, env={self.env!r}, {len(self._own_plots)} windows, "
                f"{self.tooled!r})")


def model_statistics(meters: Iterable[str]) -> set[str]:
    """The meters among ``meters`` that a TooledModelLogger names: ``<layer>.<group>.<stat>`` (and a histogram's
    ``<layer>.<group>.values``), whose group is one of ``GROUPS`` (``Outputs``, ``Weight_grad``, ...), a
    parameter's gradient (``bias_grad``) or a parameter whose gradient group is there too (``bias``). Tools that
    summarise a run (``flexlogger compare --table``) leave these per-layer series out unless asked for them.

    Example:
        >>> sorted(model_statistics(['train_loss', 'fc1.Grad_out.std', 'fc1.bias.norm', 'fc1.bias_grad.norm']))
        ['fc1.Grad_out.std', 'fc1.bias.norm', 'fc1.bias_grad.norm']
    """
    names = list(meters)
    parts = {name: name.rsplit(".", 2) for name in names}
    grads = {(p[0], p[1][: -len("_grad")]) for p in parts.values() if len(p) == 3 and p[1].endswith("_grad")}
    return {name for name, p in parts.items()
            if len(p) == 3 and p[0] and p[2] and (p[1] in GROUPS or p[1].endswith("_grad") or (p[0], p[1]) in grads)}


_LOGGER_KEYWORDS = frozenset({"run", "strict", "sinks", "distributed"})  # FlexLogger's own, beside the run's options


def _keywords() -> tuple[str, ...]:
    """TooledModelLogger's keyword arguments, as its signature declares them, then the FlexLogger's own."""
    params = inspect.signature(TooledModelLogger.__init__).parameters.values()
    return (*(p.name for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD), "run", "sinks")


def _finite(value: Any) -> Any:
    """``value`` with NaN/Inf floats as None (JSON has no NaN), tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _histogram_groups(model: nn.Module, groups: Sequence[str], params: Sequence[str],
                      histograms: bool | Sequence[str]) -> tuple[str, ...]:
    """The parameter groups that get histogram windows (checked before any hook is attached)."""
    params = (params,) if isinstance(params, str) else tuple(params)
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    param_groups = tuple(g for g in (*groups, *params, *(f"{p}_grad" for p in params))
                         if g not in _ACTIVATION_GROUPS)
    if histograms is True:
        return tuple(g for g in ("Weights", "Weight_grad") if g in param_groups)
    if histograms is False:
        return ()
    chosen = (histograms,) if isinstance(histograms, str) else tuple(histograms)
    for g in chosen:
        if g not in param_groups:
            raise UnknownNameError("histograms: " + unknown_name_message("parameter group", g, param_groups)
                                   + " (activations are not kept until step(), so only parameter groups "
                                     "have histogram windows)")
    return chosen
