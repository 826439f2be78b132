"""Meters: one adapter per torchnet meter, behind ``add`` / ``value`` / ``reset`` and typed *views*.

A plot asks a meter for the view it draws:

===========  =================================================  ======================
view         what the meter returns                              drawn by
===========  =================================================  ======================
``scalar``   ``{trace name: float}`` (one trace per number)      line, scatter, bar
``vector``   a 1-d array                                         bar, histogram
``matrix``   a 2-d array (or ``C x H x W`` for images)           heatmap, image
``curve``    ``(x, y)`` arrays                                   curve
``text``     a string                                            text
===========  =================================================  ======================

Where torchnet is wrong or noisy the adapter fixes it and says so in its ``note`` (shown by ``meter_info``):
AverageValueMeter defers torchnet's square root to ``value()``; APMeter, mAPMeter and AUCMeter compute the
standard (tie-aware) definitions; MSEMeter detaches its inputs and checks their shapes.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import Any, ClassVar

import numpy as np
import torch
import torchnet.meter as tnt

from .convert import Scalar, bad_input, describe, to_float, to_scalar, to_tensor
from .errors import ConfigError, MeterInputError
from .plots import Histogram

VIEWS = ("scalar", "vector", "matrix", "curve", "text")


class Meter:
    """Base adapter. Subclasses set the class attributes and write ``_add``, ``value`` and ``_reset``.

    ``count`` is the number of ``add()`` calls since the last reset: a meter with ``count == 0`` is empty and
    adds no point to any plot.
    """

    kind: ClassVar[str] = ""
    takes: ClassVar[str] = ""
    plots_as: ClassVar[str] = ""
    views: ClassVar[tuple[str, ...]] = ("scalar", "text")
    note: ClassVar[str] = ""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def add(self, *args: Any, **kwargs: Any) -> None:
        if self._add(*args, **kwargs) is not False:
            self.count += 1

    def _add(self, *args: Any, **kwargs: Any) -> bool | None:
        """Feed the meter; return False when the call held no sample (an empty batch): the meter stays empty."""
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        self.count = 0
        self._reset()

    def _reset(self) -> None:
        raise NotImplementedError

    # distributed: see flexlogger.distributed -------------------------------------------------------------
    merges: ClassVar[str] = "summed across ranks"

    def portable(self) -> Meter:
        """A copy whose state lives on the host, to send to other ranks."""
        return copy.deepcopy(self)

    def merge(self, other: Meter) -> None:
        """Fold ``other`` (the same meter on another rank) into this one."""
        self.count += other.count
        self._merge(other)

    def _merge(self, other: Any) -> None:
        raise NotImplementedError(f"{self.kind} cannot be merged across ranks")

    # views ---------------------------------------------------------------------------------------------
    def scalars(self) -> dict[str, float]:
        return {self.name: float(self.value())}

    def vector(self) -> np.ndarray:
        return np.asarray(self.value(), dtype=np.float64).reshape(-1)

    def matrix(self) -> np.ndarray:
        return np.asarray(self.value(), dtype=np.float64)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        raise MeterInputError(f"meter {self.name!r} ({self.kind}) has no curve view")

    def text(self) -> str:
        if "scalar" in self.views:
            series = self.scalars()
            if list(series) == [self.name]:
                return f"{series[self.name]:.6g}"
            return ", ".join(f"{k}: {v:.6g}" for k, v in series.items())
        return str(self.value())


class _MeanStdMeter(Meter):
    """A meter whose value() is ``(mean, std)``: it draws its mean."""

    def value(self) -> tuple[float, float]:
        raise NotImplementedError

    def scalars(self) -> dict[str, float]:
        return {self.name: self.value()[0]}


class AverageValueMeter(_MeanStdMeter):
    kind = "AverageValueMeter"
    takes = "add(value): a number, or a one-element tensor/array (a CUDA tensor stays on its device)"
    plots_as = "scalar: the mean since the last reset; text: mean"
    note = ("torchnet's AverageValueMeter with the square root deferred from every add() to value() (the same "
            "Welford recurrence, identical results); value() is (mean, std) with std the sample standard "
            "deviation: NaN for one sample (torchnet says inf), (NaN, NaN) when empty.")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.n = 0
        self.mean: Scalar = math.nan
        self.m_s: Scalar = 0.0

    def add(self, value: Any) -> None:  # the hot path: Meter.add and _add in one call
        v = value if type(value) is float else to_scalar(self, value)
        n = self.n + 1
        self.n = n
        self.count += 1
        if n == 1:
            self.mean = 0.0 + v
            self.m_s = 0.0 * v
        else:
            old = self.mean
            self.mean = mean = old + (v - old) / n
            self.m_s += (v - old) * (v - mean)

    merges = "pooled: the mean and std of every rank's values together (Chan's parallel formula)"

    def portable(self) -> Meter:
        out = copy.copy(self)
        out.mean, out.m_s = to_float(self.mean), to_float(self.m_s)
        return out

    def _merge(self, other: AverageValueMeter) -> None:
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m_s = other.n, to_float(other.mean), to_float(other.m_s)
            return
        n = self.n + other.n
        mean = to_float(self.mean)
        delta = to_float(other.mean) - mean
        self.mean = mean + delta * other.n / n
        self.m_s = to_float(self.m_s) + to_float(other.m_s) + delta * delta * self.n * other.n / n
        self.n = n

    def value(self) -> tuple[float, float]:
        if self.n == 0:
            return math.nan, math.nan
        mean = to_float(self.mean)
        if self.n == 1:
            return mean, math.nan
        return mean, math.sqrt(max(to_float(self.m_s), 0.0) / (self.n - 1.0))

    def _reset(self) -> None:
        self.n = 0
        self.mean = math.nan
        self.m_s = 0.0



class MovingAverageValueMeter(_MeanStdMeter):
    kind = "MovingAverageValueMeter"
    takes = "add(value): a number, or a one-element tensor/array"
    plots_as = "scalar: the mean of the last `windowsize` values"
    note = ("torchnet's MovingAverageValueMeter keeps the window in float32 and running sums of values and "
            "squares in which old values are subtracted rounded: its mean drifts and its std is wrong (3.7 instead "
            "of 0.03 for values near 1000 after 200,000 adds), and an add() costs 60 us. Ours keeps the last "
            "`windowsize` values as Python floats and computes the mean and the sample std (0 for one value, as "
            "torchnet) from them.")

    def __init__(self, name: str, windowsize: int = 10) -> None:
        super().__init__(name)
        if not isinstance(windowsize, int) or isinstance(windowsize, bool) or windowsize < 1:
            raise ConfigError(f"meter {name!r} (MovingAverageValueMeter): expected `windowsize` to be a positive int, "
                              f"but got {windowsize!r}")
        self.windowsize = windowsize
        self.values: deque[float] = deque(maxlen=windowsize)

    merges = "the mean and std over every rank's last `windowsize` values together"

    def _add(self, value: Any) -> None:
        self.values.append(to_float(to_scalar(self, value)))

    def _merge(self, other: MovingAverageValueMeter) -> None:
        values = [*self.values, *other.values]
        self.values = deque(values, maxlen=max(1, len(values)))

    def value(self) -> tuple[float, float]:
        n = len(self.values)
        if n == 0:
            return math.nan, math.nan
        mean = math.fsum(self.values) / n
        return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / max(n - 1, 1))

    def _reset(self) -> None:
        self.values.clear()


class ValueMeter(Meter):
    kind = "ValueMeter"
    takes = "add(value): anything: a number, a tensor/array of any shape, or a string"
    plots_as = "scalar: the last number; vector: the last array flattened; matrix: the last 2-d/3-d array; text"
    views = ("scalar", "vector", "matrix", "text")
    note = "The last value added (not in torchnet). Tensors are detached and copied to the host at add()."

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._value: Any = None

    def _add(self, value: Any) -> None:
        if isinstance(value, (str, Histogram)):  # a Histogram: bin counts made on the device (TooledModel)
            self._value = value
        elif isinstance(value, torch.Tensor) and value.numel() == 1 and value.device.type != "cpu":
            self._value = value.detach().reshape(())  # read at value(), no sync on add()
        elif isinstance(value, (torch.Tensor, np.ndarray, list, tuple)) and _numel(value) != 1:
            self._value = to_tensor(self, value, "a number, an array or a string").cpu().numpy().copy()
        else:
            self._value = to_scalar(self, value)

    merges = "rank 0's value"

    def portable(self) -> Meter:
        out = copy.copy(self)
        out._value = self.value()
        return out

    def _merge(self, other: Any) -> None:
        if self._value is None:
            self._value = other._value

    def value(self) -> Any:
        if isinstance(self._value, torch.Tensor):
            return to_float(self._value)
        return self._value

    def _reset(self) -> None:
        self._value = None

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


class MSEMeter(Meter):
    kind = "MSEMeter"
    takes = "add(output, target): two tensors/arrays of the same shape"
    plots_as = "scalar: the mean squared error (its root with root=True)"
    note = ("torchnet's MSEMeter, with inputs detached (no autograd graph kept), shapes checked (torchnet "
            "broadcasts silently) and NaN when empty (torchnet says 0).")

    def __init__(self, name: str, root: bool = False) -> None:
        super().__init__(name)
        if not isinstance(root, bool):
            raise ConfigError(f"meter {name!r} (MSEMeter): expected `root` to be a bool, but got {root!r}")
        self.tnt = tnt.MSEMeter(root=root)

    def add(self, output: Any, target: Any) -> None:  # the hot path: Meter.add and _add in one call
        if type(output) is torch.Tensor and not output.requires_grad:
            out = output
        else:
            out = to_tensor(self, output, "output: a tensor/array")
        if type(target) is torch.Tensor and not target.requires_grad:
            tgt = target
        else:
            tgt = to_tensor(self, target, "target: a tensor/array")
        if out.shape != tgt.shape:
            raise MeterInputError(f"meter {self.name!r} (MSEMeter) expects output and target of the same shape, "
                                  f"got output {describe(out)} and target {describe(tgt)}")
        if not out.is_floating_point():
            out = out.double()
        if tgt.get_device() != out.get_device():
            tgt = tgt.to(out.device)
        if out.numel() == 0:
            return  # an empty batch: nothing received
        # torchnet's MSEMeter.add, with the square taken in place (the same kernels, identical sums)
        squares = out - tgt
        squares.pow_(2)
        self.tnt.n += out.numel()
        self.tnt.sesum += torch.sum(squares)
        self.count += 1

    def portable(self) -> Meter:
        out = copy.deepcopy(self)
        out.tnt.sesum = to_float(self.tnt.sesum)
        return out

    def _merge(self, other: MSEMeter) -> None:
        self.tnt.n += other.tnt.n
        self.tnt.sesum = to_float(self.tnt.sesum) + to_float(other.tnt.sesum)

    def value(self) -> float:
        return math.nan if self.tnt.n == 0 else to_float(self.tnt.value())  # NaN also after empty batches

    def _reset(self) -> None:
        self.tnt.reset()


class MAEMeter(Meter):
    kind = "MAEMeter"
    takes = "add(output, target): two tensors/arrays of the same shape"
    plots_as = "scalar: the mean absolute error over every element added since the last reset"
    note = ("Not in torchnet: the mean of |output - target| over every element, checked and detached like "
            "MSEMeter; the sum stays on the inputs' device until value(); NaN when empty.")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.n = 0
        self.abs_sum: Scalar = 0.0

    def _add(self, output: Any, target: Any) -> bool | None:
        out = to_tensor(self, output, "output: a tensor/array")
        tgt = to_tensor(self, target, "target: a tensor/array")
        if out.shape != tgt.shape:
            raise MeterInputError(f"meter {self.name!r} (MAEMeter) expects output and target of the same shape, "
                                  f"got output {describe(out)} and target {describe(tgt)}")
        if not out.is_floating_point():
            out = out.double()
        if out.numel() == 0:
            return False  # an empty batch: nothing received
        self.abs_sum = self.abs_sum + torch.sum(torch.abs(out - tgt.to(out.device)))
        self.n += out.numel()
        return None

    def portable(self) -> Meter:
        out = copy.copy(self)
        out.abs_sum = to_float(self.abs_sum)
        return out

    def _merge(self, other: MAEMeter) -> None:
        self.n += other.n
        self.abs_sum = to_float(self.abs_sum) + to_float(other.abs_sum)

    def value(self) -> float:
        return to_float(self.abs_sum) / self.n if self.n else math.nan

    def _reset(self) -> None:
        self.n = 0
        self.abs_sum = 0.0

def _scores_and_labels(meter: Meter, output: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x K scores, N integer labels) from a classifier's output and its targets."""
    out = to_tensor(meter, output, "output: an N x K tensor of class scores")
    tgt = to_tensor(meter, target, "target: N integer class labels")
    if out.dim() == 1:
        out = out.unsqueeze(0)
    tgt = tgt.reshape(-1) if tgt.dim() <= 1 else tgt
    if out.dim() != 2 or tgt.dim() != 1 or tgt.shape[0] != out.shape[0]:
        raise MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects output N x K scores and target N labels, "
                              f"got output {describe(out)} and target {describe(tgt)}")
    if tgt.is_floating_point() and not bool(torch.all(tgt == tgt.round())):
        raise MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects integer class labels as target, "
                              f"got {describe(tgt)} with non-integer values")
    tgt = tgt.long()
    if tgt.numel() and (int(tgt.min()) < 0 or int(tgt.max()) >= out.shape[1]):
        raise MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects labels in [0, {out.shape[1] - 1}] "
                              f"for {out.shape[1]} classes, got labels from {int(tgt.min())} to {int(tgt.max())}")
    return out, tgt


