"""Per-tensor statistics for :class:`~flexlogger.tooled.TooledModel`, computed on the tensor's device.

A :class:`StatPlan` turns a tensor into a short list of 0-d tensors (no host transfer); the TooledModel stacks
the lists of every layer and group and moves them to the host in one transfer per step.

Statistics (``STATS``):

- ``mean``, ``std`` (unbiased, as :func:`torch.std`; NaN for a single element), ``min``, ``max``
- ``abs_mean``: mean of the absolute values; ``norm``: L2 norm
- ``zero_frac``: fraction of exact zeros (dead units after a ReLU); ``nonfinite``: count of NaN and Inf values
- ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` over one step, for parameter groups only
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError, UnknownNameError, unknown_name_message

STATS: tuple[str, ...] = ("mean", "std", "min", "max", "abs_mean", "norm", "zero_frac", "nonfinite", "update_ratio")
PARAM_ONLY_STATS: frozenset[str] = frozenset({"update_ratio"})
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of statistic names; return it as a tuple without duplicates."""
    if isinstance(stats, str):
        stats = (stats,)
    out: list[str] = []
    for s in stats:
        if s not in STATS:
            raise UnknownNameError(unknown_name_message("statistic", s, STATS))
        if s not in out:
            out.append(s)
    if not out:
        raise ConfigError(f"expected at least one statistic in `stats`, got {stats!r}; valid statistics: "
                          f"{', '.join(STATS)}")
    return tuple(out)


@dataclass(frozen=True)
class Histogram:
    """Counts of values in ``bins`` equal bins between ``lo`` and ``hi`` (NaN/Inf values are not counted)."""

    counts: tuple[float, ...]
    lo: float
    hi: float

    @property
    def edges(self) -> list[float]:
        """The ``bins + 1`` bin edges."""
        n = len(self.counts)
        return [self.lo + (self.hi - self.lo) * i / n for i in range(n + 1)]


class StatPlan:
    """Which reductions to run on a tensor, and in which order their 0-d results come out.

    ``mean`` and ``std`` always come first when ``base`` is true (one :func:`torch.std_mean` pass): the anomaly
    check reads them (a non-finite mean means NaN/Inf in the tensor; the L2 norm follows from mean and std).

    Args:
        stats: the statistics asked for (names from ``STATS``; ``update_ratio`` is computed elsewhere).
        base: compute ``mean`` and ``std`` even when not asked for.
    """

    def __init__(self, stats: Sequence[str], base: bool = True) -> None:
        wanted = [s for s in stats if s not in PARAM_ONLY_STATS]
        order: list[str] = []
        if base or "mean" in wanted or "std" in wanted:
            order += ["mean", "std"]
        if "min" in wanted or "max" in wanted:
            order += ["min", "max"]
        order += [s for s in wanted if s not in order]
        self.names: tuple[str, ...] = tuple(order)
        self.index: dict[str, int] = {s: i for i, s in enumerate(order)}
        self._std_mean = "mean" in self.index
        self._minmax = "min" in self.index
        self._abs_mean = "abs_mean" in self.index
        self._norm = "norm" in self.index
        self._zero_frac = "zero_frac" in self.index
        self._nonfinite = "nonfinite" in self.index

    def compute(self, x: Tensor) -> list[Tensor]:
        """The statistics of ``x`` (any shape, at least one element) as 0-d tensors on ``x``'s device."""
        if x.dtype in _LOW_PRECISION:
            x = x.float()
        n = x.numel()
        out: list[Tensor] = []
        if self._std_mean:
            if n > 1:
                std, mean = torch.std_mean(x)
                out += (mean, std)
            else:  # torch.std of one element is NaN with a warning; give the NaN without the warning
                out += (x.reshape(()), torch.full((), math.nan, dtype=x.dtype, device=x.device))
        if self._minmax:
            mn, mx = torch.aminmax(x)
            out += (mn, mx)
        if self._abs_mean:
            out.append(torch.linalg.vector_norm(x, 1) / n)
        if self._norm:
            out.append(torch.linalg.vector_norm(x))
        if self._zero_frac:
            out.append(1.0 - torch.count_nonzero(x).to(x.dtype) / n)
        if self._nonfinite:
            out.append(n - torch.isfinite(x).sum())
        return out


def histogram(x: Tensor, bins: int) -> Tensor:
    """``[counts (bins), lo, hi]`` of the finite values of ``x`` as one tensor, without a host sync."""
    x = x.detach().reshape(-1)
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    finite = torch.isfinite(x)
    lo = torch.where(finite, x, math.inf).amin()
    hi = torch.where(finite, x, -math.inf).amax()
    width = (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
    # histc over a fixed range takes Python bounds, so normalise on the device instead of reading lo/hi back;
    # NaN (all-non-finite input) and out-of-range values are not counted.
    counts = torch.histc((x - lo) / width, bins=bins, min=0.0, max=1.0)
    return torch.cat([counts, lo.reshape(1), hi.reshape(1)])


def derived_norm(mean: float, std: float, n: int) -> float:
    """The L2 norm of ``n`` values with this mean and unbiased std: ``sqrt(n mean^2 + (n-1) std^2)``."""
    if n <= 1:
        return abs(mean)
    return math.sqrt(n * mean * mean + (n - 1) * std * std)
