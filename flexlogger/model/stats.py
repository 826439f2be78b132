"""Per-tensor statistics for :class:`~flexlogger.model.tooled.TooledModel`, computed on the tensor's device.

A :class:`StatPlan` turns a tensor into a short list of 0-d tensors (no host transfer; on the CPU, where the host
is the device, ``nonfinite`` reads the tensor's sum back first: see ``_count_finite``); the TooledModel stacks the
lists of every layer and group and moves them to the host in one transfer per step.

Statistics (``STATS``):

- ``mean``, ``std`` (unbiased, as :func:`torch.std`; NaN for a single element), ``min``, ``max``
- ``abs_mean``: mean of the absolute values; ``norm``: L2 norm
- ``zero_frac``: fraction of exact zeros (dead units after a ReLU); ``nonfinite``: count of NaN and Inf values
- ``snr``: ``|mean| / std``, the signal-to-noise ratio (of a gradient: how consistent its direction is)
- ``update_ratio``: ``||W_after - W_before|| / ||W_before||`` for parameter groups only, where ``W_before`` is
  the parameter at the layer's first forward in the step and ``W_after`` the parameter at ``step()``: call
  ``step()`` after ``optimizer.step()``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import torch
from torch import Tensor

from flexlogger.core.plots import Histogram
from flexlogger.errors import ConfigError, UnknownNameError, unknown_name_message

__all__ = ["STATS", "CustomStat", "Histogram", "StatPlan", "check_stats", "parse_stats", "histogram"]

STATS: tuple[str, ...] = ("mean", "std", "min", "max", "abs_mean", "norm", "zero_frac", "nonfinite", "update_ratio",
                          "snr")
PARAM_ONLY_STATS: frozenset[str] = frozenset({"update_ratio"})
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_FINISH_ORDER = ("mean", "norm", "std", "min", "max", "abs_mean", "zero_frac", "nonfinite", "snr")

CustomStat: TypeAlias = Callable[[Tensor], Tensor]
_FORMS = ("a name from STATS (" + ", ".join(STATS) + ") or a pair (name, callable (tensor) -> 0-d tensor), e.g. "
          "('l1', lambda t: t.abs().sum())")


def parse_stats(stats: Sequence[Any], allow_empty: bool = False) -> tuple[tuple[str, ...], dict[str, CustomStat]]:
    """Validate ``stats``: names from ``STATS`` and ``(name, callable)`` pairs (from Python only, never a config).

    Returns:
        The statistic names in the order asked for (without duplicates), and ``{name: callable}`` of the custom ones.

    Raises:
        UnknownNameError: an unknown statistic name.
        ConfigError: a malformed entry, a custom name clashing with a built-in or given twice, or no statistic.
    """
    if isinstance(stats, str) or (isinstance(stats, tuple) and len(stats) == 2 and isinstance(stats[0], str)
                                  and callable(stats[1])):
        stats = (stats,)
    out: list[str] = []
    custom: dict[str, CustomStat] = {}
    for s in stats:
        if isinstance(s, str):
            if s not in STATS:
                raise UnknownNameError(unknown_name_message("statistic", s, STATS))
            if s not in out:
                out.append(s)
            continue
        if not (isinstance(s, (tuple, list)) and len(s) == 2 and isinstance(s[0], str) and s[0]):
            raise ConfigError(f"expected each entry of `stats` to be {_FORMS}, but got {s!r}")
        name, fn = s
        if not callable(fn):
            raise ConfigError(f"expected the custom statistic {name!r} to have a callable (tensor) -> 0-d tensor, "
                              f"but got {fn!r} ({type(fn).__name__}); valid entries: {_FORMS}")
        if name in STATS:
            raise ConfigError(f"custom statistic {name!r} clashes with the built-in statistic of that name; "
                              f"choose another name (built-ins: {', '.join(STATS)})")
        if name in custom:
            raise ConfigError(f"custom statistic {name!r} is given twice in `stats`")
        custom[name] = fn
        out.append(name)
    if not out and not allow_empty:
        raise ConfigError(f"expected at least one statistic in `stats`, got {stats!r}; valid statistics: "
                          f"{', '.join(STATS)}")
    return tuple(out), custom


def check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    """Validate a list of statistic names; return it as a tuple without duplicates."""
    return parse_stats(stats)[0]


class StatPlan:
    """Which reductions to run on a tensor, and how the host turns their results into the statistics.

    :meth:`compute` runs one reduction per kind of statistic and returns 0-d tensors on the tensor's device (no
    host sync): the sum, the L2 norm (their combination gives mean, std and norm), min/max, the L1 norm, the
    count of nonzeros and the count of finite values, as needed. :meth:`finish` turns those numbers, once on
    the host, into ``{stat: value}``. ``torch.std_mean`` would be the obvious kernel, but on CPU it is 20-50
    times slower than a sum; the single pass loses relative precision in ``std`` when ``|mean| >> std``
    (about ``1e-7 * mean**2 / std**2`` in float32; float64 tensors are exact to ~1e-15). ``std`` is therefore
    also bounded by the spread ``max - min`` (one more reduction): a constant tensor gets exactly 0. On CPU, when
    min and max are wanted only for that bound, they are read only where it can matter (``_bound_matters``: the
    sum and norm are read back first, which costs no device sync there).

    Args:
        stats: the statistics asked for (names from ``STATS`` and of ``custom``; ``update_ratio`` is computed
            elsewhere).
        base: compute the sum and the norm even when no statistic needs them: the anomaly check reads them.
        custom: ``{name: callable (tensor) -> 0-d tensor}``, run after the built-in reductions.
    """

    def __init__(self, stats: Sequence[str], base: bool = True, custom: dict[str, CustomStat] | None = None) -> None:
        self.custom = {n: f for n, f in (custom or {}).items() if n in stats}
        wanted = set(stats) - PARAM_ONLY_STATS - set(self.custom)
        self._sum = base or bool(wanted & {"mean", "std", "snr"})
        self._norm = base or bool(wanted & {"std", "norm", "snr"})
        # min/max also bound std (see finish): cheap, and exact for constant tensors (BatchNorm weights at init)
        self._minmax = bool(wanted & {"min", "max", "std", "snr"})
        self._l1 = "abs_mean" in wanted
        self._nnz = "zero_frac" in wanted
        self._finite = "nonfinite" in wanted
        self.stats = tuple(s for s in stats if s in wanted or s in self.custom)
        both = self._sum and self._norm
        flags = {"mean": self._sum, "norm": self._norm, "std": both, "snr": both, "min": self._minmax,
                 "max": self._minmax, "abs_mean": self._l1, "zero_frac": self._nnz, "nonfinite": self._finite}
        # what finish() returns: the statistics asked for that these reductions give (not std without the sum)
        self.names: tuple[str, ...] = tuple(s for s in self.stats if flags.get(s, s in self.custom))
        order = [*_FINISH_ORDER, *self.custom]  # where finish_many holds each value
        self._pick = tuple(order.index(s) for s in self.names)
        self._plain = (self._sum and self._norm and self._minmax and not (self._l1 or self._nnz or self._finite)
                       and not self.custom)
        # min and max only to bound std: on CPU read only where the bound can matter (see _bound_matters)
        self._bound_only = self._sum and self._norm and self._minmax and not wanted & {"min", "max"}
        self.size = self._sum + self._norm + 2 * self._minmax + self._l1 + self._nnz + self._finite + len(self.custom)
        # how each of compute()'s values pools over ranks (TooledModel(sync=True)): "sq" is an L2 norm
        self.kinds: tuple[str, ...] = (("sum",) * self._sum + ("sq",) * self._norm + ("min", "max") * self._minmax
                                       + ("sum",) * (self._l1 + self._nnz + self._finite)
                                       + ("mean",) * len(self.custom))

    def compute(self, x: Tensor) -> list[Tensor]:
        """The reductions of ``x`` (any shape, at least one element) as 0-d tensors on ``x``'s device."""
        if x.dtype in _LOW_PRECISION:
            x = x.float()
        if self._plain:  # the default statistics: one call per tensor and per step, so spare the branches
            total, norm = x.sum(), torch.linalg.vector_norm(x)
            return [total, norm, *self._min_max(x, total, norm)]
        out: list[Tensor] = []
        if self._sum:
            out.append(x.sum())
        if self._norm:
            out.append(torch.linalg.vector_norm(x))
        if self._minmax:
            out += self._min_max(x, *out[:2])  # with the bound only, out holds the sum and the norm
        if self._l1:
            out.append(torch.linalg.vector_norm(x, 1))
        if self._nnz:
            # bool() is True where count_nonzero counts (NaN too, not -0.0); on CPU, count_nonzero is 5 to 15 times
            # slower than bool().sum() (its branches mispredict on a ReLU output's scattered zeros)
            out.append(x.bool().sum() if x.is_cpu else torch.count_nonzero(x))
        if self._finite:
            out.append(_count_finite(x, out[0] if self._sum else None))
        for name, fn in self.custom.items():
            value = fn(x)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ConfigError(f"expected the custom statistic {name!r} to return a 0-d tensor, but got "
                                  f"{type(value).__name__}{tuple(value.shape) if isinstance(value, Tensor) else ''}")
            out.append(value.detach().reshape(()).to(x.device, torch.float64 if x.dtype == torch.float64
                                                     else torch.float32))
        return out

    def _min_max(self, x: Tensor, total: Tensor | None = None, norm: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x``'s min and max; on CPU, when they only bound std (``total`` and ``norm``: ``x``'s sum and norm),
        stand-ins where the bound cannot matter (see :func:`_bound_matters`)."""
        if not x.is_cpu:
            return torch.aminmax(x)  # on a GPU one pass is better
        if self._bound_only and total is not None and norm is not None and not _bound_matters(total, norm,
                                                                                                x.numel()):
            return _NO_MIN, _NO_MAX
        return x.amin(), x.amax()  # on CPU, together about 1.5 times faster than aminmax

    def finish(self, raw: Sequence[float], n: int) -> dict[str, float]:
        """``{stat: value}`` (in the order asked for) from the host copy of :meth:`compute`'s results."""
        return dict(zip(self.names, self.finish_many(raw, (0,), (n,))[0]))

    def finish_many(self, raw: Sequence[float], starts: Sequence[int], ns: Sequence[int]) -> list[list[float]]:
        """The statistics of several tensors at once: tensor ``i`` has ``ns[i]`` elements and its :meth:`compute`
        results at ``raw[starts[i]:starts[i] + size]``; row ``i`` of the result holds its values of :attr:`names`.

        One loop over the tensors with every flag and name looked up once: this runs for every recorded
        (layer, group) of every recorded step. (A column-wise numpy version is slower for a few dozen tensors.)
        """
        has_sum, has_norm, has_minmax = self._sum, self._norm, self._minmax
        both = has_sum and has_norm
        want_snr = both and "snr" in self.names
        has_l1, has_nnz, has_finite, n_custom, pick = self._l1, self._nnz, self._finite, len(self.custom), self._pick
        nan, sqrt = math.nan, math.sqrt
        rows: list[list[float]] = []
        for j, n in zip(starts, ns):
            mean = norm = std = lo = hi = abs_mean = zero_frac = nonfinite = snr = nan
            if has_sum:
                mean = raw[j] / n
                j += 1
            if has_norm:
                norm = raw[j]
                j += 1
                if has_sum and n > 1:  # else NaN, as torch.std of a single value
                    var = (norm * norm - n * mean * mean) / (n - 1)
                    std = sqrt(var) if var > 0 else (0.0 if var == var else nan)
            if has_minmax:
                lo, hi = raw[j], raw[j + 1]
                j += 2
                if both and n > 1:
                    # the one-pass std cancels catastrophically when |mean| >> std (float32: ~3e-4 * |mean| for a
                    # constant tensor); the sample std never exceeds (max - min) / 2 * sqrt(n / (n - 1)), so the
                    # error is bounded by the spread, and a constant tensor gets exactly 0
                    bound = (hi - lo) / 2 * sqrt(n / (n - 1))
                    if bound < std:  # min(std, bound), NaN kept as min() keeps it
                        std = bound
            if has_l1:
                abs_mean = raw[j] / n
                j += 1
            if has_nnz:
                zero_frac = 1.0 - raw[j] / n
                j += 1
            if has_finite:
                nonfinite = float(n - raw[j])
                j += 1
            if want_snr:
                snr = abs(mean) / std if std > 0 else nan if std != std or mean == 0 else math.inf
            values: tuple[float, ...] = (mean, norm, std, lo, hi, abs_mean, zero_frac, nonfinite, snr)
            if n_custom:
                values += tuple(raw[j:j + n_custom])
            rows.append([values[k] for k in pick])
        return rows


