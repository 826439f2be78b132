"""Ranking meters: average precision and ROC AUC, computed here with the standard (tie-aware) definitions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from flexlogger.errors import MeterInputError
from flexlogger.meters.base import Meter, State
from flexlogger.meters.convert import bad_input, describe, to_tensor


class _RankingMeter(Meter):
    """Stores scores and binary targets (and weights); subclasses compute standard ranking metrics."""

    state = tuple(State(field, reduce="cat", factory=lambda m: []) for field in ("_scores", "_targets", "_weights"))
    merges = "every rank's samples together"

    _scores: list[np.ndarray]
    _targets: list[np.ndarray]
    _weights: list[np.ndarray]

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

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self._scores), np.concatenate(self._targets), np.concatenate(self._weights)


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
    if scores.size == 0 or np.isnan(scores).any():  # a NaN score has no rank: the AP is undefined
        return math.nan
    tps, fps = _ranked(scores, targets, weights)
    if tps[-1] <= 0:
        return math.nan  # no positive sample: undefined
    precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at each distinct threshold, starting at (0, 0)."""
    if scores.size == 0 or np.isnan(scores).any():  # only empty batches were added; a NaN score has no rank
        return np.array([]), np.array([])
    tps, fps = _ranked(scores, targets, weights)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / fps[-1], tps / tps[-1]


class APMeter(_RankingMeter):
    kind = "APMeter"
    takes = "add(output, target, weight=None): output N x K scores, target N x K binary, weight N"
    plots_as = ("vector: the average precision of each class (a bar per class); NaN for a class with no positive or "
                "a NaN score")
    views = ("vector", "text")
    note = ("Computes the standard average precision (scikit-learn's average_precision_score: tied scores form "
            "one threshold). torchnet's APMeter ranks tied scores arbitrarily and warns on every call.")

    def add(self, output: Any, target: Any, weight: Any = None) -> bool:
        return self._store(output, target, weight, columns=True)

    def value(self) -> np.ndarray:
        if not self._scores:
            return np.array([])
        scores, targets, weights = self._arrays()
        return np.array([average_precision(scores[:, k], targets[:, k], weights) for k in range(scores.shape[1])])


class mAPMeter(APMeter):  # noqa: N801 - torchnet's name
    kind = "mAPMeter"
    plots_as = ("scalar: the mean over classes of the average precision (classes with no positive are left out; "
                "NaN when a score is NaN)")
    views = ("scalar", "text")
    note = "The mean of APMeter's standard, tie-aware average precision (torchnet's mAPMeter is wrong on ties)."

    def value(self) -> float:  # type: ignore[override]
        if self._scores and np.isnan(self._arrays()[0]).any():
            return math.nan  # a class with a NaN score is undefined, not a class to leave out
        aps = super().value()
        aps = aps[~np.isnan(aps)]
        return float(aps.mean()) if aps.size else math.nan


class AUCMeter(_RankingMeter):
    kind = "AUCMeter"
    takes = "add(output, target): output N scores, target N binary (0/1) labels"
    plots_as = "scalar: the area under the ROC curve; curve: the ROC curve (false vs true positive rate)"
    views = ("scalar", "curve", "text")
    note = ("Computes the standard ROC AUC (scikit-learn's roc_auc_score: tied scores form one threshold, "
            "trapezoidal rule); NaN when only one class was seen or a score is NaN. torchnet's AUCMeter is wrong on "
            "ties.")

    def add(self, output: Any, target: Any) -> bool:
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
