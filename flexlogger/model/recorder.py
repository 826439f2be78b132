"""FlightRecorder: the last steps of cheap per-layer statistics, kept on the device, and rules that watch them.

Example:
    >>> rec = FlightRecorder(window=64, after=20, rules=[{"stat": "nonfinite", "above": 0},
    ...                                                   {"stat": "grad_norm", "zscore_above": 6},
    ...                                                   {"meter": "train_loss", "spike": 3}])
    >>> TM = TooledModel(model, stats=(), recorder=rec)      # the recorder alone; or with stats=("mean", "std")
    >>> for x, y in data:
    ...     loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    ...     TM.step()                                        # writes one row of the ring buffer, checks the rules
    ...     rec.observe("train_loss", loss)                  # what a FlexLogger calls for a meter rule
    >>> rec.events[0].layer, rec.events[0].history.steps

What a step writes (``RECORDER_STATS``, one value per watched layer, all on the model's device):
    ``grad_norm`` and ``weight_norm``: L2 norm of the layer's own parameters' gradients and values (every
    parameter of the module, not only ``weight``; NaN for a layer without parameters); ``update_ratio``:
    ``||W_t - W_(t-1)|| / ||W_(t-1)||`` over those parameters, from one step's ``step()`` to the next (the first
    step against the parameters at construction); ``act_max``: max ``|x|`` of the layer's (first floating-point)
    output in the last forward of the step; ``nonfinite``: how many of the layer's tensors (its
    output, each parameter, each gradient) hold a NaN or Inf (one anywhere makes the tensor's norm or max NaN or
    Inf, which are read anyway; counting values one by one would read every tensor three more times: the full
    statistics recorded after an event count them); ``dead_fraction``: fraction of the output's units
    (the features after the batch dimension) that are exactly zero for every sample of the batch.

Rules (``rules=``, a list of dicts, from Python or a config file; callables from Python only):
    - ``{"stat": S, "above": X}`` / ``{"stat": S, "below": X}``: a layer's value of ``S`` beyond ``X``;
    - ``{"stat": S, "zscore_above": Z}``: ``(value - mean) / std`` against the layer's own buffered history above
      ``Z`` (once at least ``min_history`` steps are buffered);
    - ``{"meter": M, "spike": K}``: a meter's value observed with :meth:`FlightRecorder.observe` more than ``K``
      standard deviations from the mean of its last ``window`` values (at least ``min_history`` of them);
    - a callable ``(current, history) -> bool tensor``: ``current`` is ``{stat: tensor (layers,)}`` of this step,
      ``history`` ``{stat: tensor (steps, layers)}`` of the buffered steps before it (oldest first; empty before
      the second step); it returns a mask over the layers (or one bool), evaluated on the device.

    Every dict may also carry ``"name"`` (shown in warnings and events) and ``"min_history"``.

Cost:
    A step adds no host transfer and no GPU synchronisation for the buffer or the rules: the host reads one
    small tensor (the rules' pending events) every ``check_every`` steps. On a GPU a larger ``check_every``
    saves synchronisations (one per check instead of one per step, so the host keeps queuing kernels ahead);
    it delays detection by up to ``check_every - 1`` steps, while the event's step, layer and value are still
    those of the step where the rule fired (the buffer keeps ``window + check_every`` rows so the event still
    has the ``window`` steps before it).

    What a step must read is the floor: every weight and gradient once (the norms), each watched layer's output
    once in its forward hook (per-unit max and min over the batch), and, for ``update_ratio``, the weights three
    more times (subtract the snapshot, its norm, copy the weights into it); ``update_ratio=False`` saves those.
    On the CPU the host is the device: the arithmetic after those reductions (a few dozen numbers per layer: the
    per-layer sums, the ring buffer, the rules) runs in numpy on views of the same buffers, where one call costs a
    fraction of a torch call's dispatch; on other devices it runs in torch. It is written once, against
    :mod:`flexlogger.model.arith`, and the two give the same buffer and the same events (tested).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from flexlogger.config.options import checked_arguments
from flexlogger.errors import ConfigError, ModelAnomalyWarning, UnknownNameError, unknown_name_message
from flexlogger.model.arith import Arith, arith_for

__all__ = ["RECORDER_STATS", "AnomalyEvent", "FlightRecorder", "History", "Rule", "check_rules"]

RECORDER_STATS: tuple[str, ...] = ("grad_norm", "weight_norm", "update_ratio", "act_max", "nonfinite", "dead_fraction")
STAT_CONDITIONS: tuple[str, ...] = ("above", "below", "zscore_above")
METER_CONDITIONS: tuple[str, ...] = ("spike",)
FULL_STATS: tuple[str, ...] = ("mean", "std", "norm", "max", "nonfinite", "zero_frac")
_OPTIONAL_KEYS = ("name", "min_history")
_RULE_FORMS = ("{'stat': <one of " + ", ".join(RECORDER_STATS) + ">, 'above' | 'below' | 'zscore_above': <number>}, "
               "{'meter': <meter name>, 'spike': <number>} (each may add 'name', 'min_history'), or a callable "
               "(current, history) -> bool tensor")
# how sync=True pools a statistic over ranks: root mean square of norms, sum of counts, max of maxima, mean else
_POOL = {"grad_norm": "rms", "weight_norm": "rms", "update_ratio": "mean", "act_max": "max", "nonfinite": "sum",
         "dead_fraction": "mean"}

RuleFn = Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]


@dataclass(frozen=True)
class Rule:
    """One checked rule: a statistic or meter condition, or a callable (see the module docstring)."""

    name: str
    stat: str | None = None
    meter: str | None = None
    condition: str = "above"
    threshold: float = 0.0
    min_history: int = 16
    fn: RuleFn | None = None

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain data (a callable as its name)."""
        if self.fn is not None:
            return {"callable": self.name}
        key = "stat" if self.stat is not None else "meter"
        return {key: self.stat if self.stat is not None else self.meter, self.condition: self.threshold,
                "name": self.name, "min_history": self.min_history}


