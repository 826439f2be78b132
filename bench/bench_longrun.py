"""A long run: 100,000 steps, 10 series (a 6-series and a 4-series line window), a log() every step.

Starts its own Visdom server and prints, at 1e3, 1e4 and 1e5 steps:

- the process's resident memory (flat: the sender holds at most ``max_points`` points per trace),
- the points the sender holds and the points logged but not yet on the server (its backlog),
- the server's time per update of the 6-series window (the request's round trip, median since the last mark),

and, side by side, what one plain Visdom append of a point to each of 6 traces costs the server when the window
holds that many points (what a client that appends every step runs into). At the end it checks that the run
record holds every point and that each window ends with the last step.

Usage: ``python bench/bench_longrun.py [--smoke] [--steps 100000] [--naive-max 10000]`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import requests
import visdom

from flexlogger import FlexLogger
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import VisdomServer, start_server

LOSS = [f"loss{i}" for i in range(6)]
METRICS = [f"metric{i}" for i in range(4)]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def long_run(server: VisdomServer, steps: int, root: Path) -> tuple[list[dict[str, Any]], FlexLogger, float]:
    meters = {**{n: {"type": "AverageValueMeter", "target": "loss"} for n in LOSS},
              **{n: {"type": "ValueMeter", "target": "metrics"} for n in METRICS}}
    stat = FlexLogger({"loss": {"type": "line"}, "metrics": {"type": "line"}}, meters, env="bench_longrun",
                      uid="run", port=server.port, log_dir=root)
    sink: Any = next(s for s in stat.run.sinks if type(s).__name__ == "VisdomSink")
    marks = {m for m in (1_000, 10_000, 100_000, steps) if m <= steps}
    rows: list[dict[str, Any]] = []
    seen_requests = 0
    start = last = time.perf_counter()
    for step in range(steps):
        values = {n: 1.0 + (step % 97) / 97 + i for i, n in enumerate(LOSS)}
        values.update({n: (step % 13) / 13 + i for i, n in enumerate(METRICS)})
        stat.add(values)
        stat.log(step)
        if step + 1 in marks:
            now = time.perf_counter()
            log = list(sink.request_log)
            new = [r for r in log[max(0, len(log) - (sink.sent_requests - seen_requests)):] if r[0] == "loss"]
            seen_requests = sink.sent_requests
            rows.append({"step": step + 1, "rss": rss_mb(), "held": sink.held_points(), "pending": sink.pending(),
                         "server": statistics.median(r[2] for r in new) if new else float("nan"),
                         "updates": len(new), "points": statistics.median(r[1] for r in new) if new else 0,
                         "us_per_step": (now - last) / max(1, step + 1 - (rows[-1]["step"] if rows else 0)) * 1e6})
            last = now
    elapsed = time.perf_counter() - start
    return rows, stat, elapsed


def naive_append_cost(server: VisdomServer, points: int) -> float:
    """Seconds the server takes to append one point to each of 6 traces of a window holding ``points`` each."""
    client = visdom.Visdom(port=server.port, env="bench_naive", raise_exceptions=True, use_incoming_socket=False)
    xs = np.arange(points, dtype=np.float64)
    client.line(X=np.column_stack([xs] * 6), Y=np.column_stack([xs * 0 + i for i in range(6)]), win=f"naive{points}",
                opts={"title": f"naive {points}", "legend": [f"s{i}" for i in range(6)]})
    body = json.dumps({"data": [{"x": [points], "y": [1.0]} for _ in range(6)], "win": f"naive{points}",
                       "eid": "bench_naive", "append": True, "name": None})
    times = []
    for _ in range(3 if points <= 10_000 else 1):
        start = time.perf_counter()
        requests.post(f"http://localhost:{server.port}/update", data=body, timeout=600).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps to log (default: %(default)s)")
    parser.add_argument("--naive-max", type=int, default=10_000,
                        help="largest window (points per trace) to time a plain append on; 100000 takes about 30 s "
                             "(default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.naive_max = 300, 1000
    warnings.simplefilter("ignore")
    logging.getLogger("visdom").setLevel(logging.ERROR)  # its client's set-up chatter
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
            rows, stat, elapsed = long_run(server, args.steps, root / "runs")
            flush_start = time.perf_counter()
            pending = stat.flush(120)
            flushed = time.perf_counter() - flush_start
            viz = visdom.Visdom(port=server.port, raise_exceptions=True, use_incoming_socket=False)
            ends = {}
            for plot, win in stat.windows.items():
                data = json.loads(viz.get_window_data(win, stat.env))["content"]["data"]
                ends[plot] = (len(data), max(len(t["x"]) for t in data), {t["x"][-1] for t in data})
            stat.close()
            naive = {n: naive_append_cost(server, n) for n in (1_000, 10_000, 100_000) if n <= args.naive_max}
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before reading the record back
        record = read_record(root / "runs" / "bench_longrun" / "run")

    print(f"long run: {args.steps} steps, 10 series in 2 line windows (6 + 4), log() every step, run record on")
    print(f"loop: {elapsed:.1f} s ({elapsed / args.steps * 1e6:.0f} us per step: 10 add + log); "
          f"final flush {flushed:.2f} s, {pending} pending\n")
    print(f"{'step':>7} {'RSS MB':>7} {'us/step':>8} {'held pts':>9} {'pending':>8} "
          f"{'6-series window: server s/update':>34} {'pts/update':>10} {'updates':>8} "
          f"{'plain append at this size':>26}")
    for row in rows:
        plain = naive.get(row["step"])
        print(f"{row['step']:7d} {row['rss']:7.1f} {row['us_per_step']:8.1f} {row['held']:9d} {row['pending']:8d} "
              f"{row['server']:34.4f} {row['points']:10.0f} {row['updates']:8d} "
              f"{f'{plain:.3f} s' if plain is not None else '(skipped)':>26}")
    counts = {plot: 0 for plot in ("loss", "metrics")}
    for update in record.updates:
        counts[update.plot] += len(update.data)
    every = counts == {"loss": 6 * args.steps, "metrics": 4 * args.steps}
    last = all(xs == {args.steps - 1} for _, _, xs in ends.values())
    print(f"\npeak RSS {peak_mb:.0f} MB. run record: {counts['loss'] + counts['metrics']} points "
          f"({'every point' if every else 'POINTS MISSING'}); windows end at step "
          f"{sorted({int(x) for _, _, xs in ends.values() for x in xs})} "
          f"({'the last step' if last else 'NOT the last'}), "
          f"holding at most {max(n for _, n, _ in ends.values())} points per trace")
    return 0 if every and last and pending == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
