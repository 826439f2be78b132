"""Turning what users pass to ``add()`` (numbers, numpy arrays, tensors) into what meters accumulate.

Every converter takes the meter (for the error message) and raises :class:`MeterInputError` naming the meter,
what it got and what it expects.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol

import numpy as np
import torch

from flexlogger.errors import MeterInputError, short_repr


class Meter(Protocol):
    """What a converter needs of a meter to name it in an error: its ``name`` and ``kind`` (the meter type).

    A protocol, not :class:`flexlogger.meters.Meter`, so that this module does not import the meters that import it.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


Scalar = float | torch.Tensor  # a CUDA 0-d tensor stays on its device until value()
_FLOAT_MAX = int(np.finfo(np.float64).max)


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages: ``tensor of shape (3, 2) (float32, cpu)``."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} ({str(value.dtype).replace('torch.', '')}, {value.device})"
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} ({value.dtype})"
    if isinstance(value, str):
        text = value if len(value) <= 20 else value[:17] + "..."
        return f"str {text!r}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return f"{type(value).__name__} {short_repr(value, 60)}"


def bad_input(meter: Meter, got: Any, expected: str) -> MeterInputError:
    return MeterInputError(f"meter {meter.name!r} ({meter.kind}) expects {expected}, got {describe(got)}")


def to_scalar(meter: Meter, value: Any) -> Scalar:
    """A number: Python numbers pass through, one-element arrays/tensors become floats.

    A CUDA tensor is detached and kept on its device (no synchronisation on ``add()``); it is read once in
    ``value()``.
    """
    kind = type(value)
    if kind is float or (kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX):
        return value  # type: ignore[no-any-return]
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise bad_input(meter, value, "a number or a one-element tensor")
        if value.is_cpu or not value.is_floating_point():  # `.device.type` alone costs twice an `.item()`
            return value.item()  # type: ignore[no-any-return]
        return value.detach().reshape(())
    if isinstance(value, (numbers.Real, np.bool_)):  # numpy's bool is no numbers.Real
        try:
            return float(value)
        except OverflowError:  # an int beyond a float's range (10**400)
            raise bad_input(meter, value, "a number within a float's range or a one-element tensor") from None
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.number):
        return float(value.reshape(()))
    raise bad_input(meter, value, "a number or a one-element tensor")


def to_tensor(meter: Meter, value: Any, what: str) -> torch.Tensor:
    """A detached tensor from a tensor, an ndarray, a number or a (nested) list of numbers."""
    if isinstance(value, torch.Tensor):
        return numpy_dtype(value.detach())
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise bad_input(meter, value, what)
        return torch.from_numpy(value)
    if isinstance(value, (numbers.Number, list, tuple)):
        try:
            array = np.asarray(value)  # Python floats stay float64 (torch.as_tensor would make them float32)
            if array.dtype.kind in "fiub":
                return torch.from_numpy(array)
            return torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise bad_input(meter, value, what) from None
    raise bad_input(meter, value, what)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def numpy_dtype(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, as float32 when its float dtype has no numpy equivalent (bfloat16, float8: mixed-precision
    outputs), so that every later ``.numpy()`` (the meters, the record, Visdom) works. Stays on its device."""
    if tensor.is_floating_point() and tensor.dtype not in _NUMPY_FLOATS:
        return tensor.float()
    return tensor


def to_float(value: Scalar) -> float:
    """Read an accumulated scalar (a float, or a tensor possibly on a GPU) back as a Python float."""
    return float(value)
