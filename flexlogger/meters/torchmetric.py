"""TorchMetricMeter: any torchmetrics ``Metric`` class as a meter type named ``torchmetrics.<ClassName>``.

The registry resolves the name inside the torchmetrics package only (``flexlogger.config.registry``); this module adapts
the class it found. torchmetrics is imported only by the registry, when a config names such a meter type.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from flexlogger.errors import ConfigError, MeterInputError
from flexlogger.meters.base import Meter
from flexlogger.meters.convert import describe, numpy_dtype

PREFIX = "torchmetrics."
REQUIRED = "(required)"  # how meter_args shows an argument without a default (as preset_info does)


class TorchMetricMeter(Meter):
    """A torchmetrics ``Metric`` behind the meter interface: ``add(*args)`` is its ``update``, ``value()`` its
    ``compute()``.

    State: the metric declares its own (torchmetrics' ``add_state``), so this adapter declares none; ``reset`` is
    the metric's ``reset``, the host copy its ``clone()`` on the CPU, and ``merge`` its ``merge_state``.

    Distributed: under ``FlexLogger(distributed=True)`` the metric is pooled by torchmetrics' own sync
    (``Metric.sync``: its ``gather_all_tensors`` and each state's ``dist_reduce_fx``), in ``synced()``, a collective
    call every rank makes from ``core.distributed.pooled``. The metric is built with ``sync_on_compute=False``,
    so that a plain ``value()`` is this rank's and never blocks on the other ranks (and with
    ``compute_with_cache=False``).

    Views: what ``compute()`` returns is known only once the metric has data, too late to check a plot against it
    when the logger is built. So every such meter type offers the views ``scalar``, ``vector``, ``matrix`` and
    ``text``: any plot accepts it, and ``log()`` raises :class:`MeterInputError` naming the meter, the shape it
    computed and the plots that draw that shape when the result does not fit (a number: line, scatter, bar; a
    vector such as per-class scores: bar, histogram; a matrix: heatmap, image; anything: text).
    """

    metric_class: ClassVar[type[Any]]
    doc: ClassVar[str] = ""  # the metric class's docstring, shown by meter_info
    views = ("scalar", "vector", "matrix", "text")
    syncs_itself = True
    merges = "the metric's own sync across ranks (torchmetrics' dist_reduce_fx of each state)"

    def __init__(self, name: str, **args: Any) -> None:
        expected = type(self).arguments()
        missing = [a for a, default in expected.items() if default == REQUIRED and a not in args]
        if missing:
            raise ConfigError(f"meter {name!r} ({self.kind}): missing required argument(s) "
                              f"{', '.join(map(repr, missing))}; arguments: {_signature(expected)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. warnings about optional packages
                # no cache: a clone synced across ranks must compute, not return this rank's cached result
                self.metric = self.metric_class(**args, sync_on_compute=False, compute_with_cache=False)
        except (TypeError, ValueError) as exc:  # torchmetrics checks its arguments: "Expected argument `x` to be"
            raise ConfigError(f"meter {name!r} ({self.kind}): {exc}; arguments: {_signature(expected)}") from None
        super().__init__(name)

    @classmethod
    def arguments(cls) -> dict[str, Any]:
        """The arguments of the metric class, with their defaults (``'(required)'`` for those without one)."""
        params = inspect.signature(cls.metric_class).parameters.values()
        return {p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default for p in params
                if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}

    def add(self, *args: Any, **kwargs: Any) -> None:
        args = tuple(_tensor(a) for a in args)
        kwargs = {k: _tensor(v) for k, v in kwargs.items()}
        first = next((a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor)), None)
        if first is not None and first.device != self.metric.device:
            self.metric.to(first.device)  # the state follows the inputs (a CUDA batch: the state on that GPU)
        try:
            self.metric.update(*args, **kwargs)
        except (TypeError, ValueError, RuntimeError, IndexError) as exc:
            got = ", ".join(describe(a) for a in [*args, *kwargs.values()])
            raise MeterInputError(f"meter {self.name!r} ({self.kind}) expects {self.takes}; got {got}: {exc}") from None

    def reset(self) -> None:
        super().reset()
        self.metric.reset()
        self._pooled: Any = None

    def value(self) -> Any:
        """The metric's ``compute()`` with tensors as floats (a number) or arrays; NaN when empty."""
        if self._pooled is not None:
            return self._pooled
        if self.count == 0:
            return math.nan
        return _host(self.metric.compute())

    # distributed --------------------------------------------------------------------------------------------
    def portable(self) -> Meter:
        out = copy.copy(self)
        out.metric = self.metric.clone().cpu()
        return out

    def merge(self, other: Meter) -> None:
        if not isinstance(other, TorchMetricMeter):
            raise TypeError(f"cannot merge a {other.kind} into {self.kind}")
        self.count += other.count
        self.metric.merge_state(other.metric)

    def synced(self, count: int) -> Meter:
        """A copy whose value is the metric computed over every rank's state (a collective call: every rank)."""
        out = copy.copy(self)
        out.count = count
        if count:
            metric = self.metric.clone()
            metric.sync(distributed_available=_distributed)  # torchmetrics' gather and reductions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "compute before update" on a rank that received nothing
                out._pooled = _host(metric.compute())  # computed on the pooled state, then back to this rank's
            out.metric = metric
        return out

    # views ------------------------------------------------------------------------------------------------
    def _shaped(self, ndims: tuple[int, ...], what: str) -> Any:
        value = self.value()
        ndim = np.ndim(value) if isinstance(value, (float, np.ndarray)) else -1
        if ndim not in ndims:
            shape = f"an array of shape {np.shape(value)}" if ndim >= 0 else describe(value)
            raise MeterInputError(f"meter {self.name!r} ({self.kind}) computed {shape}, but this plot draws {what}; "
                                  "draw a number on a line, scatter or bar plot, a vector on a bar or histogram plot, "
                                  "a matrix on a heatmap or image plot, anything on a text plot")
        return value

    def scalars(self) -> dict[str, float]:
        return {self.name: float(self._shaped((0,), "a number"))}

    def vector(self) -> np.ndarray:
        return np.asarray(self._shaped((0, 1), "a vector"), dtype=np.float64).reshape(-1)

    def matrix(self) -> np.ndarray:
        return np.asarray(self._shaped((2, 3), "a matrix"), dtype=np.float64)

    def text(self) -> str:
        value = self.value()
        return f"{value:.6g}" if isinstance(value, float) else str(value)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _tensor(value: Any) -> Any:
    """numpy arrays as tensors (torchmetrics takes tensors); anything else as given."""
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _host(value: Any) -> Any:
    """A computed value on the host: a 0-d tensor as a float, a tensor as an ndarray, containers element-wise."""
    if isinstance(value, torch.Tensor):
        value = numpy_dtype(value.detach().cpu())
        return float(value) if value.dim() == 0 else value.numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    return value


def _signature(args: dict[str, Any]) -> str:
    return ", ".join(a if d == REQUIRED else f"{a}={d!r}" for a, d in args.items())


def _doc(metric_class: type[Any]) -> str:
    return inspect.getdoc(metric_class) or ""


def meter_class_for(metric_class: type[Any]) -> type[TorchMetricMeter]:
    """The meter type ``torchmetrics.<ClassName>`` adapting ``metric_class`` (a concrete torchmetrics Metric)."""
    name = metric_class.__name__
    try:
        params = list(inspect.signature(metric_class.update).parameters.values())[1:]  # self
        update = f"{name}.update({', '.join(str(p) for p in params)})".replace("torch.Tensor", "Tensor")
        takes = f"add({', '.join(p.name for p in params)}): as torchmetrics' {update}"
    except (TypeError, ValueError):
        takes = f"add(...): as torchmetrics' {name}.update"
    doc = _doc(metric_class)
    summary = doc.split("\n\n")[0].replace("\n", " ")
    attrs = {
        "kind": PREFIX + name,
        "metric_class": metric_class,
        "takes": takes,
        "plots_as": ("by the shape of compute()'s result, checked at log(): a number as scalar (line, scatter, bar), "
                     "a vector as vector (bar, histogram), a matrix as matrix (heatmap, image); text for any"),
        "note": f"torchmetrics' {name} ({metric_class.__module__}): {summary}",
        "doc": doc,
        "__module__": __name__,
        "__doc__": f"torchmetrics' {name} as a meter type.\n\n{doc}",
    }
    return type(f"TorchMetric_{name}", (TorchMetricMeter,), attrs)
