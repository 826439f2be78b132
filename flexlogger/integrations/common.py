"""What every framework adapter shares: the missing-extra error, the logger recipe, metric routing and a guard that
turns a failure inside a framework hook into a warning."""

from __future__ import annotations

import importlib
import inspect
import numbers
import warnings
from argparse import Namespace
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np
import torch

from flexlogger.config.config import load_config
from flexlogger.config.options import GIVEN_RUN
from flexlogger.core.logger import FlexLogger
from flexlogger.core.run import Run
from flexlogger.errors import (
    ConfigError,
    FlexLoggerError,
    InvalidConfigError,
    UnknownNameError,
    short_repr,
    unknown_name_message,
)
from flexlogger.experiment.folder import user_stacklevel
from flexlogger.model.logger import TooledModelLogger

__all__ = ["PHASES", "Guard", "IntegrationWarning", "MetricRouter", "MissingExtraError", "Recipe", "group_of",
           "import_framework", "is_number", "plain_hparams", "tooled_options", "warn_unsupported"]

# metric name prefixes that name a phase: `train/loss`, `val_loss` and `eval/loss` are one quantity, `loss`
PHASES: tuple[str, ...] = ("train", "training", "val", "valid", "validation", "test", "eval", "evaluation")
AUTO_METER = "ValueMeter"  # a framework hands over values it already reduced: drawn as they are


class MissingExtraError(FlexLoggerError, ImportError):
    """An adapter was imported without its framework; the message names ``pip install 'flexlogger[<extra>]'``."""


class IntegrationWarning(RuntimeWarning):
    """Something failed inside a framework hook; flexlogger warned once and training went on."""


def import_framework(modules: Sequence[str], extra: str, adapter: str) -> ModuleType:
    """The first of ``modules`` that imports (``('lightning.pytorch', 'pytorch_lightning')``).

    Raises:
        MissingExtraError: none of them is installed; the message says which extra installs one.
    """
    errors: list[str] = []
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name} ({exc})")
    raise MissingExtraError(f"{adapter} needs {' or '.join(modules)}, which cannot be imported: {'; '.join(errors)}. "
                            f"Install it with: pip install 'flexlogger[{extra}]'")


def group_of(name: str) -> str:
    """The window a metric with no meter is drawn in: its name without a phase prefix (:data:`PHASES`) and without
    Lightning's ``_epoch`` suffix, ``/`` read as ``.``.

    Example:
        >>> [group_of(n) for n in ('train/loss', 'val_loss', 'train_loss_epoch', 'lr-SGD', 'eval/acc/top1')]
        ['loss', 'loss', 'loss', 'lr-SGD', 'acc.top1']
    """
    rest = name
    for sep in ("/", "_"):
        head, found, tail = name.partition(sep)
        if found and tail and head.lower() in PHASES:
            rest = tail
            break
    if rest != name and rest.endswith("_epoch") and len(rest) > len("_epoch"):
        rest = rest[: -len("_epoch")]
    return rest.replace("/", ".")


def is_number(value: Any) -> bool:
    """A value a line can draw: a real number (not a bool), or a tensor or array holding one."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    if isinstance(value, np.ndarray):
        return value.size == 1
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain_hparams(params: Any) -> Any:
    """Hyperparameters sanitised as Lightning's own loggers do (and a transformers config's ``id2label``, keyed by
    int): a Namespace at any depth becomes a dict, every key a string; other values are left to
    :meth:`~flexlogger.core.run.Run.log_hparams`."""
    if isinstance(params, Namespace):
        params = vars(params)
    if isinstance(params, Mapping):
        return {str(key): plain_hparams(value) for key, value in params.items()}
    return params


def warn_unsupported(api: str, name: str, category: type[Warning], seen: set[str]) -> None:
    """Warn once per ``name`` (kept in ``seen``) that a part of a foreign API flexlogger does not have was used."""
    if name not in seen:
        seen.add(name)
        warnings.warn(f"{api}: {name} is not supported by flexlogger; it does nothing and training goes on", category,
                      stacklevel=user_stacklevel())


class Guard:
    """Turns a failure inside a framework hook into one :class:`IntegrationWarning` per distinct failure, so that
    logging never crashes training (the run record keeps every point it got)."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self._seen: set[tuple[str, str]] = set()

    def warn(self, where: str, message: str) -> None:
        """Warn once about ``message`` at ``where``."""
        if (where, message) not in self._seen:
            self._seen.add((where, message))
            warnings.warn(f"{self.adapter}.{where}: {message}; training goes on", IntegrationWarning, stacklevel=4)

    @contextmanager
    def hook(self, where: str) -> Iterator[None]:
        """``with guard.hook('log_metrics'): ...``: an exception in the block becomes one warning."""
        try:
            yield
        except Exception as exc:  # never crash the user's training from a logging hook
            self.warn(where, f"{type(exc).__name__}: {exc}")


