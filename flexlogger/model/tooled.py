"""TooledModel: per-layer statistics of weights, activations and gradients, recorded through hooks.

Example:
    >>> model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3))
    >>> TM = TooledModel(model)                      # mean and std of every group, every step
    >>> F.mse_loss(model(x), y).backward()
    >>> TM.table()                                   # prints and returns the table
    >>> TM.get_dict()["0"]["Weights"]["mean"]        # {layer: {group: {stat: float}}}
    >>> rec = FlightRecorder(window=64, rules=[{"stat": "nonfinite", "above": 0}], after=20)
    >>> TM = TooledModel(model, stats=(), recorder=rec)  # cheap per-layer scalars every step, full stats on events

What a *step* is:
    A step is everything between two calls of :meth:`TooledModel.step` (the first step starts at construction):
    usually one forward, one backward and one optimizer step. Steps are numbered from 0; with ``every=N`` only
    the steps ``0, N, 2N, ...`` are recorded, and hooks are attached to the model only during those steps
    (between them the model runs without any of our hooks). ``step()`` ends the step: it reads the parameter
    groups (``Weights``, ``Weight_grad``, ...) as they are at that moment (after the optimizer update), moves
    every statistic of the step to the host in one transfer, checks for anomalies and returns the statistics.
    Without calls to ``step()`` everything belongs to step 0, which is recorded, so ``table()`` after a
    backward shows that backward. Call ``optimizer.zero_grad()`` at the start of a step, not between the
    backward and ``step()``: ``Weight_grad`` is the ``.grad`` that ``step()`` finds.

Which call is kept:
    When a layer runs several times in one step (a module applied twice in one forward, or several forwards for
    gradient accumulation), the **last** call is kept: its inputs and outputs, and the gradients flowing back
    into that call. A layer's position in forward order is the position of its first call.

Groups (column groups of the table, keys of :meth:`TooledModel.get_dict`):
    ``Inputs`` and ``Outputs`` (floating-point tensors among the layer's positional then keyword arguments,
    and in its output, taken together when there are several), ``Grad_in`` and ``Grad_out`` (gradients of the
    loss with respect to those inputs and outputs; ``Grad_in`` counts only the gradient flowing through this
    layer, not that of a skip connection using the same tensor, except for layers with ``inplace=True``, where it
    is the gradient of the input tensor before the layer overwrote it), ``Weights`` and ``Weight_grad`` (the
    ``weight`` parameter and its ``.grad``), and for each name in ``params`` a group ``<name>`` and ``<name>_grad``.
    Gradient groups are recorded only for layers whose forward in this step built a graph (not under
    ``torch.no_grad()``), and for parameters that a backward of this step reached without their module's
    forward (``nn.MultiheadAttention`` uses ``out_proj.weight`` directly). Activation gradients come from
    tensor hooks registered in the forward hooks (never full backward hooks, which break on in-place ops such
    as ``ReLU(inplace=True)``); ``Inputs`` is read in a forward pre-hook, before an in-place layer overwrites
    its input.
"""

from __future__ import annotations

import fnmatch
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeAlias

import torch
import torch.distributed as dist
from tabulate import tabulate
from torch import Tensor, nn

from flexlogger.config.options import checked_arguments
from flexlogger.errors import ConfigError, ModelAnomalyWarning, UnknownNameError, unknown_name_message
from flexlogger.model.recorder import FlightRecorder
from flexlogger.model.stats import Histogram, StatPlan, histogram, parse_stats

__all__ = ["GROUPS", "TooledModel"]

GROUPS: tuple[str, ...] = ("Grad_in", "Grad_out", "Inputs", "Outputs", "Weights", "Weight_grad")
_ACTIVATION_GROUPS = ("Inputs", "Outputs", "Grad_in", "Grad_out")
_HISTOGRAM_DEFAULT = ("Weights", "Weight_grad")

Selector: TypeAlias = (
    "type[nn.Module] | str | re.Pattern[str] | Callable[[str, nn.Module], bool] | Sequence[Any]"
)
Stats: TypeAlias = dict[str, dict[str, dict[str, float]]]
# one recorded (layer, group): its statistic names and their values, in that order
_Row: TypeAlias = "tuple[str, str, tuple[str, ...], list[float]]"
# the last tensor reduced: (tensor, version, entry, dtype, device, shape, stride, contiguous)
_Memo: TypeAlias = "tuple[Tensor, int, _Entry, torch.dtype, torch.device, torch.Size, tuple[int, ...], bool]"


