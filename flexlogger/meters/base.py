"""The meter base class and the state declaration that drives its ``reset``, ``merge`` and ``portable``.

A meter type declares its state once, as torchmetrics' ``add_state(name, default, dist_reduce_fx)`` does::

    class MAEMeter(Meter):
        state = (State("n", 0, "sum"), State("abs_sum", 0.0, "sum"))

and writes only ``add()`` and ``value()``. :class:`Meter` then counts the ``add()`` calls, resets each field to its
default, folds another rank's copy into this one with each field's reduction, and makes the host copy sent to other
ranks (``flexlogger.core.distributed``) from the same declaration; ``meter_info(type)['merges']`` reads it too.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from flexlogger.errors import MeterInputError

VIEWS = ("scalar", "vector", "matrix", "curve", "text")


# reductions: how one field of two ranks' states becomes one ------------------------------------------------------
def _sum(mine: Any, other: Any) -> Any:
    if isinstance(mine, dict):
        return {key: mine[key] + other[key] for key in mine}
    return mine + other


def _cat(mine: Any, other: Any) -> Any:
    if isinstance(mine, deque):  # a window: widened to hold every rank's values
        return deque([*mine, *other], maxlen=max(1, len(mine) + len(other)))
    return [*mine, *other]


def _first(mine: Any, other: Any) -> Any:
    return other if mine is None else mine


def _pooled_moments(mine: tuple[int, float, float], other: tuple[int, float, float]) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) of two samples together: Chan et al.'s parallel formula."""
    n_a, mean_a, m2_a = mine
    n_b, mean_b, m2_b = other
    if n_b == 0:
        return mine
    if n_a == 0:
        return other
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


@dataclass(frozen=True)
class Reduction:
    """How a field's values on several ranks become one: ``fn(mine, other)`` and the words ``meter_info`` shows."""

    fn: Callable[[Any, Any], Any]
    text: str


REDUCTIONS: dict[str, Reduction] = {
    "sum": Reduction(_sum, "summed across ranks"),
    "cat": Reduction(_cat, "every rank's items together"),
    "min": Reduction(min, "the minimum across ranks"),
    "max": Reduction(max, "the maximum across ranks"),
    "first": Reduction(_first, "rank 0's"),
    "moments": Reduction(_pooled_moments, "pooled: the mean and std of every rank's values together (Chan's "
                                          "parallel formula)"),
}


@dataclass(frozen=True)
class State:
    """One field of a meter's state: its attribute ``name``, its ``default`` and how it ``reduce``\\ s across ranks.

    Attributes:
        name: the attribute; ``"tnt.n"`` names an attribute of a torchnet meter the adapter holds, so that torchnet
            keeps computing where it is right; a tuple names fields reduced together (``"moments"``).
        default: the value after ``reset()``, when it is a constant (a number, None).
        reduce: a key of :data:`REDUCTIONS`.
        factory: builds the value after ``reset()`` from the meter instead (``lambda m: np.zeros((m.k, m.k))``),
            when it depends on the meter's arguments or must be a fresh object (a list); ``default`` is then unused.
    """

    name: str | tuple[str, ...]
    default: Any = None
    reduce: str = "sum"
    factory: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.reduce not in REDUCTIONS:  # a mistake in a meter class, found when the class is defined
            raise ValueError(f"State {self.name!r}: expected `reduce` to be one of {', '.join(REDUCTIONS)}, but got "
                             f"{self.reduce!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return self.name if isinstance(self.name, tuple) else (self.name,)

    def initial(self, meter: Meter) -> Any:
        return self.factory(meter) if self.factory is not None else self.default

    def get(self, meter: Meter) -> Any:
        if isinstance(self.name, tuple):
            return tuple(_getattr(meter, n) for n in self.name)
        return _getattr(meter, self.name)

    def set(self, meter: Meter, value: Any) -> None:
        if isinstance(self.name, tuple):
            for n, v in zip(self.name, value):
                _setattr(meter, n, v)
        else:
            _setattr(meter, self.name, value)


def _getattr(obj: Any, dotted: str) -> Any:
    if "." not in dotted:  # most fields: reset() reads and writes every field of every meter at each log()
        return getattr(obj, dotted)
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _setattr(obj: Any, dotted: str, value: Any) -> None:
    if "." not in dotted:
        setattr(obj, dotted, value)
        return
    owner, _, attr = dotted.rpartition(".")
    setattr(_getattr(obj, owner), attr, value)


def to_host(value: Any) -> Any:
    """A copy of a state value that lives on the host: tensors read or copied to the CPU, containers copied."""
    if isinstance(value, torch.Tensor):
        return float(value) if value.dim() == 0 else value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, deque):
        return deque((to_host(v) for v in value), maxlen=value.maxlen)
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    return value


def _merges_text(state: tuple[State, ...]) -> str:
    """How ``merge()`` folds another rank's state in, in words: ``summed across ranks``."""
    texts = [REDUCTIONS[s.reduce].text for s in state]
    if not texts:
        return "not merged"
    if len(set(texts)) == 1:
        return texts[0]
    return "; ".join(f"{', '.join(s.names)}: {REDUCTIONS[s.reduce].text}" for s in state)


