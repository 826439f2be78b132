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

Usage: ``python bench/bench_log.py [--seconds 4]`` (about 6 x seconds in all).
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

import visdom

from flexlogger import FlexLogger
from flexlogger.server import VisdomServer, start_server

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
        session = client.session
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
    sink: Any = next(s for s in stat._sinks if type(s).__name__ == "VisdomSink")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per variant (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with quiet(), start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
            rows = {
                "flexlogger (record on)": bench_flexlogger(server, args.seconds, True, root / "runs"),
                "flexlogger (record off)": bench_flexlogger(server, args.seconds, False, root / "runs"),
                "visdom.line x6": bench_plain(server, args.seconds),
                "torchnet VisdomPlotLogger x6": bench_torchnet(server, args.seconds),
                "ignite VisdomLogger": bench_ignite(server, args.seconds),
                "tensorboard add_scalar x6": bench_tensorboard(args.seconds, root),
            }
    ours = statistics.median(rows["flexlogger (record on)"]["times"])
    print(f"log() of 6 series: time the training loop is blocked per log ({args.seconds:g} s per variant)\n")
    print(f"{'method':30} {'logs':>7} {'median':>10} {'p90':>10} {'p99':>10} {'req/log':>8} {'x flexlogger':>13}"
          "  backlog at the end")
    for name, row in rows.items():
        times = row["times"]
        median = statistics.median(times)
        print(f"{name:30} {len(times):7d} {_ms(median):>10} {_ms(quantile(times, 0.9)):>10} "
              f"{_ms(quantile(times, 0.99)):>10} {row['requests']:8.3g} {median / ours:12.1f}x  {row['backlog']}")
    plain = statistics.median(rows["visdom.line x6"]["times"])
    print(f"\ngoal: flexlogger median < 0.1 ms: {_ms(ours)} ({'met' if ours < 1e-4 else 'NOT met'}); "
          f">= 100x less than the plain client: {plain / ours:.0f}x ({'met' if plain / ours >= 100 else 'NOT met'})")
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f} ms" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    raise SystemExit(main())
