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
from typing import Any, TextIO, TypeAlias

import torch
import torch.distributed as dist
from tabulate import tabulate
from torch import Tensor, nn

from flexlogger.config.options import checked_arguments
from flexlogger.errors import ConfigError, ModelAnomalyWarning, UnknownNameError, unknown_name_message
from flexlogger.model.capture import Item, Layer, Recording, StepCapture, eager, float_tensors, make_layer
from flexlogger.model.recorder import FlightRecorder
from flexlogger.model.stats import Histogram, StatPlan, parse_stats

__all__ = ["GROUPS", "TooledModel"]

GROUPS: tuple[str, ...] = ("Grad_in", "Grad_out", "Inputs", "Outputs", "Weights", "Weight_grad")
_HISTOGRAM_DEFAULT = ("Weights", "Weight_grad")

Selector: TypeAlias = (
    "type[nn.Module] | str | re.Pattern[str] | Callable[[str, nn.Module], bool] | Sequence[Any]"
)
Stats: TypeAlias = dict[str, dict[str, dict[str, float]]]
# one recorded (layer, group): its statistic names and their values, in that order
_Row: TypeAlias = "tuple[str, str, tuple[str, ...], list[float]]"


def _select(model: nn.Module, layers: Selector | None) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs chosen by ``layers``, in ``named_modules()`` order.

    A ``torch.compile``d model is read through to the module it wraps, so its layers keep their own names
    (``0``, ``encoder.fc``), not ``_orig_mod.0``.
    """
    named = [(n or "(model)", m) for n, m in uncompiled(model).named_modules()]
    if layers is None:
        return [(n, m) for n, m in named if next(iter(m.children()), None) is None]
    selectors = list(layers) if isinstance(layers, (list, tuple)) and not _is_type_tuple(layers) else [layers]
    tests = [_selector_test(s) for s in selectors]
    chosen = [(n, m) for n, m in named if any(t(n, m) for t in tests)]
    if not chosen:
        names = ", ".join(n for n, _ in named[:20]) + (", ..." if len(named) > 20 else "")
        raise ConfigError(f"`layers={layers!r}` selects no module of the model; module names: {names}")
    return chosen


def uncompiled(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile``d model wraps (``OptimizedModule._orig_mod``); any other model itself."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) and type(model).__name__ == "OptimizedModule" else model


def _check_params(params: tuple[str, ...], layers: list[Layer]) -> None:
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


def _param_names(params: Sequence[str]) -> tuple[str, ...]:
    """``params`` as a tuple of parameter names other than ``weight``; a bad name raises :class:`ConfigError`."""
    params = (params,) if isinstance(params, str) else tuple(params)
    for p in params:
        if not isinstance(p, str) or not p.isidentifier() or p == "weight":
            raise ConfigError(f"expected `params` to name parameters other than 'weight' (e.g. 'bias'), "
                              f"but got {p!r}")
    return params


def _recorded_groups(groups: Sequence[str], params: tuple[str, ...]) -> tuple[str, ...]:
    """The groups to record, in ``GROUPS`` order then the ``params`` groups (each named parameter and its
    gradient); an unknown group raises :class:`UnknownNameError`."""
    valid_groups = GROUPS + tuple(g for p in params for g in (p, f"{p}_grad"))
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    for g in groups:
        if g not in valid_groups:
            raise UnknownNameError(unknown_name_message("group", g, valid_groups))
    return tuple(g for g in valid_groups if g in groups or g in params or (g.endswith("_grad") and g[:-5] in params))


def _histogram_groups(histograms: bool | Sequence[str], recorded: tuple[str, ...]) -> tuple[str, ...]:
    """The groups whose histograms are recorded: ``True`` for ``Weights`` and ``Weight_grad``, or the names given,
    each of them a recorded group."""
    if histograms is True:
        return tuple(g for g in _HISTOGRAM_DEFAULT if g in recorded)
    if histograms is False:
        return ()
    hist_groups = (histograms,) if isinstance(histograms, str) else tuple(histograms)
    for g in hist_groups:
        if g not in recorded:
            raise UnknownNameError(unknown_name_message("recorded group", g, recorded))
    return hist_groups


class _AnomalyWatch:
    """Warns about NaN/Inf and exploding L2 norms, naming the layer where they appeared first.

    Args:
        explode: a norm explodes when it grows more than this factor from one recorded step to the next.
    """

    def __init__(self, explode: float) -> None:
        self.explode = explode
        # (keys, L2 norms) of the last recorded step and of the last collect
        self._prev_norms: tuple[list[tuple[str, str]], list[float]] = ([], [])
        self.norms: tuple[list[tuple[str, str]], list[float]] = ([], [])
        self._warned: set[tuple[int, str]] = set()

    def end_step(self) -> None:
        """The norms of the last collect become those the next recorded step is compared with."""
        self._prev_norms = self.norms

    def check(self, keys: list[tuple[str, str]], sums: list[float], norms: list[float], step: int,
              order: dict[str, None], layers: list[Layer], groups: tuple[str, ...]) -> None:
        """The anomaly check of every item; :meth:`_report` (the ordering, the warning) only when one is found."""
        prev_keys, prev_norms = self._prev_norms
        if prev_keys == keys:
            prev = prev_norms
        else:
            by_key = dict(zip(prev_keys, prev_norms))
            prev = [by_key.get(k, 0.0) for k in keys]
        explode, isfinite = self.explode, math.isfinite
        for total, norm, p in zip(sums, norms, prev):
            if not (isfinite(total) and isfinite(norm)) or (p > 0 and norm > explode * p):
                self._report(dict(zip(keys, zip(sums, norms))), dict(zip(keys, prev)), step, order, layers, groups)
                return

    def _report(self, norms: dict[tuple[str, str], tuple[float, float]], prevs: dict[tuple[str, str], float],
                step: int, forward: dict[str, None], layers: list[Layer], groups: tuple[str, ...]) -> None:
        """Warn about the anomaly that appeared first in execution order, once per step and (layer, group)."""
        found: list[tuple[int, int, int, str, str, str]] = []
        order = {name: i for i, name in enumerate(forward)}
        n_layers = len(layers)
        for pos, layer in enumerate(layers):
            fpos = order.get(layer.name, n_layers + pos)
            for group in groups:
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
        if (step, name + group) in self._warned:
            return
        self._warned.add((step, name + group))
        others = ", ".join(f"{f[3]}.{f[4]}" for f in found[1:6]) + (", ..." if len(found) > 6 else "")
        also = f"; also in {others}" if others else ""
        warnings.warn(f"step {step}: {what} first appeared in layer {name!r} (group {group}){also}",
                      ModelAnomalyWarning, stacklevel=5)  # the caller of step(): step, _collect, check


class _RecorderFeed:
    """Feeds a :class:`FlightRecorder`: hands it the layers and their parameters, and hooks the layers' outputs.

    Args:
        recorder: the recorder to feed.
        layers: the watched layers.
        model: the model (its first parameter gives the device when no watched layer has a parameter).
        start_after: called when a rule of the recorder fires.
    """

    def __init__(self, recorder: FlightRecorder, layers: list[Layer], model: nn.Module,
                 start_after: Callable[[], None]) -> None:
        self.recorder = recorder
        self._handles: list[Any] = []
        self._out: list[Any] = [None] * len(layers)
        self._order: list[str] = []  # forward order of this step (forward hooks: order of completion)
        params = [[p for p in layer.module.parameters(recurse=False) if p.requires_grad] for layer in layers]
        first = next((p for ps in params for p in ps), None)
        if first is None:
            first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        recorder._bind([layer.name for layer in layers], params, device)
        recorder._start_after = start_after
        for i, layer in enumerate(layers):
            self._handles.append(layer.module.register_forward_hook(eager(self._hook(i, layer.name))))

    def _hook(self, i: int, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        out_stats = self.recorder._output_entry
        outs, order = self._out, self._order

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if outs[i] is None:
                order.append(name)
            x = output if isinstance(output, Tensor) else next(iter(float_tensors(output)), None)
            if x is None or not x.is_floating_point() or x.numel() == 0:
                return
            outs[i] = out_stats(x)

        return hook

    def end_step(self, step: int) -> None:
        """Hand the recorder the outputs of the step that ends, and start collecting the next step's."""
        self.recorder._end_step(step, self._out, self._order)
        for i in range(len(self._out)):
            self._out[i] = None
        self._order.clear()

    def remove(self) -> None:
        """Take the output hooks off the model."""
        for h in self._handles:
            h.remove()
        self._handles = []


