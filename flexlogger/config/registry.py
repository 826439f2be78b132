"""Name -> type tables for meters and plots, and the introspection functions built on them.

Meter and plot ``type`` names in specs and config files resolve only through these tables: a config can never
name arbitrary code. A meter type ``torchmetrics.<ClassName>`` resolves to a concrete ``Metric`` class found by
that name in the torchmetrics package or one of its domain packages (:data:`TORCHMETRICS_PACKAGES`), nowhere else.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from flexlogger.core.plots import PLOT_TYPES, PlotType
from flexlogger.errors import ConfigError, UnknownNameError, closest, unknown_name_message
from flexlogger.meters import METER_CLASSES, Meter
from flexlogger.meters.torchmetric import PREFIX, meter_class_for

# where ``torchmetrics.<ClassName>`` is looked for, in this order: a fixed list, never a name from a config
TORCHMETRICS_PACKAGES = ("", "classification", "regression", "aggregation", "retrieval", "nominal", "clustering",
                         "segmentation", "text", "image", "audio", "detection", "multimodal", "shape", "video")
TORCHMETRICS_HINT = (f"expected `{PREFIX}<ClassName>` naming a concrete torchmetrics Metric class, e.g. "
                     f"{PREFIX}MulticlassF1Score, {PREFIX}MeanSquaredError, {PREFIX}BinaryAUROC")
INSTALL_HINT = "install it with `pip install 'flexlogger[torchmetrics]'`"


class MeterTable(Mapping[str, type[Meter]]):
    """Our meter types by name, and ``torchmetrics.<ClassName>`` resolved on demand.

    Iterating lists only our own types (torchmetrics has a hundred); ``name in METERS`` and ``METERS[name]`` also
    resolve torchmetrics names, so that everything that checks a spec's ``type`` against this table accepts them.
    """

    def __init__(self, own: Mapping[str, type[Meter]]) -> None:
        self._own = dict(own)

    def __getitem__(self, name: str) -> type[Meter]:
        if name in self._own:
            return self._own[name]
        if isinstance(name, str) and name.startswith(PREFIX):
            return torchmetrics_meter(name)  # UnknownNameError (a KeyError) when there is no such metric
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._own)

    def __len__(self) -> int:
        return len(self._own)


METERS = MeterTable({cls.kind: cls for cls in METER_CLASSES})
PLOTS: dict[str, PlotType] = {p.name: p for p in PLOT_TYPES}


def meter_class(name: str) -> type[Meter]:
    """The meter adapter class called ``name``; unknown names raise with the closest valid names."""
    try:
        return METERS[name]
    except UnknownNameError:
        raise
    except (KeyError, TypeError):
        message = unknown_name_message("meter type", name, METERS)
        raise UnknownNameError(f"{message}; or {PREFIX}<ClassName> for a torchmetrics Metric") from None


def torchmetrics_meter(type_name: str) -> type[Meter]:
    """The meter type adapting the torchmetrics Metric class named by ``torchmetrics.<ClassName>``.

    Raises:
        UnknownNameError: torchmetrics is not installed, or the name is no concrete Metric class of torchmetrics
            (``torchmetrics.functional.x``, ``torchmetrics.Metric``, ``torchmetrics.os``).
    """
    try:
        importlib.import_module("torchmetrics")
    except ImportError:
        raise UnknownNameError(f"unknown meter type {type_name!r}: torchmetrics is not installed; "
                               f"{INSTALL_HINT}") from None
    return _torchmetrics_meter(type_name)


@functools.cache  # one adapter class per metric class: meter_class(name) is name -> the same type
def _torchmetrics_meter(type_name: str) -> type[Meter]:
    class_name = type_name[len(PREFIX):]
    if not class_name.isidentifier() or class_name.startswith("_"):
        raise UnknownNameError(f"unknown meter type {type_name!r}: {TORCHMETRICS_HINT}")
    found = _find(class_name)
    if found is None:
        near = closest(class_name, _metric_names())
        hint = f" (did you mean {', '.join(repr(PREFIX + n) for n in near)}?)" if near else ""
        raise UnknownNameError(f"unknown meter type {type_name!r}{hint}: {TORCHMETRICS_HINT}")
    if not _is_metric(found):
        raise UnknownNameError(f"unknown meter type {type_name!r}: torchmetrics' {class_name} is no concrete Metric "
                               f"class (abstract, or not a Metric); {TORCHMETRICS_HINT}")
    return meter_class_for(found)


def _torchmetrics_packages() -> Iterator[ModuleType]:
    for package in TORCHMETRICS_PACKAGES:
        try:
            yield importlib.import_module(f"torchmetrics.{package}" if package else "torchmetrics")
        except (ImportError, RuntimeError, OSError):  # a domain package whose own dependencies are missing
            continue


def _is_metric(obj: Any) -> bool:
    from torchmetrics import Metric  # only called once torchmetrics imported

    return isinstance(obj, type) and issubclass(obj, Metric) and not inspect.isabstract(obj)


def _find(class_name: str) -> Any:
    """The first object called ``class_name`` in the torchmetrics packages (None if none): it alone decides."""
    for module in _torchmetrics_packages():
        obj = getattr(module, class_name, None)
        if obj is not None:
            return obj
    return None


def _metric_names() -> list[str]:
    return sorted({n for m in _torchmetrics_packages() for n in dir(m) if not n.startswith("_")
                   and _is_metric(getattr(m, n))})


def plot_type(name: str) -> PlotType:
    """The plot type called ``name``; unknown names raise with the closest valid names."""
    try:
        return PLOTS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(unknown_name_message("plot type", name, PLOTS)) from None


def meter_args(name: str) -> dict[str, Any]:
    """The arguments a meter type takes in its spec's ``args``, with their defaults (``'(required)'`` if none)."""
    return meter_class(name).arguments()


