"""pytorch-ignite: :func:`attach` logs into a FlexLogger on an ``Engine`` event; :func:`attach_tooled` records a
:class:`~flexlogger.model.logger.TooledModelLogger`'s per-layer statistics at every optimizer step.

Example:
    >>> from flexlogger.integrations.ignite import attach, attach_tooled
    >>> Stat = flexlogger.get_preset_logger('loss+acc', phases=('train', 'val'), env='mnist')
    >>> attach(Stat, trainer, Events.ITERATION_COMPLETED(every=10), output_transform=lambda loss: {'train_loss': loss})
    >>> attach(Stat, evaluator, Events.COMPLETED, tag='val', metric_names=['accuracy', 'nll'],
    ...        global_step_transform=lambda engine, event: trainer.state.epoch)
    >>> attach_optimizer_params(Stat, trainer, optimizer)                  # lr/group_0, ... as OptimizerParamsHandler
    >>> attach_tooled(flexlogger.TooledModelLogger(model, logger=Stat), trainer, optimizer)

Install with ``pip install 'flexlogger[ignite]'``. As with ignite's own handlers, each ``attach`` returns a handle
you can ``.remove()`` or use in a ``with`` block. The logger owns the run: close it yourself (``Stat.close()``).
A failure inside a handler is one :class:`~flexlogger.integrations.common.IntegrationWarning`, and the engine goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import torch

from flexlogger.core.logger import FlexLogger
from flexlogger.errors import ConfigError, short_repr
from flexlogger.integrations.common import Guard, MetricRouter, import_framework, is_number
from flexlogger.model.logger import TooledModelLogger

ignite_engine = import_framework(("ignite.engine",), "ignite", "flexlogger.integrations.ignite")
Engine: Any = ignite_engine.Engine
Events: Any = ignite_engine.Events

__all__ = ["Engine", "Events", "ToolHandle", "attach", "attach_optimizer_params", "attach_tooled", "flatten_metrics"]


def _expect(caller: str, name: str, value: Any, ok: bool, expected: str) -> None:
    """Raise ``caller: expected `name` to be <expected>, but got <value>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{caller}: expected `{name}` to be {expected}, but got {type(value).__name__} "
                          f"{short_repr(value)}")


def _check_common(caller: str, logger: Any, engine: Any, tag: Any) -> None:
    """The arguments :func:`attach` and :func:`attach_optimizer_params` share."""
    _expect(caller, "logger", logger, isinstance(logger, FlexLogger), "a flexlogger.FlexLogger")
    _expect(caller, "engine", engine, isinstance(engine, Engine), "an ignite.engine.Engine")
    _expect(caller, "tag", tag, tag is None or (isinstance(tag, str) and bool(tag)),
            "a non-empty string (put before each name with '/', as ignite's handlers do) or None")