def _rule(entry: Any, index: int, default_min_history: int) -> Rule:
    where = f"rules[{index}]"
    if callable(entry) and not isinstance(entry, Mapping):
        name = getattr(entry, "__name__", type(entry).__name__)
        return Rule(name=name, fn=entry, condition="callable", min_history=1)
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a rule {_RULE_FORMS}, but got {entry!r} ({type(entry).__name__})")
    if ("stat" in entry) == ("meter" in entry):
        raise ConfigError(f"{where}: expected exactly one of 'stat' or 'meter' in {dict(entry)!r}; valid forms: "
                          f"{_RULE_FORMS}")
    is_stat = "stat" in entry
    subject = entry["stat" if is_stat else "meter"]
    valid = STAT_CONDITIONS if is_stat else METER_CONDITIONS
    if is_stat and subject not in RECORDER_STATS:
        raise UnknownNameError(f"{where}: " + unknown_name_message("recorder statistic", subject, RECORDER_STATS))
    if not is_stat and not (isinstance(subject, str) and subject):
        raise ConfigError(f"{where}: expected 'meter' to be a meter name (str), but got {subject!r}")
    conditions = [k for k in entry if k in STAT_CONDITIONS + METER_CONDITIONS]
    unknown = [k for k in entry if k not in (*STAT_CONDITIONS, *METER_CONDITIONS, *_OPTIONAL_KEYS, "stat", "meter")]
    if unknown:
        raise UnknownNameError(f"{where}: " + unknown_name_message(
            "rule key", unknown[0], ("stat" if is_stat else "meter", *valid, *_OPTIONAL_KEYS)))
    if len(conditions) != 1 or conditions[0] not in valid:
        raise ConfigError(f"{where}: expected exactly one condition of {', '.join(valid)} for a "
                          f"{'stat' if is_stat else 'meter'} rule, but got {conditions or 'none'} in {dict(entry)!r}")
    cond = conditions[0]
    value = entry[cond]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected {cond!r} to be a finite number, but got {value!r}")
    if cond in ("zscore_above", "spike") and value <= 0:
        raise ConfigError(f"{where}: expected {cond!r} to be a number of standard deviations > 0, but got {value!r}")
    min_history = entry.get("min_history", default_min_history)
    if isinstance(min_history, bool) or not isinstance(min_history, int) or min_history < 2:
        raise ConfigError(f"{where}: expected 'min_history' to be an int >= 2, but got {min_history!r}")
    name = entry.get("name", f"{subject} {cond} {value:g}")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected 'name' to be a str, but got {name!r}")
    return Rule(name=name, stat=subject if is_stat else None, meter=None if is_stat else subject, condition=cond,
                threshold=float(value), min_history=min_history)


