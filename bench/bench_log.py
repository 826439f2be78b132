"""How long ``log()`` of 6 series blocks the training loop, against what a user would pick instead.

Measured side by side in one run, against one local Visdom server that this script starts and stops:

- ``flexlogger``: ``Stat.log(step)`` of 6 AverageValueMeters on one line window (run record on, and off)
- ``visdom.line x6``: 6 plain ``Visdom.line(X, Y, win, name, update='append')`` calls (one window, 6 traces)
- ``torchnet``: 6 ``torchnet.logger.VisdomPlotLogger('line').log(step, value)`` calls (a window each)
- ``ignite``: ignite's ``VisdomLogger`` (a worker thread) with an ``OutputHandler`` of 6 metrics, called as the
  engine would call it on each iteration
- ``tensorboard``: 6 ``SummaryWriter.add_scalar`` calls (an event file, no server)

Each row is the time one call of the loop's logging code blocks the loop (median, 90th and 99th percentile),
the HTTP requests it makes per log, and what it leaves queued at the end of the timed loop (the backlog).
Ratios are each alternative's median over flexlogger's (record on).

Then the same three choices measured as a training loop sees them (``realistic``): between two logs the loop does
3 ``torch.mm`` of 256 x 256 (its caches and threads busy as in training), and each log puts 6 series on 3 line
plots (2 each), record on, Visdom server live: ``FlexLogger.log(step)`` against 6 ``SummaryWriter.add_scalar``
and 6 plain ``Visdom.line(..., update='append')``. The goal for flexlogger there: median <= 0.1 ms, p99 <= 0.5 ms.

Usage: ``python bench/bench_log.py [--smoke] [--seconds 4] [--loop-seconds 6] [--only tight|realistic]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import visdom

from flexlogger import FlexLogger
from flexlogger.tools.server import VisdomServer, start_server

SERIES = [f"s{i}" for i in range(6)]


def timed(fn: Callable[[int], Any], seconds: float, max_steps: int) -> list[float]:
    """Call ``fn(step)`` for ``seconds`` (at most ``max_steps`` times); return each call's duration in s."""
    times: list[float] = []
    end = time.perf_counter() + seconds
    step = 0
    while step < max_steps and (step < 20 or time.perf_counter() < end):
        start = time.perf_counter()
        fn(step)
        times.append(time.perf_counter() - start)
        step += 1
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class Counter:
    """Counts the HTTP requests a Visdom client makes (its ``session.post``/``get`` calls)."""

    def __init__(self, client: visdom.Visdom) -> None:
        self.n = 0
        session = client.session  # type: ignore[attr-defined]  # set in Visdom.__init__, not declared
        for verb in ("post", "get"):
            original = getattr(session, verb)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.n += 1
                return _original(*args, **kwargs)

            setattr(session, verb, counted)


def bench_flexlogger(server: VisdomServer, seconds: float, record: bool, root: Path) -> dict[str, Any]:
    meters = {name: {"type": "AverageValueMeter", "target": "loss"} for name in SERIES}
    stat = FlexLogger({"loss": {"type": "line"}}, meters, env="bench_log", uid=f"flex_{record}",
                      port=server.port, log_dir=root if record else None)
    sink: Any = next(s for s in stat.run.sinks if type(s).__name__ == "VisdomSink")
    values = {name: float(i) for i, name in enumerate(SERIES)}
    held: list[int] = []

    def step(i: int) -> None:
        stat.add(values)  # not timed: the meters' adds
        start = time.perf_counter()
        stat.log(i)
        durations.append(time.perf_counter() - start)
        if i % 1000 == 0:
            held.append(sink.held_points())

    durations: list[float] = []
    timed(step, seconds, 200_000)
    backlog = f"holds <= {max([*held, sink.held_points()])} points (6 x max_points), no queue"
    assert stat.flush(60) == 0
    requests = sink.sent_requests
    stat.close()
    return {"times": durations, "requests": requests / len(durations), "backlog": backlog}


def bench_plain(server: VisdomServer, seconds: float) -> dict[str, Any]:
    client = visdom.Visdom(port=server.port, env="bench_log", raise_exceptions=True, use_incoming_socket=False)
    counter = Counter(client)
    win = "plain"
    for name in SERIES:
        client.line(X=[0], Y=[0.0], win=win, name=name, update="append" if name != SERIES[0] else None,
                    opts={"title": "plain"})
    counter.n = 0

    def step(i: int) -> None:
        for j, name in enumerate(SERIES):
            client.line(X=[i + 1], Y=[float(j)], win=win, name=name, update="append")

    times = timed(step, seconds, 10_000)
    return {"times": times, "requests": counter.n / len(times), "backlog": "0 (blocks until sent)"}