class ClassErrorMeter(Meter):
    kind = "ClassErrorMeter"
    takes = "add(output, target): output N x K class scores (or K scores for one sample), target N integer labels"
    plots_as = "scalar: the top-k error in % (accuracy with accuracy=True), one trace per k: name@k when len(topk) > 1"
    note = "torchnet's ClassErrorMeter with inputs checked; NaN when empty."

    def __init__(self, name: str, topk: list[int] | tuple[int, ...] = (1,), accuracy: bool = False) -> None:
        super().__init__(name)
        if (not isinstance(topk, (list, tuple)) or not topk
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk)):
            raise ConfigError(f"meter {name!r} (ClassErrorMeter): expected `topk` to be a list of positive ints, "
                              f"but got {topk!r}")
        if not isinstance(accuracy, bool):
            raise ConfigError(f"meter {name!r} (ClassErrorMeter): expected `accuracy` to be a bool, "
                              f"but got {accuracy!r}")
        self.topk = sorted(set(topk))
        self.tnt = tnt.ClassErrorMeter(topk=self.topk, accuracy=accuracy)

    def _add(self, output: Any, target: Any) -> bool | None:
        out, tgt = _scores_and_labels(self, output, target)
        if out.shape[1] < self.topk[-1]:
            raise MeterInputError(f"meter {self.name!r} (ClassErrorMeter) with topk={self.topk} expects at least "
                                  f"{self.topk[-1]} classes, got output {describe(out)}")
        if not out.shape[0]:
            return False  # an empty batch: nothing received (torchnet would divide by zero)
        self.tnt.add(out.cpu().float(), tgt.cpu())
        return None

    def _merge(self, other: ClassErrorMeter) -> None:
        for k in self.topk:
            self.tnt.sum[k] += other.tnt.sum[k]
        self.tnt.n += other.tnt.n

    def value(self) -> list[float]:
        if self.tnt.n == 0:  # empty, or only empty batches
            return [math.nan] * len(self.topk)
        return [float(v) for v in self.tnt.value()]

    def _reset(self) -> None:
        self.tnt.reset()

    def scalars(self) -> dict[str, float]:
        values = self.value()
        if len(self.topk) == 1:
            return {self.name: values[0]}
        return {f"{self.name}@{k}": v for k, v in zip(self.topk, values)}


