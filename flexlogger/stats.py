"""Per-tensor statistics for :class:`~flexlogger.tooled.TooledModel`, computed on the tensor's device.

A :class:`StatPlan` turns a tensor into a short list of 0-d tensors (no host transfer); the TooledModel stacks
the lists of every layer and group and moves them to the host in one transfer per step.

Statistics (``STATS``):

- ``mean``, ``std`` (unbiased, as :func:`torch.std`; NaN for a single element), ``min``, ``max``
- ``abs_mean``: mean of the absolute values; ``norm``: L2 norm
- ``zero_frac``: fraction of exact zeros (dead units after a ReLU); ``nonfinite``: count of NaN and Inf values
- ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` for parameter groups only, where ``W_before`` is
  the parameter at the layer's first forward in the step and ``W_after`` the parameter at ``step()``: call
  ``step()`` after ``optimizer.step()``
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .errors import ConfigError, UnknownNameError, unknown_name_message
from .plots import Histogram  # re-exported: where TooledModel users found it

__all__ = ["STATS", "Histogram", "StatPlan", "check_stats", "histogram"]

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


class StatPlan:
    """Which reductions to run on a tensor, and how the host turns their results into the statistics.

    :meth:`compute` runs one reduction per kind of statistic and returns 0-d tensors on the tensor's device (no
    host sync): the sum, the L2 norm (their combination gives mean, std and norm), min/max, the L1 norm, the
    count of nonzeros and the count of finite values, as needed. :meth:`finish` turns those numbers, once on
    the host, into ``{stat: value}``. ``torch.std_mean`` would be the obvious kernel, but on CPU it is 20-50
    times slower than a sum; the single pass loses relative precision in ``std`` when ``|mean| >> std``
    (about ``1e-7 * mean**2 / std**2`` in float32; float64 tensors are exact to ~1e-15). ``std`` is therefore
    also bounded by the spread ``max - min`` (one more reduction): a constant tensor gets exactly 0.

    Args:
        stats: the statistics asked for (names from ``STATS``; ``update_ratio`` is computed elsewhere).
        base: compute the sum and the norm even when no statistic needs them: the anomaly check reads them.
    """

    def __init__(self, stats: Sequence[str], base: bool = True) -> None:
        wanted = set(stats) - PARAM_ONLY_STATS
        self._sum = base or bool(wanted & {"mean", "std"})
        self._norm = base or bool(wanted & {"std", "norm"})
        # min/max also bound std (see finish): cheap, and exact for constant tensors (BatchNorm weights at init)
        self._minmax = bool(wanted & {"min", "max", "std"})
        self._l1 = "abs_mean" in wanted
        self._nnz = "zero_frac" in wanted
        self._finite = "nonfinite" in wanted
        self.stats = tuple(s for s in stats if s in wanted)
        self.size = self._sum + self._norm + 2 * self._minmax + self._l1 + self._nnz + self._finite

    def compute(self, x: Tensor) -> list[Tensor]:
        """The reductions of ``x`` (any shape, at least one element) as 0-d tensors on ``x``'s device."""
        if x.dtype in _LOW_PRECISION:
            x = x.float()
        out: list[Tensor] = []
        if self._sum:
            out.append(x.sum())
        if self._norm:
            out.append(torch.linalg.vector_norm(x))
        if self._minmax:
            out += torch.aminmax(x)
        if self._l1:
            out.append(torch.linalg.vector_norm(x, 1))
        if self._nnz:
            out.append(torch.count_nonzero(x))
        if self._finite:
            out.append(torch.count_nonzero(torch.isfinite(x)))
        return out

    def finish(self, raw: Sequence[float], n: int) -> dict[str, float]:
        """``{stat: value}`` (in the order asked for) from the host copy of :meth:`compute`'s results."""
        it = iter(raw)
        got: dict[str, float] = {}
        if self._sum:
            got["mean"] = next(it) / n
        if self._norm:
            norm = next(it)
            got["norm"] = norm
            if self._sum:
                mean = got["mean"]
                if n > 1:
                    var = (norm * norm - n * mean * mean) / (n - 1)
                    got["std"] = math.sqrt(var) if var > 0 else (0.0 if var == var else math.nan)
                else:
                    got["std"] = math.nan  # as torch.std of a single value
        if self._minmax:
            got["min"], got["max"] = next(it), next(it)
            if "std" in got and n > 1:
                # the one-pass std cancels catastrophically when |mean| >> std (float32: ~3e-4 * |mean| for a
                # constant tensor); the sample std never exceeds (max - min) / 2 * sqrt(n / (n - 1)), so the
                # error is bounded by the spread, and a constant tensor gets exactly 0
                got["std"] = min(got["std"], (got["max"] - got["min"]) / 2 * math.sqrt(n / (n - 1)))
        if self._l1:
            got["abs_mean"] = next(it) / n
        if self._nnz:
            got["zero_frac"] = 1.0 - next(it) / n
        if self._finite:
            got["nonfinite"] = float(n - next(it))
        return {s: got[s] for s in self.stats if s in got}

    def anomaly(self, raw: Sequence[float]) -> tuple[float, float]:
        """``(sum, norm)`` from the host copy of :meth:`compute`'s results (with ``base=True``)."""
        return raw[0], raw[1]


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