def _counting(add: Callable[..., bool | None]) -> Callable[..., None]:
    """A meter type's ``add`` wrapped to count the calls that held a sample (it returns anything but False).

    The wrapper is generated with ``add``'s own parameters (``def add(self, output, target)``), not as
    ``(*args, **kwargs)``: Python then passes the arguments straight through, and the wrapper costs about 20 ns
    a call where packing and unpacking would cost 170 ns, on a float ``add()`` of about 200 ns. ``inspect.signature``
    of the wrapper is ``add``'s (``__wrapped__``), so arity errors name the real parameters.
    """
    params: list[str] = []
    args: list[str] = []
    defaults: dict[str, Any] = {}
    star = False
    kinds = inspect.Parameter
    sig = inspect.signature(add)
    for i, p in enumerate(sig.parameters.values()):
        text = p.name
        if p.default is not p.empty:
            defaults[f"__default_{p.name}"] = p.default
            text += f"=__default_{p.name}"
        if p.kind is kinds.VAR_POSITIONAL:
            star = True
            params.append(f"*{p.name}")
            args.append(f"*{p.name}")
            continue
        if p.kind is kinds.VAR_KEYWORD:
            params.append(f"**{p.name}")
            args.append(f"**{p.name}")
            continue
        if p.kind is kinds.KEYWORD_ONLY:
            if not star:
                params.append("*")
                star = True
            args.append(f"{p.name}={p.name}")
        else:
            args.append(p.name)
        params.append(text)
        if p.kind is kinds.POSITIONAL_ONLY and (
                i + 1 == len(sig.parameters) or list(sig.parameters.values())[i + 1].kind is not p.kind):
            params.append("/")
    self_name = next(iter(sig.parameters))
    namespace: dict[str, Any] = {"__meter_add__": add, **defaults}
    exec(f"def add({', '.join(params)}):\n"  # from a signature: no user input
         f"    if __meter_add__({', '.join(args)}) is not False:\n"
         f"        {self_name}.count += 1\n", namespace)
    counted: Callable[..., None] = functools.update_wrapper(namespace["add"], add)
    counted._counts = True  # type: ignore[attr-defined]
    return counted


class Meter:
    """Base adapter. Subclasses set the class attributes, declare their ``state`` and write ``add`` and ``value``.

    ``add()`` feeds the meter, and returns False when the call held no sample (an empty batch), so the meter stays
    empty. The base class wraps each subclass's ``add`` to keep ``count``, the number of ``add()`` calls that
    held a sample since the last reset: a meter with ``count == 0`` is empty and adds no point to any plot.
    ``reset()``, ``merge()`` and ``portable()`` follow the ``state`` declaration.
    """

    kind: ClassVar[str] = ""
    takes: ClassVar[str] = ""
    plots_as: ClassVar[str] = ""
    views: ClassVar[tuple[str, ...]] = ("scalar", "text")
    note: ClassVar[str] = ""
    state: ClassVar[tuple[State, ...]] = ()
    syncs_itself: ClassVar[bool] = False  # True: pooled by its own collective ``synced()``, not by ``merge()``

    merges: ClassVar[str] = "not merged"  # derived from ``state`` for each subclass that does not set it
    _owners: ClassVar[tuple[str, ...]] = ()  # the held objects (``tnt``) that dotted state names point into

    def __init__(self, name: str) -> None:
        """Subclasses set what their defaults need (arguments, a torchnet meter) before calling this."""
        self.name = name
        self.reset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._owners = tuple(sorted({n.partition(".")[0] for s in cls.state for n in s.names if "." in n}))
        if "state" in cls.__dict__ and "merges" not in cls.__dict__:
            cls.merges = _merges_text(cls.state)
        add = cls.__dict__.get("add")
        if add is not None and not getattr(add, "_counts", False):
            cls.add = _counting(add)  # type: ignore[method-assign]

    @classmethod
    def arguments(cls) -> dict[str, Any]:
        """The arguments a meter type takes in its spec's ``args``, with their defaults."""
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, name
        return {p.name: p.default for p in params}

    def add(self, *args: Any, **kwargs: Any) -> bool | None:
        """Feed the meter; return False when the call held no sample (an empty batch): the meter stays empty.

        Subclasses write this, without counting: the base class counts (see :func:`_counting`).
        """
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        """Empty the meter: every declared field back to its default."""
        self.count = 0
        for field in self.state:
            field.set(self, field.initial(self))

    # distributed: see flexlogger.core.distributed -------------------------------------------------------------
    def portable(self) -> Meter:
        """A copy whose state lives on the host, to send to other ranks; it shares nothing mutable with ``self``."""
        out = copy.copy(self)
        for owner in self._owners:  # a held torchnet meter: its copy gets the copied fields
            setattr(out, owner, copy.copy(getattr(self, owner)))
        for field in self.state:
            field.set(out, to_host(field.get(self)))
        return out

    def merge(self, other: Meter) -> None:
        """Fold ``other`` (the same meter on another rank, e.g. its ``portable()`` copy) into this one."""
        self.count += other.count
        for field in self.state:
            field.set(self, REDUCTIONS[field.reduce].fn(to_host(field.get(self)), field.get(other)))

    def synced(self, count: int) -> Meter:
        """For a meter that ``syncs_itself``: a copy holding every rank's state (a collective call)."""
        raise NotImplementedError(f"{self.kind} is pooled by merge(), not synced()")

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


class MeanStdMeter(Meter):
    """A meter whose value() is ``(mean, std)``: it draws its mean."""

    def value(self) -> tuple[float, float]:
        raise NotImplementedError

    def scalars(self) -> dict[str, float]:
        return {self.name: self.value()[0]}