def flatten_metrics(values: Mapping[str, Any], keep: Callable[[str], bool]) -> dict[str, Any]:
    """Vector metrics as ignite's own logger handlers write them: a 1-d tensor, a list or a tuple of numbers
    ``prec`` becomes ``prec/0``, ``prec/1``, ...; a dict ``d`` becomes ``d/<key>``. A name ``keep`` accepts (one
    that names a meter, which takes the whole value) is left as it is."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if keep(name):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(flatten_metrics({f"{name}/{k}": v for k, v in value.items()}, keep))
        elif isinstance(value, torch.Tensor) and value.ndim == 1:
            out.update({f"{name}/{i}": v.item() for i, v in enumerate(value)})
        elif isinstance(value, (list, tuple)) and value and all(is_number(v) for v in value):
            out.update({f"{name}/{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


def attach(logger: FlexLogger, engine: Any, event: Any,
           output_transform: Callable[[Any], Mapping[str, Any]] | None = None,
           metric_names: str | Sequence[str] | None = None,
           global_step_transform: Callable[[Any, Any], float] | None = None, tag: str | None = None) -> Any:
    """Log into ``logger`` each time ``engine`` fires ``event``; every value added is logged at once at that x.

    Args:
        logger: the FlexLogger to feed (metrics are routed by :class:`~flexlogger.integrations.common.MetricRouter`).
        engine: an ignite ``Engine``.
        event: an ignite event, filtered or not: ``Events.ITERATION_COMPLETED(every=10)``.
        output_transform: ``engine.state.output`` -> ``{meter: value}`` for :meth:`FlexLogger.add`; anything else
            than a dict is logged as ``output``, as ignite's handlers name it.
        metric_names: names in ``engine.state.metrics`` to log, or ``'all'``; a vector metric that names no meter
            is logged as ``prec/0``, ``prec/1``, ... (:func:`flatten_metrics`).
        global_step_transform: ``(engine, event_name) -> x``; default: the engine's own count for the event.
        tag: put before every name with ``/``, as ignite's handlers' ``tag`` (``val/accuracy``).

    Returns:
        ignite's ``RemovableEventHandle``: ``.remove()`` detaches the handler; also a context manager.

    Raises:
        ConfigError: a bad argument, naming ``attach()``, what was expected and what was given.
    """
    caller = "attach()"
    _check_common(caller, logger, engine, tag)
    for name, value in (("output_transform", output_transform), ("global_step_transform", global_step_transform)):
        _expect(caller, name, value, value is None or callable(value), "a callable or None")
    if output_transform is None and metric_names is None:
        raise ConfigError(f"{caller}: expected `output_transform`, `metric_names` or both: with neither there is "
                          "nothing to log")
    if not (metric_names is None or (isinstance(metric_names, str) and metric_names == "all")
            or (isinstance(metric_names, (list, tuple)) and all(isinstance(n, str) for n in metric_names))):
        raise ConfigError(f"{caller}: expected `metric_names` to be 'all', a list of metric names or None, but got "
                          f"{short_repr(metric_names)}")
    router = MetricRouter(logger, Guard("attach"))

    def is_meter(name: str) -> bool:
        return name in logger.meter_specs or name.replace("/", "_") in logger.meter_specs

    def handler(engine: Any) -> None:
        event_name = engine.last_event_name
        with router.guard.hook("handler"):
            values = _engine_values(engine, router.guard, output_transform, metric_names, tag, is_meter)
            if global_step_transform is not None:
                step = global_step_transform(engine, event_name)
            else:
                step = engine.state.get_event_attrib_value(event_name)
            router.route(values, step, "handler")

    return engine.add_event_handler(event, handler)


def _engine_values(engine: Any, guard: Guard, output_transform: Any, metric_names: Any, tag: str | None,
                   is_meter: Callable[[str], bool]) -> dict[str, Any]:
    """What one firing of :func:`attach`'s handler logs: the transformed output and the chosen metrics, named with
    ``tag/`` and flattened."""
    values: dict[str, Any] = {}
    if output_transform is not None:
        out = output_transform(engine.state.output)
        values.update(out if isinstance(out, Mapping) else {"output": out})
    metrics = engine.state.metrics
    for name in (metrics if metric_names == "all" else metric_names or ()):
        if name not in metrics:
            guard.warn("handler", f"metric {name!r} is not in engine.state.metrics "
                                  f"({', '.join(map(repr, metrics)) or 'none'})")
            continue
        value = metrics[name]
        if is_meter(f"{tag}/{name}" if tag else name):
            value = [value] if isinstance(value, (list, tuple, dict)) else value  # the meter's one argument
        values[name] = value
    if tag:
        values = {f"{tag}/{k}": v for k, v in values.items()}
    return flatten_metrics(values, is_meter)


def attach_optimizer_params(logger: FlexLogger, engine: Any, optimizer: Any, event: Any = None,
                            param_name: str = "lr", tag: str | None = None) -> Any:
    """Log an optimizer parameter of every param group, as ignite's ``OptimizerParamsHandler``: ``lr/group_0``,
    ``lr/group_1``, ... (``<tag>/lr/group_0`` with a tag), one series per group in one window ``lr`` (``<tag>.lr``),
    at x = the engine's count for the event.

    Args:
        logger, engine, tag: as for :func:`attach`.
        optimizer: a torch optimizer (anything with ``param_groups``).
        event: the event to log on; default ``Events.ITERATION_STARTED`` (the value the iteration trains with).
        param_name: the param group entry (``lr``, ``momentum``, ``weight_decay``).

    Returns:
        ignite's ``RemovableEventHandle``.

    Raises:
        ConfigError: a bad argument (a missing ``param_name`` names the entries the first group has).
    """
    caller = "attach_optimizer_params()"
    _check_common(caller, logger, engine, tag)
    groups: Any = getattr(optimizer, "param_groups", None)
    _expect(caller, "optimizer", optimizer, isinstance(groups, list) and bool(groups),
            "a torch optimizer (with param_groups)")
    if not isinstance(param_name, str) or any(param_name not in group for group in groups):
        raise ConfigError(f"{caller}: expected `param_name` to be an entry of every param group "
                          f"({', '.join(sorted(k for k in groups[0] if k != 'params'))}), but got "
                          f"{short_repr(param_name)}")
    base = f"{tag}/{param_name}" if tag else param_name
    plot = base.replace("/", ".")
    names = [f"{base}/group_{i}" for i in range(len(groups))]
    logger.update_config({} if plot in logger.plots else
                         {plot: {"type": "line", "opts": {"xlabel": "step", "ylabel": param_name}}},
                         {name: {"type": "ValueMeter", "target": plot} for name in names
                          if name not in logger.meter_specs})
    router = MetricRouter(logger, Guard("attach_optimizer_params"))

    def handler(engine: Any) -> None:
        with router.guard.hook("handler"):
            step = engine.state.get_event_attrib_value(engine.last_event_name)
            router.route({n: float(g[param_name]) for n, g in zip(names, optimizer.param_groups, strict=False)},
                         step, "handler")

    return engine.add_event_handler(event if event is not None else Events.ITERATION_STARTED, handler)


class ToolHandle:
    """What :func:`attach_tooled` returns: ``.remove()`` (or the end of a ``with`` block) stops recording."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> ToolHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()


