"""TooledModelLogger: a :class:`~flexlogger.tooled.TooledModel` whose statistics go to Visdom through a FlexLogger.

Example:
    >>> TMLogger = TooledModelLogger(model)                  # a line window per layer, mean and std of each group
    >>> for inputs, targets in data:
    ...     outputs = model(inputs)
    ...     F.mse_loss(outputs, targets).backward()
    ...     optim.step()
    ...     TMLogger.step(log=True)                          # x = the step index (0, 1, 2, ...)

Meters are :class:`~flexlogger.meters.ValueMeter` named ``<layer>.<Group>.<stat>`` (e.g. ``0.Weights.mean``).
With ``mode='by_layer'`` each layer has a line window named after it whose traces are its groups' statistics;
with ``mode='by_metric'`` each ``<Group>.<stat>`` has a line window whose traces are the layers. Histogram
windows (``histograms=True``) are named ``<layer>.<Group>.histogram`` and fed by meters ``<layer>.<Group>.values``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from torch import nn

from .errors import ConfigError, UnknownNameError, short_repr, unknown_name_message
from .logger import FlexLogger
from .options import check_options, raise_problems
from .tooled import GROUPS, Selector, Stats, TooledModel

__all__ = ["MODES", "TooledModelLogger"]

MODES: tuple[str, ...] = ("by_layer", "by_metric")
_ACTIVATION_GROUPS = frozenset({"Inputs", "Outputs", "Grad_in", "Grad_out"})


class TooledModelLogger:
    """Per-layer statistics of a model, drawn in Visdom windows from the training loop.

    Args:
        model: the model to watch.
        logger: a :class:`~flexlogger.logger.FlexLogger` to add the model's plots and meters to (same run, env,
            record and sender thread as your own metrics). None: a FlexLogger of its own is made from
            ``flexlogger_kwargs``, and closed by :meth:`close`.
        mode: ``'by_layer'`` (a window per layer, a trace per group statistic) or ``'by_metric'`` (a window per
            group statistic, a trace per layer).
        stats, groups, params, layers, every, anomaly: as for :class:`~flexlogger.tooled.TooledModel`.
        histograms: histogram windows of parameter groups: ``True`` for ``Weights`` and ``Weight_grad``, or a list
            of parameter group names. The bin counts are computed on the device (TooledModel): only ``bins``
            numbers per window reach the host, the run record and the server, whatever the size of the model.
        bins: number of histogram bins.
        **flexlogger_kwargs: passed to the :class:`~flexlogger.logger.FlexLogger` it makes (``run``, ``env``,
            ``uid``, ``server``, ``port``, ``log_dir``, ...); none may be given with ``logger=``.

    Attributes:
        tooled: the :class:`~flexlogger.tooled.TooledModel` that records the statistics.
        logger: the :class:`~flexlogger.logger.FlexLogger` that owns the meters and windows.

    Raises:
        ConfigError: a bad argument (the message lists the valid choices); the model is left without hooks.

    Example:
        >>> Stat = flexlogger.get_preset_logger('loss+acc', env='mnist')
        >>> TMLogger = TooledModelLogger(model, logger=Stat)     # one run: one folder, one sender, one env
    """

    def __init__(self, model: nn.Module, logger: FlexLogger | None = None, mode: str = "by_layer",
                 stats: Sequence[str] = ("mean", "std"), groups: Sequence[str] = GROUPS, params: Sequence[str] = (),
                 layers: Selector | None = None, every: int = 1, histograms: bool | Sequence[str] = False,
                 bins: int = 30, anomaly: bool = True, **flexlogger_kwargs: Any) -> None:
        caller = "TooledModelLogger()"
        if mode not in MODES:
            raise UnknownNameError(unknown_name_message("mode", mode, MODES))
        if logger is not None and not isinstance(logger, FlexLogger):
            raise ConfigError(f"{caller}: expected `logger` to be a FlexLogger or None, but got "
                              f"{type(logger).__name__} {short_repr(logger)}")
        problems = check_options({k: v for k, v in flexlogger_kwargs.items() if k not in ("run", "sinks")}, caller)
        if logger is not None and flexlogger_kwargs:
            problems.append(f"{', '.join(sorted(flexlogger_kwargs))}: options of a FlexLogger, but a logger was given "
                            "(logger=); expected them on that logger, or no logger=")
        raise_problems(caller, problems)
        self.mode = mode
        self.histogram_groups = _histogram_groups(model, groups, params, histograms)
        self.tooled = TooledModel(model, stats=stats, groups=groups, params=params, layers=layers, every=every,
                                  histograms=self.histogram_groups, bins=bins, anomaly=anomaly)
        self._owns_logger = logger is None
        try:
            plots, meters = self._definitions(bins)
            if logger is None:
                logger = FlexLogger(plots, meters, **flexlogger_kwargs)
            else:
                logger.update_config(plots, meters)
        except BaseException:
            self.tooled.remove()
            raise
        self.logger: FlexLogger = logger
        self._own_plots = list(plots)
        self._last_step: int | None = None

    def _definitions(self, bins: int) -> tuple[dict[str, Any], dict[str, Any]]:
        tm = self.tooled
        plots: dict[str, Any] = {}
        meters: dict[str, Any] = {}
        modules = tm.modules
        for layer, groups in tm.expected_groups().items():
            kind = type(modules[layer]).__name__
            for group in groups:
                for stat in tm.stats:
                    if stat == "update_ratio" and (group in _ACTIVATION_GROUPS or group.endswith("_grad")):
                        continue
                    if self.mode == "by_layer":
                        plot, title = layer, f"{layer} ({kind})"
                    else:
                        plot, title = f"{group}.{stat}", f"{group} {stat}"
                    plots.setdefault(plot, {"type": "line", "opts": {"title": title, "xlabel": "step"}})
                    meters[f"{layer}.{group}.{stat}"] = {"type": "ValueMeter", "target": plot}
            for group in self.histogram_groups:
                if group in groups:
                    plot = f"{layer}.{group}.histogram"
                    plots[plot] = {"type": "histogram",
                                   "opts": {"title": f"{layer} ({kind}) {group}", "numbins": bins}}
                    meters[f"{layer}.{group}.values"] = {"type": "ValueMeter", "target": plot}
        return plots, meters

    # ---------------------------------------------------------------------------------------------- the loop
    def step(self, log: bool = False) -> Stats | None:
        """End the current step: move its statistics into the meters and, with ``log=True``, draw them at
        ``x=<step index>``. Steps that ``every`` skips add nothing.

        Returns:
            The statistics of the step (as :meth:`TooledModel.get_dict`), or ``None`` for a skipped step.
        """
        tm = self.tooled
        index = tm.step_index
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
        self.logger.add(values)
        self._last_step = index
        if log:
            self.logger.log(step=index, keys=[p for p in self._own_plots if p in self.logger.plots])
        return stats

    def add(self, values: Mapping[str, Any]) -> None:
        """Feed meters, as :meth:`FlexLogger.add` (for meters added with :meth:`add_meter`)."""
        self.logger.add(values)

    def log(self, step: float | None = None, keys: str | Iterable[str] | None = None, reset: bool = True) -> None:
        """As :meth:`FlexLogger.log`; ``step=None`` logs at the last recorded step's index (if any)."""
        if step is None:
            step = self._last_step
        self.logger.log(step=step, keys=keys, reset=reset)

    def reset(self, keys: str | Iterable[str] | None = None) -> None:
        """As :meth:`FlexLogger.reset`."""
        self.logger.reset(keys)

    def value(self, keys: str | Iterable[str] | None = None) -> dict[str, Any]:
        """As :meth:`FlexLogger.value`."""
        return self.logger.value(keys)

    def add_plot(self, name: str, spec: Mapping[str, Any]) -> None:
        """Add a window of your own, as :meth:`FlexLogger.add_plot`."""
        self.logger.add_plot(name, spec)

    def add_meter(self, name: str, spec: Mapping[str, Any]) -> None:
        """Add a meter of your own, as :meth:`FlexLogger.add_meter`."""
        self.logger.add_meter(name, spec)

    # ------------------------------------------------------------------------------------------- inspection
    @property
    def env(self) -> str:
        return self.logger.env

    @property
    def windows(self) -> dict[str, str]:
        """``{plot: Visdom window id}``, as :attr:`FlexLogger.windows`."""
        return self.logger.windows

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
        """As :meth:`FlexLogger.flush`: wait until every logged point is delivered; return how many are pending."""
        return self.logger.flush(timeout)

    def close(self) -> None:
        """Remove the hooks from the model and close the logger if it made it (flushing it); a logger given with
        ``logger=`` stays open for its own metrics. Closing twice is harmless."""
        self.tooled.remove()
        if self._owns_logger:
            self.logger.close()

    def __enter__(self) -> TooledModelLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"TooledModelLogger(mode={self.mode!r}, env={self.env!r}, {len(self._own_plots)} windows, "
                f"{self.tooled!r})")


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
