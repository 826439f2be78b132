"""Soak: a long run whose Visdom server is killed and restarted again and again, and whose record disk fills once.

The run logs 2 series on one line window every step (``--steps``, default 100,000). Every ``--restart-every`` steps
the Visdom server is stopped (SIGTERM, then SIGKILL) and started again on the same port a quarter of that later
(the run logs on meanwhile). Halfway, the run record's disk (a 32 MiB tmpfs, when this runs as root and may mount)
is filled to the last byte, and freed ``--full-steps`` later.

At the end it checks, and prints:

- the window read back from the server (``visdom.Visdom.get_window_data``) holds every point exactly once, in
  order (the window keeps them all: ``max_points`` is set above the step count);
- the run record holds every point exactly once, except the updates it counted in ``summary.json`` as
  ``unwritten`` while its disk was full (none twice, none torn, none out of order);
- and how long ``log()`` blocked (median, p99, max).

Usage: ``python bench/bench_soak.py [--smoke] [--steps 100000] [--restart-every 5000] [--full-steps 2000]``.
"""

from __future__ import annotations

import argparse
import errno
import json
import re
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import visdom

from flexlogger import FlexLogger
from flexlogger.sinks.record import read_record
from flexlogger.tools.server import start_server

SERIES = ("a", "b")


def mount_tmpfs(folder: Path, size: str = "32m") -> bool:
    """Mount a tmpfs of ``size`` on ``folder``; False when not permitted (not root, no mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with one file; return the file."""
    filler = disk / "filler"
    chunk = b"x" * (1 << 20)
    with open(filler, "wb", buffering=0) as file:
        while chunk:
            try:
                if file.write(chunk) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]
    return filler


def value(name: str, step: int) -> float:
    return float(step) if name == "a" else -0.5 * step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps to log (default: %(default)s)")
    parser.add_argument("--restart-every", type=int, default=5_000,
                        help="steps between two kills of the server (default: %(default)s)")
    parser.add_argument("--full-steps", type=int, default=2_000,
                        help="steps the record's disk stays full (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny arguments: checks that the script runs (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        # the disk full for 300 steps: more lines than the slack of the record file's last page
        args.steps, args.restart_every, args.full_steps = 1000, 800, 300
    steps = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        disk = root / "disk"
        mounted = mount_tmpfs(disk)
        if not mounted:
            print("could not mount a tmpfs (needs root): the record's disk is not filled in this run")
        server = start_server(env_path=root / "visdom", log_path=root / "server.log")
        kills = 0
        times: list[float] = []
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                stat = FlexLogger({"loss": {"type": "line"}},
                                  {name: {"type": "ValueMeter", "target": "loss"} for name in SERIES},
                                  env="soak", uid="soak", port=server.port, log_dir=disk, max_points=steps + 10,
                                  close_timeout=120.0)
                filler: Path | None = None
                down_for = max(1, args.restart_every // 4)
                start_all = time.perf_counter()
                for step in range(steps):
                    stat.add({name: value(name, step) for name in SERIES})
                    start = time.perf_counter()
                    stat.log(step)
                    times.append(time.perf_counter() - start)
                    if step and step % args.restart_every == 0:
                        server.stop()
                        kills += 1
                    elif step > args.restart_every and step % args.restart_every == down_for:
                        server.restart()
                    if mounted and step == steps // 2:
                        stat.flush(60)
                        filler = fill(disk)
                    if filler is not None and step == steps // 2 + args.full_steps:
                        filler.unlink()
                        filler = None
                if server.process is None:
                    server.restart()
                logged_s = time.perf_counter() - start_all
                pending = stat.flush(300)
                stat.close()
            viz = visdom.Visdom(server="http://localhost", port=server.port, raise_exceptions=True,
                                use_incoming_socket=False)
            window = json.loads(viz.get_window_data("soak_loss", "soak"))
        finally:
            server.stop()
            if mounted:
                record = read_record(disk / "soak" / "soak")
                summary = json.loads((disk / "soak" / "soak" / "summary.json").read_text())
                subprocess.run(["umount", "-l", str(disk)], check=False)
            else:
                record = read_record(disk / "soak" / "soak")
                summary = json.loads((disk / "soak" / "soak" / "summary.json").read_text())

    ordered = sorted(times)
    print(f"{steps} steps, {kills} server kills and restarts, record disk filled for {args.full_steps} steps "
          f"({'yes' if mounted else 'no: not permitted'}); logging took {logged_s:.1f} s, {pending} point(s) "
          "pending at the end")
    print(f"log() blocked: median {statistics.median(times) * 1e3:.4f} ms, p99 "
          f"{ordered[int(0.99 * len(ordered))] * 1e3:.3f} ms, max {ordered[-1] * 1e3:.1f} ms")
    kinds: dict[str, int] = {}
    for w in caught:
        text = str(w.message)
        key = re.sub(r"\d+", "N", text.replace(str(disk), "DISK"))[:110]
        kinds[key] = kinds.get(key, 0) + 1
    print(f"{len(caught)} warning(s):" + "".join(f"\n  {n} x {k!r}" for k, n in kinds.items()))

    failures = []
    traces = {trace["name"]: trace for trace in window["content"]["data"]}
    for name in SERIES:
        trace = traces.get(name)
        want_x = list(range(steps))
        if trace is None:
            failures.append(f"window: no trace {name!r}")
        elif trace["x"] != want_x or trace["y"] != [value(name, s) for s in want_x]:
            got = len(trace["x"])
            dupes = got - len(set(trace["x"]))
            failures.append(f"window: trace {name!r} holds {got} points ({dupes} repeated), expected each of the "
                            f"{steps} steps once")
    print(f"window: {', '.join(f'{n}: {len(traces[n][chr(120)])} points' for n in SERIES if n in traces)}")

    unwritten = summary["unwritten"]
    seen = [u.step for u in record.updates]
    if len(seen) != len(set(seen)) or seen != sorted(seen):
        failures.append("record: a step twice or out of order")
    if len(seen) != steps - unwritten:
        failures.append(f"record: {len(seen)} updates, expected {steps} - {unwritten} unwritten")
    if any(u.data != {name: value(name, int(u.step)) for name in SERIES} for u in record.updates):
        failures.append("record: an update holds other values than were logged")
    if mounted and not unwritten:
        failures.append("record: the disk was full, yet no update counted unwritten")
    if record.damaged:
        failures.append(f"record: damaged lines {record.damaged[:10]}")
    print(f"record: {len(seen)} updates of {steps} ({unwritten} unwritten while the disk was full, counted in "
          f"summary.json), {len(record.damaged)} damaged line(s)")
    for failure in failures:
        print(f"FAIL {failure}")
    print("OK: every point exactly once in the window, and in the record except those counted unwritten"
          if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
