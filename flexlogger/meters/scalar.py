"""Meters of one number per ``add()``: averages, the best value, the last value, and time."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
import torch
import torchnet.meter as tnt

from flexlogger.core.plots import Histogram
from flexlogger.errors import ConfigError
from flexlogger.meters.base import MeanStdMeter, Meter, State
from flexlogger.meters.convert import Scalar, bad_input, to_float, to_scalar, to_tensor


class AverageValueMeter(MeanStdMeter):
    kind = "AverageValueMeter"
    takes = "add(value): a number, or a one-element tensor/array (a CUDA tensor stays on its device)"
    plots_as = "scalar: the mean since the last reset; text: mean"
    note = ("torchnet's AverageValueMeter with the square root deferred from every add() to value() (the same "
            "Welford recurrence, identical results); value() is (mean, std) with std the sample standard "
            "deviation: NaN for one sample (torchnet says inf), (NaN, NaN) when empty.")
    # the mean starts at 0.0: Welford's first step then gives exactly v and a sum of squares of 0 (NaN for an
    # Inf), with no branch for it (value() reads n first)
    state = (State(("n", "mean", "m_s"), (0, 0.0, 0.0), "moments"),)

    n: int
    mean: Scalar
    m_s: Scalar

    def add(self, value: Any) -> None:
        v = value if type(value) is float else to_scalar(self, value)
        self.n = n = self.n + 1
        old = self.mean
        self.mean = mean = old + (v - old) / n
        self.m_s += (v - old) * (v - mean)

    def value(self) -> tuple[float, float]:
        if self.n == 0:
            return math.nan, math.nan
        mean = to_float(self.mean)
        if self.n == 1:
            return mean, math.nan
        return mean, math.sqrt(max(to_float(self.m_s), 0.0) / (self.n - 1.0))


class MovingAverageValueMeter(MeanStdMeter):
    kind = "MovingAverageValueMeter"
    takes = "add(value): a number, or a one-element tensor/array"
    plots_as = "scalar: the mean of the last `windowsize` values"
    note = ("torchnet's MovingAverageValueMeter keeps the window in float32 and running sums of values and "
            "squares in which old values are subtracted rounded: its mean drifts and its std is wrong (3.7 instead "
            "of 0.03 for values near 1000 after 200,000 adds), and an add() costs 60 us. Ours keeps the last "
            "`windowsize` values as Python floats and computes the mean and the sample std (0 for one value, as "
            "torchnet) from them.")
    state = (State("values", reduce="cat", factory=lambda m: deque(maxlen=m.windowsize)),)
    merges = "the mean and std over every rank's last `windowsize` values together"

    values: deque[float]

    def __init__(self, name: str, windowsize: int = 10) -> None:
        if not isinstance(windowsize, int) or isinstance(windowsize, bool) or windowsize < 1:
            raise ConfigError(f"meter {name!r} (MovingAverageValueMeter): expected `windowsize` to be a positive int, "
                              f"but got {windowsize!r}")
        self.windowsize = windowsize
        super().__init__(name)

    def add(self, value: Any) -> None:
        self.values.append(to_float(to_scalar(self, value)))

    def value(self) -> tuple[float, float]:
        n = len(self.values)
        if n == 0:
            return math.nan, math.nan
        mean = math.fsum(self.values) / n
        return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / max(n - 1, 1))


BEST = ("min", "max")


class BestValueMeter(Meter):
    """The minimum or maximum of the values added since the last reset: a reduction, like the mean.

    Not the way to track a run's best value: a meter spec's ``best: min|max`` key does that (over every logged
    value, with its step, in the legend, ``best()`` and ``summary.json``). This meter reduces within an interval,
    e.g. the lowest batch loss of each epoch when the logger resets every epoch; it is flexilogger's meter, kept
    for its users (torchmetrics has the same as ``MinMetric``/``MaxMetric``).
    """

    kind = "BestValueMeter"
    takes = "add(value): a number, or a one-element tensor/array"
    plots_as = "scalar: the lowest (best='min') or highest (best='max') value added since the last reset"
    note = ("Not in torchnet (from flexilogger): the min or max of the values added since the last reset, e.g. the "
            "lowest batch loss of each epoch; for the best logged value of the run use the `best:` key. NaN values "
            "are ignored; NaN when empty or fed only NaN.")
    # both bounds are kept: each reduces by its own rule, whichever `best` reads
    state = (State("low", math.inf, "min"), State("high", -math.inf, "max"))
    merges = "the minimum (best='min') or maximum (best='max') across ranks"

    low: float
    high: float

    def __init__(self, name: str, best: str = "min") -> None:
        if best not in BEST:
            raise ConfigError(f"meter {name!r} (BestValueMeter): expected `best` to be one of "
                              f"{', '.join(map(repr, BEST))}, but got {best!r}")
        self.best = best
        super().__init__(name)

    def add(self, value: Any) -> None:
        v = value if type(value) is float else to_float(to_scalar(self, value))
        if v < self.low:
            self.low = v
        if v > self.high:
            self.high = v

    def value(self) -> float:
        if self.low > self.high:  # nothing but NaN (or nothing) was added
            return math.nan
        return float(self.low if self.best == "min" else self.high)


class ValueMeter(Meter):
    kind = "ValueMeter"
    takes = "add(value): anything: a number, a tensor/array of any shape, or a string"
    plots_as = "scalar: the last number; vector: the last array flattened; matrix: the last 2-d/3-d array; text"
    views = ("scalar", "vector", "matrix", "text")
    note = "The last value added (not in torchnet). Tensors are detached and copied to the host at add()."
    state = (State("_value", None, "first"),)

    _value: Any

    def add(self, value: Any) -> None:
        if isinstance(value, (str, Histogram)):  # a Histogram: bin counts made on the device (TooledModel)
            self._value = value
        elif isinstance(value, torch.Tensor) and value.numel() == 1 and value.device.type != "cpu":
            self._value = value.detach().reshape(())  # read at value(), no sync on add()
        elif isinstance(value, (torch.Tensor, np.ndarray, list, tuple)) and _numel(value) != 1:
            self._value = to_tensor(self, value, "a number, an array or a string").cpu().numpy().copy()
        else:
            self._value = to_scalar(self, value)

    def value(self) -> Any:
        if isinstance(self._value, torch.Tensor):
            return to_float(self._value)
        return self._value

    def scalars(self) -> dict[str, float]:
        value = self.value()
        if isinstance(value, (str, np.ndarray)):
            raise bad_input(self, value, "a single number to draw it as a point (use a histogram, bar or image "
                                         "plot for arrays, a text plot for strings)")
        return {self.name: float(value)}

    def vector(self) -> np.ndarray:
        if isinstance(self._value, str):
            raise bad_input(self, self._value, "a number or an array to draw it as bars or a histogram")
        return super().vector()

    def matrix(self) -> np.ndarray:
        value = self.value()
        if not isinstance(value, np.ndarray) or value.ndim not in (2, 3):
            raise bad_input(self, value, "a 2-d (H x W) or 3-d (C x H x W) array to draw it as a heatmap or image")
        return value

    def text(self) -> str:
        value = self.value()
        return f"{value:.6g}" if isinstance(value, float) else str(value)


def _numel(value: torch.Tensor | np.ndarray | list[Any] | tuple[Any, ...]) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else int(np.size(value))


class TimeMeter(Meter):
    kind = "TimeMeter"
    takes = "add(n=1): counts n units of work (None counts one)"
    plots_as = "scalar: seconds since the last reset (per unit with unit=True)"
    note = "torchnet's TimeMeter, which has no add(): ours counts units for unit=True."
    # each rank times itself: rank 0's clock and count are the ones drawn
    state = (State("tnt.n", 0, "first"), State("tnt.time", reduce="first", factory=lambda m: time.time()))

    def __init__(self, name: str, unit: bool = False) -> None:
        if not isinstance(unit, bool):
            raise ConfigError(f"meter {name!r} (TimeMeter): expected `unit` to be a bool, but got {unit!r}")
        self.tnt = tnt.TimeMeter(unit)
        super().__init__(name)

    def add(self, n: Any = 1) -> None:
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise bad_input(self, n, "a non-negative int count of units (or None for one)")
        self.tnt.n += n

    def value(self) -> float:
        elapsed = float(self.tnt.value())
        if self.tnt.unit:
            return elapsed / self.tnt.n if self.tnt.n else math.nan
        return elapsed