# stand-ins for a min and max not read: they make the bound on std infinite, so it changes nothing (and pool as
# the min and max of nothing)
_NO_MIN, _NO_MAX = torch.tensor(-math.inf), torch.tensor(math.inf)


def _bound_matters(total: Tensor, norm: Tensor, n: int) -> bool:
    """Whether the spread bound on the one-pass ``std`` (see :class:`StatPlan`) may change it by more than float32
    rounding, from a tensor's sum and L2 norm, read on the host (on CPU: no device to wait for).

    The one-pass variance is ``(norm**2 - n * mean**2) / (n - 1)``; with ``d`` the relative error of the float32
    norm and sum (about 1e-6 at most over a million values), its relative error is at most about
    ``2 * d * (1 + 2 * n * mean**2 / ((n - 1) * var))``. Where ``n * mean**2 <= 10 * (n - 1) * var`` (``|mean|`` up
    to about 3 standard deviations: weights, gradients, most activations) that is under 5e-5 of ``std``, and the
    bound, never below the true ``std``, cannot lower it by more; there the min and max are not read (two passes
    of four). Elsewhere (a constant or nearly constant tensor, such as a BatchNorm weight, a NaN, an Inf, a single
    value), they are.
    """
    s, q = total.item(), norm.item()
    centred = s * s / n  # n * mean**2
    spread = q * q - centred  # (n - 1) * var, one-pass
    return not (n > 1 and spread > 0 and 10.0 * spread >= centred)


