"""What the hooks of a :class:`~flexlogger.model.tooled.TooledModel` capture during one step.

:class:`StepCapture` owns the forward pre-hooks, forward hooks and gradient hooks of the watched layers and the
state they fill during a step (call counts, forward order, the reduced statistics of each (layer, group)), and
turns that state into the step's :class:`Item` rows at collect time. The :class:`TooledModel` decides *when* a
step is recorded (attaching and detaching the hooks) and what happens to the rows (one host transfer, the anomaly
check, the tables).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar, cast

import torch
from torch import Tensor, nn

from flexlogger.model.stats import StatPlan, histogram

__all__ = ["Entry", "Item", "Layer", "Recording", "StepCapture", "eager", "float_tensors", "make_layer"]

_F = TypeVar("_F", bound=Callable[..., Any])

# the last tensor reduced: (tensor, version, entry, dtype, device, shape, stride, contiguous)
_Memo: TypeAlias = "tuple[Tensor, int, Entry, torch.dtype, torch.device, torch.Size, tuple[int, ...], bool]"


@dataclass(slots=True)
class Entry:
    """What one group of one layer recorded in the current step."""

    call: int
    n: int = 0
    stats: list[Tensor] | None = None  # computed 0-d statistics
    raw: list[Tensor] = field(default_factory=list)  # gradients of several tensors, reduced at collect time
    hist: Tensor | None = None


@dataclass
class Layer:
    """A watched module and the parameter groups it records."""

    name: str
    module: nn.Module
    params: dict[str, tuple[str, bool]]  # group -> (parameter attribute, is the gradient)
    keys: tuple[tuple[str, tuple[str, str]], ...] = ()  # (group, (name, group)) of every recorded group, in order


@dataclass(slots=True)
class Item:
    """One (layer, group) row of the step's single host transfer."""

    layer: str
    group: str
    n: int
    scalars: list[Tensor]
    ratio: bool = False
    hist: Tensor | None = None


def _tensors(obj: Any, out: list[Tensor]) -> list[Tensor]:
    """Append the floating-point tensors in ``obj`` (tensors, tuples, lists, dicts, nested) to ``out``."""
    if isinstance(obj, Tensor):
        if obj.is_floating_point():
            out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors(o, out)
    return out


def float_tensors(obj: Any) -> list[Tensor]:
    """The floating-point tensors in ``obj``, with a fast path for ``(tensor,)`` and a bare tensor."""
    if type(obj) is tuple and len(obj) == 1:
        obj = obj[0]
    if isinstance(obj, Tensor):
        return [obj] if obj.is_floating_point() else []
    return _tensors(obj, [])


