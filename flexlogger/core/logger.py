"""FlexLogger: owns the meters and the windows they feed, and routes values from ``add()`` to its run.

Data flows one way: ``add()`` -> meter state -> ``log()`` -> one :class:`~flexlogger.sinks.base.Update` per
window -> the :class:`~flexlogger.core.run.Run` -> its sinks (Visdom in the background, the run record on disk). The
logger never formats HTTP and a sink never reads a meter.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from tabulate import tabulate

from flexlogger.closing import ClosedByWith
from flexlogger.config.config import config_dict, read_config, save_config
from flexlogger.config.options import GIVEN_RUN, RunOptions, check_options, raise_problems
from flexlogger.config.presets import DEFAULT_PHASES, expand_presets
from flexlogger.config.registry import PLOTS, view_for
from flexlogger.config.specs import Checked, MeterSpec, PlotSpec, check_definitions
from flexlogger.core import distributed as distributed_
from flexlogger.core.definitions import Definitions
from flexlogger.core.plots import Histogram, bin_values
from flexlogger.core.run import Run
from flexlogger.core.traces import TraceStyles
from flexlogger.errors import (
    ArgumentError,
    ConfigError,
    InvalidConfigError,
    LoggerClosedError,
    MeterInputError,
    UnknownKeyError,
    short_repr,
    unknown_name_message,
)
from flexlogger.experiment.calls import RecordCalls
from flexlogger.experiment.forward import ShowsRecordCalls
from flexlogger.meters import Meter
from flexlogger.meters.convert import describe
from flexlogger.sinks.base import Sink, Update
from flexlogger.sinks.interrupts import HOLD


class LoggerOptions(RunOptions, total=False):
    """A FlexLogger's keyword options besides its plots and meters, typed for the ``**options`` of
    :class:`~flexlogger.model.logger.TooledModelLogger`."""

    run: Run | None
    strict: bool
    sinks: Iterable[Sink]
    distributed: bool | None


Released = tuple[float, Mapping[str, Any], list[str]]
"""A step an observer releases: ``(step, values for add(), keys to log)``."""
Observer = Callable[[float, dict[str, float], list[str]], Iterable[Released] | None]
"""``callback(step, series, plots)``, called after every step ``log()`` draws (see :meth:`FlexLogger.observe`)."""


def _of_run(name: str, doc: str | None = None) -> Any:
    """A read-only logger attribute that is its run's ``name`` (``Stat.env`` is ``Stat.run.env``)."""
    return property(lambda logger: getattr(logger.run, name), doc=doc)