def attach_tooled(tooled: TooledModelLogger, engine: Any, optimizer: Any = None, event: Any = None) -> ToolHandle:
    """Record a TooledModelLogger's per-layer statistics as an ignite handler, drawn at x = ``engine.state.iteration``
    (as ignite's own ``GradsScalarHandler`` draws its).

    Args:
        tooled: the :class:`~flexlogger.model.logger.TooledModelLogger` (``logger=Stat`` to share Stat's run).
        engine: the trainer ``Engine``.
        optimizer: record right after each ``optimizer.step()`` (a torch step post-hook), with the gradients the
            optimizer used.
        event: without an optimizer, the ignite event to record on (default ``Events.ITERATION_COMPLETED``); the
            update function must leave the gradients in place until then.

    Returns:
        A handle: ``.remove()`` stops recording (the TooledModelLogger's hooks stay until you ``close()`` it).

    Raises:
        ConfigError: a bad argument, naming ``attach_tooled()``.
    """
    caller = "attach_tooled()"
    _expect(caller, "tooled", tooled, isinstance(tooled, TooledModelLogger), "a flexlogger.TooledModelLogger")
    _expect(caller, "engine", engine, isinstance(engine, Engine), "an ignite.engine.Engine")
    _expect(caller, "optimizer", optimizer,
            optimizer is None or callable(getattr(optimizer, "register_step_post_hook", None)),
            "a torch.optim.Optimizer or None")
    if optimizer is not None and event is not None:
        raise ConfigError(f"{caller}: expected `optimizer` or `event`, not both: with an optimizer the statistics "
                          "are recorded after each optimizer step")
    guard = Guard("attach_tooled")

    def record(*_: Any) -> None:
        with guard.hook("step"):
            stats = tooled.step(log=False)
            if stats is None:  # a step `every` skips
                return
            names = {f"{layer}.{group}.{stat}" for layer, groups in stats.items() for group, row in groups.items()
                     for stat in row}
            names |= {f"{layer}.{group}.values" for layer, groups in stats.items() for group in groups}
            plots = [p for p, meters in tooled.get_definitions().items() if any(m in names for m in meters)]
            tooled.log(step=engine.state.iteration, keys=plots)

    if optimizer is not None:
        return ToolHandle(optimizer.register_step_post_hook(record))
    return ToolHandle(engine.add_event_handler(event if event is not None else Events.ITERATION_COMPLETED, record))
