"""Meters of classifiers: top-k error and the confusion matrix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torchnet.meter as tnt

from flexlogger.errors import ConfigError, MeterInputError
from flexlogger.meters.base import Meter, State
from flexlogger.meters.convert import bad_input, describe, to_tensor


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
    # torchnet's fields (its add() and value() compute on them): right/wrong counts per k, and the samples
    state = (State("tnt.sum", reduce="sum", factory=lambda m: {k: 0 for k in m.topk}), State("tnt.n", 0, "sum"))

    def __init__(self, name: str, topk: list[int] | tuple[int, ...] = (1,), accuracy: bool = False) -> None:
        if (not isinstance(topk, (list, tuple)) or not topk
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk)):
            raise ConfigError(f"meter {name!r} (ClassErrorMeter): expected `topk` to be a list of positive ints, "
                              f"but got {topk!r}")
        if not isinstance(accuracy, bool):
            raise ConfigError(f"meter {name!r} (ClassErrorMeter): expected `accuracy` to be a bool, "
                              f"but got {accuracy!r}")
        self.topk = sorted(set(topk))
        self.tnt = tnt.ClassErrorMeter(topk=self.topk, accuracy=accuracy)
        super().__init__(name)

    def add(self, output: Any, target: Any) -> bool | None:
        out, tgt = _scores_and_labels(self, output, target)
        if out.shape[1] < self.topk[-1]:
            raise MeterInputError(f"meter {self.name!r} (ClassErrorMeter) with topk={self.topk} expects at least "
                                  f"{self.topk[-1]} classes, got output {describe(out)}")
        if not out.shape[0]:
            return False  # an empty batch: nothing received (torchnet would divide by zero)
        self.tnt.add(out.cpu().float(), tgt.cpu())
        return None

    def value(self) -> list[float]:
        if self.tnt.n == 0:  # empty, or only empty batches
            return [math.nan] * len(self.topk)
        return [float(v) for v in self.tnt.value()]

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
    note = ("torchnet's ConfusionMeter with inputs checked and converted (numpy, lists, any device); predicted and "
            "target labels must be integers (torchnet truncates 1.7 to 1).")
    state = (State("tnt.conf", reduce="sum", factory=lambda m: np.zeros((m.k, m.k), dtype=np.int32)),)  # as torchnet

    def __init__(self, name: str, k: int = 2, normalized: bool = False) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ConfigError(f"meter {name!r} (ConfusionMeter): expected `k` (number of classes) to be an int >= 2, "
                              f"but got {k!r}")
        if not isinstance(normalized, bool):
            raise ConfigError(f"meter {name!r} (ConfusionMeter): expected `normalized` to be a bool, but got "
                              f"{normalized!r}")
        self.k = k
        self.tnt = tnt.ConfusionMeter(k, normalized=normalized)
        super().__init__(name)

    def add(self, predicted: Any, target: Any) -> bool | None:
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
        pred, tgt = _labels(self, "predicted", pred), _labels(self, "target", tgt)
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

    def value(self) -> np.ndarray:
        return np.array(self.tnt.value())


def _labels(meter: ConfusionMeter, what: str, labels: torch.Tensor) -> torch.Tensor:
    """``labels`` flattened to int64, refusing fractions (``1.7`` is no class: torchnet would count it as 1)."""
    labels = labels.reshape(-1)
    if labels.is_floating_point():
        fractional = labels != labels.round()  # NaN and Inf are no labels either
        fractional |= ~torch.isfinite(labels)
        if bool(fractional.any()):
            bad = labels[fractional][0].item()
            rows = "scores" if what == "predicted" else "one-hot rows"
            raise MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects {what} labels to be integers (class "
                                  f"indices 0 to {meter.k - 1}) or N x {meter.k} {rows}, got the non-integral label "
                                  f"{bad!r} in {describe(labels)}")
    return labels.long()