class FlexLogger(ShowsRecordCalls, ClosedByWith):
    """Meters and the Visdom windows they feed, built from plain dicts.

    Args:
        plots: plot name -> ``{'type': 'line', 'opts': {...visdom opts...}}``. Plot types: ``flexlogger.plot_types()``.
        meters: meter name -> ``{'type': 'AverageValueMeter', 'target': 'loss', 'args': {...}}``; ``target``
            names a plot or a list of plots. Meter types: ``flexlogger.meter_types()``. A plot and a meter may share
            a name when that meter is the one meter feeding that plot (``log(keys=name)`` then means the same).
        run: the :class:`~flexlogger.core.run.Run` to write to (its env, record and Visdom sender, shared with its other
            loggers). None: the logger makes its own run from ``run_options``, and closes it with :meth:`close`.
        strict: ``add()`` of an unknown key raises KeyError; with ``strict=False`` it warns once per key.
        sinks: extra sinks for the logger's own run (anything with ``write``/``flush``/``close``).
        distributed: pool meters over ``torch.distributed`` ranks on ``log()``/``value()``, which then become
            collective calls, and draw from rank 0 only (see ``flexlogger.core.distributed``). Default: on when a
            process group with more than one rank is initialised.
        **run_options: the options of the run it makes, as :class:`~flexlogger.core.run.Run` takes them (``env``,
            ``server``, ``port``, ``log_dir``, ``max_steps``, the Visdom sender's, ...). With ``run=`` only
            ``max_steps``, which is set on that run.

    Attributes:
        run: the logger's :class:`~flexlogger.core.run.Run`; ``env``, ``uid`` and ``run_dir`` are the run's.

    Raises:
        ConfigError: a bad definition or option, or an unknown keyword argument (with the closest valid names).

    Example:
        >>> Stat = FlexLogger({'loss': {'type': 'line'}},
        ...                   {'train_loss': {'type': 'AverageValueMeter', 'target': 'loss'}}, env='demo')
        >>> Stat.add({'train_loss': 0.7}); Stat.log(0)
    """

    def __init__(self, plots: Mapping[str, Any] | None = None, meters: Mapping[str, Any] | None = None, *,
                 run: Run | None = None, strict: bool = True, sinks: Iterable[Sink] = (),
                 distributed: bool | None = None, **run_options: Unpack[RunOptions]) -> None:
        self._init(f"{type(self).__name__}()", ("plots", "meters"), plots, meters, run, strict, sinks, distributed,
                   run_options)

    def _init(self, caller: str, arguments: tuple[str, ...], plots: Mapping[str, Any] | None,
              meters: Mapping[str, Any] | None, run: Run | None, strict: bool, sinks: Iterable[Sink],
              distributed: bool | None, run_options: Mapping[str, Any], checked: Checked | None = None) -> None:
        """Check every argument through the option table and the spec checks, reporting every problem at once as
        ``caller``'s (the public function the user called, whose other arguments are ``arguments``), then make the
        run (unless given) and install the meters (``checked``: ``plots`` and ``meters`` checked and built
        already)."""
        checked = _check_arguments(caller, arguments, plots, meters, run, strict, sinks, distributed, run_options,
                                   checked)
        self.strict = strict
        self.distributed = distributed_.active() if distributed is None else distributed
        self._logger_options: dict[str, Any] = {"strict": strict, "distributed": distributed}
        self._defs = Definitions()
        self._styles = TraceStyles()
        self._warned: set[str] = set()
        self._step = 0
        self._closed = False
        self._observers = _Observers()
        self._owns_run = run is None
        if run is None:
            run = _make_run(caller, run_options, sinks, self.distributed)
        self.run: Run = run
        try:
            max_steps = run_options.get("max_steps")
            if max_steps is not None and not self._owns_run:
                run.set_max_steps(max_steps)
            self._install(checked)
        except BaseException:
            if self._owns_run:
                run.close()
            raise

    env: str = _of_run("env")
    uid: str = _of_run("uid")
    server: str | None = _of_run("server")
    port: int = _of_run("port")
    run_dir: Path | None = _of_run("dir", "The run record's folder (``<log_dir>/<env>/<uid>``), or None without a "
                                          "record.")
    disabled: bool = _of_run("disabled", "True while every logging call of the logger's run is a no-op (meters, "
                                         "``value()`` and ``best()`` keep working).")

    # definitions -------------------------------------------------------------------------------------------
    def _install(self, checked: Checked) -> None:
        self.run.claim(self, checked.plots)
        self._defs.install(checked)
        self._changed()

    def _changed(self) -> None:
        """The definitions changed: restyle the legends and push the run's config.json (never pulled)."""
        self._styles.configure(self._defs.plots, self._defs.specs)
        self.run.set_config(self, self.to_config())

    def update_config(self, plots: Mapping[str, Any] | None = None, meters: Mapping[str, Any] | None = None) -> None:
        """Add plots and meters as the constructor takes them, all or nothing (every problem reported together); a
        meter may feed plots the logger has already. Presets too: ``cfg = flexlogger.load_config({'presets': 'auc'});
        Stat.update_config(cfg.plots, cfg.meters)``.

        Raises:
            ConfigError: a bad definition or a name the logger has already (:class:`InvalidConfigError` for several).
        """
        problems: list[str] = []
        checked = check_definitions(plots or {}, meters or {}, problems, existing_plots=self._defs.plots,
                                    existing_meters=self._defs.specs)
        raise_problems("update_config()", problems)
        self._install(checked)

    def remove(self, keys: str | Iterable[str]) -> None:
        """Remove meters and plots. Removing a plot removes the meters that fed only that plot.

        Windows already drawn stay on the server (and in the run record).
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        for plot in self._defs.remove(keys):
            self.run.release(self, [plot])
        self._changed()

    def get_definitions(self) -> dict[str, list[str]]:
        """``{plot: [meters that feed it]}`` in definition order."""
        return self._defs.by_plot()

    @property
    def plots(self) -> dict[str, PlotSpec]:
        return dict(self._defs.plots)

    @property
    def meters(self) -> dict[str, Meter]:
        return dict(self._defs.meters)

    @property
    def meter_specs(self) -> dict[str, MeterSpec]:
        return dict(self._defs.specs)

    @property
    def windows(self) -> dict[str, str]:
        """``{plot: Visdom window id}``. Ids are fixed at construction: ``<uid>_<plot>``."""
        return {p: self.window_id(p) for p in self._defs.plots}

    def window_id(self, plot: str) -> str:
        return self.run.window_id(plot)

    def to_config(self) -> dict[str, Any]:
        """The logger as a config dict (its run's options, strict, plots and meters; see
        ``flexlogger.config.config``): ``FlexLogger.from_config(Stat.to_config())`` makes an identical logger, but
        for extra ``sinks``."""
        return config_dict(self._defs.plots, self._defs.specs, {**self.run.options, **self._logger_options})

    def save_config(self, path: str | Path) -> Path:
        """Write :meth:`to_config` to ``path`` as YAML (``.yaml``/``.yml``) or JSON (``.json``); return the path."""
        return save_config(self.to_config(), path)

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any], **overrides: Any) -> FlexLogger:
        """A logger from a config file (``.yaml``/``.yml``/``.json``) or dict, validated as a whole first (every
        problem reported at once, see :func:`~flexlogger.config.config.load_config`); ``overrides`` replace its
        top-level keys (``env='exp2'``); ``run=`` and ``sinks=`` are as for the constructor."""
        extra = {k: overrides.pop(k) for k in ("sinks", "run") if k in overrides}
        config, checked = read_config(source, overrides)
        options = dict(config.options)
        if "run" in extra:  # the run's options are the run's: the config's are not used (but GIVEN_RUN's)
            options = {k: v for k, v in options.items() if k in ("strict", "distributed") or k in GIVEN_RUN}
        strict, distributed = options.pop("strict", True), options.pop("distributed", None)
        logger = cls.__new__(cls)
        logger._init(f"{cls.__name__}.from_config()", ("source",), config.plots, config.meters, extra.get("run"),
                     strict, extra.get("sinks", ()), distributed, options, checked)
        return logger

    # the loop ----------------------------------------------------------------------------------------------
    def add(self, values: Mapping[str, Any]) -> None:
        """Feed meters: ``{'train_loss': 0.7, 'train_mse': [output, target], 'ap': {'output': o, 'target': t}}``.

        A list or tuple is passed as positional arguments, a dict as keyword arguments, anything else as the one
        argument. Unknown keys raise :class:`UnknownKeyError` (a KeyError) unless ``strict=False``. Calling the
        logger is the same with keywords, as the original flexilogger wrote it: ``Stat(train_loss=0.7)``.
        """
        try:
            items = values.items()
        except AttributeError:  # the hot path stays free of type checks: a dict has items()
            raise MeterInputError(f"add(): expected a mapping of meter name -> value, e.g. {{'train_loss': 0.7}}, "
                                  f"but got {type(values).__name__} {short_repr(values)}") from None
        defs = self._defs
        meters, checks = defs.meters, defs.shape_checks
        with HOLD:  # a Ctrl-C lands after the meters' updates, never between two fields of a meter's state
            for key, value in items:
                meter = meters.get(key)
                if meter is None:
                    self._unknown_add(key)
                    continue
                if checks and key in checks:
                    defs.check_shape(key, value)
                kind = type(value)
                try:
                    if kind is list or kind is tuple:
                        meter.add(*value)
                    elif kind is dict:
                        meter.add(**value)
                    else:
                        meter.add(value)
                except TypeError as exc:
                    error = _arity_error(meter, value)
                    if error is None:
                        raise
                    raise error from exc

    def __call__(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """``Stat(train_loss=0.7, test_mse=[output, target])`` is ``Stat.add({...})`` (a mapping may come first)."""
        self.add({**values, **kwargs} if values is not None else kwargs)

    def _unknown_add(self, key: str) -> None:
        message = unknown_name_message("meter", key, self._defs.meters)
        if self.strict:
            raise UnknownKeyError(f"add(): {message}")
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"add(): {message}; ignoring it (strict=False)", stacklevel=3)

    def step(self, n: int = 1) -> int:
        """Advance the step counter that ``log()`` uses when called without a step; return the new step."""
        self._step += n
        return self._step

    def log(self, step: float | None = None, keys: str | Iterable[str] | None = None, reset: bool = True) -> None:
        """Put the selected meters' values on their plots at ``x=step``, then reset those meters.

        Args:
            step: the x value; None uses an internal counter (one more than the last step logged, or as
                advanced by :meth:`step`).
            keys: meter or plot names (None: all); a plot name selects every meter that feeds it.
            reset: reset the logged meters afterwards.

        A meter that received nothing since its last reset adds no point.
        """
        self._check_open()
        chosen = self._defs.select(keys)
        step = self._step if step is None else _checked_step(step)
        updates = self._pass(step, chosen, reset)
        due = self._observers.notify(step, updates)
        while due:  # the steps the observers release, drawn after the call's own, in order, never by log()
            at, values, keys_at = due.pop(0)
            self.add(values)
            updates = self._pass(at, self._defs.select(keys_at), True)
            due.extend(self._observers.notify(at, updates))

    def _pass(self, step: float, chosen: list[str], reset: bool) -> list[Update]:
        """One step's drawing: the chosen meters' Updates written to the run, then the meters reset."""
        self._step = math.floor(step) + 1
        run = self.run
        styles = self._styles
        sources = self._sources(chosen)
        collected = _plot_data(sources, self._defs, styles)
        if styles.tracking and styles.track_best(sources, step):
            run.set_best(self, styles.best, styles.modes)  # the run's summary: pushed, never pulled
        plots, specs = self._defs.plots, self._defs.specs
        updates = [Update(plot, plots[plot].type, step, data, styles.opts(plot, plots[plot], specs), run.next_seq())
                   for plot, data in collected.items()]
        try:
            run.write(updates)
        finally:
            if reset:
                for name in chosen:
                    self._defs.meters[name].reset()
        return updates

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(step, series, plots)`` after every step :meth:`log` draws, with the values drawn as points
        (``{'train_loss': 0.51}``) and the windows updated; return a function that removes it. The callback may
        return steps to draw next, as ``(step, values for add(), keys)``: the same ``log()`` draws them after its
        own, in order (a TooledModelLogger releases the steps it held so)."""
        return self._observers.add(callback)

    def _sources(self, chosen: list[str]) -> dict[str, Meter]:
        """The chosen meters; in distributed mode, pooled over every rank (a collective call)."""
        meters = {name: self._defs.meters[name] for name in chosen}
        return distributed_.pooled(meters) if self.distributed else meters

    def best(self) -> dict[str, tuple[float, float]]:
        """``{meter: (best value, step)}`` over every ``log()`` so far, for the meters whose spec says ``best: min``
        or ``best: max`` (one entry per series: ``train_err@1``, ``train_err@5``); also in ``summary.json`` and the
        legend.

        Example:
            >>> Stat.best()
            {'test_loss': (0.213, 7)}
        """
        return dict(self._styles.best)

    def value(self, keys: str | Iterable[str] | None = None) -> dict[str, Any]:
        """``{meter: value}`` as each meter's ``value()`` returns it (e.g. ``(mean, std)`` for averages)."""
        return {name: meter.value() for name, meter in self._sources(self._defs.select(keys)).items()}

    def reset(self, keys: str | Iterable[str] | None = None) -> None:
        """Reset the selected meters (all by default) without logging them."""
        for name in self._defs.select(keys):
            self._defs.meters[name].reset()

    # delivery ----------------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> int:
        """Block until every logged point reached every sink of the run (or ``timeout`` s passed); return how many
        are pending."""
        return self.run.flush(timeout)

    def close(self, error: BaseException | None = None) -> None:
        """Stop logging; close the run if the logger made it (flushing every sink). Closing twice is harmless.

        A logger given a ``run=`` leaves the run open for its other loggers: close the run itself.

        Args:
            error: the exception that ends the logging, if any: the run it made is recorded as ``crashed`` (or
                ``interrupted`` for a KeyboardInterrupt) with it, as at the end of a ``with`` block.
        """
        if self._closed:
            return
        self._closed = True
        if self._owns_run:
            self.run.__exit__(None if error is None else type(error), error, None)
        else:
            self.run.release(self, list(self._defs.plots))

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LoggerClosedError(f"log(): this {type(self).__name__} is closed (env {self.env!r}, uid {self.uid!r});"
                                    " create a new one to log again")

    def _record_calls(self) -> RecordCalls:
        """The run's record calls, shown as the logger's methods: ``Stat.log_text(...)`` is ``Stat.run.log_text(...)``
        (a convenience for users of lavd, who hold one object; the run's is the documented path)."""
        return self.run.calls

    def disable(self) -> None:
        """Make every logging call a no-op until :meth:`enable` (the run's :meth:`~flexlogger.core.run.Run.disable`:
        every logger of the run)."""
        self.run.disable()

    def enable(self) -> None:
        """Log again after :meth:`disable` (the run's :meth:`~flexlogger.core.run.Run.enable`)."""
        self.run.enable()

    # display -----------------------------------------------------------------------------------------------
    def table(self) -> str:
        """A table of plots, their meters and the meters' current values; above it, with ``max_steps``, the run's
        progress and ETA, and the best values of ``best`` meters."""
        head = []
        if self.run.max_steps:
            head.append(self.run.status_line())
        if self._styles.best:
            head.append("best: " + ", ".join(f"{t} {v:.4g} @ {s:g}" for t, (v, s) in self._styles.best.items()))
        return "\n".join([*head, _definitions_table(self._defs)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env!r}, uid={self.uid!r}, server={self.server!r}, port={self.port})"