def bench_torchnet(server: VisdomServer, seconds: float) -> dict[str, Any]:
    from torchnet.logger import VisdomPlotLogger

    loggers = [VisdomPlotLogger("line", env="bench_log", port=server.port, opts={"title": f"tnt {name}"})
               for name in SERIES]
    counters = [Counter(lg.viz) for lg in loggers]

    def step(i: int) -> None:
        for j, lg in enumerate(loggers):
            lg.log(i, float(j))

    times = timed(step, seconds, 10_000)
    return {"times": times, "requests": sum(c.n for c in counters) / len(times), "backlog": "0 (blocks until sent)"}


def bench_ignite(server: VisdomServer, seconds: float) -> dict[str, Any]:
    from ignite.engine import Engine, Events
    from ignite.handlers.visdom_logger import OutputHandler, VisdomLogger

    logger = VisdomLogger(server="http://localhost", port=server.port, env="bench_log", use_incoming_socket=False)
    counter = Counter(logger.vis)
    engine = Engine(lambda e, b: None)
    engine.state.metrics = {name: float(j) for j, name in enumerate(SERIES)}
    handler = OutputHandler(tag="ignite", metric_names="all", global_step_transform=lambda e, n: e.state.iteration)
    queue = logger.executor._work_queue  # type: ignore[union-attr]
    peak = [0]

    def step(i: int) -> None:
        engine.state.iteration = i
        handler(engine, logger, Events.ITERATION_COMPLETED)
        peak[0] = max(peak[0], queue.qsize())

    times = timed(step, seconds, 10_000)
    backlog = f"{queue.qsize()} calls queued (peak {peak[0]}, unbounded)"
    logger.close()  # waits for the queue
    return {"times": times, "requests": counter.n / len(times), "backlog": backlog}


def bench_tensorboard(seconds: float, root: Path) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(root / "tb"))

    def step(i: int) -> None:
        for j, name in enumerate(SERIES):
            writer.add_scalar(name, float(j), i)

    times = timed(step, seconds, 200_000)
    writer.close()
    return {"times": times, "requests": 0.0, "backlog": "event file queue (max 10 by default)"}


LOOP_PLOTS = {f"p{k}": {"type": "line"} for k in range(3)}
LOOP_SERIES = {name: f"p{i // 2}" for i, name in enumerate(SERIES)}  # 6 series, 2 per plot