class ConfusionMeter(Meter):
    kind = "ConfusionMeter"
    takes = "add(predicted, target): predicted N x K scores or N labels, target N labels or N x K one-hot"
    plots_as = "matrix: the K x K confusion matrix (rows: targets, columns: predictions), drawn as a heatmap"
    views = ("matrix", "text")
    note = "torchnet's ConfusionMeter with inputs checked and converted (numpy, lists, any device)."

    def __init__(self, name: str, k: int = 2, normalized: bool = False) -> None:
        super().__init__(name)
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ConfigError(f"meter {name!r} (ConfusionMeter): expected `k` (number of classes) to be an int >= 2, "
                              f"but got {k!r}")
        if not isinstance(normalized, bool):
            raise ConfigError(f"meter {name!r} (ConfusionMeter): expected `normalized` to be a bool, but got "
                              f"{normalized!r}")
        self.k = k
        self.tnt = tnt.ConfusionMeter(k, normalized=normalized)

    def _add(self, predicted: Any, target: Any) -> bool | None:
        pred = to_tensor(self, predicted, "predicted: N x K scores or N labels").cpu()
        tgt = to_tensor(self, target, "target: N labels or N x K one-hot").cpu()
        if pred.dim() == 2:
            if pred.shape[1] != self.k:
                raise bad_input(self, pred, f"predicted scores with {self.k} columns (k={self.k})")
            pred = pred.argmax(1)
        if tgt.dim() == 2:
            if tgt.shape[1] != self.k:
                raise bad_input(self, tgt, f"one-hot targets with {self.k} columns (k={self.k})")
            tgt = tgt.argmax(1)
        pred, tgt = pred.reshape(-1).long(), tgt.reshape(-1).long()
        if pred.shape != tgt.shape:
            raise MeterInputError(f"meter {self.name!r} (ConfusionMeter) expects as many predictions as targets, "
                                  f"got predicted {describe(pred)} and target {describe(tgt)}")
        for what, labels in (("predicted", pred), ("target", tgt)):
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.k):
                raise MeterInputError(f"meter {self.name!r} (ConfusionMeter) expects {what} labels in "
                                      f"[0, {self.k - 1}] (k={self.k}), got {int(labels.min())} to {int(labels.max())}")
        if not pred.numel():
            return False  # an empty batch: nothing received (torchnet's checks take the max of the labels)
        self.tnt.add(pred, tgt)
        return None

    def _merge(self, other: ConfusionMeter) -> None:
        self.tnt.conf += other.tnt.conf

    def value(self) -> np.ndarray:
        return np.array(self.tnt.value())

    def _reset(self) -> None:
        self.tnt.reset()