def _count_finite(x: Tensor, total: Tensor | None) -> Tensor:
    """How many values of ``x`` are finite, as a 0-d tensor on ``x``'s device.

    On CPU, ``torch.isfinite`` costs about 30 sums; but a NaN or an Inf reaches any sum, so a finite sum (``total``,
    or one made here) proves every value finite, and reading it costs no device sync there: the count is made only
    when the sum is not finite (a NaN or Inf, or finite values overflowing), from ``x - x``, which is 0 for a
    finite value and NaN otherwise. Other devices count at once (no host read).
    """
    if not x.is_cpu:
        return torch.count_nonzero(torch.isfinite(x))
    if math.isfinite((x.sum() if total is None else total).item()):
        return torch.tensor(x.numel())
    return x.numel() - (x - x).bool().sum()


def histogram(x: Tensor, bins: int) -> Tensor:
    """``[counts (bins), lo, hi]`` of the finite values of ``x`` as one float64 tensor on ``x``'s device.

    The counts are exactly numpy's ``np.histogram(values, bins, range=(lo, hi))`` of the finite values, ``lo`` and
    ``hi`` their min and max: bins ``[edge_i, edge_i+1)``, the max in the last bin, edges as ``np.linspace``
    computes them; a constant tensor is counted over ``(v - 0.5, v + 0.5)`` as numpy widens it; NaN and Inf are
    not counted (all of them: zero counts over ``(-0.5, 0.5)``). Counts are float64, exact to 2**53 values.

    How: each value's nearest edge index ``k = round((x - lo) * bins / (hi - lo))`` is off by at most one ulp
    from the true position, so comparing ``x`` with edge ``k`` (computed as numpy does, ``k * step + lo``) gives
    the bin exactly (``k - 1`` below it, else ``k``), and :func:`torch.bincount` counts the bins. This is also
    faster than :func:`torch.histc` on the normalised values, which is not exact at the edges, and than masking
    the non-finite values of every tensor (see ``bench/bench_tooled.py --histogram``). On CPU the min and max are
    read on the host (no device to wait for) and the non-finite values are masked only when there are some; on
    other devices everything stays on the device (no host sync) and the mask is always applied.
    """
    x = x.detach().reshape(-1)
    if x.dtype in _LOW_PRECISION:
        x = x.float()
    counts_dtype = torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64
    if not x.numel():
        return torch.tensor([0.0] * bins + [-0.5, 0.5], dtype=counts_dtype, device=x.device)
    finite: Tensor | None = None
    if x.device.type == "cpu":
        lo, hi = x.amin(), x.amax()  # on CPU two reductions are faster than aminmax (see StatPlan.compute)
        if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
            finite = torch.isfinite(x)
    else:
        finite = torch.isfinite(x)
    if finite is not None:
        lo = torch.where(finite, x, math.inf).amin()
        hi = torch.where(finite, x, -math.inf).amax()
        none = lo > hi  # no finite value at all
        lo, hi = torch.where(none, 0.0, lo), torch.where(none, 0.0, hi)
    same = lo == hi  # numpy widens an empty range by 0.5 on each side
    lo, hi = torch.where(same, lo - 0.5, lo), torch.where(same, hi + 0.5, hi)
    step = (hi - lo) / bins
    k = x - lo
    k.mul_(bins / (hi - lo)).round_()  # the nearest edge's index
    edge = k * step
    edge.add_(lo)  # two roundings, as np.linspace: k * step + lo (an fma would differ in the last bit)
    k.sub_((x < edge).to(k.dtype)).clamp_(0, bins - 1)
    if finite is not None:
        k = torch.where(finite, k, float(bins))  # NaN/Inf go to an extra bin that is dropped
    counts = torch.bincount(k.to(torch.long), minlength=bins + 1)[:bins]
    return torch.cat([counts.to(counts_dtype), lo.to(counts_dtype).reshape(1), hi.to(counts_dtype).reshape(1)])
