"""Compare of 10 runs of 10^5 points each: time to read and draw, bytes sent to Visdom, and the windows' size.

Each run record (written here in the record's line format, as a run writes it) holds one ``loss`` trace of 10^5
steps. ``flexlogger.tools.compare`` draws them in one env, one trace per run, through the Visdom sink: each trace is
bounded by ``max_points`` (downsampled min/max buckets), so what is sent and what the server holds stay bounded
whatever the runs' length. The same runs are then compared with ``aggregate: candlestick`` declared on the plot (a
box per bucket of steps per run, exact from every point). Measured side by side: a naive compare that sends every
point (the whole 10 x 10^5-point window in one request, as a replace of the window), the alternative without
downsampling.

Bytes are counted on the wire: the request bodies the process posts (a wrapper around ``requests``' adapter, in this
benchmark only).

Usage: ``python bench/bench_compare.py [--smoke] [--runs 10] [--points 100000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

import flexlogger
from flexlogger.tools.server import start_server

SENT = {"bytes": 0, "requests": 0}
_send = HTTPAdapter.send


def _counting_send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, bytes):
        raise TypeError(f"expected a request body of str or bytes to count, but got {type(body).__name__}")
    SENT["bytes"] += len(body)
    SENT["requests"] += 1
    return _send(self, request, *args, **kwargs)


def write_run(root: Path, index: int, points: int, opts: dict[str, Any]) -> Path:
    """A run record of one ``loss`` trace of ``points`` steps, in the record's line format."""
    path = root / "bench" / f"run{index}"
    path.mkdir(parents=True)
    lines = [json.dumps({"run": {"env": "bench", "uid": f"run{index}", "windows": f"run{index}", "format": 2}}),
             json.dumps({"plot": "loss", "kind": "line", "opts": opts})]
    for step in range(points):
        value = math.exp(-step / points * (index + 1)) + 0.05 * math.sin(step * 0.37 + index)
        lines.append(f'{{"seq":{step + 1},"plot":"loss","step":{step},"data":{{"train_loss":{value!r}}}}}')
    (path / "points.jsonl").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text("{}")
    (path / "hparams.json").write_text(json.dumps({"lr": 10.0 ** -(index % 4), "seed": index}))
    return path


def window_bytes(port: int, env: str, win: str) -> tuple[int, int]:
    """The window's JSON size on the server, and the most x values of a trace in it."""
    viz = __import__("visdom").Visdom(port=port, use_incoming_socket=False, raise_exceptions=True)
    text = viz.get_window_data(win, env)
    data = json.loads(text)["content"]["data"]
    return len(text), max(len(t.get("x", [])) for t in data)


def naive(runs: list[Path], port: int, env: str) -> float:
    """Every point of every run in one whole-window replace (what compare would send without bounded windows)."""
    from flexlogger.sinks.record import read_record
    from flexlogger.sinks.visdom.render import make_builder, render_traces

    start = time.perf_counter()
    traces = {}
    for run in runs:
        record = read_record(run)
        traces[f"{record.uid}/train_loss"] = ([u.step for u in record.updates],
                                              [u.data["train_loss"] for u in record.updates])
    msg = render_traces(make_builder("http://localhost", port, env), "naive_loss", env, "loss", "line", {}, traces)
    requests.post(f"http://localhost:{port}/events", data=json.dumps(msg), timeout=600)
    return time.perf_counter() - start


def ratio(value: float, base: float) -> str:
    """``value / base`` as ``"0.021x"``, ``"1.07x"`` or ``"2.2x"``: three significant digits, so that 7% more is
    not rounded to 1x and a ratio is always this run's figure over the baseline's (above 1: more, or longer)."""
    return f"{value / base:.3g}x" if base else "n/a (baseline 0)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.points = 2, 3000
    HTTPAdapter.send = _counting_send  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        lines = [write_run(root / "lines", i, args.points, {}) for i in range(args.runs)]
        boxes = [write_run(root / "boxes", i, args.points, {"aggregate": "candlestick"}) for i in range(args.runs)]
        print(f"wrote 2 x {args.runs} run records of {args.points:,} points in {time.perf_counter() - start:.1f} s")
        with start_server(env_path=root / "visdom", log_path=root / "server.log") as server:
            rows = []
            for label, runs in (("compare (lines, max_points 2000)", lines), ("compare (candlestick)", boxes)):
                SENT.update(bytes=0, requests=0)
                start = time.perf_counter()
                result = flexlogger.compare(runs, env=label.split()[1].strip("(,"), port=server.port)
                elapsed = time.perf_counter() - start
                size, most = window_bytes(server.port, result.env, result.windows["loss"])
                rows.append((label, elapsed, SENT["bytes"], SENT["requests"], size, most, result.points))
            SENT.update(bytes=0, requests=0)
            elapsed = naive(lines, server.port, "naive")
            size, most = window_bytes(server.port, "naive", "naive_loss")
            rows.append(("every point, one replace", elapsed, SENT["bytes"], SENT["requests"], size, most,
                         args.runs * args.points))
    print(f"{'what':34} {'time s':>7} {'bytes sent':>12} {'requests':>8} {'window bytes':>12} "
          f"{'x per trace':>11} {'points':>10}")
    for label, elapsed, sent, count, size, most, points in rows:
        print(f"{label:34} {elapsed:7.2f} {sent:12,} {count:8} {size:12,} {most:11,} {points:10,}")
    base = rows[-1]
    for label, elapsed, sent, _, size, _, _ in rows[:-1]:
        print(f"{label}, against sending every point: {ratio(sent, base[2])} the bytes sent, {ratio(size, base[4])} "
              f"the window size, {ratio(elapsed, base[1])} as long")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