class Recipe:
    """An adapter's logger definition, checked when the adapter is made and built into a FlexLogger when first
    needed (a framework may start its worker processes between the two).

    Args:
        caller: the adapter's constructor as errors name it (``'FlexLightningLogger()'``).
        config: a config file or dict, as :meth:`FlexLogger.from_config` reads it.
        presets, phases, preset_args: as for :func:`~flexlogger.core.logger.get_preset_logger`.
        run_options: FlexLogger options, or ``run=`` a :class:`~flexlogger.core.run.Run` to write to (then no other
            run option).
        fixed: options the adapter sets itself, refused from the user, with the reason.

    Raises:
        InvalidConfigError: every problem of the definition and the options, naming ``caller``.
        ConfigError: a bad ``run``, ``config`` source or a refused option.
    """

    def __init__(self, caller: str, config: str | Any | None, presets: str | Sequence[str] | None,
                 phases: Sequence[str] | str | None, preset_args: Mapping[str, Mapping[str, Any]] | None,
                 run_options: Mapping[str, Any], fixed: Mapping[str, str] | None = None) -> None:
        options = dict(run_options)
        run = options.pop("run", None)
        if run is not None and not isinstance(run, Run):
            raise ConfigError(f"{caller}: expected `run` to be a flexlogger.Run or None, but got "
                              f"{type(run).__name__} {short_repr(run)}")
        for key, why in (fixed or {}).items():
            if key in options:
                raise ConfigError(f"{caller}: `{key}` is set by the adapter ({why}), but got {key}="
                                  f"{short_repr(options[key])}; expected no `{key}`")
        if run is not None:
            given = sorted(k for k in options if k != "strict" and k not in GIVEN_RUN)
            if given:
                raise ConfigError(f"{caller}: {', '.join(given)}: options of the run, but a run was given (run=); "
                                  "expected them on the Run, or no run=")
        if presets is not None:
            options.update(presets=presets, phases=phases, preset_args=preset_args)
        try:
            loaded = load_config(config if config is not None else {}, **options)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"{caller} {exc.source}", exc.problems) from None
        except ConfigError as exc:
            raise ConfigError(f"{caller}: {exc}") from None
        # plain dicts (specs hold mappingproxies), so that an adapter can be pickled to worker processes (ddp_spawn)
        self.plots = {name: spec.to_dict() for name, spec in loaded.plots.items()}
        self.meters = {name: spec.to_dict() for name, spec in loaded.meters.items()}
        self.options = dict(loaded.options)
        self.run = run

    def build(self, **forced: Any) -> FlexLogger:
        """A new FlexLogger of the recipe; ``forced`` options win over the config's. Options of the run are dropped
        when the recipe writes to a given ``run``."""
        options = {**self.options, **forced}
        if self.run is not None:
            options = {k: v for k, v in options.items() if k in ("strict", "distributed") or k in GIVEN_RUN}
            return FlexLogger(self.plots, self.meters, run=self.run, **options)
        return FlexLogger(self.plots, self.meters, **options)


class MetricRouter:
    """Feeds a framework's metrics into a FlexLogger's meters and logs them at the framework's step.

    A metric feeds the meter of its name, or of its name with ``/`` read as ``_`` (``train/loss`` feeds
    ``train_loss``). A number that names no meter gets a ``ValueMeter`` of its name on a line window named by
    :func:`group_of` (``train/loss`` and ``val/loss`` share ``loss``); a metric named as a window others feed
    (``loss``) is drawn there as ``loss/metric``, and when that window cannot take it, it gets a window of its own
    name. Anything else naming no meter is skipped. Every failure is one warning (:class:`Guard`).
    """

    def __init__(self, logger: FlexLogger, guard: Guard) -> None:
        self.logger = logger
        self.guard = guard
        self._meter: dict[str, str | None] = {}  # metric name -> meter name (None: skipped)

    def route(self, values: Mapping[str, Any], step: float | None, where: str = "log") -> list[str]:
        """Add each value to its meter (a list as positional arguments, a dict as keywords, as
        :meth:`FlexLogger.add`), then log those meters at ``step`` (None: the logger's counter); ``where`` names the
        hook in warnings. Returns the meters that were logged."""
        touched: list[str] = []
        for name, value in values.items():
            meter = self._meter[name] if name in self._meter else self._resolve(name, value, where)
            if meter is None:
                continue
            try:
                self.logger.add({meter: value})
            except Exception as exc:
                self._meter.pop(name, None)  # resolved again next time (a meter removed by the user)
                self.guard.warn(where, f"metric {name!r} -> meter {meter!r}: {type(exc).__name__}: {exc}")
                continue
            touched.append(meter)
        if touched:
            with self.guard.hook(where):
                self.logger.log(step, keys=touched)
        return touched

    def _resolve(self, name: str, value: Any, where: str) -> str | None:
        meters = self.logger.meter_specs
        found = next((c for c in (name, name.replace("/", "_")) if c in meters), None)
        if found is None and is_number(value):
            found = self._auto(name, where)
        elif found is None:
            self.guard.warn(where, f"metric {name!r} is {type(value).__name__} {short_repr(value, 80)}, not a number, "
                                   "and no meter is named after it: skipped (define a meter of that name to draw it)")
        self._meter[name] = found
        return found

    def _auto(self, name: str, where: str) -> str | None:
        logger = self.logger
        errors: list[str] = []
        for plot in dict.fromkeys((group_of(name), name.replace("/", "."))):
            created = plot not in logger.plots
            # a meter cannot share a plot's name
            meter = f"{name}/metric" if name == plot and not created and plot not in logger.meter_specs else name
            plots = {plot: {"type": "line", "opts": {"xlabel": "step"}}} if created else {}
            try:  # all or nothing: a plot made for a meter that fails is not left behind
                logger.update_config(plots, {meter: {"type": AUTO_METER, "target": plot}})
                return meter
            except ConfigError as exc:
                errors.append(str(exc))
        self.guard.warn(where, f"metric {name!r}: no window could take it ({'; '.join(errors)}): skipped")
        return None


def tooled_options(caller: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check the :class:`~flexlogger.model.logger.TooledModelLogger` options an adapter is given (not ``model`` or
    ``logger``, which the adapter supplies) before training starts.

    Raises:
        UnknownNameError: an option TooledModelLogger does not have (with the closest valid names).
    """
    valid = [p for p in inspect.signature(TooledModelLogger).parameters
             if p not in ("model", "logger", "logger_options")]
    for key in options:
        if key not in valid:
            raise UnknownNameError(f"{caller}: " + unknown_name_message("TooledModelLogger option", key, valid))
    return dict(options)