def get_preset_logger(names: str | Iterable[str], phases: Iterable[str] | str | None = DEFAULT_PHASES,
                      preset_args: Mapping[str, Mapping[str, Any]] | None = None, *, run: Run | None = None,
                      strict: bool = True, sinks: Iterable[Sink] = (), distributed: bool | None = None,
                      **run_options: Unpack[RunOptions]) -> FlexLogger:
    """A FlexLogger made of presets: the one way to start from presets.

    Args:
        names: preset names joined by ``+`` (``'loss+MSE'``, case-insensitive), or a list of them.
        phases: each per-phase meter template is made once per phase, as ``{phase}_{name}``.
        preset_args: preset parameters, ``{preset: {meter argument: value}}``: ``{'confusion': {'k': 10}}``.
        run, strict, sinks, distributed, **run_options: as for :class:`FlexLogger`.

    Raises:
        InvalidConfigError: the presets' problems (unknown names, clashes, missing arguments), all at once.
        ConfigError: a bad FlexLogger option or preset argument value.

    Example:
        >>> Stat = get_preset_logger('loss+acc+confusion', preset_args={'confusion': {'k': 10}}, env='mnist')
        >>> Stat.add({'train_loss': loss, 'train_acc': [logits, y], 'train_confusion': [logits, y]})
    """
    if not isinstance(names, (str, list, tuple)):
        raise ConfigError(f"get_preset_logger(): expected preset names such as 'loss+acc' or ['loss', 'acc'], but "
                          f"got {type(names).__name__} {short_repr(names)}")
    caller = "get_preset_logger()"
    problems: list[str] = []
    plots, meters, _ = expand_presets(names, phases, preset_args, problems)
    if problems:
        raise InvalidConfigError(caller, problems)
    logger = FlexLogger.__new__(FlexLogger)
    logger._init(caller, ("names", "phases", "preset_args"), plots, meters, run, strict, sinks, distributed,
                 run_options)
    return logger