class _RankingMeter(Meter):
    """Stores scores and binary targets (and weights); subclasses compute standard ranking metrics."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._reset()

    def _store(self, output: Any, target: Any, weight: Any = None, *, columns: bool) -> bool:
        out = to_tensor(self, output, "output: scores").detach().cpu().double()
        tgt = to_tensor(self, target, "target: binary (0/1) labels").detach().cpu()
        if columns:
            out = out.reshape(-1, 1) if out.dim() == 1 else out
            tgt = tgt.reshape(-1, 1) if tgt.dim() == 1 else tgt
        else:
            out, tgt = out.reshape(-1), tgt.reshape(-1)
        if out.shape != tgt.shape or out.dim() > 2:
            raise MeterInputError(f"meter {self.name!r} ({self.kind}) expects output and target of the same shape "
                                  f"({'N x K' if columns else 'N'}), got output {describe(out)} and "
                                  f"target {describe(tgt)}")
        if not bool(torch.all((tgt == 0) | (tgt == 1))):
            raise bad_input(self, tgt, "binary targets (0 or 1)")
        if self._scores and self._scores[0].shape[1:] != tuple(out.shape[1:]):
            raise MeterInputError(f"meter {self.name!r} ({self.kind}) expects {self._scores[0].shape[1]} columns as "
                                  f"in earlier add() calls, got output {describe(out)}")
        w = np.ones(out.shape[0])
        if weight is not None:
            w = to_tensor(self, weight, "weight: N non-negative numbers").detach().cpu().double().reshape(-1).numpy()
            if w.shape[0] != out.shape[0] or (w < 0).any():
                raise bad_input(self, weight, f"weight: {out.shape[0]} non-negative numbers, one per sample")
        if out.shape[0] == 0:
            return False  # an empty batch: nothing received
        self._scores.append(out.numpy())
        self._targets.append(tgt.numpy().astype(np.float64))
        self._weights.append(w)
        return True

    merges = "every rank's samples together"

    def _merge(self, other: _RankingMeter) -> None:
        self._scores += other._scores
        self._targets += other._targets
        self._weights += other._weights

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self._scores), np.concatenate(self._targets), np.concatenate(self._weights)

    def _reset(self) -> None:
        self._scores: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []


def _ranked(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative weighted true and false positives at each distinct score threshold, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    s, t, w = scores[order], targets[order], weights[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(t * w)[last_of_tie]
    fps = np.cumsum((1 - t) * w)[last_of_tie]
    return tps, fps


def average_precision(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    """Average precision as in scikit-learn: sum over thresholds of (R_n - R_n-1) * P_n, ties grouped."""
    if scores.size == 0:
        return math.nan
    tps, fps = _ranked(scores, targets, weights)
    if tps[-1] <= 0:
        return math.nan  # no positive sample: undefined
    precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at each distinct threshold, starting at (0, 0)."""
    if scores.size == 0:  # only empty batches were added
        return np.array([]), np.array([])
    tps, fps = _ranked(scores, targets, weights)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / fps[-1], tps / tps[-1]


