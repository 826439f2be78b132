"""A caught Ctrl-C (a notebook user interrupting a cell and carrying on) never breaks the logger: the Visdom sink's
state shared with its sender thread is never left half-updated, and no lock is left held."""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import visdom

import flexlogger
from flexlogger import FlexLogger
from flexlogger.sinks.interrupts import HOLD
from flexlogger.tools.server import VisdomServer

PACKAGE = str(Path(flexlogger.__file__).parent)


class Interrupter:
    """Sends SIGINT to this process at random lines of flexlogger's code (seeded): Python raises the
    ``KeyboardInterrupt`` at the next point it checks for signals, as for a real Ctrl-C."""

    def __init__(self, seed: int, most: int) -> None:
        self.rng = random.Random(seed)
        self.most = most
        self.countdown = self.rng.randint(1, most)
        self.sent = 0

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self.local if frame.f_code.co_filename.startswith(PACKAGE) else None

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.countdown -= 1
            if self.countdown <= 0:
                self.countdown = self.rng.randint(1, self.most)
                self.sent += 1
                signal.raise_signal(signal.SIGINT)
        return self.local


def settle() -> None:
    """Let a SIGINT still pending be raised (and caught) here."""
    for _ in range(3):
        try:
            time.sleep(0)
            sum(range(10))
        except KeyboardInterrupt:
            pass


@pytest.fixture
def default_sigint() -> Any:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_held_blocks_raise_the_interrupt_when_the_outermost_ends(default_sigint: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), HOLD:
        with HOLD:
            signal.raise_signal(signal.SIGINT)
            done.append("inner")
        done.append("outer")
    assert done == ["inner", "outer"] and HOLD.depth == 0 and not HOLD.pending
    with pytest.raises(KeyboardInterrupt):  # outside a block: at once, as Python's own handler does
        signal.raise_signal(signal.SIGINT)
        time.sleep(0)
        pytest.fail("the interrupt was not raised")


def test_fuzzed_interrupts_leave_the_logger_working_and_every_point_arrives_once(
        visdom_server: VisdomServer, viz: visdom.Visdom, env: str, default_sigint: None) -> None:
    stat = FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                      uid="fuzz", port=visdom_server.port, log_dir=None, max_points=100_000)
    try:
        whole = fuzz(stat)
        done = threading.Event()
        threading.Thread(target=lambda: (stat.flush(30), done.set()), daemon=True).start()  # no lock left held
        assert done.wait(40), "flush() from another thread did not return: a lock was left held"
    finally:
        stat.close()
    data = json.loads(viz.get_window_data("fuzz_loss", env))["content"]["data"]
    (trace,) = [t for t in data if t["name"] == "v"]
    xs = trace["x"]
    assert len(xs) == len(set(xs)), "a point arrived twice"
    assert len(trace["x"]) == len(trace["y"]) and all(x == y for x, y in zip(trace["x"], trace["y"]))
    missing = set(whole) - set(xs)
    assert not missing, f"{len(missing)} point(s) logged without interruption never arrived: {sorted(missing)[:10]}"


def fuzz(stat: FlexLogger) -> list[int]:
    """Log 4,000 steps under fuzzed interrupts, then 10 more untraced; the steps whose add() and log() returned."""
    interrupter = Interrupter(seed=23, most=400)
    completed: list[int] = []
    interrupted = 0
    start = time.monotonic()
    for step in range(4000):
        ok = False
        try:
            sys.settrace(interrupter.tracer)
            try:
                stat.add({"v": float(step)})
                stat.log(step)
                if step % 97 == 0:
                    stat.flush(0.05)
                ok = True
            finally:
                sys.settrace(None)
        except KeyboardInterrupt:
            interrupted += 1
        settle()
        if ok:
            completed.append(step)
    elapsed = time.monotonic() - start
    assert interrupter.sent >= 2000 and interrupted >= 1500 and len(completed) >= 500, \
        (interrupter.sent, interrupted, len(completed))
    print(f"{interrupter.sent} interrupts, {interrupted} caught, {len(completed)} steps whole, {elapsed:.1f} s")
    for step in range(4000, 4010):  # logging goes on, untraced
        stat.add({"v": float(step)})
        stat.log(step)
    return [*completed, *range(4000, 4010)]


def test_an_interrupt_inside_add_never_tears_a_meter(default_sigint: None) -> None:
    """A Ctrl-C at any line of ``add()`` (the logger's and each meter's) leaves every meter whole: the add happened
    or it did not, so the mean and count of what was added stay exact (Welford's ``n``, ``mean`` and ``m_s`` are
    three fields: an interrupt between two of them would skew the interval's mean until ``reset()``)."""
    stat = FlexLogger({"loss": {"type": "line"}}, {"avg": {"type": "AverageValueMeter", "target": "loss"},
                                                   "last": {"type": "ValueMeter", "target": "loss"}},
                      server=None, log_dir=None)
    meter = stat.meters["avg"]
    line = deferred = 0
    added: list[float] = []
    while True:
        line += 1
        value = float(2 ** (line % 7))
        interrupter = Interrupter(seed=0, most=1)
        interrupter.countdown = line  # the first interrupt at the line-th line of flexlogger's code, then at every line
        sys.settrace(interrupter.tracer)
        try:
            stat.add({"avg": value, "last": value})
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        settle()
        if meter.n == len(added) + 1:
            added.append(value)
            deferred += interrupted
        assert meter.n == len(added) == meter.count, (line, meter.n, len(added), meter.count)
        assert meter.value()[0] == pytest.approx(sum(added) / len(added), rel=1e-12) if added else True, line
        if not interrupted:  # the interrupt came after the last line of add(): every line has been tried
            break
    assert deferred >= 10, (line, deferred)  # interrupts inside the meters' updates, held until they were whole
    stat.close()