class _Observers:
    """The callbacks a logger tells about every step it draws (see :meth:`FlexLogger.observe`)."""

    def __init__(self) -> None:
        self._callbacks: list[Observer] = []

    def add(self, callback: Observer) -> Callable[[], None]:
        """Add ``callback``; return a function that removes it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def notify(self, step: float, updates: list[Update]) -> list[Released]:
        """Tell the observers what was drawn; return the steps they release."""
        if not self._callbacks:
            return []
        series = {k: float(v) for u in updates if PLOTS[u.kind].data == "points" for k, v in u.data.items()}
        plots = [u.plot for u in updates]
        released: list[Released] = []
        for callback in list(self._callbacks):
            released.extend(callback(step, series, plots) or ())
        return released


def _make_run(caller: str, run_options: Mapping[str, Any], sinks: Iterable[Sink], distributed: bool) -> Run:
    """The run a logger makes for itself (in distributed mode only rank 0 draws, unless ``disabled`` is given)."""
    options: dict[str, Any] = dict(run_options)
    if "disabled" not in options and distributed:
        options["disabled"] = distributed_.rank() != 0
    return Run._from_options(caller, options, sinks)


def _plot_data(meters: Mapping[str, Meter], defs: Definitions, styles: TraceStyles) -> dict[str, dict[str, Any]]:
    """``{plot: {trace or meter: value}}`` for the non-empty meters, in each plot kind's data form (the traces
    of scalar meters noted in ``styles``)."""
    out: dict[str, dict[str, Any]] = {}
    plots, specs, styled = defs.plots, defs.specs, styles.styled
    for name, meter in meters.items():
        if meter.count == 0:
            continue
        for plot in specs[name].target:
            spec = plots[plot]
            kind = PLOTS[spec.type]
            view = view_for(kind, type(meter))
            data = out.setdefault(plot, {})
            if view == "scalar":
                scalars = meter.scalars()
                data.update(scalars)
                if plot in styled:  # checked here too: log()'s hot path, a call per meter saved
                    styles.note_traces(plot, name, tuple(scalars))
            elif kind.data == "histogram":
                value = meter.value()  # a Histogram counted on the device (TooledModel) passes as it is
                data[name] = bin_values(value if isinstance(value, Histogram) else meter.vector(), spec.opts)
            else:
                data[name] = getattr(meter, str(view))()  # vector(), matrix(), curve() or text()
    return out


def _checked_step(step: Any) -> float:
    """``log()``'s ``step`` as a Python number (numpy numbers too: ``for epoch in np.arange(n)``).

    Raises:
        ArgumentError: ``step`` is not a finite real number.
    """
    if not isinstance(step, numbers.Real) or isinstance(step, bool) or not math.isfinite(step):
        raise ArgumentError(f"log(): expected `step` to be a finite number or None, but got {short_repr(step)}")
    return int(step) if isinstance(step, numbers.Integral) else float(step)


def _check_arguments(caller: str, arguments: tuple[str, ...], plots: Mapping[str, Any] | None,
                     meters: Mapping[str, Any] | None, run: Run | None, strict: bool, sinks: Iterable[Sink],
                     distributed: bool | None, run_options: Mapping[str, Any], checked: Checked | None) -> Checked:
    """Check a logger's arguments through the option table and the spec checks (unless ``checked`` already),
    raising every problem at once as ``caller``'s (whose other arguments are ``arguments``), before a folder or a
    thread is made; return the checked definitions and their meters."""
    problems: list[str] = []
    for name, value in (("plots", plots), ("meters", meters)):
        if value is not None and not isinstance(value, Mapping):
            problems.append(f"expected `{name}` to be a mapping of name -> definition (a dict), but got "
                            f"{type(value).__name__} {short_repr(value)}")
    if run is not None and not isinstance(run, Run):
        problems.append(f"expected `run` to be a flexlogger.Run or None, but got {type(run).__name__} "
                        f"{short_repr(run)}")
    check_options({**run_options, "strict": strict, "distributed": distributed}, caller, problems=problems,
                  also=(*arguments, "run", "sinks"))
    if run is not None:  # sinks is read here only with run= (it may be an iterator the run reads)
        own = sorted([*(k for k in run_options if k not in GIVEN_RUN), *(["sinks"] if tuple(sinks) else [])])
        if own:
            problems.append(f"{', '.join(own)}: options of the run, but a run was given (run=); expected them "
                            "on the Run, or no run=")
    if checked is None:
        checked = check_definitions(plots if isinstance(plots, Mapping) else {},
                                    meters if isinstance(meters, Mapping) else {}, problems)
    raise_problems(caller, problems)
    return checked


def _definitions_table(defs: Definitions) -> str:
    """Plots, their meters and the meters' current values, as a text table."""
    rows = []
    for plot, meters in defs.by_plot().items():
        spec = defs.plots[plot]
        for i, name in enumerate(meters or [""]):
            meter = defs.meters.get(name)
            rows.append([plot if i == 0 else "", spec.type if i == 0 else "", name,
                         meter.kind if meter else "", meter.count if meter else "",
                         _format(meter) if meter else ""])
    return tabulate(rows, headers=["plot", "type", "meter", "meter type", "adds", "value"])


def _arity_error(meter: Meter, value: Any) -> MeterInputError | None:
    """The error for an ``add()`` value that does not fit the meter's ``add`` arguments (None if it fits)."""
    kind = type(value)
    args, kwargs = (value, {}) if kind is list or kind is tuple else ((), value) if kind is dict else ((value,), {})
    try:
        inspect.signature(meter.add).bind(*args, **kwargs)
    except TypeError as exc:
        how = ("a list or tuple is passed as positional arguments (wrap one array-like value as [value])"
               if kind is list or kind is tuple else "a dict is passed as keyword arguments" if kind is dict
               else "one value is passed as the one argument")
        return MeterInputError(f"add(): meter {meter.name!r} ({meter.kind}) takes {meter.takes}; got {describe(value)}"
                               f", and {how}: {exc}")
    return None


def _format(meter: Meter) -> str:
    if meter.count == 0:
        return "(empty)"
    value = meter.value()
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, str):  # a ValueMeter's text
        return value if len(value) <= 40 else value[:37] + "..."
    if "scalar" in meter.views:
        return ", ".join(f"{k}={v:.4g}" for k, v in meter.scalars().items())
    return str(value)