class APMeter(_RankingMeter):
    kind = "APMeter"
    takes = "add(output, target, weight=None): output N x K scores, target N x K binary, weight N"
    plots_as = "vector: the average precision of each class (a bar per class); NaN for a class with no positive"
    views = ("vector", "text")
    note = ("Computes the standard average precision (scikit-learn's average_precision_score: tied scores form "
            "one threshold). torchnet's APMeter ranks tied scores arbitrarily and warns on every call.")

    def _add(self, output: Any, target: Any, weight: Any = None) -> bool:
        return self._store(output, target, weight, columns=True)

    def value(self) -> np.ndarray:
        if not self._scores:
            return np.array([])
        scores, targets, weights = self._arrays()
        return np.array([average_precision(scores[:, k], targets[:, k], weights) for k in range(scores.shape[1])])


class mAPMeter(APMeter):  # noqa: N801 - torchnet's name
    kind = "mAPMeter"
    plots_as = "scalar: the mean over classes of the average precision (classes with no positive are left out)"
    views = ("scalar", "text")
    note = "The mean of APMeter's standard, tie-aware average precision (torchnet's mAPMeter is wrong on ties)."

    def value(self) -> float:  # type: ignore[override]
        aps = super().value()
        aps = aps[~np.isnan(aps)]
        return float(aps.mean()) if aps.size else math.nan