def training_loop(log: Callable[[int, dict[str, float]], None], seconds: float,
                  max_steps: int = 100_000) -> list[float]:
    """Run a small training loop (3 x ``torch.mm`` 256 x 256 per step) for ``seconds``; time each ``log`` call."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    times: list[float] = []
    end = time.perf_counter() + seconds
    step = 0
    while step < max_steps and (step < 50 or time.perf_counter() < end):
        c = torch.mm(a, b)
        c = torch.mm(c, b)
        c = torch.mm(c, a)
        values = {name: float(j) + step * 1e-3 for j, name in enumerate(SERIES)}  # not timed: the loss values
        start = time.perf_counter()
        log(step, values)
        times.append(time.perf_counter() - start)
        step += 1
    return times


def loop_flexlogger(server: VisdomServer, seconds: float, root: Path) -> dict[str, Any]:
    meters = {name: {"type": "ValueMeter", "target": plot} for name, plot in LOOP_SERIES.items()}
    stat = FlexLogger(LOOP_PLOTS, meters, env="bench_log", uid="loop_flex", port=server.port, log_dir=root)
    log_times: list[float] = []

    def log(step: int, values: dict[str, float]) -> None:
        stat.add(values)  # the add() of the values: in the second row, with log()
        start = time.perf_counter()
        stat.log(step)
        log_times.append(time.perf_counter() - start)

    times = training_loop(log, seconds)
    assert stat.flush(60) == 0
    stat.close()
    return {"times": log_times, "with add": times}
def loop_tensorboard(seconds: float, root: Path) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(root / "tb_loop"))

    def log(step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            writer.add_scalar(f"{LOOP_SERIES[name]}/{name}", value, step)

    times = training_loop(log, seconds)
    writer.close()
    return {"times": times}


def loop_plain(server: VisdomServer, seconds: float) -> dict[str, Any]:
    client = visdom.Visdom(port=server.port, env="bench_log", raise_exceptions=True, use_incoming_socket=False)
    for name, plot in LOOP_SERIES.items():
        client.line(X=[0], Y=[0.0], win=f"loop_{plot}", name=name, update="append" if name not in ("s0", "s2", "s4")
                    else None, opts={"title": plot})

    def log(step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            client.line(X=[step + 1], Y=[value], win=f"loop_{LOOP_SERIES[name]}", name=name, update="append")

    return {"times": training_loop(log, seconds, 2_000)}


def realistic(server: VisdomServer, seconds: float, root: Path) -> None:
    flex = loop_flexlogger(server, seconds, root / "loop_runs")
    rows = {"flexlogger log() (record on)": flex, "flexlogger add()+log()": {"times": flex["with add"]},
            "tensorboard add_scalar x6": loop_tensorboard(seconds, root),
            "visdom.line append x6": loop_plain(server, seconds)}
    ours = statistics.median(rows["flexlogger log() (record on)"]["times"])

    def spin(step: int, values: dict[str, float]) -> None:  # a call as long as log(), without threads or I/O
        end = time.perf_counter() + ours
        while time.perf_counter() < end:
            pass

    rows["a busy call as long (noise)"] = {"times": training_loop(spin, seconds)}
    ours99 = quantile(rows["flexlogger log() (record on)"]["times"], 0.99)
    print(f"\nrealistic: a training loop (3 x torch.mm 256x256 per step), 6 series on 3 plots, record on, live "
          f"server ({seconds:g} s per variant, torch threads: {torch.get_num_threads()}); the time each log blocks the "
          "loop (the last row, a busy wait as long as log()'s median, is the machine's noise floor)\n")
    print(f"{'method':30} {'logs':>7} {'median':>10} {'p90':>10} {'p99':>10} {'median/ours':>12} {'p99/ours':>9}")
    for name, row in rows.items():
        times = row["times"]
        median, p99 = statistics.median(times), quantile(times, 0.99)
        print(f"{name:30} {len(times):7d} {_ms(median):>10} {_ms(quantile(times, 0.9)):>10} {_ms(p99):>10} "
              f"{median / ours:11.1f}x {p99 / ours99:8.1f}x")
    print(f"\ngoal: flexlogger median <= 0.1 ms: {_ms(ours)} ({'met' if ours <= 1e-4 else 'NOT met'}); p99 <= 0.5 ms: "
          f"{_ms(ours99)} ({'met' if ours99 <= 5e-4 else 'NOT met'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per variant (default: %(default)s)")
    parser.add_argument("--loop-seconds", type=float, default=6.0,
                        help="seconds per variant of the realistic loop (default: %(default)s)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch's threads for the loop's matrix products (default: %(default)s: the loop's own "
                             "work does not compete with the loggers' threads for the CPU cores)")
    parser.add_argument("--only", choices=("tight", "realistic"), default=None, help="run one of the two parts")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.loop_seconds = 0.05, 0.1
    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only != "tight":
            with start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
                realistic(server, args.loop_seconds, root)
        if args.only == "realistic":
            return 0
        missing: list[str] = []
        with quiet(), start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
            rows = {
                "flexlogger (record on)": bench_flexlogger(server, args.seconds, True, root / "runs"),
                "flexlogger (record off)": bench_flexlogger(server, args.seconds, False, root / "runs"),
                "visdom.line x6": bench_plain(server, args.seconds),
            }
            for name, bench in (("torchnet VisdomPlotLogger x6", lambda: bench_torchnet(server, args.seconds)),
                                ("ignite VisdomLogger", lambda: bench_ignite(server, args.seconds)),
                                ("tensorboard add_scalar x6", lambda: bench_tensorboard(args.seconds, root))):
                try:
                    rows[name] = bench()
                except ModuleNotFoundError as exc:  # an optional competitor: say so and go on
                    missing.append(f"{name}: not installed ({exc.name})")
    ours = statistics.median(rows["flexlogger (record on)"]["times"])
    print(f"log() of 6 series: time the training loop is blocked per log ({args.seconds:g} s per variant)\n")
    print(f"{'method':30} {'logs':>7} {'median':>10} {'p90':>10} {'p99':>10} {'req/log':>8} {'x flexlogger':>13}"
          "  backlog at the end")
    for name, row in rows.items():
        times = row["times"]
        median = statistics.median(times)
        print(f"{name:30} {len(times):7d} {_ms(median):>10} {_ms(quantile(times, 0.9)):>10} "
              f"{_ms(quantile(times, 0.99)):>10} {row['requests']:8.3g} {median / ours:12.1f}x  {row['backlog']}")
    for line in missing:
        print(f"{line:30} skipped")
    plain = statistics.median(rows["visdom.line x6"]["times"])
    print(f"\ngoal: flexlogger median < 0.1 ms: {_ms(ours)} ({'met' if ours < 1e-4 else 'NOT met'}); "
          f">= 100x less than the plain client: {plain / ours:.0f}x ({'met' if plain / ours >= 100 else 'NOT met'})")
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f} ms" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    raise SystemExit(main())
