"""FlexLogger: owns the meters and the windows they feed, and routes values from ``add()`` to its sinks.

Data flows one way: ``add()`` -> meter state -> ``log()`` -> one :class:`~flexlogger.sinks.base.Update` per
window -> sinks (Visdom in the background, the run record on disk). The logger never formats HTTP and a sink
never reads a meter.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from tabulate import tabulate

from . import distributed as distributed_
from .convert import describe
from .errors import ConfigError, MeterInputError, UnknownKeyError, unknown_name_message
from .meters import Meter
from .registry import PLOTS, make_meter, view_for
from .sinks.base import Sink, Update
from .specs import MeterSpec, PlotSpec, check_capacity, check_targets, parse_meter, parse_plot


def default_uid() -> str:
    """A run id from the local time, e.g. ``2026-11-23_07-50-27``."""
    return time.strftime("%Y-%m-%d_%H-%M-%S")


class FlexLogger:
    """Meters and the Visdom windows they feed, built from plain dicts.

    Args:
        plots: plot name -> ``{'type': 'line', 'opts': {...visdom opts...}}``. Plot types: ``flexlogger.plot_types()``.
        meters: meter name -> ``{'type': 'AverageValueMeter', 'target': 'loss', 'args': {...}}``; ``target``
            names a plot or a list of plots. Meter types: ``flexlogger.meter_types()``.
        env: the Visdom environment the windows go to.
        uid: the run id: window ids are ``<uid>_<plot>``, the run record is ``<log_dir>/<env>/<uid>``.
            Defaults to the start time (so each run gets its own windows); pass a fixed uid to redraw the same
            windows on every run.
        server, port: the Visdom server. ``server=None`` sends nothing to Visdom (the run record still works).
        log_dir: the run record's root folder; None turns the record off. The run's own folder,
            ``<log_dir>/<env>/<uid>``, is ``Stat.run_dir`` (``flexlogger replay`` redraws it).
        strict: ``add()`` of an unknown key raises KeyError; with ``strict=False`` it warns once per key.
        sinks: extra sinks that receive every update (anything with ``write``/``flush``/``close``).
        distributed: pool meters over ``torch.distributed`` ranks on ``log()``/``value()``, which then become
            collective calls, and draw from rank 0 only (see ``flexlogger.distributed``). Default: on when a
            process group with more than one rank is initialised.
        **visdom_kwargs: passed on to the Visdom sink (e.g. ``max_points``, ``min_interval``; see
            ``flexlogger.sinks.visdom.VisdomSink``).

    Example:
        >>> Stat = FlexLogger({'loss': {'type': 'line'}},
        ...                   {'train_loss': {'type': 'AverageValueMeter', 'target': 'loss'}}, env='demo')
        >>> Stat.add({'train_loss': 0.7}); Stat.log(0)
    """

    def __init__(self, plots: Mapping[str, Any] | None = None, meters: Mapping[str, Any] | None = None, *,
                 env: str = "main", uid: str | None = None, server: str | None = "http://localhost",
                 port: int = 8097, log_dir: str | Path | None = "runs", strict: bool = True,
                 sinks: Iterable[Sink] = (), distributed: bool | None = None, **visdom_kwargs: Any) -> None:
        plots, meters = dict(plots or {}), dict(meters or {})
        if not isinstance(env, str) or not env:
            raise ConfigError(f"expected `env` to be a non-empty string, but got {env!r}")
        self.env = env
        self.uid = uid or default_uid()
        self.server, self.port = server, port
        self.strict = strict
        # as given, for to_config(); uid and distributed are written only when given (see flexlogger.config)
        self._options: dict[str, Any] = {"env": env, "uid": uid, "server": server, "port": port, "log_dir": log_dir,
                                         "strict": strict, "distributed": distributed, **visdom_kwargs}
        self._plots: dict[str, PlotSpec] = {}
        self._meter_specs: dict[str, MeterSpec] = {}
        self._meters: dict[str, Meter] = {}
        self._warned: set[str] = set()
        self._step = 0
        self._seq = 0
        self._closed = False
        self._define(plots, meters)
        self.distributed = distributed_.active() if distributed is None else distributed
        self.run_dir: Path | None = None  # the run record's folder, once the record sink made it
        self._sinks: list[Sink] = []
        if not self.distributed or distributed_.rank() == 0:  # in distributed mode only rank 0 draws
            self._sinks = [*self._default_sinks(server, port, log_dir, visdom_kwargs), *sinks]

    def _default_sinks(self, server: str | None, port: int, log_dir: str | Path | None,
                       visdom_kwargs: dict[str, Any]) -> list[Sink]:
        # the record first: it has every point even when the Visdom sink raises (DeliveryError)
        sinks: list[Sink] = []
        record = None
        if log_dir is not None:
            from .sinks.record import RecordSink

            record = RecordSink(Path(log_dir), env=self.env, uid=self.uid, config=self.to_config)
            sinks.append(record)
            self.run_dir = record.path
        if server is not None:
            from .sinks.visdom import VisdomSink

            visdom_sink = VisdomSink(server=server, port=port, env=self.env, uid=self.uid, **visdom_kwargs)
            sinks.append(visdom_sink)
            if record is not None:
                record.undelivered = visdom_sink.pending
        elif visdom_kwargs:
            raise ConfigError(f"unexpected argument(s) {', '.join(sorted(visdom_kwargs))} with server=None")
        return sinks

    # definitions -------------------------------------------------------------------------------------------
    def _define(self, plots: Mapping[str, Any], meters: Mapping[str, Any]) -> None:
        """Validate new plots and meters against the existing ones, then build them (all or nothing)."""
        clash = sorted(set(plots) & set(self._plots)) + sorted(set(meters) & set(self._meter_specs))
        if clash:
            raise ConfigError(f"{', '.join(map(repr, clash))} already defined; remove() it first")
        new_plots = {name: parse_plot(name, raw) for name, raw in plots.items()}
        if self.server is not None and new_plots:
            from .sinks.visdom import check_opts

            for name, plot in new_plots.items():
                check_opts(f"plots.{name}.opts", plot.opts)
        all_plots = {**self._plots, **new_plots}
        new_specs = {name: parse_meter(name, raw) for name, raw in meters.items()}
        for name, spec in new_specs.items():
            check_targets(name, spec, all_plots)
        names = set(all_plots) & ({*self._meter_specs, *new_specs})
        if names:
            raise ConfigError(f"{', '.join(map(repr, sorted(names)))} names both a plot and a meter; "
                              "keys of add()/log() must be unambiguous")
        check_capacity(all_plots, {**self._meter_specs, **new_specs})
        built = {name: make_meter(name, spec.type, dict(spec.args)) for name, spec in new_specs.items()}
        self._plots.update(new_plots)
        self._meter_specs.update(new_specs)
        self._meters.update(built)

    def add_plot(self, name: str, spec: Mapping[str, Any] | PlotSpec) -> None:
        """Add a window, e.g. ``Stat.add_plot('lr', {'type': 'line'})``."""
        self._define({name: spec}, {})

    def add_meter(self, name: str, spec: Mapping[str, Any] | MeterSpec) -> None:
        """Add a meter to existing plots: ``Stat.add_meter('lr_value', {'type': 'ValueMeter', 'target': 'lr'})``."""
        self._define({}, {name: spec})

    def remove(self, keys: str | Iterable[str]) -> None:
        """Remove meters and plots. Removing a plot removes the meters that fed only that plot.

        Windows already drawn stay on the server (and in the run record).
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        self._check_keys(keys)
        for key in keys:
            if key in self._plots:
                del self._plots[key]
                for name, spec in list(self._meter_specs.items()):
                    rest = tuple(t for t in spec.target if t != key)
                    if rest:
                        self._meter_specs[name] = MeterSpec(spec.type, rest, spec.args)
                    elif name in self._meter_specs:
                        del self._meter_specs[name], self._meters[name]
            elif key in self._meter_specs:
                del self._meter_specs[key], self._meters[key]

    def get_definitions(self) -> dict[str, list[str]]:
        """``{plot: [meters that feed it]}`` in definition order."""
        return {p: [m for m, s in self._meter_specs.items() if p in s.target] for p in self._plots}

    @property
    def plots(self) -> dict[str, PlotSpec]:
        return dict(self._plots)

    @property
    def meters(self) -> dict[str, Meter]:
        return dict(self._meters)

    @property
    def meter_specs(self) -> dict[str, MeterSpec]:
        return dict(self._meter_specs)

    @property
    def windows(self) -> dict[str, str]:
        """``{plot: Visdom window id}``. Ids are fixed at construction: ``<uid>_<plot>``."""
        return {p: self.window_id(p) for p in self._plots}

    def window_id(self, plot: str) -> str:
        return f"{self.uid}_{plot}"

    def to_config(self) -> dict[str, Any]:
        """The logger as a config dict: its options (env, server, port, log_dir, strict, Visdom sink options; uid
        only when one was given, so that a reused config gives each run its own windows), plots and meters.

        ``FlexLogger.from_config(Stat.to_config())`` makes an identical logger. Extra ``sinks`` are not included.
        """
        from .config import config_dict

        return config_dict(self._plots, self._meter_specs, self._options)

    def save_config(self, path: str | Path) -> Path:
        """Write :meth:`to_config` to ``path`` as YAML (``.yaml``/``.yml``) or JSON (``.json``); return the path."""
        from .config import save_config

        return save_config(self.to_config(), path)

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any], **overrides: Any) -> FlexLogger:
        """A logger from a config file (``.yaml``/``.yml``/``.json``) or dict, validated as a whole first.

        ``overrides`` replace the config's top-level keys (``env='exp2'``); ``sinks=`` adds extra sinks.
        Every problem is reported at once (:class:`~flexlogger.errors.InvalidConfigError`); see ``flexlogger.config``.
        """
        from .config import load_config

        sinks = overrides.pop("sinks", ())
        config = load_config(source, **overrides)
        return cls(config.plots, config.meters, sinks=sinks, **config.options)

    @classmethod
    def from_presets(cls, *names: str, phases: Iterable[str] | str | None = ("train", "test"),
                     preset_args: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any) -> FlexLogger:
        """A logger made of presets: ``FlexLogger.from_presets('loss', 'acc', env='mnist')``; see flexlogger.presets."""
        from .presets import compose

        plots, meters = compose(names, phases, preset_args)
        return cls(plots, meters, **kwargs)

    def add_presets(self, *names: str, phases: Iterable[str] | str | None = ("train", "test"),
                    preset_args: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Add the plots and meters of presets, e.g. ``Stat.add_presets('auc+confusion', preset_args=...)``."""
        from .presets import compose

        plots, meters = compose(names, phases, preset_args, taken=[*self._plots, *self._meter_specs])
        self._define(plots, meters)

    # the loop ----------------------------------------------------------------------------------------------
    def add(self, values: Mapping[str, Any]) -> None:
        """Feed meters: ``{'train_loss': 0.7, 'train_mse': [output, target], 'ap': {'output': o, 'target': t}}``.

        A list or tuple is passed as positional arguments, a dict as keyword arguments, anything else as the one
        argument. Unknown keys raise :class:`UnknownKeyError` (a KeyError) unless ``strict=False``.
        """
        meters = self._meters
        for key, value in values.items():
            meter = meters.get(key)
            if meter is None:
                self._unknown_add(key)
                continue
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

    def _unknown_add(self, key: str) -> None:
        message = unknown_name_message("meter", key, self._meters)
        if self.strict:
            raise UnknownKeyError(f"add(): {message}")
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"add(): {message}; ignoring it (strict=False)", stacklevel=3)

    def _check_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in self._meters and key not in self._plots:
                valid = [*self._plots, *self._meters]
                raise UnknownKeyError(unknown_name_message("meter or plot", key, valid))

    def _select(self, keys: str | Iterable[str] | None) -> list[str]:
        """Meter names selected by ``keys`` (meter or plot names); None selects every meter."""
        if keys is None:
            return list(self._meters)
        keys = [keys] if isinstance(keys, str) else list(keys)
        self._check_keys(keys)
        chosen: dict[str, None] = {}
        for key in keys:
            if key in self._plots:
                chosen.update((m, None) for m, s in self._meter_specs.items() if key in s.target)
            else:
                chosen[key] = None
        return list(chosen)

    def log(self, step: float | None = None, keys: str | Iterable[str] | None = None, reset: bool = True) -> None:
        """Put the selected meters' values on their plots at ``x=step``, then reset those meters.

        Args:
            step: the x value; None uses an internal counter (one more than the last step logged).
            keys: meter or plot names (None: all); a plot name selects every meter that feeds it.
            reset: reset the logged meters afterwards.

        A meter that received nothing since its last reset adds no point.
        """
        self._check_open()
        chosen = self._select(keys)
        if step is None:
            step = self._step
        elif not isinstance(step, numbers.Real) or isinstance(step, bool) or not math.isfinite(step):
            raise ConfigError(f"log(): expected `step` to be a finite number, but got {step!r}")
        else:  # numpy numbers too (`for epoch in np.arange(n)`), as Python numbers
            step = int(step) if isinstance(step, numbers.Integral) else float(step)
        self._step = math.floor(step) + 1
        error: Exception | None = None
        for plot, data in self._collect(self._sources(chosen)).items():
            self._seq += 1
            spec = self._plots[plot]
            update = Update(plot, spec.type, step, data, spec.opts, self._seq)
            for sink in self._sinks:
                try:
                    sink.write(update)
                except Exception as exc:  # e.g. DeliveryError: the other sinks (the record) still get every plot
                    error = error or exc
        if reset:
            for name in chosen:
                self._meters[name].reset()
        if error is not None:
            raise error

    def _sources(self, chosen: list[str]) -> dict[str, Meter]:
        """The chosen meters; in distributed mode, pooled over every rank (a collective call)."""
        meters = {name: self._meters[name] for name in chosen}
        return distributed_.pooled(meters) if self.distributed else meters

    def _collect(self, meters: Mapping[str, Meter]) -> dict[str, dict[str, Any]]:
        """``{plot: {trace or meter: value}}`` for the non-empty meters."""
        out: dict[str, dict[str, Any]] = {}
        for name, meter in meters.items():
            if meter.count == 0:
                continue
            for plot in self._meter_specs[name].target:
                view = view_for(PLOTS[self._plots[plot].type], type(meter))
                data = out.setdefault(plot, {})
                if view == "scalar":
                    data.update(meter.scalars())
                elif view == "vector":
                    data[name] = meter.vector()
                elif view == "matrix":
                    data[name] = meter.matrix()
                elif view == "curve":
                    data[name] = meter.curve()
                else:
                    data[name] = meter.text()
        return out

    def value(self, keys: str | Iterable[str] | None = None) -> dict[str, Any]:
        """``{meter: value}`` as each meter's ``value()`` returns it (e.g. ``(mean, std)`` for averages)."""
        return {name: meter.value() for name, meter in self._sources(self._select(keys)).items()}

    def reset(self, keys: str | Iterable[str] | None = None) -> None:
        """Reset the selected meters (all by default) without logging them."""
        for name in self._select(keys):
            self._meters[name].reset()

    # delivery ----------------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> int:
        """Block until every logged point reached every sink (or ``timeout`` s passed); return how many are pending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = 0
        for sink in self._sinks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            pending += sink.flush(left)
        return pending

    def close(self) -> None:
        """Flush and close every sink. The logger cannot log afterwards; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        for sink in reversed(self._sinks):  # the Visdom sink before the record, whose summary counts undelivered
            sink.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this FlexLogger is closed; create a new one to log again")

    def __enter__(self) -> FlexLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # display -----------------------------------------------------------------------------------------------
    def table(self) -> str:
        """A table of plots, their meters and the meters' current values."""
        rows = []
        for plot, meters in self.get_definitions().items():
            spec = self._plots[plot]
            for i, name in enumerate(meters or [""]):
                meter = self._meters.get(name)
                rows.append([plot if i == 0 else "", spec.type if i == 0 else "", name,
                             meter.kind if meter else "", meter.count if meter else "",
                             _format(meter) if meter else ""])
        return tabulate(rows, headers=["plot", "type", "meter", "meter type", "adds", "value"])

    def show(self) -> None:
        """Print :meth:`table` (returns None, so a notebook cell ending in ``Stat.show()`` shows it once)."""
        print(self.table())

    def __repr__(self) -> str:
        head = f"FlexLogger(env={self.env!r}, uid={self.uid!r}, server={self.server!r}, port={self.port})"
        return f"{head}\n{self.table()}"


def _arity_error(meter: Meter, value: Any) -> MeterInputError | None:
    """The error for an ``add()`` value that does not fit the meter's ``add`` arguments (None if it fits)."""
    kind = type(value)
    args, kwargs = (value, {}) if kind is list or kind is tuple else ((), value) if kind is dict else ((value,), {})
    method = meter._add if type(meter).add is Meter.add else meter.add
    try:
        inspect.signature(method).bind(*args, **kwargs)
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
