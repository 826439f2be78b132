"""Name -> type tables for meters and plots, and the introspection functions built on them.

Meter and plot ``type`` names in specs and config files resolve only through these tables: a config can never
name arbitrary code.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .errors import ConfigError, UnknownNameError, unknown_name_message
from .meters import METER_CLASSES, Meter
from .plots import PLOT_TYPES, PlotType

METERS: dict[str, type[Meter]] = {cls.kind: cls for cls in METER_CLASSES}
PLOTS: dict[str, PlotType] = {p.name: p for p in PLOT_TYPES}


def meter_class(name: str) -> type[Meter]:
    """The meter adapter class called ``name``; unknown names raise with the closest valid names."""
    try:
        return METERS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(unknown_name_message("meter type", name, METERS)) from None


def plot_type(name: str) -> PlotType:
    """The plot type called ``name``; unknown names raise with the closest valid names."""
    try:
        return PLOTS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(unknown_name_message("plot type", name, PLOTS)) from None


def meter_args(name: str) -> dict[str, Any]:
    """The arguments a meter type takes in its spec's ``args``, with their defaults."""
    params = list(inspect.signature(meter_class(name).__init__).parameters.values())[2:]  # self, name
    return {p.name: p.default for p in params}


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
    """Names of the meter types, e.g. ``['APMeter', 'AUCMeter', 'AverageValueMeter', ...]``."""
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
    return {"type": cls.kind, "add": cls.takes, "args": meter_args(name), "plots": cls.plots_as,
            "views": list(cls.views), "plot_types": compatible_plots(name), "note": cls.note}


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