def check_rules(rules: Sequence[Any], min_history: int = 16) -> tuple[Rule, ...]:
    """Validate rules (dicts, or callables from Python) and return them as :class:`Rule` objects.

    The one check of a rule: :class:`FlightRecorder` and the config loader both call it.

    Raises:
        ConfigError: a malformed rule; the message names its index and lists the valid forms.
    """
    if isinstance(rules, (Mapping, str)) or callable(rules):
        rules = [rules]
    if not isinstance(rules, Sequence):
        raise ConfigError(f"expected `rules` to be a list of rules {_RULE_FORMS}, but got {rules!r}")
    return tuple(_rule(r, i, min_history) for i, r in enumerate(rules))


@dataclass(frozen=True)
class History:
    """The buffered statistics before an event: ``stats[stat]`` is a steps x layers table (rows follow ``steps``,
    columns ``layers``); ``meters`` holds the observed values of the meters with rules."""

    steps: list[int]
    layers: list[str]
    stats: dict[str, list[list[float]]]
    meters: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "layers": list(self.layers),
                "stats": {k: [list(r) for r in v] for k, v in self.stats.items()},
                "meters": {k: list(v) for k, v in self.meters.items()}}


@dataclass
class AnomalyEvent:
    """A rule that fired: where, when, on what value, and the buffered steps that led to it.

    Attributes:
        step: the step where the rule fired (exact, even when detected ``check_every - 1`` steps later).
        layer: the first offending layer in forward order (``None`` for a meter rule).
        stat: the statistic (or meter) the rule watches; for a callable rule, its name.
        value: the offending value (the statistic's value, not its z-score; NaN for a callable rule).
        rule: the rule's name; ``spec`` is the rule itself.
        rank: the process that saw it (``None`` for statistics pooled with ``sync=True`` or without a process group).
        history: the buffered statistics up to and including ``step``.
        after: ``[(step, {layer: {group: {stat: value}}})]``: the full statistics of the steps after detection,
            filled in as they run; ``complete`` turns True after ``after`` steps.
    """

    step: int
    layer: str | None
    stat: str
    value: float
    rule: str
    history: History
    rank: int | None = None
    spec: Rule | None = None
    detected_at: int = 0
    after: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    histograms: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    complete: bool = False

    def message(self) -> str:
        where = f"in layer {self.layer!r}" if self.layer is not None else f"on meter {self.stat!r}"
        rank = f" on rank {self.rank}" if self.rank is not None else ""
        late = f" (detected at step {self.detected_at})" if self.detected_at != self.step else ""
        return f"step {self.step}{rank}: rule {self.rule!r} fired {where}: {self.stat} = {self.value:.4g}{late}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (NaN and Inf as the floats ``json`` writes as ``NaN``/``Infinity``)."""
        return {"step": self.step, "layer": self.layer, "stat": self.stat, "value": self.value, "rule": self.rule,
                "rank": self.rank, "detected_at": self.detected_at,
                "spec": self.spec.to_dict() if self.spec is not None else None, "history": self.history.to_dict(),
                "after": [{"step": s, "stats": st} for s, st in self.after],
                "histograms": [{"step": s, "histograms": {n: {g: {"counts": list(h.counts), "lo": h.lo, "hi": h.hi}
                                                              for g, h in gs.items()} for n, gs in hs.items()}}
                               for s, hs in self.histograms],
                "complete": self.complete}