def make_meter(meter_name: str, type_name: str, args: dict[str, Any] | None = None) -> Meter:
    """Build meter ``meter_name`` of type ``type_name`` with ``args``; bad args raise :class:`ConfigError`."""
    cls = meter_class(type_name)
    args = dict(args or {})
    valid = meter_args(type_name)
    unknown = sorted(set(args) - set(valid))
    if unknown:
        raise ConfigError(f"meter {meter_name!r} ({type_name}): unknown argument(s) {', '.join(map(repr, unknown))}; "
                          f"valid arguments: {', '.join(valid) or '(none)'}")
    return cls(meter_name, **args)


def meter_types() -> list[str]:
    """Names of our meter types, e.g. ``['APMeter', 'AUCMeter', 'AverageValueMeter', ...]``.

    Any torchmetrics Metric class is a meter type too, named ``torchmetrics.<ClassName>``; they are not listed.
    """
    return sorted(METERS)


def plot_types() -> list[str]:
    """Names of the plot types: ``['bar', 'curve', 'heatmap', 'histogram', 'image', 'line', 'scatter', 'text']``."""
    return sorted(PLOTS)


def compatible_plots(meter_type: str) -> list[str]:
    """The plot types that can draw a meter of type ``meter_type``."""
    views = meter_class(meter_type).views
    return sorted(p.name for p in PLOT_TYPES if set(p.views) & set(views))


def meter_info(name: str) -> dict[str, Any]:
    """What a meter type takes in ``add()``, its ``args``, what it plots, and where it differs from torchnet.

    Example:
        >>> flexlogger.meter_info('ClassErrorMeter')['add']
        'add(output, target): output N x K class scores (or K scores for one sample), target N integer labels'
    """
    cls = meter_class(name)
    info = {"type": cls.kind, "add": cls.takes, "args": meter_args(name), "plots": cls.plots_as,
            "views": list(cls.views), "plot_types": compatible_plots(name), "note": cls.note, "merges": cls.merges}
    doc = getattr(cls, "doc", "")  # a torchmetrics meter type: the metric's own documentation
    if doc:
        info["doc"] = doc
    return info


def plot_info(name: str) -> dict[str, Any]:
    """What a plot type draws, which meter views it takes and which meter types it can show."""
    p = plot_type(name)
    return {"type": p.name, "description": p.description, "views": list(p.views),
            "updates": "appends a point per log()" if p.append else "replaces its content on each log()",
            "max_meters": p.max_meters,
            "meter_types": sorted(m for m, cls in METERS.items() if set(p.views) & set(cls.views))}


def view_for(plot: PlotType, meter_cls: type[Meter]) -> str | None:
    """The view a plot of type ``plot`` draws of a meter of class ``meter_cls`` (None when it cannot)."""
    return _first_shared(plot.views, meter_cls.views)


@functools.cache  # called for every meter on every log()
def _first_shared(wanted: tuple[str, ...], offered: tuple[str, ...]) -> str | None:
    return next((v for v in wanted if v in offered), None)
