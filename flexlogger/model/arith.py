"""The arrays a FlightRecorder's per-step arithmetic runs on: numpy on the CPU, torch on other devices.

After the reductions (fused norms in torch, per-unit max and min of each output in the forward hooks), a step's
arithmetic is a few dozen numbers per layer: per-layer sums, the ring buffer, the rules. The recorder writes it
once, against ``arith.xp`` (the ``numpy`` or ``torch`` module: ``where``, ``sqrt``, ``isfinite``, ``stack``,
``concatenate``, ``maximum``, ``abs``, ``isnan`` mean the same in both) and the few operations below, which the two
spell differently. On the CPU the host is the device, and a numpy call costs a fraction of a torch call's dispatch;
on a GPU torch keeps everything on the device, with no host synchronisation. Both give the same buffer and events
(``tests/test_recorder.py`` runs the two against each other).

The one place where the two compute differently is the output statistics (:meth:`Arith.entry`,
:meth:`Arith.outputs`): on the CPU each layer's ``(max |x|, units alive, units)`` is taken in its forward hook,
while the per-unit vectors are still in the cache; on a GPU the per-unit vectors are kept and reduced for every
layer at once at the step's end (one kernel per operation instead of one per layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["Arith", "NumpyArith", "TorchArith", "arith_for"]


class Arith:
    """The operations numpy and torch spell differently, for ``n_layers`` layers; ``xp`` is the array module.

    Attributes:
        xp: ``numpy`` or ``torch``: the functions both have.
        on_host: the arrays are on the host, so reading one costs no synchronisation.
    """

    xp: ModuleType
    on_host: bool

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers

    def view(self, t: Tensor) -> Any:
        """The array this arithmetic works on for tensor ``t`` (the same memory: writes go to ``t``)."""
        raise NotImplementedError

    def to_torch(self, a: Any) -> Tensor:
        """An array of this arithmetic as a tensor (the same memory), for callable rules and collectives."""
        raise NotImplementedError

    def const(self, values: Any, dtype: str) -> Any:
        """Host values (a list, a numpy array) as an array of ``dtype`` (``'int64'``, ``'bool'``, ``'float32'``)."""
        raise NotImplementedError

    def full(self, shape: int | tuple[int, ...], value: float, dtype: str = "float32") -> Any:
        raise NotImplementedError

    def f32(self, a: Any) -> Any:
        raise NotImplementedError

    def f64(self, a: Any) -> Any:
        raise NotImplementedError

    def take_norms(self, tensors: list[Tensor]) -> Any:
        """The L2 norm of each tensor (one fused torch call), as an array of this arithmetic."""
        raise NotImplementedError

    def bincount(self, index: Any, weights: Any, length: int) -> Any:
        """``out[i] = sum(weights[index == i])`` for ``i < length`` (float32 on torch, float64 on numpy)."""
        raise NotImplementedError

    def argmax(self, mask: Any) -> Any:
        """The first True of each row of a bool matrix (0 for a row without one)."""
        raise NotImplementedError

    def arange(self, n: int) -> Any:
        raise NotImplementedError

    def none_fired(self, fired: Any) -> bool:
        """True when ``fired`` is known to hold no True; torch never knows without a host synchronisation."""
        raise NotImplementedError

    def rule_mask(self, m: Any) -> Any:
        """A callable rule's result (a bool tensor over the layers, or one bool) as a (1, layers) bool array."""
        raise NotImplementedError

    def entry(self, mx: Tensor, mn: Tensor) -> Any:
        """What a forward hook keeps of a layer output's per-unit max ``mx`` and min ``mn`` (float32)."""
        raise NotImplementedError

    def outputs(self, entries: Sequence[Any]) -> tuple[Any, Any, Any]:
        """``act_max``, whether the output had a NaN/Inf (0 or 1), and ``dead_fraction`` per layer (NaN, 0 and NaN
        where a layer did not run: its entry is None)."""
        raise NotImplementedError

    def nbytes(self) -> int:
        """Bytes of device storage this arithmetic's own caches hold."""
        return 0


class NumpyArith(Arith):
    """numpy, on views of CPU tensors."""

    xp = np
    on_host = True

    def view(self, t: Tensor) -> np.ndarray:
        return t.numpy()

    def to_torch(self, a: np.ndarray) -> Tensor:
        return torch.from_numpy(a)

    def const(self, values: Any, dtype: str) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    def full(self, shape: int | tuple[int, ...], value: float, dtype: str = "float32") -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def f32(self, a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32, copy=False)

    def f64(self, a: np.ndarray) -> np.ndarray:
        return a.astype(np.float64, copy=False)

    def take_norms(self, tensors: list[Tensor]) -> np.ndarray:
        return torch.stack(torch._foreach_norm(tensors)).double().numpy()

    def bincount(self, index: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
        return np.bincount(index, weights, minlength=length)

    def argmax(self, mask: np.ndarray) -> np.ndarray:
        return mask.argmax(1)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n)

    def none_fired(self, fired: np.ndarray) -> bool:
        return not fired.any()

    def rule_mask(self, m: Any) -> np.ndarray:
        m_np = m.detach().to("cpu", torch.bool).numpy() if isinstance(m, Tensor) else np.array(bool(m))
        return np.broadcast_to(m_np, (self.n_layers,)).reshape(1, -1)

    def entry(self, mx: Tensor, mn: Tensor) -> tuple[float, int, int]:
        hi, lo = mx.numpy(), mn.numpy()
        top, low = float(hi.max()), float(lo.min())
        # NaN anywhere is NaN in both (so in max |x|), and Inf stays Inf: a non-finite max |x| means a NaN or Inf
        return (top if top >= -low else -low), int(np.count_nonzero(np.logical_or(hi, lo))), hi.size

    def outputs(self, entries: Sequence[tuple[float, int, int] | None]) -> tuple[Any, Any, Any]:
        act = np.full(self.n_layers, math.nan)
        bad = np.zeros(self.n_layers)
        dead = np.full(self.n_layers, math.nan)
        called = [i for i, o in enumerate(entries) if o is not None]
        if called:
            got = np.array([entries[i] for i in called], dtype=np.float64)  # (layers run, [max |x|, alive, units])
            act[called] = got[:, 0]
            bad[called] = ~np.isfinite(got[:, 0])  # a NaN or Inf anywhere in the output reaches its max |x|
            dead[called] = 1.0 - got[:, 1] / got[:, 2]
        return act, bad, dead


