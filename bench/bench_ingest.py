"""The ingest endpoint under a slow-client flood: what legitimate posters' latency does while stalled connections
hold the endpoint.

Setup: an :class:`~flexlogger.tools.ingest.IngestServer` writing run records only (no Visdom), with its default
limits (64 connections, 10 s silent timeout; ``--timeout`` shortens it). Phase 1: ``--posters`` threads POST points
one after another for ``--seconds`` (each 200 is fsync'd). Phase 2: the same, while ``--flood`` connections are
opened that send half a request line and stall, reopened as the endpoint drops them; the posters keep their
connection (a ``requests.Session``). Phase 3: phase 2 with posters that open a new connection per POST (they
compete with the flood for the connection slots). Reports, per phase, the
median and 99th-percentile latency of the answered POSTs, how many were 200, 503 (over the connection limit) or
failed, and the threads the process held at most (bounded by the connection limit, whatever the flood).

Usage: ``python bench/bench_ingest.py [--seconds 5] [--posters 4] [--flood 300] [--timeout 10]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import requests

from flexlogger.tools.ingest import IngestServer


def post_loop(url: str, model: str, until: float, latencies: list[float], codes: Counter[str], fresh: bool) -> None:
    step = 0
    with requests.Session() as session:
        while time.monotonic() < until:
            start = time.perf_counter()
            try:
                point: dict[str, Any] = {"modelName": model, "pointType": "loss", "pointValue": 0.5, "globalStep": step}
                answer = (requests if fresh else session).post(url, json=point, timeout=30)
                codes[str(answer.status_code)] += 1
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - start)
            except requests.RequestException as exc:
                codes[type(exc).__name__] += 1
                time.sleep(0.05)
            step += 1


def flood_loop(port: int, count: int, until: float) -> None:
    """Keep ``count`` stalled connections open until ``until``, reopening those the endpoint closes."""
    held: list[socket.socket] = []
    while time.monotonic() < until:
        while len(held) < count and time.monotonic() < until:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sock.setblocking(False)
                held.append(sock)
            except OSError:
                break
        alive = []
        for sock in held:  # a closed connection reads as b"" (or an error): drop it, a new one replaces it
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                sock.close()
            else:
                alive.append(sock)
        held = alive
        time.sleep(0.05)
    for sock in held:
        sock.close()


def phase(ingest: IngestServer, posters: int, seconds: float, flood: int,
          fresh: bool = False) -> tuple[list[float], Counter[str], int]:
    until = time.monotonic() + seconds
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    threads = [threading.Thread(target=post_loop, args=(ingest.url, f"m{i}", until, latencies, codes, fresh))
               for i in range(posters)]
    if flood:
        threads.append(threading.Thread(target=flood_loop, args=(ingest.port, flood, until)))
    most = threading.active_count()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        most = max(most, threading.active_count())
        time.sleep(0.05)
    return latencies, codes, most


def report(name: str, latencies: list[float], codes: Counter[str], threads: int) -> None:
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        timing = f"median {statistics.median(ordered) * 1e3:7.2f} ms, p99 {p99 * 1e3:7.2f} ms"
    else:
        timing = "no POST answered 200"
    print(f"{name:<22} {timing}; answers {dict(codes)}; threads at most {threads}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase (default: %(default)s)")
    parser.add_argument("--posters", type=int, default=4, help="legitimate posting threads (default: %(default)s)")
    parser.add_argument("--flood", type=int, default=300, help="stalled connections kept open (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="the endpoint's silent-connection timeout, s (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.posters, args.flood = 0.5, 2, 20
    with tempfile.TemporaryDirectory() as folder, \
            IngestServer(port=0, server=None, log_dir=folder, timeout=args.timeout) as ingest:
        report("quiet", *phase(ingest, args.posters, args.seconds, 0))
        report(f"{args.flood} stalled clients", *phase(ingest, args.posters, args.seconds, args.flood))
        report("  posters reconnecting", *phase(ingest, args.posters, args.seconds, args.flood, fresh=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
