"""The package's one ``atexit`` closer: what a user forgot to close is closed at interpreter exit, in a fixed order.

Each module that keeps open things registers its closer for one stage; :func:`close_at_exit` runs the stages in
this order, whatever order the modules were imported in:

1. :data:`RUNS`: runs (each flushes and closes its Visdom sender, then its record with the run's status);
2. :data:`SENDERS`: Visdom senders of no run (their last points reach the server);
3. :data:`RECORDS`: run records of no run (their queued lines and summary are written);
4. :data:`SERVERS`: Visdom servers this process started, last, so that everything above could still reach them.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self, TypeVar

__all__ = ["RECORDS", "RUNS", "SENDERS", "SERVERS", "ClosedByWith", "call_each", "close_at_exit", "close_each",
           "on_exit"]

T = TypeVar("T")

RUNS, SENDERS, RECORDS, SERVERS = 1, 2, 3, 4
_STAGES = (RUNS, SENDERS, RECORDS, SERVERS)
_closers: dict[int, Callable[[], None]] = {}


def on_exit(stage: int, closer: Callable[[], None]) -> None:
    """Run ``closer`` at interpreter exit in ``stage`` (one of :data:`RUNS`, :data:`SENDERS`, :data:`RECORDS`,
    :data:`SERVERS`; one closer per stage).

    Raises:
        ValueError: an unknown stage (a programming error of flexlogger itself).
    """
    if stage not in _STAGES:
        raise ValueError(f"on_exit(): expected `stage` to be one of {_STAGES}, but got {stage!r}")
    _closers[stage] = closer


def close_at_exit() -> None:
    """Run every registered closer, stage by stage; an error in one never keeps the later ones from running (nor
    fails interpreter shutdown)."""
    for stage in _STAGES:
        closer = _closers.get(stage)
        if closer is None:
            continue
        try:
            closer()
        except Exception:  # never fail interpreter shutdown
            pass


def close_each(things: Iterable[T], close: Callable[[T], None]) -> None:
    """``close(thing)`` for each of ``things`` (a copy of it: closing may remove a thing from the set); an error in
    one never keeps the others from closing (nor fails interpreter shutdown)."""
    for thing in list(things):
        try:
            close(thing)
        except Exception:  # never fail interpreter shutdown
            pass


def call_each(things: Iterable[T], fn: Callable[[T], object]) -> None:
    """``fn(thing)`` for each of ``things`` in order; an error in one never keeps the others from their call: the
    first error is raised once every thing had its call (closing every sink, writing to every sink).

    >>> call_each([1, 0, 2], lambda n: 1 / n)
    Traceback (most recent call last):
    ZeroDivisionError: division by zero
    """
    first: Exception | None = None
    for thing in things:
        try:
            fn(thing)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


class ClosedByWith:
    """``with thing:`` ends with ``thing.close(error)``: the exception that ended the block, or None."""

    def close(self, error: BaseException | None = None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exc)


atexit.register(close_at_exit)