class TooledModel:
    """Records per-layer statistics of a model's weights, activations and gradients.

    Args:
        model: the model to watch; it is never modified beyond the hooks, which :meth:`remove` takes away. A
            ``torch.compile``d model works too, before or after it is wrapped here: its layers keep their own names,
            and the hooks run outside the compiled graph (one graph break per watched layer on recorded steps).
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
        params = _param_names(params)
        self.groups = _recorded_groups(groups, params)
        self.histogram_groups = _histogram_groups(histograms, self.groups)
        self.every = every
        self.bins = bins
        self.anomaly = anomaly
        self.explode = float(explode)
        self._plan = StatPlan(self.stats, base=anomaly, custom=custom)
        self._layers = [make_layer(n, m, self.groups, params) for n, m in _select(model, layers)]
        _check_params(params, self._layers)
        self._capture = StepCapture(self._layers, Recording(self.groups, self.histogram_groups, bins, self._plan,
                                                            ratio="update_ratio" in self.stats))
        self._anomalies = _AnomalyWatch(self.explode)
        self.step_index = 0
        self._removed = False
        self._last: Stats | None = None  # built from _last_rows when first asked for (most steps never are)
        self._last_rows: list[_Row] | None = None
        self._last_hist: dict[str, dict[str, Histogram]] = {}
        self._last_step: int | None = None
        self._feed = _RecorderFeed(recorder, self._layers, model, self._start_after) if recorder is not None else None
        self._sync_hooks()

    def _start_after(self) -> None:
        """An event: record every step of the next ``recorder.after`` in full, starting with the current one."""
        if self.recorder is not None and self.recorder.after and not self._removed:
            self._after_left = self.recorder.after
            self._sync_hooks()

    def _sync_hooks(self) -> None:
        """Attach the hooks during recorded steps, detach them between (so skipped steps cost nothing)."""
        if self.recording and not self._capture.attached:
            self._capture.attach()
        elif not self.recording and self._capture.attached:
            self._capture.detach()

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

    def _collect(self) -> tuple[list[_Row], dict[str, dict[str, Histogram]]]:
        """Statistics of the current step: computed on the device, moved to the host in one transfer.

        Not cached: the parameters may have changed since the last call (an optimizer step) without any hook.
        Returns the rows that :meth:`_build` turns into ``{layer: {group: {stat: value}}}``, and the histograms.
        """
        with torch.no_grad():
            items = self._capture.items()
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
            self._anomalies.norms = (keys, norms)
            if self._always:  # with stats=() the recorder watches, and the steps after an event are NaN
                self._anomalies.check(keys, sums, norms, self.step_index, self._capture.order, self._layers,
                                      self.groups)
        else:
            self._anomalies.norms = ([], [])
        return rows, hists

    def _build(self, rows: list[_Row]) -> Stats:
        """``{layer: {group: {stat: value}}}`` of :meth:`_collect`'s rows (new dicts: the caller may keep them)."""
        result: Stats = {layer.name: {} for layer in self._layers}
        for layer, group, names, vals in rows:
            result[layer][group] = dict(zip(names, vals))
        return result

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
            self._anomalies.end_step()
            if after and self.recorder is not None:
                self.recorder._add_after(self.step_index, self._build(rows), dict(hists))
            result = self._build(rows)
        if after:
            self._after_left -= 1
        if self._feed is not None and not self._removed:
            self._feed.end_step(self.step_index)
        self.step_index += 1
        self._capture.new_step()
        self._sync_hooks()
        return result

    def _current(self) -> tuple[Stats, dict[str, dict[str, Histogram]]]:
        if self.recording and (self._capture.called or self._last_rows is None):
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
        if self._feed is not None:
            self._feed.remove()
        self._capture.expire()

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


def _pool(items: list[Item], kinds: tuple[str, ...]) -> None:
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


def _to_host(items: list[Item]) -> tuple[list[float], list[int], list[list[float] | None]]:
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
