"""Meters of the error between outputs and targets of the same shape."""

from __future__ import annotations

import math
from typing import Any

import torch
import torchnet.meter as tnt

from flexlogger.errors import ConfigError, MeterInputError
from flexlogger.meters.base import Meter, State
from flexlogger.meters.convert import Scalar, describe, to_float, to_tensor


class MSEMeter(Meter):
    kind = "MSEMeter"
    takes = "add(output, target): two tensors/arrays of the same shape"
    plots_as = "scalar: the mean squared error (its root with root=True)"
    note = ("torchnet's MSEMeter, with inputs detached (no autograd graph kept), shapes checked (torchnet "
            "broadcasts silently) and NaN when empty (torchnet says 0).")
    state = (State("tnt.n", 0, "sum"), State("tnt.sesum", 0.0, "sum"))  # torchnet's fields: its value() reads them

    def __init__(self, name: str, root: bool = False) -> None:
        if not isinstance(root, bool):
            raise ConfigError(f"meter {name!r} (MSEMeter): expected `root` to be a bool, but got {root!r}")
        self.tnt = tnt.MSEMeter(root=root)
        super().__init__(name)

    def add(self, output: Any, target: Any) -> bool | None:
        if type(output) is torch.Tensor and not output.requires_grad:
            out = output
        else:
            out = to_tensor(self, output, "output: a tensor/array")
        if type(target) is torch.Tensor and not target.requires_grad:
            tgt = target
        else:
            tgt = to_tensor(self, target, "target: a tensor/array")
        out = _float_of_same_shape(self, out, tgt)
        if tgt.get_device() != out.get_device():
            tgt = tgt.to(out.device)
        if out.numel() == 0:
            return False  # an empty batch: nothing received
        # torchnet's MSEMeter.add, with the square taken in place (the same kernels, identical sums)
        squares = out - tgt
        squares.pow_(2)
        self.tnt.n += out.numel()
        self.tnt.sesum += torch.sum(squares)
        return None

    def value(self) -> float:
        return math.nan if self.tnt.n == 0 else to_float(self.tnt.value())  # NaN also after empty batches


class MAEMeter(Meter):
    kind = "MAEMeter"
    takes = "add(output, target): two tensors/arrays of the same shape"
    plots_as = "scalar: the mean absolute error over every element added since the last reset"
    note = ("Not in torchnet: the mean of |output - target| over every element, checked and detached like "
            "MSEMeter; the sum stays on the inputs' device until value(); NaN when empty.")
    state = (State("n", 0, "sum"), State("abs_sum", 0.0, "sum"))

    n: int
    abs_sum: Scalar

    def add(self, output: Any, target: Any) -> bool | None:
        out = to_tensor(self, output, "output: a tensor/array")
        tgt = to_tensor(self, target, "target: a tensor/array")
        out = _float_of_same_shape(self, out, tgt)
        if out.numel() == 0:
            return False  # an empty batch: nothing received
        self.abs_sum = self.abs_sum + torch.sum(torch.abs(out - tgt.to(out.device)))
        self.n += out.numel()
        return None

    def value(self) -> float:
        return to_float(self.abs_sum) / self.n if self.n else math.nan


def _float_of_same_shape(meter: Meter, out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """``out`` as a floating-point tensor, once ``tgt`` is known to have its shape.

    Raises:
        MeterInputError: the shapes differ (the message names the meter and both inputs).
    """
    if out.shape != tgt.shape:
        raise MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects output and target of the same shape, "
                              f"got output {describe(out)} and target {describe(tgt)}")
    return out if out.is_floating_point() else out.double()