class FlightRecorder:
    """Keeps the last ``window`` steps of cheap per-layer statistics on the device and watches them with rules.

    Give it to :class:`~flexlogger.model.tooled.TooledModel` (``TooledModel(model, recorder=rec)``), which feeds it at
    every ``step()``. When a rule fires, a :class:`ModelAnomalyWarning` names the first offending layer in forward
    order, the rule, the step and the value; the TooledModel records its full statistics for the next ``after``
    steps (``stats`` when the TooledModel was given none); ``on_trigger(event)`` and every callable in
    ``listeners`` are called with the :class:`AnomalyEvent`. A rule that keeps firing is reported once per episode
    (an episode ends at the first step where it does not fire). See the module docstring for the statistics,
    the rule forms and the cost.

    Args:
        window: steps of history kept (and handed to an event).
        rules: the rules (default: ``[{"stat": "nonfinite", "above": 0}]``).
        after: steps of full recording after an event.
        check_every: the host reads the rules' result every ``check_every`` steps (see the module docstring).
        on_trigger: called with each event (on rank 0), e.g. to save a checkpoint or stop training.
        listeners: further callables ``(event) -> None`` (a TooledModelLogger draws and records events through it).
        min_history: default least number of buffered steps (observed values for a meter) before a z-score or
            spike rule may fire.
        sync: under ``torch.distributed``, pool the statistics over ranks (one collective per step) instead of
            watching each rank's own; rules that fire on any rank are reported by rank 0 either way.
        stats: what the TooledModel records after an event when it was built with ``stats=()``.
        warn: issue a :class:`ModelAnomalyWarning` for each event.
        update_ratio: buffer ``update_ratio``; it needs a copy of the parameters, read and rewritten at every step
            (three more passes over the weights); ``False`` saves them and leaves that column NaN.

    Raises:
        ConfigError: a bad argument (checked through ``flexlogger.config.options.MODEL_ARGUMENTS``) or rule (the
            message lists the valid forms).
    """

    @checked_arguments("FlightRecorder()")
    def __init__(self, *, window: int = 64, rules: Sequence[Any] | None = None, after: int = 20,
                 check_every: int = 1, on_trigger: Callable[[AnomalyEvent], None] | None = None,
                 listeners: Sequence[Callable[[AnomalyEvent], None]] = (), min_history: int = 16, sync: bool = False,
                 stats: Sequence[str] = FULL_STATS, warn: bool = True, update_ratio: bool = True) -> None:
        self.window, self.after, self.check_every, self.sync, self.warn = window, after, check_every, sync, warn
        self.update_ratio = update_ratio
        self.rules = check_rules([{"stat": "nonfinite", "above": 0}] if rules is None else rules, min_history)
        if not update_ratio and any(r.stat == "update_ratio" for r in self.rules):
            raise ConfigError("a rule watches 'update_ratio' but `update_ratio=False` does not buffer it; drop the "
                              "rule or set update_ratio=True")
        self.stats = tuple(stats)
        self.on_trigger = on_trigger
        self.listeners: list[Callable[[AnomalyEvent], None]] = list(listeners)
        self.events: list[AnomalyEvent] = []
        self._stat_rules = [r for r in self.rules if r.stat is not None]
        self._fn_rules = [r for r in self.rules if r.fn is not None]
        self._meters = _MeterRules([r for r in self.rules if r.meter is not None], window)
        self._bound = False
        self._start_after: Callable[[], None] | None = None  # set by the TooledModel: record the next `after` steps
        self._step = 0
        self._new: list[AnomalyEvent] = []  # events found since the TooledModel last asked
        self._open: list[AnomalyEvent] = []  # events still collecting their `after` steps

    # ------------------------------------------------------------------------------------------------ binding
    def _bind(self, layers: Sequence[str], params: Sequence[Sequence[Tensor]], device: torch.device) -> None:
        """Allocate the ring buffer and the rule state for these layers (``params``: each layer's parameters)."""
        if self._bound:
            raise ConfigError("this FlightRecorder is already attached to a TooledModel; give each its own")
        self._bound = True
        self.layers = list(layers)
        self.device = device
        n_layers, n_stats = len(layers), len(RECORDER_STATS)
        self._arith = a = self._arith_for(device, n_layers)
        self._params = [p for ps in params for p in ps]
        self._pidx = np.array([i for i, ps in enumerate(params) for _ in ps], dtype=np.int64)
        self._snap = [p.detach().clone() for p in self._params] if self.update_ratio else []
        with torch.no_grad():
            norms = a.take_norms(self._snap) if self._snap else a.full(0, 0.0)
            self._prev_sq = a.bincount(a.const(self._pidx[:len(self._snap)], "int64"), norms * norms, n_layers)
        self._has_params = a.const([bool(ps) for ps in params], "bool")
        self._rows = self.window + self.check_every
        # the storage is torch (history, collectives, events read it); the arithmetic works on views of it
        self._buf = torch.full((self._rows, n_stats, n_layers), math.nan, device=device)
        self._steps = torch.full((self._rows,), -1, dtype=torch.long, device=device)
        n_rules = len(self._stat_rules) + len(self._fn_rules)
        self._active = torch.zeros(n_rules, dtype=torch.bool, device=device)
        self._pending = torch.zeros(n_rules, dtype=torch.bool, device=device)
        self._pend = torch.zeros(n_rules, 3, dtype=torch.float64, device=device)  # step, layer, value
        self._buf_a, self._steps_a = a.view(self._buf), a.view(self._steps)
        self._active_a, self._pending_a, self._pend_a = a.view(self._active), a.view(self._pending), a.view(self._pend)
        self._written = 0
        rules = self._stat_rules
        self._sidx = a.const([RECORDER_STATS.index(r.stat) for r in rules if r.stat], "int64")
        self._thr = a.const([r.threshold for r in rules], "float32").reshape(-1, 1)
        self._sign = a.const([-1.0 if r.condition == "below" else 1.0 for r in rules], "float32").reshape(-1, 1)
        # z-score rules: their rows among the stat rules, the statistics whose history they average, and the
        # least and most history they need (below the least none may fire and no history is read; below the
        # most, a gate holds back those that need more)
        z_rules = [r for r in rules if r.condition == "zscore_above"]
        zstats = sorted({r.stat for r in z_rules if r.stat}, key=RECORDER_STATS.index)
        self._zrows = a.const([i for i, r in enumerate(rules) if r.condition == "zscore_above"], "int64")
        self._zsel = a.const([RECORDER_STATS.index(st) for st in zstats], "int64")
        self._zpos = a.const([zstats.index(r.stat) for r in z_rules if r.stat], "int64")
        self._zmin = min((r.min_history for r in z_rules), default=0)
        self._zmax = max((r.min_history for r in z_rules), default=0)
        self._gates: dict[int, Any] = {}
        self._have_key: tuple[int, ...] | None = None
        self._nidx = self._lidx = a.const([], "int64")
        self._perm_key: tuple[str, ...] = ()
        self._perm = a.arange(n_layers)

    _arith_for: Callable[[torch.device, int], Arith] = staticmethod(arith_for)  # type: ignore[assignment]
    """Which arithmetic a recorder bound to a device uses (numpy on the CPU, torch elsewhere; see ``arith.py``)."""

    @property
    def layer_order(self) -> list[str]:
        """The watched layers in forward order (of the last step that ran a forward; layers it did not run come
        after, in ``named_modules()`` order): the rows of the recorder's heatmaps."""
        if not self._bound:
            return []
        names = set(self.layers)
        seen = [n for n in self._perm_key if n in names]
        return seen + [n for n in self.layers if n not in set(seen)]

    def memory_bytes(self) -> int:
        """Bytes of device storage the recorder holds (the ring buffer, parameter snapshots, rule state)."""
        if not self._bound:
            return 0
        arrays = [self._buf, self._steps, self._active, self._pending, self._pend, self._prev_sq, self._has_params,
                  self._sidx, self._thr, self._sign, self._zrows, self._zsel, self._zpos, self._nidx, self._lidx,
                  self._perm, *self._gates.values(), *self._snap]
        return (sum(x.untyped_storage().nbytes() if isinstance(x, Tensor) else x.nbytes for x in arrays)
                + self._arith.nbytes())

    # --------------------------------------------------------------------------------------- per-step work
    def _output_entry(self, x: Tensor) -> Any:
        """What a forward hook keeps of a layer's output for the step's end (see :meth:`Arith.entry`)."""
        return self._arith.entry(*_output_stats(x))

    def _norm_index(self, have: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """For the norms of [the gradients present (parameters ``have``), the weights, the weight changes]: where
        each adds its square in the rows 0, 1, 2 of a (3, layers) table, flattened; and the layer of each gradient
        and weight, whose NaN or Inf counts in ``nonfinite`` (a weight change has none of its own)."""
        n_layers = len(self.layers)
        pidx = self._pidx
        g = pidx[list(have)] if have else np.zeros(0, dtype=np.int64)
        parts = [g, pidx + n_layers] + ([pidx + 2 * n_layers] if self.update_ratio else [])
        return np.concatenate(parts), np.concatenate([g, pidx])

    def _row(self, outputs: Sequence[Any]) -> Any:
        """This step's statistics, ``(len(RECORDER_STATS), layers)``: the reductions in torch, the per-layer
        arithmetic in the recorder's :class:`Arith` (called under ``no_grad``: the parameters are read as they
        are, without a detached view each)."""
        a, xp = self._arith, self._arith.xp
        n_layers = len(self.layers)
        params = self._params
        grads = [p.grad for p in params]
        have = tuple(i for i, g in enumerate(grads) if g is not None)
        if have != self._have_key:  # which parameters have a gradient rarely changes: rebuild the index then
            self._have_key = have
            nidx, lidx = self._norm_index(have)
            self._nidx, self._lidx = a.const(nidx, "int64"), a.const(lidx, "int64")
        if params:
            # One fused norm over every gradient, every weight and every change of a weight since the last step.
            if self._snap:
                torch._foreach_sub_(self._snap, params)  # the snapshot becomes W_(t-1) - W_t ...
            norms = a.take_norms([g for g in grads if g is not None] + params + self._snap)
            if self._snap:
                torch._foreach_copy_(self._snap, params)  # ... and then W_t, for the next step
            sq = a.bincount(self._nidx, norms * norms, 3 * n_layers).reshape(3, n_layers)
            bad = a.bincount(self._lidx, ~xp.isfinite(norms[:len(self._lidx)]), n_layers)
        else:
            sq = a.full((3, n_layers), 0.0)
            bad = a.full(n_layers, 0.0)
        has = self._has_params
        ratio = xp.where(has, xp.sqrt(sq[2] / self._prev_sq), math.nan) if self._snap else a.full(n_layers, math.nan)
        self._prev_sq = sq[1]
        act_max, bad_out, dead = a.outputs(outputs)
        row = a.f32(xp.stack([xp.where(has, xp.sqrt(sq[0]), math.nan), xp.where(has, xp.sqrt(sq[1]), math.nan),
                              ratio, act_max, bad_out + bad, dead]))
        if self.sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            row = a.view(_pool_row(a.to_torch(row)))
        return row

    def _history_tensors(self, ordered: bool = True) -> Tensor:
        """The buffered rows before this step (at most ``rows``), oldest first if ``ordered``; no host sync."""
        n = min(self._written, self._rows)
        if n < self._rows:
            return self._buf[:n]
        start = self._written % self._rows
        return torch.cat([self._buf[start:], self._buf[:start]]) if start and ordered else self._buf

    def _zscores(self, cur: Any) -> Any:
        """``cur`` (rules x layers) with the z-score rules' rows replaced by their z-scores against the buffered
        history (NaN, which fires nothing, before ``min_history`` steps)."""
        a, xp = self._arith, self._arith.xp
        n = min(self._written, self._rows)
        x = cur + 0  # a copy, written below
        if n < max(self._zmin, 2):
            x[self._zrows] = math.nan
            return x
        hist = self._buf_a[:n][:, self._zsel]  # (steps, z statistics, layers); mean and std ignore the order
        ok = ~xp.isnan(hist)
        cnt = ok.sum(0)
        mean = xp.where(ok, hist, 0.0).sum(0) / cnt
        dev = xp.where(ok, hist - mean, 0.0)
        std = xp.sqrt((dev * dev).sum(0) / cnt)
        # a flat history (a frozen layer) would make any change infinitely many deviations away
        std = xp.maximum(std, xp.abs(mean) * 1e-3 + 1e-12)
        x[self._zrows] = a.f32((cur[self._zrows] - mean[self._zpos]) / std[self._zpos])
        if n < self._zmax:  # rules that need a longer history: held back by a gate made once per n
            gate = self._gates.get(n)
            if gate is None:
                gate = self._gates[n] = a.const([r.condition == "zscore_above" and n < r.min_history
                                                 for r in self._stat_rules], "bool").reshape(-1, 1)
            x = xp.where(gate, math.nan, x)
        return x

    def _evaluate(self, row: Any, step: int) -> None:
        """Evaluate the rules on this step's row and note new episodes in the pending state (no host sync)."""
        a, xp = self._arith, self._arith.xp
        n_layers = len(self.layers)
        masks: list[Any] = []
        values: list[Any] = []
        if self._stat_rules:
            cur = row[self._sidx]  # (rules, layers)
            x = self._zscores(cur) if self._zmax else cur
            masks.append((x - self._thr) * self._sign > 0)
            values.append(cur)
        if self._fn_rules:
            row_t = a.to_torch(row)
            current = {s: row_t[i] for i, s in enumerate(RECORDER_STATS)}
            hist = self._history_tensors()
            past = {s: hist[:, i] for i, s in enumerate(RECORDER_STATS)}
            for r in self._fn_rules:
                masks.append(a.rule_mask(r.fn(current, past)))  # type: ignore[misc]
                values.append(a.full((1, n_layers), math.nan))
        if not masks:
            return
        mask = masks[0] if len(masks) == 1 else xp.concatenate(masks)
        fired = mask.any(1)
        if a.none_fired(fired):  # the usual step: nothing fires, so nothing is new and no episode goes on
            self._active_a[:] = False
            return
        value = values[0] if len(values) == 1 else xp.concatenate(values)
        first = self._perm[a.argmax(mask[:, self._perm])]
        val = value[a.arange(len(first)), first]
        new = fired & ~self._active_a
        self._active_a[:] = fired
        take = new & ~self._pending_a
        self._pending_a |= new
        info = xp.stack([a.full(len(val), float(step), "float64"), a.f64(first), a.f64(val)], 1)
        self._pend_a[:] = xp.where(take[:, None], info, self._pend_a)

    def _end_step(self, step: int, outputs: Sequence[Any],
                  order: Sequence[str]) -> list[AnomalyEvent]:
        """Write this step's row, evaluate the rules, and every ``check_every`` steps read the pending events."""
        self._step = step
        key = tuple(order)
        if key != self._perm_key:  # forward order as seen so far; unseen layers after, in named order
            self._perm_key = key
            pos = {n: i for i, n in enumerate(self.layers)}
            seen = [pos[n] for n in order if n in pos]
            rest = [i for i in range(len(self.layers)) if i not in set(seen)]
            self._perm = self._arith.const(seen + rest, "int64")
        with torch.no_grad(), np.errstate(all="ignore"):  # NaN and Inf are data here (a NaN norm is an event)
            slot = self._written % self._rows
            row = self._row(outputs)
            self._evaluate(row, step)
            self._buf_a[slot] = row
            self._steps_a[slot] = step
            self._written += 1
            if (step + 1) % self.check_every == 0:
                self._check()
        new, self._new = self._new, []
        return new

    def _check(self) -> None:
        """Read the pending events (the one host sync per check) and turn them into events."""
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if self._arith.on_host and not distributed and not self._pending_a.any():
            return
        packed = torch.cat([self._pending.double()[:, None], self._pend], 1)
        if distributed and not self.sync:
            gathered = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, packed)
            per_rank = [g.cpu().tolist() for g in gathered]
        else:
            per_rank = [packed.cpu().tolist()]
        if not any(r[0] for rows in per_rank for r in rows):
            return
        self._pending.zero_()
        history = _gather_history(self._buf, self._steps, distributed and not self.sync)
        rules = self._stat_rules + self._fn_rules
        found = []
        for rank, rows in enumerate(per_rank):
            for rule, (pending, step, layer, value) in zip(rules, rows):
                if pending:
                    found.append((int(step), rank, rule, int(layer), value))
        found.sort(key=lambda f: (f[0], f[1]))
        for step, rank, rule, layer, value in found:
            event = AnomalyEvent(step=step, layer=self.layers[layer], stat=rule.stat or rule.name, value=value,
                                 rule=rule.name, history=self._cut(history[rank], step), spec=rule,
                                 rank=rank if distributed and not self.sync else None, detected_at=self._step)
            self._emit(event)

    def _cut(self, history: tuple[list[int], list[list[list[float]]]], step: int) -> History:
        """The buffered steps up to ``step``, the ``window`` before it included, as a :class:`History`."""
        steps, rows = history
        keep = sorted((s, i) for i, s in enumerate(steps) if step - self.window <= s <= step and s >= 0)
        stats = {name: [rows[i][k] for _, i in keep] for k, name in enumerate(RECORDER_STATS)}
        return History(steps=[s for s, _ in keep], layers=list(self.layers), stats=stats,
                       meters=self._meters.series())

    def _emit(self, event: AnomalyEvent, stacklevel: int = 6) -> None:
        self._new.append(event)
        if self._start_after is not None:
            self._start_after()
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return  # rank 0 reports for every rank; the others still record their `after` steps
        self.events.append(event)
        self._open.append(event)
        if self.warn:
            warnings.warn(event.message(), ModelAnomalyWarning, stacklevel=stacklevel)
        if self.on_trigger is not None:
            self.on_trigger(event)
        for listener in self.listeners:
            listener(event)

    def _add_after(self, step: int, stats: dict[str, Any], hists: dict[str, Any]) -> None:
        """Give the full statistics of a step after detection to the events still collecting them."""
        still = []
        for event in self._open:
            if step > event.detected_at and len(event.after) < self.after:
                event.after.append((step, stats))
                if hists:
                    event.histograms.append((step, hists))
            if len(event.after) >= self.after:
                event.complete = True
            else:
                still.append(event)
        self._open = still

    # ------------------------------------------------------------------------------------------- meters
    def observe(self, name: str, value: float | Tensor, step: float | None = None) -> AnomalyEvent | None:
        """Feed a meter's value (a FlexLogger calls this); meter rules on ``name`` evaluate on the observed values.

        ``step``: the step the value was logged at (``Stat.log(30)``), which an event reports, in the warning and in
        ``anomalies.jsonl`` (a fractional step rounded down); None: the TooledModel's own step count.

        Returns:
            The event if a ``spike`` rule fired with this value (a new episode), else ``None``.
        """
        if not self._meters.watches(name):
            return None
        v = float(value.detach().reshape(-1)[0]) if isinstance(value, Tensor) else float(value)
        fired = self._meters.observe(name, v)
        if fired is None:
            return None
        rule, series = fired
        if self._bound:
            history = self._cut(_gather_history(self._buf, self._steps, False)[0], self._step)
        else:
            history = History([], [], {}, self._meters.series())
        history.meters[name] = series
        at = self._step if step is None else math.floor(step)
        found = AnomalyEvent(step=at, layer=None, stat=name, value=v, rule=rule.name,
                             history=history, spec=rule, detected_at=at)
        self._emit(found, stacklevel=4)
        return found

    def __repr__(self) -> str:
        return (f"FlightRecorder(window={self.window}, rules={[r.name for r in self.rules]}, after={self.after}, "
                f"check_every={self.check_every}, events={len(self.events)})")