class AUCMeter(_RankingMeter):
    kind = "AUCMeter"
    takes = "add(output, target): output N scores, target N binary (0/1) labels"
    plots_as = "scalar: the area under the ROC curve; curve: the ROC curve (false vs true positive rate)"
    views = ("scalar", "curve", "text")
    note = ("Computes the standard ROC AUC (scikit-learn's roc_auc_score: tied scores form one threshold, "
            "trapezoidal rule); NaN when only one class was seen. torchnet's AUCMeter is wrong on ties.")

    def _add(self, output: Any, target: Any) -> bool:
        return self._store(output, target, columns=False)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._scores:
            return np.array([]), np.array([])
        return roc_curve(*self._arrays())

    def value(self) -> float:
        fpr, tpr = self.curve()
        if fpr.size == 0 or np.isnan(fpr).any() or np.isnan(tpr).any():
            return math.nan
        return float(np.trapezoid(tpr, fpr))


class TimeMeter(Meter):
    kind = "TimeMeter"
    takes = "add(n=1): counts n units of work (None counts one)"
    plots_as = "scalar: seconds since the last reset (per unit with unit=True)"
    note = "torchnet's TimeMeter, which has no add(): ours counts units for unit=True."

    def __init__(self, name: str, unit: bool = False) -> None:
        super().__init__(name)
        if not isinstance(unit, bool):
            raise ConfigError(f"meter {name!r} (TimeMeter): expected `unit` to be a bool, but got {unit!r}")
        self.tnt = tnt.TimeMeter(unit)

    def _add(self, n: Any = 1) -> None:
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise bad_input(self, n, "a non-negative int count of units (or None for one)")
        self.tnt.n += n

    merges = "rank 0's value"

    def _merge(self, other: TimeMeter) -> None:
        pass  # each rank times itself; rank 0's timing is the one drawn

    def value(self) -> float:
        elapsed = float(self.tnt.value())
        if self.tnt.unit:
            return elapsed / self.tnt.n if self.tnt.n else math.nan
        return elapsed

    def _reset(self) -> None:
        self.tnt.reset()


METER_CLASSES: tuple[type[Meter], ...] = (
    AverageValueMeter, MovingAverageValueMeter, ValueMeter, MSEMeter, MAEMeter, ClassErrorMeter, ConfusionMeter,
    APMeter, mAPMeter, AUCMeter, TimeMeter,
)