def _replace(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every floating-point tensor that requires grad (structure kept)."""
    if isinstance(obj, Tensor):
        return fn(obj) if obj.requires_grad and obj.is_floating_point() else obj
    if isinstance(obj, tuple):
        items = [_replace(o, fn) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_replace(o, fn) for o in obj]
    if isinstance(obj, dict):
        return type(obj)((k, _replace(v, fn)) for k, v in obj.items())
    return obj


def eager(hook: _F) -> _F:
    """``hook`` run as plain Python inside a ``torch.compile``d model too.

    Dynamo would otherwise trace the hook into the model's graph: the statistics' Python state and their
    ``.item()`` calls break that graph at every statistic and make it recompile at every step. Left out of the
    trace, the hook costs one graph break per watched layer. In eager mode the wrapper adds well under a
    microsecond per call.
    """
    return cast(_F, torch.compiler.disable(hook))


def make_layer(name: str, module: nn.Module, groups: tuple[str, ...], params: tuple[str, ...]) -> Layer:
    """The :class:`Layer` of ``module``: which attribute (and whether its gradient) each parameter group reads."""
    by_group: dict[str, tuple[str, bool]] = {}
    for g in groups:
        if g == "Weights":
            by_group[g] = ("weight", False)
        elif g == "Weight_grad":
            by_group[g] = ("weight", True)
        elif g in params:
            by_group[g] = (g, False)
        elif g.endswith("_grad") and g[:-5] in params:
            by_group[g] = (g[:-5], True)
    return Layer(name, module, by_group, tuple((g, (name, g)) for g in groups))


@dataclass(frozen=True)
class Recording:
    """What a :class:`StepCapture` records of each watched layer.

    Attributes:
        groups: the recorded groups.
        histogram_groups: the groups whose histograms are recorded.
        bins: number of histogram bins.
        plan: the statistics computed on the device for every (layer, group).
        ratio: whether ``update_ratio`` is recorded (the parameters are copied at a layer's first call).
    """

    groups: tuple[str, ...]
    histogram_groups: tuple[str, ...]
    bins: int
    plan: StatPlan
    ratio: bool


class StepCapture:
    """The hooks of the watched layers and what they captured in the current step.

    Args:
        layers: the watched layers, in ``named_modules()`` order.
        recording: what is recorded of them.
    """

    def __init__(self, layers: list[Layer], recording: Recording) -> None:
        self._layers = layers
        self._rec = recording
        self._handles: list[Any] = []
        self._not_real: set[tuple[str, str]] = set()  # (layer, group) of complex/integer parameters, told once
        self.new_step()

    def new_step(self) -> None:
        """Forget what the hooks captured: a new step starts."""
        self._token = object()  # tensor hooks of earlier steps compare against it and do nothing
        self._calls: dict[str, int] = {}
        self.order: dict[str, None] = {}  # forward order of this step (a layer's first call)
        self._entries: dict[tuple[str, str], Entry] = {}
        self._diff: set[str] = set()
        self._fresh: set[int] = set()  # ids of the parameters whose .grad a backward of this step accumulated into
        self._snap: dict[tuple[str, str], Tensor] = {}
        self._memo: _Memo | None = None

    @property
    def called(self) -> bool:
        """Whether a watched layer ran in this step."""
        return bool(self._calls)

    @property
    def attached(self) -> bool:
        """Whether the hooks are on the model."""
        return bool(self._handles)

    def attach(self) -> None:
        """Put the hooks on the watched layers (and on parameters used without their module's forward)."""
        hooked: set[int] = set()
        for layer in self._layers:
            self._handles.append(layer.module.register_forward_pre_hook(eager(self._pre_hook(layer)),
                                                                        with_kwargs=True))
            self._handles.append(layer.module.register_forward_hook(eager(self._fwd_hook(layer))))
            for attr, is_grad in layer.params.values():
                p = getattr(layer.module, attr, None)
                if is_grad and isinstance(p, Tensor) and p.is_leaf and p.requires_grad and id(p) not in hooked:
                    # a parameter used without its module's forward (nn.MultiheadAttention's out_proj,
                    # F.linear(x, self.fc.weight)) still has a gradient of this step
                    hooked.add(id(p))
                    self._handles.append(p.register_post_accumulate_grad_hook(self._fresh_hook))

    def detach(self) -> None:
        """Take the hooks off the model."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def expire(self) -> None:
        """Make the gradient hooks already registered on tensors do nothing (after the hooks are removed)."""
        self._token = object()

    def _record(self, key: tuple[str, str], call: int, tensors: list[Tensor]) -> None:
        want_hist = key[1] in self._rec.histogram_groups
        if len(tensors) == 1:
            x = tensors[0]
            memo = self._memo
            if memo is not None:
                # The same memory, unchanged since it was reduced (one layer's output is the next one's input;
                # the gradient into a layer's input is the gradient of the previous layer's output): reuse.
                m, version, entry, dtype, device, shape, stride, contiguous = memo
                # A reshaped view of it (nn.Flatten's output, the gradient flowing back through it) holds the same
                # values when both are contiguous: reused too.
                if (x.data_ptr() == m.data_ptr() and m._version == version and x.dtype == dtype
                        and x.device == device and (entry.hist is not None or not want_hist)
                        and ((x.shape == shape and x.stride() == stride)
                             or (x.numel() == entry.n and contiguous and x.is_contiguous()))):
                    self._entries[key] = Entry(call, entry.n, entry.stats, hist=entry.hist if want_hist else None)
                    return
            x = x.detach()  # so the reductions build no graph, without the cost of a no_grad context
        else:
            x = torch.cat([t.detach().reshape(-1) for t in tensors])
        n = x.numel()
        if n == 0:
            return
        entry = Entry(call, n, self._rec.plan.compute(x), hist=histogram(x, self._rec.bins) if want_hist else None)
        self._entries[key] = entry
        if len(tensors) == 1:
            # holds one tensor until the next record or the step's end; its metadata is read once (nobody else
            # holds this detached alias, so only its data and version can change)
            self._memo = (x, x._version, entry, x.dtype, x.device, x.shape, x.stride(), x.is_contiguous())

    def _pre_hook(self, layer: Layer) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], Any]:
        name = layer.name
        want_in = "Inputs" in self._rec.groups
        want_gin = "Grad_in" in self._rec.groups
        snap = [(g, p) for g, (p, is_grad) in layer.params.items() if not is_grad] if self._rec.ratio else []
        key_in = (name, "Inputs")

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = self._calls.get(name, -1) + 1
            self._calls[name] = call
            if call == 0:
                self.order[name] = None
                for g, p in snap:
                    w = getattr(module, p, None)
                    if isinstance(w, Tensor):
                        self._snap[(name, g)] = w.detach().clone()
            if not (want_in or want_gin):
                return None
            tensors = float_tensors(args)
            if kwargs:  # a layer called as layer(x=...) or with tensors among its keyword arguments
                tensors = _tensors(kwargs, list(tensors))
            if not tensors:
                return None
            if want_in:
                self._record(key_in, call, tensors)
            if want_gin and torch.is_grad_enabled():
                hooked = [t for t in tensors if t.requires_grad]
                if hooked:
                    return _hook_inputs(module, args, kwargs, hooked,
                                        self._grad_hook(name, "Grad_in", call, len(hooked)))
            return None

        return pre

    def _fwd_hook(self, layer: Layer) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        name = layer.name
        want_out = "Outputs" in self._rec.groups
        want_gout = "Grad_out" in self._rec.groups
        key_out = (name, "Outputs")

        def fwd(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            tensors = float_tensors(output)
            if not tensors:
                return
            call = self._calls.get(name, 0)
            hooked = [t for t in tensors if t.requires_grad] if torch.is_grad_enabled() else []
            if hooked:
                self._diff.add(name)
            if want_out:
                self._record(key_out, call, tensors)
            if want_gout and hooked:
                grad_hook = self._grad_hook(name, "Grad_out", call, len(hooked))
                for t in hooked:
                    t.register_hook(grad_hook)

        return fwd

    def _fresh_hook(self, p: Tensor) -> None:
        self._fresh.add(id(p))

    def _grad_hook(self, name: str, group: str, call: int, count: int) -> Callable[[Tensor], None]:
        token = self._token
        key = (name, group)

        def hook(grad: Tensor) -> None:
            if self._token is not token:  # a late gradient of a step that has ended, or after remove()
                return
            entry = self._entries.get(key)
            if entry is not None and entry.call > call:  # keep the last call
                return
            if count == 1:
                self._record(key, call, [grad])
                return
            if entry is None or entry.call < call or entry.stats is not None:
                entry = self._entries[key] = Entry(call)
            entry.raw.append(grad.detach())

        return hook


    def param_tensor(self, layer: Layer, group: str) -> Tensor | None:
        """The tensor of a parameter group now: the parameter, or its gradient when this step built a graph."""
        attr, is_grad = layer.params[group]
        p = getattr(layer.module, attr, None)
        if not isinstance(p, Tensor):
            return None
        if is_grad:
            if (layer.name not in self._diff and id(p) not in self._fresh) or p.grad is None:
                return None
            x = p.grad.detach()
            if x.layout != torch.strided:  # a sparse gradient (nn.Embedding(sparse=True)): its zeros count too
                x = x.to_dense()
        else:
            x = p.detach()
        if not x.is_floating_point():  # complex (or integer): the statistics are of real numbers
            if (layer.name, group) not in self._not_real:
                self._not_real.add((layer.name, group))
                warnings.warn(f"layer {layer.name!r}: its {group} is {str(x.dtype).replace('torch.', '')}; its "
                              "statistics are skipped (they are computed for real floating-point tensors only; "
                              "activations and gradients of that dtype are skipped too)", RuntimeWarning,
                              stacklevel=5)
            return None
        return x if x.numel() else None

    def items(self) -> list[Item]:
        items: list[Item] = []
        plan, bins = self._rec.plan, self._rec.bins
        entries, hist_groups = self._entries, self._rec.histogram_groups
        for layer in self._layers:
            name = layer.name
            for group, key in layer.keys:
                if group in layer.params:
                    x = self.param_tensor(layer, group)
                    if x is None:
                        continue
                    is_grad = layer.params[group][1]
                    scalars = plan.compute(x)
                    ratio = False
                    snap = self._snap.get((name, group)) if not is_grad and self._rec.ratio else None
                    if snap is not None and snap.shape == x.shape:
                        if x.dtype in (torch.float16, torch.bfloat16):
                            x, snap = x.float(), snap.float()
                        scalars.append(torch.linalg.vector_norm(x - snap) / torch.linalg.vector_norm(snap))
                        ratio = True
                    hist = histogram(x, bins) if group in hist_groups else None
                    items.append(Item(name, group, x.numel(), scalars, ratio, hist))
                else:
                    entry = entries.get(key)
                    if entry is None:
                        continue
                    if entry.stats is None:  # several gradient tensors: reduce them together now
                        x = torch.cat([g.reshape(-1) for g in entry.raw])
                        entry.n, entry.stats = x.numel(), plan.compute(x)
                        entry.hist = histogram(x, bins) if group in hist_groups else None
                        entry.raw = []
                    items.append(Item(name, group, entry.n, entry.stats, False, entry.hist))
        return items


def _hook_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], hooked: list[Tensor],
                 grad_hook: Callable[[Tensor], None]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Register ``grad_hook`` for the gradient flowing into this call of ``module`` through ``hooked``.

    Returns the ``(args, kwargs)`` the forward pre-hook hands on (the inputs replaced by views private to this
    call), or ``None`` when the inputs stay as they are (an in-place layer).
    """
    if getattr(module, "inplace", False) is True:
        # A hook on a view is lost when the view is modified in place (autograd rebases it), so
        # in-place layers get the hook on the input itself, registered before the modification:
        # the gradient with respect to the input's value before it was overwritten.
        for t in hooked:
            t.register_hook(grad_hook)
        return None

    def view(t: Tensor) -> Tensor:
        # A view private to this call: its gradient is the one flowing into this layer only
        # (not the sum over every user of the tensor, e.g. a skip connection).
        v = t.view_as(t)
        v.register_hook(grad_hook)
        return v

    if not kwargs and len(args) == 1 and args[0] is hooked[0]:
        return (view(args[0]),), kwargs
    return _replace(args, view), _replace(kwargs, view)