def _output_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-unit maximum and minimum over the batch of a layer output (float32, on its device): one read.

    They give all three output statistics at the step's end, for every layer at once: a unit is alive when
    either is nonzero, ``max |x|`` is the largest of ``max`` and ``-min``, and a NaN or Inf anywhere reaches
    them. (On CPU, ``amax(0)`` and ``amin(0)`` each cost about a sum, while ``aminmax(dim=0)``,
    ``count_nonzero`` and the infinity norm are 10 to 40 times slower.)
    """
    x = x.detach()
    units = x.reshape(x.shape[0], -1) if x.dim() >= 2 else x.reshape(1, -1)
    mx, mn = units.amax(0), units.amin(0)
    if mx.dtype != torch.float32:
        mx, mn = mx.float(), mn.float()
    return mx, mn


def _pool_row(row: Tensor) -> Tensor:
    """Pool one row over the ranks: one collective."""
    gathered = [torch.empty_like(row) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, row.contiguous())
    g = torch.stack(gathered)  # (ranks, stats, layers)
    pooled = []
    for i, s in enumerate(RECORDER_STATS):
        how, v = _POOL[s], g[:, i]
        pooled.append(v.pow(2).mean(0).sqrt() if how == "rms" else v.sum(0) if how == "sum"
                      else v.amax(0) if how == "max" else v.mean(0))
    return torch.stack(pooled)


def _gather_history(buf: Tensor, steps: Tensor, per_rank: bool) -> list[tuple[list[int], list[list[list[float]]]]]:
    """``[(steps, rows)]`` of the ring buffer ``buf`` and its ``steps``, per rank when ``per_rank`` (a collective
    on every rank)."""
    if per_rank:
        bufs = [torch.empty_like(buf) for _ in range(dist.get_world_size())]
        stepss = [torch.empty_like(steps) for _ in range(dist.get_world_size())]
        dist.all_gather(bufs, buf.contiguous())
        dist.all_gather(stepss, steps.contiguous())
        return [(s.cpu().tolist(), b.cpu().tolist()) for b, s in zip(bufs, stepss)]
    return [(steps.cpu().tolist(), buf.cpu().tolist())]


class _MeterRules:
    """The ``spike`` rules on meters: the last ``window`` observed values of each watched meter, and which rules
    are in an episode (a rule that keeps firing is reported once per episode)."""

    def __init__(self, rules: list[Rule], window: int) -> None:
        self.rules = rules
        self._past: dict[str, deque[float]] = {r.meter: deque(maxlen=window) for r in rules if r.meter is not None}
        self._active = [False] * len(rules)

    def watches(self, name: str) -> bool:
        """Whether a rule watches the meter ``name``."""
        return name in self._past

    def series(self) -> dict[str, list[float]]:
        """``{meter: its observed values, oldest first}``."""
        return {m: list(v) for m, v in self._past.items()}

    def observe(self, name: str, v: float) -> tuple[Rule, list[float]] | None:
        """Evaluate the rules on ``name`` with the new value ``v`` and keep it.

        Returns:
            The first rule that starts a new episode with ``v`` and the meter's values before ``v`` and ``v``
            itself, or ``None``.
        """
        past = self._past[name]
        found = None
        for i, rule in enumerate(self.rules):
            if rule.meter != name:
                continue
            fired = False
            if len(past) >= rule.min_history:
                mean = sum(past) / len(past)
                std = math.sqrt(sum((p - mean) ** 2 for p in past) / (len(past) - 1))
                std = max(std, abs(mean) * 1e-3 + 1e-12)
                fired = not math.isfinite(v) or abs(v - mean) > rule.threshold * std
            if fired and not self._active[i] and found is None:
                found = (rule, [*past, v])
            self._active[i] = fired
        past.append(v)
        return found
