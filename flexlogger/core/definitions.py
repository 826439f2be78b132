"""A FlexLogger's definitions: its plots, its meters' specs and the meters, with the lookups ``add()``, ``log()``
and ``remove()`` make over them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from flexlogger.config.specs import Checked, MeterSpec, PlotSpec
from flexlogger.errors import ArgumentTypeError, MeterInputError, UnknownKeyError, short_repr, unknown_name_message
from flexlogger.meters import Meter

__all__ = ["Definitions"]

# the shapes add() checks for a ValueMeter feeding these plot kinds (the number of dimensions each draws)
_SHAPES: dict[str, tuple[int, ...]] = {"heatmap": (2,), "image": (2, 3)}
_SHAPE_TEXT = {"heatmap": "a 2-d matrix", "image": "an H x W, C x H x W or H x W x C array"}


class Definitions:
    """The plots, the meter specs and the meters of one logger, in definition order."""

    def __init__(self) -> None:
        self.plots: dict[str, PlotSpec] = {}
        self.specs: dict[str, MeterSpec] = {}
        self.meters: dict[str, Meter] = {}
        self.shape_checks: dict[str, tuple[str, str]] = {}  # meter -> (plot, kind) whose data shape add() checks

    def install(self, checked: Checked) -> None:
        """Add checked plots and meter specs, with the meters built while checking them."""
        self.plots.update(checked.plots)
        self.specs.update(checked.meters)
        self.meters.update((name, checked.built[name]) for name in checked.meters)
        self._update_shape_checks()

    def remove(self, keys: list[str]) -> list[str]:
        """Remove meters and plots (a plot with the meters that fed only that plot); return the plots removed."""
        self.check_keys(keys)
        removed = []
        for key in keys:
            if key in self.plots:
                del self.plots[key]
                for name, spec in list(self.specs.items()):
                    rest = tuple(t for t in spec.target if t != key)
                    if rest:
                        self.specs[name] = dataclasses.replace(spec, target=rest)
                    elif name in self.specs:
                        del self.specs[name], self.meters[name]
                removed.append(key)
            elif key in self.specs:
                del self.specs[key], self.meters[key]
        self._update_shape_checks()
        return removed

    def _update_shape_checks(self) -> None:
        """Meters whose values add() checks against the plots they feed (an array for a heatmap must be 2-d):
        caught in the training loop, naming the meter, rather than by the window that cannot draw it."""
        self.shape_checks = {}
        for name, spec in self.specs.items():
            for plot in spec.target:
                kind = self.plots[plot].type
                meter_type = type(self.meters[name])
                if kind in _SHAPES and "matrix" in meter_type.views and meter_type.kind == "ValueMeter":
                    self.shape_checks[name] = (plot, kind)

    def check_shape(self, name: str, value: Any) -> None:
        """Raise :class:`MeterInputError` when ``value`` is an array that meter ``name``'s plot cannot draw."""
        plot, kind = self.shape_checks[name]
        shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value) if isinstance(
            value, (list, tuple)) else None
        if shape is None or (len(shape) <= 1 and int(np.prod(shape)) == 1):
            return  # a number or a string: the meter's own checks
        ndims = _SHAPES[kind]
        if len(shape) not in ndims:
            raise MeterInputError(f"add(): meter {name!r} feeds the {kind} plot {plot!r}, which draws "
                                  f"{_SHAPE_TEXT[kind]}; got an array of shape {shape}")

    def by_plot(self) -> dict[str, list[str]]:
        """``{plot: [meters that feed it]}`` in definition order."""
        return {p: [m for m, s in self.specs.items() if p in s.target] for p in self.plots}

    def check_keys(self, keys: Iterable[str]) -> None:
        """Raise :class:`UnknownKeyError` for a key that is neither a meter nor a plot."""
        for key in keys:
            if key not in self.meters and key not in self.plots:
                valid = [*self.plots, *self.meters]
                raise UnknownKeyError(unknown_name_message("meter or plot", key, valid))

    def select(self, keys: str | Iterable[str] | None) -> list[str]:
        """Meter names selected by ``keys`` (meter or plot names); None selects every meter."""
        if keys is None:
            return list(self.meters)
        if not isinstance(keys, (str, list, tuple, set, frozenset, dict)) and not hasattr(keys, "__iter__"):
            raise ArgumentTypeError(f"expected `keys` to be a meter or plot name, or a list of them, but got "
                                    f"{type(keys).__name__} {short_repr(keys)}")
        keys = [keys] if isinstance(keys, str) else list(keys)
        self.check_keys(keys)
        chosen: dict[str, None] = {}
        for key in keys:
            if key in self.plots:
                chosen.update((m, None) for m, s in self.specs.items() if key in s.target)
            else:
                chosen[key] = None
        return list(chosen)
