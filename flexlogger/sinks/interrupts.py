"""Holding off Ctrl-C while state must change as a whole: ``with HOLD: ...``.

Used where the state is shared with a sender thread (the Visdom sink) and around the meters' updates in
``FlexLogger.add()`` (a meter's fields, e.g. Welford's count, mean and sum of squares, change together).

A ``KeyboardInterrupt`` is raised in the main thread between any two bytecodes. A notebook user who interrupts a
cell and carries on would otherwise find a window's x and y lists of different lengths (interrupted between the
two appends), or a lock held for ever (interrupted right after it was taken, before ``with`` could release it).
Inside ``with HOLD:`` (main thread) a SIGINT is noted instead of raised, and raised as ``KeyboardInterrupt`` when
the outermost block ends, so the state is whole and no lock is held.

How: while a block runs, SIGINT's handler is :func:`_handler`, installed when the handler found is Python's own
(``signal.default_int_handler``, which notebooks put back before each cell); it defers inside a block and
otherwise does what the default handler does, so it is left installed. A handler someone else installed is left
alone (their Ctrl-C is theirs to handle). Installing costs a system call, so it is done once (once per cell in a
notebook), not per block: a block costs about 0.3 us.
"""

from __future__ import annotations

import signal
import threading
from _thread import get_ident
from types import FrameType, TracebackType

try:  # the C function: signal.getsignal wraps it in an enum lookup that costs ~5 us, more than a block's work
    from _signal import getsignal as _getsignal
except ImportError:  # pragma: no cover - not CPython
    _getsignal = signal.getsignal

__all__ = ["HOLD", "InterruptHold"]


class InterruptHold:
    """A re-entrant context manager that defers SIGINT in the main thread until the outermost block ends."""

    __slots__ = ("depth", "pending")  # slots and module-level names: a block is on FlexLogger.add()'s hot path

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def __enter__(self) -> None:
        if get_ident() != _MAIN:
            return
        if not self.depth and _getsignal(_SIGINT) is _DEFAULT:
            signal.signal(signal.SIGINT, _handler)
        self.depth += 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if get_ident() != _MAIN:
            return
        self.depth -= 1
        if self.pending and not self.depth:
            self.pending = False
            raise KeyboardInterrupt  # an error the block raised stays attached as its __context__


_MAIN = threading.main_thread().ident
_SIGINT = int(signal.SIGINT)
_DEFAULT = signal.default_int_handler
HOLD = InterruptHold()


def _handler(signum: int, frame: FrameType | None) -> None:
    """SIGINT: noted inside a block of :data:`HOLD` (raised when it ends), else ``KeyboardInterrupt`` at once."""
    if HOLD.depth > 0:
        HOLD.pending = True
        return
    signal.default_int_handler(signum, frame)
