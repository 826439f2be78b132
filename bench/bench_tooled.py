"""Overhead of TooledModel against the bare training step, measured side by side in one run.

Models: an MLP 784-512-256-10 (batch 128) and a small CNN (2 conv + 2 linear, 1x28x28, batch 64). Variants:

- ``bare``: zero_grad, forward, cross-entropy, backward, SGD step; ``bare (again)`` is a second copy of it, timed
  the same way: how far apart two identical variants land in this run (the noise of every ratio)
- ``floor``: the least a per-layer recorder must do: a forward hook on every leaf that does nothing, and one read of
  every weight and every gradient per step (``torch._foreach_norm``)
- ``floor+reads``: every read the recorder's six statistics need, done as plainly as torch allows, with nothing
  kept: the floor, plus each leaf's per-unit max and min of its output in its forward hook (``act_max``,
  ``dead_fraction``), plus the weight change since the last step (``update_ratio``: subtract the snapshot, its
  norm, copy the weights into it)
- ``recorder``: ``TooledModel(model, stats=(), recorder=FlightRecorder(window=64, rules=...))`` with three rules
  (nonfinite above 0, grad_norm z-score above 6, dead_fraction above 0.95), ``check_every=1``
- ``recorder -ratio``: the same with ``update_ratio=False`` (no copy of the parameters to read and rewrite)
- ``recorder+after``: the same with a rule that fires at the first step and an ``after`` longer than the run: every
  step is one of the ``after`` steps of full recording (the FlightRecorder's default full statistics)
- ``tooled``: TooledModel recording mean and std of all six groups on every step
- ``tooled/10``: the same with ``every=10`` (averaged over all steps, recorded or not)
- ``TMLogger``: TooledModelLogger (the same statistics into its meters, ``step(log=True)``) with no sink
  (``server=None, log_dir=None``): the logger's own cost, without Visdom
- ``naive .item()``: forward and full backward hooks that call ``.item()`` for every statistic (reference)
- ``noop bwd hooks``: full backward hooks that do nothing (reference)

Variants run interleaved in blocks of 20 steps; each variant's time is the median over blocks of the process's
CPU time (steadier than wall time on a shared machine; with one thread and a CPU model, the forward, backward and
hooks all run in the calling thread; with ``--threads`` > 1 wall time), and ratios are against the bare step of
the same model.

Usage: ``python bench/bench_tooled.py [--smoke] [--threads 1] [--seconds 18] [--steady-malloc] [--device cuda]
[--compile]`` (about a minute in all). ``--device cuda`` runs the models on the GPU and times wall time, each block
ending with ``torch.cuda.synchronize()``; ``--compile`` runs every variant's model through ``torch.compile`` (the
hooks stay outside the compiled graphs), compiled in the warm-up block.
``--steady-malloc`` reruns the benchmark with glibc's heap trimming and mmap of large blocks turned off
(``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``): by default, freeing a large tensor may hand memory back to
the system and the next allocation fault it in again, 7-17 MB per CNN step here, at moments that change from
process to process, which moves every variant of the CNN (``bare`` included) by 10-30%. The default is what a
user's loop sees; the steady run compares the variants' own work.
``--histogram`` instead times ``flexlogger.model.stats.histogram`` (30 bins of 5M float32 values: exact numpy bins,
non-finite values masked only when present) against the ``torch.histc`` it replaced (with its masking of the
non-finite values) and ``torch.histc`` alone, interleaved, median CPU time.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from flexlogger.model.logger import TooledModelLogger
from flexlogger.model.recorder import FlightRecorder
from flexlogger.model.stats import histogram
from flexlogger.model.tooled import GROUPS, TooledModel

STEADY_MALLOC = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
BLOCK = 20  # steps per timed block (a multiple of 10, so every=10 is averaged over whole periods)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


class NaiveRecorder:
    """What one writes first: hooks computing each statistic with ``.item()`` (one host sync per value)."""

    def __init__(self, model: nn.Module) -> None:
        self.values: dict[str, float] = {}
        self.model = model
        self.handles = []
        for name, m in model.named_modules():
            if next(iter(m.children()), None) is None:
                self.handles.append(m.register_forward_hook(self._fwd(name)))
                self.handles.append(m.register_full_backward_hook(self._bwd(name)))

    def _put(self, key: str, t: Tensor | None) -> None:
        if t is not None:
            self.values[key + ".mean"] = t.mean().item()
            self.values[key + ".std"] = t.std().item()

    def _fwd(self, name: str) -> Callable[..., None]:
        def hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            self._put(f"{name}.Inputs", args[0].detach())
            self._put(f"{name}.Outputs", out.detach())
        return hook

    def _bwd(self, name: str) -> Callable[..., None]:
        def hook(m: nn.Module, gin: tuple[Tensor | None, ...], gout: tuple[Tensor | None, ...]) -> None:
            self._put(f"{name}.Grad_in", gin[0])
            self._put(f"{name}.Grad_out", gout[0])
        return hook

    def step(self) -> None:
        for name, m in self.model.named_modules():
            w = getattr(m, "weight", None)
            if isinstance(w, Tensor):
                self._put(f"{name}.Weights", w.detach())
                self._put(f"{name}.Weight_grad", w.grad)


def make_variant(kind: str, factory: Callable[[], nn.Module], device: str = "cpu",
                 compiled: bool = False) -> tuple[nn.Module, Callable[[], None]]:
    """The model of variant ``kind`` (run through ``torch.compile`` when ``compiled``) and what it runs after each
    optimizer step."""
    model, after = _variant(kind, factory, device)
    return (torch.compile(model) if compiled else model), after  # type: ignore[return-value]


def _variant(kind: str, factory: Callable[[], nn.Module], device: str) -> tuple[nn.Module, Callable[[], None]]:
    torch.manual_seed(0)
    model = factory().to(device)
    after: Callable[[], None] = lambda: None  # noqa: E731
    rules = [{"stat": "nonfinite", "above": 0}, {"stat": "grad_norm", "zscore_above": 6},
             {"stat": "dead_fraction", "above": 0.95}]
    if kind in ("floor", "floor+reads"):
        params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        reads = kind == "floor+reads"
        snap = [p.detach().clone() for p in params] if reads else []

        def hook(m: nn.Module, i: tuple[Tensor, ...], o: Tensor) -> None:
            if reads:
                units = o.detach().reshape(o.shape[0], -1)
                units.amax(0), units.amin(0)

        for m in model.modules():
            if next(iter(m.children()), None) is None:
                m.register_forward_hook(hook)

        def after() -> None:
            with torch.no_grad():
                torch._foreach_norm(params)
                torch._foreach_norm([p.grad for p in params if p.grad is not None])
                if reads:
                    torch._foreach_sub_(snap, params)
                    torch._foreach_norm(snap)
                    torch._foreach_copy_(snap, params)
    elif kind == "recorder":
        after = TooledModel(model, stats=(), recorder=FlightRecorder(window=64, rules=rules)).step  # type: ignore
    elif kind == "recorder -ratio":
        rec = FlightRecorder(window=64, rules=rules, update_ratio=False)
        after = TooledModel(model, stats=(), recorder=rec).step  # type: ignore[assignment]
    elif kind == "recorder+after":
        def always(current: dict[str, Tensor], history: dict[str, Tensor]) -> Tensor:
            return torch.ones((), dtype=torch.bool)

        rec = FlightRecorder(window=64, rules=[*rules, always], after=10**9, warn=False)
        after = TooledModel(model, stats=(), recorder=rec).step  # type: ignore[assignment]
    elif kind == "tooled":
        after = TooledModel(model).step  # type: ignore[assignment]
    elif kind == "tooled/10":
        after = TooledModel(model, every=10).step  # type: ignore[assignment]
    elif kind == "TMLogger":
        tml = TooledModelLogger(model, stats=("mean", "std"), groups=GROUPS, server=None, log_dir=None)
        after = lambda: tml.step(log=True)  # type: ignore[assignment,return-value]  # noqa: E731
    elif kind == "naive .item()":
        after = NaiveRecorder(model).step
    elif kind == "noop bwd hooks":
        for m in model.modules():
            if next(iter(m.children()), None) is None:
                m.register_full_backward_hook(lambda m, gi, go: None)
    return model, after


VARIANTS = ("bare", "bare (again)", "floor", "floor+reads", "recorder", "recorder -ratio", "recorder+after", "tooled",
            "tooled/10", "TMLogger", "naive .item()", "noop bwd hooks")


def bench(factory: Callable[[], nn.Module], x: Tensor, y: Tensor, seconds: float,
          clock: Callable[[], float], steps: int = BLOCK, min_blocks: int = 3,
          compiled: bool = False, variants: tuple[str, ...] = VARIANTS) -> dict[str, float]:
    """Median time per step of each variant: blocks of ``steps`` steps, interleaved, for ``seconds`` (at least
    ``min_blocks`` blocks each). On a GPU, each block ends with a ``torch.cuda.synchronize()``."""
    runs = {}
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for kind in variants:
        model, after = make_variant(kind, factory, str(x.device), compiled)
        optim = torch.optim.SGD(model.parameters(), lr=0.01)

        def block(model: nn.Module = model, after: Callable[[], None] = after,
                  optim: torch.optim.Optimizer = optim) -> float:
            t0 = clock()
            for _ in range(steps):
                optim.zero_grad()  # at the start of the step: after() sees this step's gradients
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optim.step()
                after()
            sync()
            return clock() - t0

        block()  # warm-up (and compilation)
        runs[kind] = block
    times: dict[str, list[float]] = {k: [] for k in variants}
    deadline = time.perf_counter() + seconds
    order = list(variants)
    shuffle = random.Random(0).shuffle
    while time.perf_counter() < deadline or len(times["bare"]) < min_blocks:
        shuffle(order)  # no variant always runs right after the same other one
        for kind in order:
            times[kind].append(runs[kind]())
    return {k: statistics.median(v) / steps for k, v in times.items()}


def histc_masked(x: Tensor, bins: int) -> Tensor:
    """The histogram before: non-finite values masked, then torch.histc of the values normalised to [0, 1]."""
    finite = torch.isfinite(x)
    lo = torch.where(finite, x, math.inf).amin()
    hi = torch.where(finite, x, -math.inf).amax()
    return torch.histc((x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny), bins=bins, min=0.0, max=1.0)


def histc_bare(x: Tensor, bins: int) -> Tensor:
    """torch.histc alone (no masking; not exact at bin edges): the floor of the old way."""
    lo, hi = x.amin(), x.amax()
    return torch.histc((x - lo) / (hi - lo), bins=bins, min=0.0, max=1.0)


def bench_histogram(rounds: int = 15) -> None:
    x = torch.randn(5_000_000)
    fns = {"stats.histogram": histogram, "histc + mask (before)": histc_masked, "histc alone": histc_bare}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn(x, 30)
            times[name].append(time.process_time() - t0)
    ours = statistics.median(times["stats.histogram"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:<24} {t * 1e3:8.1f} ms  {t / ours:5.2f}x ours")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--seconds", type=float, default=18.0, help="timing budget per model (default 18)")
    parser.add_argument("--histogram", action="store_true", help="time the histogram only (5M floats, 30 bins)")
    parser.add_argument("--steady-malloc", action="store_true",
                        help="rerun with glibc's heap trimming and mmap of large blocks off (see the docstring)")
    parser.add_argument("--device", default="cpu", help="where the models run: cpu (default) or cuda (wall time)")
    parser.add_argument("--compile", action="store_true", help="run every variant's model through torch.compile")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variants to run (default all)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:  # one block of 10 steps per variant (10: tooled/10 sees a whole period), small batches
        args.seconds = 0.0
    if args.steady_malloc and STEADY_MALLOC[0] not in os.environ:
        env = {**os.environ, **dict.fromkeys(STEADY_MALLOC, str(2**30))}
        os.execve(sys.executable, [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env)
    if args.histogram:
        torch.set_num_threads(args.threads)
        bench_histogram()
        return
    # full backward hooks on the first layer warn that no input requires grad: expected here
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = {
        "MLP 784-512-256-10, batch 128": (mlp, torch.randn(128, 784), torch.randint(0, 10, (128,))),
        "CNN 2 conv + 2 linear, batch 64": (cnn, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))),
    }
    cases = {name: (f, x.to(args.device), y.to(args.device)) for name, (f, x, y) in cases.items()}
    steps, min_blocks = (10, 1) if args.smoke else (BLOCK, 3)
    if args.smoke:
        cases = {name: (f, x[:4], y[:4]) for name, (f, x, y) in cases.items()}
    # CPU time ignores other processes on a shared machine, but with several threads it also counts OpenMP's
    # spin-waiting: use wall time then.
    # On a GPU the host waits for the device: wall time.
    wall = args.threads != 1 or args.device != "cpu"
    clock = time.perf_counter if wall else time.process_time
    malloc = "steady malloc" if STEADY_MALLOC[0] in os.environ else "default malloc"
    print(f"torch {torch.__version__}, {args.device}{', compiled' if args.compile else ''}, {args.threads} thread(s), "
          f"median {'wall' if wall else 'CPU'} time over blocks of {steps} steps, {malloc}")
    variants = tuple(v.strip() for v in args.variants.split(","))
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "bare" not in variants:
        parser.error(f"--variants must include 'bare' and name only {', '.join(VARIANTS)}; got {args.variants!r}")
    results = {name: bench(f, x, y, args.seconds, clock, steps, min_blocks, args.compile, variants)
               for name, (f, x, y) in cases.items()}
    names = list(results)
    header = f"{'variant':<16}" + "".join(f"{n.split(',')[0]:>22}" for n in names)
    print(header)
    print("-" * len(header))
    for kind in variants:
        cells = []
        for n in names:
            t, bare = results[n][kind], results[n]["bare"]
            cells.append(f"{t * 1e3:8.2f} ms {t / bare:5.2f}x")
        print(f"{kind:<16}" + "".join(f"{c:>22}" for c in cells))
    print("goal: recorder <= 1.10x (floor and floor+reads printed beside it), tooled <= 1.25x, tooled/10 <= 1.05x;"
          " bare (again) shows the noise")


if __name__ == "__main__":
    main()