class TorchArith(Arith):
    """torch, on ``device``: no host synchronisation."""

    xp = torch
    on_host = False

    def __init__(self, n_layers: int, device: torch.device) -> None:
        super().__init__(n_layers)
        self.device = device
        # which layers ran and their sizes, rarely changing: the segment index of the step-end reduction
        self._seg_key: list[tuple[int, int]] = []
        self._seg = torch.zeros(0, dtype=torch.long, device=device)
        self._units = torch.zeros(n_layers, device=device)
        self._called = torch.zeros(n_layers, dtype=torch.bool, device=device)

    def view(self, t: Tensor) -> Tensor:
        return t

    def to_torch(self, a: Tensor) -> Tensor:
        return a

    def const(self, values: Any, dtype: str) -> Tensor:
        return torch.as_tensor(np.asarray(values, dtype=dtype)).to(self.device)

    def full(self, shape: int | tuple[int, ...], value: float, dtype: str = "float32") -> Tensor:
        return torch.full((shape,) if isinstance(shape, int) else shape, value, dtype=getattr(torch, dtype),
                          device=self.device)

    def f32(self, a: Tensor) -> Tensor:
        return a.float()

    def f64(self, a: Tensor) -> Tensor:
        return a.double()

    def take_norms(self, tensors: list[Tensor]) -> Tensor:
        return torch.stack(torch._foreach_norm(tensors)).float()

    def bincount(self, index: Tensor, weights: Tensor, length: int) -> Tensor:
        out = torch.zeros(length, device=self.device)
        return out.index_add_(0, index, weights.to(self.device, out.dtype)) if len(index) else out

    def argmax(self, mask: Tensor) -> Tensor:
        return mask.to(torch.uint8).argmax(1)  # torch has no argmax of bools

    def arange(self, n: int) -> Tensor:
        return torch.arange(n, device=self.device)

    def none_fired(self, fired: Tensor) -> bool:
        return False

    def rule_mask(self, m: Any) -> Tensor:
        if not isinstance(m, Tensor):
            m = torch.tensor(bool(m), device=self.device)
        return m.to(self.device, torch.bool).expand(self.n_layers).reshape(1, -1)

    def entry(self, mx: Tensor, mn: Tensor) -> tuple[Tensor, Tensor]:
        return mx, mn

    def outputs(self, entries: Sequence[tuple[Tensor, Tensor] | None]) -> tuple[Tensor, Tensor, Tensor]:
        n_layers = self.n_layers
        called = [i for i, o in enumerate(entries) if o is not None]
        if not called:
            nan = self.full(n_layers, math.nan)
            return nan, torch.zeros(n_layers, device=self.device), nan
        key = [(i, entries[i][0].numel()) for i in called]  # type: ignore[index]
        if key != self._seg_key:
            self._seg_key = key
            units = torch.zeros(n_layers)
            for i, n in key:
                units[i] = n
            self._seg = torch.repeat_interleave(torch.tensor([i for i, _ in key]),
                                                torch.tensor([n for _, n in key])).to(self.device)
            self._units = units.to(self.device)
            self._called = (units > 0).to(self.device)
        mxs = torch.cat([entries[i][0] for i in called])  # type: ignore[index]
        mns = torch.cat([entries[i][1] for i in called])  # type: ignore[index]
        peak = torch.maximum(mxs, -mns)
        flags = torch.stack([~torch.isfinite(peak), mxs.ne(0) | mns.ne(0)], 1).float()
        counts = torch.zeros(n_layers, 2, device=self.device).index_add_(0, self._seg, flags)
        act = torch.full((n_layers,), -math.inf, device=self.device).scatter_reduce_(0, self._seg, peak, "amax")
        return (torch.where(self._called, act, math.nan), (counts[:, 0] > 0).float(),
                torch.where(self._called, 1.0 - counts[:, 1] / self._units, math.nan))

    def nbytes(self) -> int:
        return sum(t.untyped_storage().nbytes() for t in (self._seg, self._units, self._called))


def arith_for(device: torch.device, n_layers: int) -> Arith:
    """numpy for a CPU device (the host is the device), torch elsewhere."""
    return NumpyArith(n_layers) if device.type == "cpu" else TorchArith(n_layers, device)
