"""The run's console: lines printed and kept in ``log.txt`` (``println``, ``eprintln``, ``print_table``) and
progress bars whose start and end go there too (``progress``)."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar

from tabulate import tabulate

from flexlogger.errors import short_repr
from flexlogger.experiment.checks import LOG_FILE, RecordCallError, duration, type_error
from flexlogger.experiment.folder import RunFolder, user_stacklevel

T = TypeVar("T")


def format_line(call: str, fmt: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``fmt.format(*args, **kwargs)`` when arguments are given, else ``str(fmt)`` (braces in a plain message are
    kept).

    Raises:
        RecordCallError: the arguments do not fit ``fmt``.
    """
    if not args and not kwargs:
        return str(fmt)
    if not isinstance(fmt, str):
        raise type_error(call, "fmt", "a format string when arguments are given", fmt)
    try:
        return fmt.format(*args, **kwargs)
    except (IndexError, KeyError, ValueError) as exc:
        raise RecordCallError(f"{call}: expected `fmt` {fmt!r} to take the arguments given "
                              f"({len(args)} positional, keywords {sorted(kwargs) or 'none'}), but formatting "
                              f"failed: {type(exc).__name__}: {exc}") from None


def progress_bar(iterable: Iterable[T], desc: str | None, total: int | None,
                 note: Callable[[str], None]) -> Iterator[T]:
    """``iterable`` with a tqdm bar; ``note`` gets a line at its start and at its end (or where it stopped)."""
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - tqdm is a dependency
        raise RecordCallError("progress(): needs tqdm; install it with `pip install tqdm`") from exc
    what = f"progress {desc!r}" if desc else "progress"
    of = f" of {total}" if total is not None else ""
    note(f"{what}: start ({total if total is not None else 'unknown'} items)")
    start = time.monotonic()
    done = 0
    finished = False
    bar = tqdm(iterable, desc=desc, total=total)
    try:
        for item in bar:
            yield item
            done += 1
        finished = True
    finally:
        bar.close()
        took = duration(time.monotonic() - start)
        note(f"{what}: end after {done}{of} items in {took}" if finished else
             f"{what}: stopped after {done}{of} items in {took}")


class RunConsole:
    """The printing calls of one run (owned by its :class:`~flexlogger.experiment.calls.RecordCalls`; shown as
    ``run.println(...)`` etc.).

    Args:
        folder: the run folder's writer (``log.txt``).
        disabled: True while the run writes nothing (every call returns at once).
    """

    def __init__(self, *, folder: RunFolder, disabled: Callable[[], bool]) -> None:
        self.folder = folder
        self._disabled = disabled
        self._stream_warned = False  # stdout or stderr refused a line once (warned once; log.txt has every line)

    def _log_lines(self, call: str, text: str, stream: IO[str] | None, tag: str = "") -> None:
        """Print ``text`` to ``stream`` (None: not printed) and append its lines to ``log.txt`` with the time."""
        try:
            if stream is not None:
                print(text, file=stream, flush=True)
        except (OSError, ValueError) as exc:  # a closed pipe (`train.py | head`), a closed stream: log.txt has it
            if not self._stream_warned:
                self._stream_warned = True
                where = f"; the lines still go to {self.folder.path / LOG_FILE}" if self.folder.path else ""
                warnings.warn(f"{call}: {getattr(stream, 'name', 'the stream')} cannot be written ({exc}){where}",
                              RuntimeWarning, stacklevel=user_stacklevel())
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.folder.append(call, LOG_FILE, "".join(f"{stamp} {tag}{line}\n" for line in text.split("\n")))

    def println(self, fmt: Any = "", *args: Any, **kwargs: Any) -> None:
        """Print a line to stdout and append it to the run's ``log.txt`` (with the time).

        ``fmt.format(*args, **kwargs)`` when arguments are given, else ``str(fmt)`` (braces in a plain message
        are kept). Example: ``run.println('epoch {} loss {:.3f}', epoch, loss)``.
        """
        if self._disabled():
            return
        self._log_lines("println()", format_line("println()", fmt, args, kwargs), sys.stdout)

    def eprintln(self, fmt: Any = "", *args: Any, **kwargs: Any) -> None:
        """As :meth:`println`, to stderr; the line in ``log.txt`` is tagged ``[stderr]``."""
        if self._disabled():
            return
        self._log_lines("eprintln()", format_line("eprintln()", fmt, args, kwargs), sys.stderr, "[stderr] ")

    def print_table(self, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
        """Print a table (tabulate; ``None`` shown as ``-``) and append it to ``log.txt``; return it.

        Raises:
            RecordCallTypeError: ``header`` is not a list of column names, or ``rows`` not a list of rows.
            RecordCallError: a row has another number of cells than the header.
        """
        if self._disabled():
            return ""
        call = "print_table()"
        if isinstance(header, (str, bytes)) or not isinstance(header, Sequence):
            raise type_error(call, "header", "a list of column names", header)
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise type_error(call, "rows", "a list of rows (each a list of cells)", rows)
        table: list[list[Any]] = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                raise type_error(call, f"rows[{i}]", "a list of cells", row)
            if len(row) != len(header):
                raise RecordCallError(f"{call}: expected `rows[{i}]` to have {len(header)} cells (one per column of "
                                      f"`header`), but got {len(row)}: {short_repr(list(row), 80)}")
            table.append(list(row))
        text = tabulate(table, headers=list(header), missingval="-")
        self._log_lines(call, text, sys.stdout)
        return text

    def progress(self, iterable: Iterable[T], desc: str | None = None, total: int | None = None) -> Iterable[T]:
        """``iterable`` with a tqdm progress bar; its start, end (or where it stopped) and duration are written
        to ``log.txt``. On a disabled run: ``iterable`` itself, no bar.

        Example:
            >>> for x, y in run.progress(loader, desc='epoch 3'): ...

        Raises:
            RecordCallTypeError: ``iterable`` is not iterable, ``desc`` not a str, ``total`` not an int >= 0.
        """
        if self._disabled():
            return iterable
        call = "progress()"
        if not isinstance(iterable, Iterable):
            raise type_error(call, "iterable", "an iterable (a list, a range, a DataLoader, ...)", iterable)
        if desc is not None and not isinstance(desc, str):
            raise type_error(call, "desc", "a str or None", desc)
        if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
            raise type_error(call, "total", "an int >= 0 or None", total)
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        return progress_bar(iterable, desc, total, self._note_progress)

    def _note_progress(self, text: str) -> None:
        if not self._disabled():  # the run may be disabled while the bar runs
            self._log_lines("progress()", text, None)