@dataclass(slots=True)
class _Entry:
    """What one group of one layer recorded in the current step."""

    call: int
    n: int = 0
    stats: list[Tensor] | None = None  # computed 0-d statistics
    raw: list[Tensor] = field(default_factory=list)  # gradients of several tensors, reduced at collect time
    hist: Tensor | None = None


@dataclass
class _Layer:
    name: str
    module: nn.Module
    params: dict[str, tuple[str, bool]]  # group -> (parameter attribute, is the gradient)
    keys: tuple[tuple[str, tuple[str, str]], ...] = ()  # (group, (name, group)) of every recorded group, in order


@dataclass(slots=True)
class _Item:
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


def _float_tensors(obj: Any) -> list[Tensor]:
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


def _select(model: nn.Module, layers: Selector | None) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs chosen by ``layers``, in ``named_modules()`` order."""
    named = [(n or "(model)", m) for n, m in model.named_modules()]
    if layers is None:
        return [(n, m) for n, m in named if next(iter(m.children()), None) is None]
    selectors = list(layers) if isinstance(layers, (list, tuple)) and not _is_type_tuple(layers) else [layers]
    tests = [_selector_test(s) for s in selectors]
    chosen = [(n, m) for n, m in named if any(t(n, m) for t in tests)]
    if not chosen:
        names = ", ".join(n for n, _ in named[:20]) + (", ..." if len(named) > 20 else "")
        raise ConfigError(f"`layers={layers!r}` selects no module of the model; module names: {names}")
    return chosen


def _check_params(params: tuple[str, ...], layers: list[_Layer]) -> None:
    """Every name in ``params`` is a tensor (parameter or buffer) of at least one watched layer."""
    own = {n for layer in layers for n, _ in (*layer.module.named_parameters(recurse=False),
                                                  *layer.module.named_buffers(recurse=False))}
    for p in params:
        if not any(isinstance(getattr(layer.module, p, None), Tensor) for layer in layers):
            raise ConfigError(f"expected `params` to name parameters or buffers of the watched layers, but no "
                              f"watched layer has {p!r}; theirs: {', '.join(sorted(own)) or '(none)'}")


def _is_type_tuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and bool(obj) and all(isinstance(o, type) for o in obj)


def _selector_test(sel: Any) -> Callable[[str, nn.Module], bool]:
    if isinstance(sel, type) and issubclass(sel, nn.Module):
        return lambda n, m: isinstance(m, sel)
    if _is_type_tuple(sel):
        return lambda n, m: isinstance(m, sel)
    if isinstance(sel, re.Pattern):
        return lambda n, m: sel.search(n) is not None
    if isinstance(sel, str):
        return lambda n, m: fnmatch.fnmatchcase(n, sel)
    if callable(sel):
        return lambda n, m: bool(sel(n, m))
    raise ConfigError(f"expected `layers` to be a module type, a name glob (str), a compiled regex, a callable "
                      f"(name, module) -> bool or a list of those, but got {sel!r} ({type(sel).__name__})")


class TooledModel:
    """Records per-layer statistics of a model's weights, activations and gradients.

    Args:
        model: the model to watch; it is never modified beyond the hooks, which :meth:`remove` takes away.
        stats: statistics to show, from ``STATS`` (default mean and std), and custom ``(name, callable)`` pairs
            whose callable maps a tensor to a 0-d tensor on its device (from Python only, never from a config):
            ``stats=("mean", "std", ("l1", lambda t: t.abs().sum()))``. ``update_ratio`` applies to parameter
            groups only (``Weights`` and the groups named in ``params``). ``stats=()`` with a ``recorder`` runs the
            recorder alone (the recorder's ``stats`` are recorded for the ``after`` steps of an event).
        groups: groups to record, from ``GROUPS`` (default all six).
        params: names of further parameters to record as groups ``<name>`` and ``<name>_grad``, e.g. ``("bias",)``.
        layers: which modules to watch: a module type (or tuple of types), a name glob (``"encoder.*"``), a
            compiled regex (``re.compile("conv")``, matched with ``search``), a callable ``(name, module) ->
            bool``, or a list of those (any match). Default: the leaf modules. The root module is named
            ``(model)``.
        every: record every ``every``-th step (steps ``0, every, 2*every, ...``).
        histograms: record histograms for the charts: ``True`` for ``Weights`` and ``Weight_grad``, or a list of
            group names. Read them with :meth:`get_histograms`.
        bins: number of histogram bins.
        anomaly: warn (:class:`ModelAnomalyWarning`) when a NaN/Inf or an exploding norm appears, naming the layer
            where it appeared first in execution order: forward quantities (parameters, inputs, outputs) in
            forward order, then gradients in backward order, so a NaN born in the backward pass names the layer
            whose gradient went bad, not the first layer it then spread to.
        explode: a group's L2 norm "explodes" when it grows more than this factor from one recorded step (ended by
            :meth:`step`) to the next.
        sync: under ``torch.distributed``, pool the statistics of every recorded step over the ranks (one
            collective per recorded step; every rank must call :meth:`step` and record the same layers and groups):
            means, stds and norms of all ranks' values taken together, min of mins, max of maxes, counts summed;
            ``update_ratio`` and custom statistics are averaged, histograms stay per rank. Default: per rank.
            ``sync=True`` also makes the ``recorder`` pool its statistics.
        recorder: a :class:`~flexlogger.model.recorder.FlightRecorder` fed at every step (whatever ``every`` is): a ring
            buffer of cheap per-layer statistics on the device, and rules that watch it; when one fires, every
            step of the next ``recorder.after`` is recorded in full.

    Raises:
        ConfigError: a bad argument (the message lists the valid choices), or an unknown keyword argument
            (``TooledModel(model, metrics=...)``: the message names the closest valid keywords); the arguments
            are checked through ``flexlogger.config.options.MODEL_ARGUMENTS``.
    """

    @checked_arguments("TooledModel()")
    def __init__(self, model: nn.Module, *, stats: Sequence[Any] = ("mean", "std"), groups: Sequence[str] = GROUPS,
                 params: Sequence[str] = (), layers: Selector | None = None, every: int = 1,
                 histograms: bool | Sequence[str] = False, bins: int = 30, anomaly: bool = True,
                 explode: float = 1e3, recorder: FlightRecorder | None = None, sync: bool = False) -> None:
        self.model = model
        names, custom = parse_stats(stats, allow_empty=recorder is not None)
        self._always = bool(names)  # False: the recorder alone, full statistics only after an event
        if not names and recorder is not None:
            names, custom = parse_stats(recorder.stats)
        self.stats = names
        self.recorder = recorder
        self.sync = sync
        if recorder is not None and sync:
            recorder.sync = True
        self._after_left = 0
        params = (params,) if isinstance(params, str) else tuple(params)
        for p in params:
            if not isinstance(p, str) or not p.isidentifier() or p == "weight":
                raise ConfigError(f"expected `params` to name parameters other than 'weight' (e.g. 'bias'), "
                                  f"but got {p!r}")
        valid_groups = GROUPS + tuple(g for p in params for g in (p, f"{p}_grad"))
        groups = (groups,) if isinstance(groups, str) else tuple(groups)
        for g in groups:
            if g not in valid_groups:
                raise UnknownNameError(unknown_name_message("group", g, valid_groups))
        self.groups: tuple[str, ...] = tuple(g for g in valid_groups if g in groups or g in params
                                             or (g.endswith("_grad") and g[:-5] in params))
        if histograms is True:
            hist_groups: tuple[str, ...] = tuple(g for g in _HISTOGRAM_DEFAULT if g in self.groups)
        elif histograms is False:
            hist_groups = ()
        else:
            hist_groups = (histograms,) if isinstance(histograms, str) else tuple(histograms)
            for g in hist_groups:
                if g not in self.groups:
                    raise UnknownNameError(unknown_name_message("recorded group", g, self.groups))
        self.histogram_groups = hist_groups
        self.every = every
        self.bins = bins
        self.anomaly = anomaly
        self.explode = float(explode)
        self._plan = StatPlan(self.stats, base=anomaly, custom=custom)
        self._ratio = "update_ratio" in self.stats
        self._layers = [self._make_layer(n, m, params) for n, m in _select(model, layers)]
        _check_params(params, self._layers)
        self.step_index = 0
        self._handles: list[Any] = []
        self._removed = False
        self._last: Stats | None = None  # built from _last_rows when first asked for (most steps never are)
        self._last_rows: list[_Row] | None = None
        self._last_hist: dict[str, dict[str, Histogram]] = {}
        self._last_step: int | None = None
        # (keys, L2 norms) of the last recorded step and of the last collect, for the anomaly check
        self._prev_norms: tuple[list[tuple[str, str]], list[float]] = ([], [])
        self._norms: tuple[list[tuple[str, str]], list[float]] = ([], [])
        self._warned: set[tuple[int, str]] = set()
        self._not_real: set[tuple[str, str]] = set()  # (layer, group) of complex/integer parameters, told once
        self._rec_handles: list[Any] = []
        self._rec_out: list[Any] = [None] * len(self._layers)
        self._rec_order: list[str] = []  # forward order of this step (forward hooks: order of completion)
        if recorder is not None:
            self._bind_recorder(recorder)
        self._new_step()
        self._sync_hooks()

    def _bind_recorder(self, recorder: FlightRecorder) -> None:
        """Hand the recorder the layers and their parameters, and hook the layers' outputs for it."""
        params = [[p for p in layer.module.parameters(recurse=False) if p.requires_grad] for layer in self._layers]
        first = next((p for ps in params for p in ps), None)
        if first is None:
            first = next(iter(self.model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        recorder._bind([layer.name for layer in self._layers], params, device)
        recorder._start_after = self._start_after
        for i, layer in enumerate(self._layers):
            self._rec_handles.append(layer.module.register_forward_hook(self._rec_hook(i, recorder)))

    def _start_after(self) -> None:
        """An event: record every step of the next ``recorder.after`` in full, starting with the current one."""
        if self.recorder is not None and self.recorder.after and not self._removed:
            self._after_left = self.recorder.after
            self._sync_hooks()

    def _rec_hook(self, i: int, recorder: FlightRecorder) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        out_stats = recorder._output_entry
        outs, order, name = self._rec_out, self._rec_order, self._layers[i].name

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if outs[i] is None:
                order.append(name)
            x = output if isinstance(output, Tensor) else next(iter(_float_tensors(output)), None)
            if x is None or not x.is_floating_point() or x.numel() == 0:
                return
            outs[i] = out_stats(x)

        return hook

    def _make_layer(self, name: str, module: nn.Module, params: tuple[str, ...]) -> _Layer:
        groups: dict[str, tuple[str, bool]] = {}
        for g in self.groups:
            if g == "Weights":
                groups[g] = ("weight", False)
            elif g == "Weight_grad":
                groups[g] = ("weight", True)
            elif g in params:
                groups[g] = (g, False)
            elif g.endswith("_grad") and g[:-5] in params:
                groups[g] = (g[:-5], True)
        return _Layer(name, module, groups, tuple((g, (name, g)) for g in self.groups))

    # ----------------------------------------------------------------------------------------------- state
    @property
    def layers(self) -> list[str]:
        """Names of the watched layers, in ``named_modules()`` order."""
        return [layer.name for layer in self._layers]

    @property
    def recording(self) -> bool:
        """Whether the current step (``step_index``) is recorded."""
        return not self._removed and ((self._always and self.step_index % self.every == 0) or self._after_left > 0)

    @property
    def after_left(self) -> int:
        """Steps of full recording left after a flight-recorder event: when > 0, the current step is one of them
        (recorded in full whatever ``every`` and ``stats`` are)."""
        return self._after_left

    @property
    def last_step(self) -> int | None:
        """Index of the step that :meth:`get_dict` describes when the current step has recorded nothing yet."""
        return self._last_step

    def _new_step(self) -> None:
        self._token = object()  # tensor hooks of earlier steps compare against it and do nothing
        self._calls: dict[str, int] = {}
        self._order: dict[str, None] = {}
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._diff: set[str] = set()
        self._fresh: set[int] = set()  # ids of the parameters whose .grad a backward of this step accumulated into
        self._snap: dict[tuple[str, str], Tensor] = {}
        self._memo: _Memo | None = None

    # ----------------------------------------------------------------------------------------------- hooks
    def _sync_hooks(self) -> None:
        """Attach the hooks during recorded steps, detach them between (so skipped steps cost nothing)."""
        if self.recording and not self._handles:
            hooked: set[int] = set()
            for layer in self._layers:
                self._handles.append(layer.module.register_forward_pre_hook(self._pre_hook(layer), with_kwargs=True))
                self._handles.append(layer.module.register_forward_hook(self._fwd_hook(layer)))
                for attr, is_grad in layer.params.values():
                    p = getattr(layer.module, attr, None)
                    if is_grad and isinstance(p, Tensor) and p.is_leaf and p.requires_grad and id(p) not in hooked:
                        # a parameter used without its module's forward (nn.MultiheadAttention's out_proj,
                        # F.linear(x, self.fc.weight)) still has a gradient of this step
                        hooked.add(id(p))
                        self._handles.append(p.register_post_accumulate_grad_hook(self._fresh_hook))
        elif not self.recording and self._handles:
            for h in self._handles:
                h.remove()
            self._handles = []

    def _record(self, key: tuple[str, str], call: int, tensors: list[Tensor]) -> None:
        want_hist = key[1] in self.histogram_groups
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
                    self._entries[key] = _Entry(call, entry.n, entry.stats, hist=entry.hist if want_hist else None)
                    return
            x = x.detach()  # so the reductions build no graph, without the cost of a no_grad context
        else:
            x = torch.cat([t.detach().reshape(-1) for t in tensors])
        n = x.numel()
        if n == 0:
            return
        entry = _Entry(call, n, self._plan.compute(x), hist=histogram(x, self.bins) if want_hist else None)
        self._entries[key] = entry
        if len(tensors) == 1:
            # holds one tensor until the next record or the step's end; its metadata is read once (nobody else
            # holds this detached alias, so only its data and version can change)
            self._memo = (x, x._version, entry, x.dtype, x.device, x.shape, x.stride(), x.is_contiguous())

    def _pre_hook(self, layer: _Layer) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], Any]:
        name = layer.name
        want_in = "Inputs" in self.groups
        want_gin = "Grad_in" in self.groups
        snap = [(g, p) for g, (p, is_grad) in layer.params.items() if not is_grad] if self._ratio else []
        key_in = (name, "Inputs")

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = self._calls.get(name, -1) + 1
            self._calls[name] = call
            if call == 0:
                self._order[name] = None
                for g, p in snap:
                    w = getattr(module, p, None)
                    if isinstance(w, Tensor):
                        self._snap[(name, g)] = w.detach().clone()
            if not (want_in or want_gin):
                return None
            tensors = _float_tensors(args)
            if kwargs:  # a layer called as layer(x=...) or with tensors among its keyword arguments
                tensors = _tensors(kwargs, list(tensors))
            if not tensors:
                return None
            if want_in:
                self._record(key_in, call, tensors)
            if want_gin and torch.is_grad_enabled():
                hooked = [t for t in tensors if t.requires_grad]
                if hooked:
                    grad_hook = self._grad_hook(name, "Grad_in", call, len(hooked))
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
            return None

        return pre

    def _fwd_hook(self, layer: _Layer) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        name = layer.name
        want_out = "Outputs" in self.groups
        want_gout = "Grad_out" in self.groups
        key_out = (name, "Outputs")

        def fwd(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            tensors = _float_tensors(output)
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
                entry = self._entries[key] = _Entry(call)
            entry.raw.append(grad.detach())

        return hook

    # --------------------------------------------------------------------------------------------- collect
    def _param_tensor(self, layer: _Layer, group: str) -> Tensor | None:
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

    def _items(self) -> list[_Item]:
        items: list[_Item] = []
        plan = self._plan
        entries, hist_groups = self._entries, self.histogram_groups
        for layer in self._layers:
            name = layer.name
            for group, key in layer.keys:
                if group in layer.params:
                    x = self._param_tensor(layer, group)
                    if x is None:
                        continue
                    is_grad = layer.params[group][1]
                    scalars = plan.compute(x)
                    ratio = False
                    snap = self._snap.get((name, group)) if not is_grad and self._ratio else None
                    if snap is not None and snap.shape == x.shape:
                        if x.dtype in (torch.float16, torch.bfloat16):
                            x, snap = x.float(), snap.float()
                        scalars.append(torch.linalg.vector_norm(x - snap) / torch.linalg.vector_norm(snap))
                        ratio = True
                    hist = histogram(x, self.bins) if group in hist_groups else None
                    items.append(_Item(name, group, x.numel(), scalars, ratio, hist))
                else:
                    entry = entries.get(key)
                    if entry is None:
                        continue
                    if entry.stats is None:  # several gradient tensors: reduce them together now
                        x = torch.cat([g.reshape(-1) for g in entry.raw])
                        entry.n, entry.stats = x.numel(), plan.compute(x)
                        entry.hist = histogram(x, self.bins) if group in self.histogram_groups else None
                        entry.raw = []
                    items.append(_Item(name, group, entry.n, entry.stats, False, entry.hist))
        return items

    def _collect(self) -> tuple[list[_Row], dict[str, dict[str, Histogram]]]:
        """Statistics of the current step: computed on the device, moved to the host in one transfer.

        Not cached: the parameters may have changed since the last call (an optimizer step) without any hook.
        Returns the rows that :meth:`_build` turns into ``{layer: {group: {stat: value}}}``, and the histograms.
        """
        with torch.no_grad():
            items = self._items()
            if self.sync and _distributed():
                _pool(items, self._plan.kinds)
            flat, starts, hist_values = _to_host(items)
        plan = self._plan
        values = plan.finish_many(flat, starts, [item.n for item in items])
        names = plan.names
        rows: list[_Row] = []
        for item, vals, start in zip(items, values, starts):
            if item.ratio:
                stats = dict(zip(names, vals))
                stats["update_ratio"] = flat[start + plan.size]
                ratio_names = tuple(s for s in self.stats if s in stats)
                rows.append((item.layer, item.group, ratio_names, [stats[s] for s in ratio_names]))
            else:
                rows.append((item.layer, item.group, names, vals))
        hists: dict[str, dict[str, Histogram]] = {}
        bins = self.bins
        for item, hv in zip(items, hist_values):
            if hv is not None:
                hists.setdefault(item.layer, {})[item.group] = Histogram(tuple(hv[:bins]), hv[bins], hv[bins + 1])
        if self.anomaly:
            keys = [(item.layer, item.group) for item in items]
            sums, norms = [flat[j] for j in starts], [flat[j + 1] for j in starts]  # base=True: sum and norm first
            self._norms = (keys, norms)
            if self._always:  # with stats=() the recorder watches, and the steps after an event are NaN
                self._check_all(keys, sums, norms)
        else:
            self._norms = ([], [])
        return rows, hists

    def _build(self, rows: list[_Row]) -> Stats:
        """``{layer: {group: {stat: value}}}`` of :meth:`_collect`'s rows (new dicts: the caller may keep them)."""
        result: Stats = {layer.name: {} for layer in self._layers}
        for layer, group, names, vals in rows:
            result[layer][group] = dict(zip(names, vals))
        return result

    def _check_all(self, keys: list[tuple[str, str]], sums: list[float], norms: list[float]) -> None:
        """The anomaly check of every item; :meth:`_check` (the ordering, the warning) only when one is found."""
        prev_keys, prev_norms = self._prev_norms
        if prev_keys == keys:
            prev = prev_norms
        else:
            by_key = dict(zip(prev_keys, prev_norms))
            prev = [by_key.get(k, 0.0) for k in keys]
        explode, isfinite = self.explode, math.isfinite
        for total, norm, p in zip(sums, norms, prev):
            if not (isfinite(total) and isfinite(norm)) or (p > 0 and norm > explode * p):
                self._check(dict(zip(keys, zip(sums, norms))), dict(zip(keys, prev)))
                return

    def _check(self, norms: dict[tuple[str, str], tuple[float, float]], prevs: dict[tuple[str, str], float]) -> None:
        """Warn about NaN/Inf and exploding norms, naming the layer where they first appeared."""
        found: list[tuple[int, int, int, str, str, str]] = []
        order = {name: i for i, name in enumerate(self._order)}
        n_layers = len(self._layers)
        for pos, layer in enumerate(self._layers):
            fpos = order.get(layer.name, n_layers + pos)
            for group in self.groups:
                if (layer.name, group) not in norms:
                    continue
                total, norm = norms[(layer.name, group)]
                prev = prevs.get((layer.name, group), 0.0)
                if not math.isfinite(total) or not math.isfinite(norm):
                    what = "NaN/Inf values"
                elif prev > 0 and norm > self.explode * prev:
                    what = f"an exploding L2 norm ({prev:.3g} -> {norm:.3g})"
                else:
                    continue
                backward = group.startswith("Grad_") or group.endswith("_grad")
                # execution order: forward quantities in forward order, then gradients in backward order
                if backward:
                    within = 0 if group == "Grad_out" else 2 if group == "Grad_in" else 1
                    found.append((1, -fpos, within, layer.name, group, what))
                else:
                    within = 1 if group == "Inputs" else 2 if group == "Outputs" else 0
                    found.append((0, fpos, within, layer.name, group, what))
        if not found:
            return
        found.sort()
        name, group, what = found[0][3:]
        if (self.step_index, name + group) in self._warned:
            return
        self._warned.add((self.step_index, name + group))
        others = ", ".join(f"{f[3]}.{f[4]}" for f in found[1:6]) + (", ..." if len(found) > 6 else "")
        also = f"; also in {others}" if others else ""
        warnings.warn(f"step {self.step_index}: {what} first appeared in layer {name!r} (group {group}){also}",
                      ModelAnomalyWarning, stacklevel=5)  # the caller of step(): step, _collect, _check_all

    # ------------------------------------------------------------------------------------------ public API
    def step(self) -> Stats | None:
        """End the current step and start the next one.

        Returns:
            The statistics of the step that ends (as :meth:`get_dict`), or ``None`` if it was not recorded.
        """
        result: Stats | None = None
        after = self._after_left > 0
        if self.recording:
            rows, hists = self._collect()
            self._last, self._last_rows, self._last_hist, self._last_step = None, rows, hists, self.step_index
            self._prev_norms = self._norms
            if after and self.recorder is not None:
                self.recorder._add_after(self.step_index, self._build(rows), dict(hists))
            result = self._build(rows)
        if after:
            self._after_left -= 1
        if self.recorder is not None and not self._removed:
            self.recorder._end_step(self.step_index, self._rec_out, self._rec_order)
            for i in range(len(self._rec_out)):
                self._rec_out[i] = None
            self._rec_order.clear()
        self.step_index += 1
        self._new_step()
        self._sync_hooks()
        return result

    def _current(self) -> tuple[Stats, dict[str, dict[str, Histogram]]]:
        if self.recording and (self._calls or self._last_rows is None):
            rows, hists = self._collect()
            return self._build(rows), hists
        if self._last is None and self._last_rows is not None:
            self._last = self._build(self._last_rows)
        return self._last or {layer.name: {} for layer in self._layers}, self._last_hist

    def expected_groups(self) -> dict[str, tuple[str, ...]]:
        """``{layer: groups it can record}``: every activation group asked for, and the parameter groups whose
        parameter the module has. Which activation groups a step really records depends on the forward."""
        return {layer.name: tuple(g for g in self.groups if g not in layer.params
                                  or isinstance(getattr(layer.module, layer.params[g][0], None), Tensor))
                for layer in self._layers}

    @property
    def modules(self) -> dict[str, nn.Module]:
        """``{layer name: module}`` of the watched layers."""
        return {layer.name: layer.module for layer in self._layers}

    def parameter_tensors(self, groups: Sequence[str] | None = None) -> dict[str, dict[str, Tensor]]:
        """``{layer: {group: tensor}}``: the parameter groups' tensors now (detached, not copied, on their device).

        Gradient groups are included only when this step's forward built a graph, as in :meth:`get_dict`.
        """
        out: dict[str, dict[str, Tensor]] = {}
        for layer in self._layers:
            for g in layer.params:
                if groups is None or g in groups:
                    x = self._param_tensor(layer, g)
                    if x is not None:
                        out.setdefault(layer.name, {})[g] = x
        return out

    def get_dict(self) -> Stats:
        """``{layer: {group: {stat: value}}}``: the current step if it has recorded anything, else the last
        recorded step (layers without data map to ``{}``)."""
        return _copy(self._current()[0])

    def get_histograms(self) -> dict[str, dict[str, Histogram]]:
        """``{layer: {group: Histogram}}`` for the groups in ``histograms``, like :meth:`get_dict`."""
        return dict(self._current()[1])

    def table(self, groups: Sequence[str] | None = None, stats: Sequence[str] | None = None,
              tablefmt: str = "simple", floatfmt: str = ".4g", show: bool = True, file: TextIO | None = None) -> str:
        """Print (to ``file``, default stdout; nothing with ``show=False``) and return a table of the statistics
        that :meth:`get_dict` returns: one row per layer, a column group per recorded group with the chosen
        statistics (default: all recorded)."""
        data = self._current()[0]
        groups = tuple(self.groups if groups is None else ((groups,) if isinstance(groups, str) else groups))
        stats = tuple(self.stats if stats is None else ((stats,) if isinstance(stats, str) else stats))
        for g in groups:
            if g not in self.groups:
                raise UnknownNameError(unknown_name_message("recorded group", g, self.groups))
        for s in stats:
            if s not in self.stats:
                raise UnknownNameError(unknown_name_message("recorded statistic", s, self.stats))
        columns = [(g, s) for g in groups for s in stats
                   if any(s in data[n].get(g, {}) for n in data)]
        headers = ["layer", "type"] + [(g if i == 0 or columns[i - 1][0] != g else "") + "\n" + s
                                       for i, (g, s) in enumerate(columns)]
        types = {layer.name: type(layer.module).__name__ for layer in self._layers}
        rows = [[n, types[n]] + [data[n].get(g, {}).get(s) for g, s in columns] for n in data]
        text = tabulate(rows, headers=headers, tablefmt=tablefmt, floatfmt=floatfmt, missingval="",
                        disable_numparse=[0])
        if show:
            print(text, file=file if file is not None else sys.stdout)
        return text

    def remove(self) -> None:
        """Detach every hook, leaving the model as it was before they were attached. Idempotent."""
        self._removed = True
        self._sync_hooks()
        for h in self._rec_handles:
            h.remove()
        self._rec_handles = []
        self._token = object()

    def __enter__(self) -> TooledModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (f"TooledModel({len(self._layers)} layers, groups={list(self.groups)}, stats={list(self.stats)}, "
                f"every={self.every}, step={self.step_index}{', removed' if self._removed else ''})")


def _copy(d: Stats) -> Stats:
    return {n: {g: dict(s) for g, s in gs.items()} for n, gs in d.items()}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _pool(items: list[_Item], kinds: tuple[str, ...]) -> None:
    """Replace every item's reductions and count by those of all ranks together: one collective."""
    if not items:
        return
    device = items[0].scalars[0].device
    values: list[Tensor] = []
    how: list[str] = []
    for item in items:
        k: tuple[str, ...] = kinds + ("mean",) * (len(item.scalars) - len(kinds))  # update_ratio is appended
        values += [s.to(device, torch.float64) for s in item.scalars]
        values.append(torch.tensor(float(item.n), dtype=torch.float64, device=device))
        how += [*k, "sum"]
    flat = torch.stack(values)
    kind = {h: torch.tensor([x == h for x in how], device=device) for h in ("sum", "sq", "min", "max", "mean")}
    flat = torch.where(kind["sq"], flat * flat, flat)
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    g = torch.stack(gathered)
    pooled = torch.where(kind["sum"] | kind["sq"], g.sum(0), g.mean(0))
    pooled = torch.where(kind["min"], g.amin(0), torch.where(kind["max"], g.amax(0), pooled))
    pooled = torch.where(kind["sq"], pooled.sqrt(), pooled)
    starts = [0]
    for item in items:
        starts.append(starts[-1] + len(item.scalars) + 1)
    counts = pooled[torch.tensor([s - 1 for s in starts[1:]], device=device)].tolist()  # one small read
    for item, start, n in zip(items, starts, counts):
        item.scalars = list(pooled[start:start + len(item.scalars)].unbind())
        item.n = round(n)


def _to_host(items: list[_Item]) -> tuple[list[float], list[int], list[list[float] | None]]:
    """Every item's scalars (concatenated in item order), where each item's start there, and the histograms,
    moved to the host in one transfer per device."""
    starts: list[int] = []
    size = 0
    for item in items:
        starts.append(size)
        size += len(item.scalars)
    hists: list[list[float] | None] = [None] * len(items)
    by_device: dict[torch.device, list[int]] = {}
    for i, item in enumerate(items):
        by_device.setdefault(item.scalars[0].device, []).append(i)
    scalars: list[float] = [0.0] * size
    for idx in by_device.values():
        with_hist = [i for i in idx if items[i].hist is not None]
        flat = torch.stack([s for i in idx for s in items[i].scalars]).double()
        if with_hist:
            flat = torch.cat([flat] + [items[i].hist.double() for i in with_hist])  # type: ignore[union-attr]
        host = flat.cpu().tolist()  # the one transfer
        if len(idx) == len(items) and not with_hist:
            scalars = host
            continue
        pos = 0
        for i in idx:
            k = len(items[i].scalars)
            scalars[starts[i]:starts[i] + k] = host[pos:pos + k]
            pos += k
        for i in with_hist:
            m = items[i].hist.numel()  # type: ignore[union-attr]
            hists[i] = host[pos:pos + m]
            pos += m
    return scalars, starts, hists
