"""The run record: every update of a run, on disk, human-readable, written as it happens.

A run made with ``log_dir='runs'`` writes the folder ``runs/<env>/<uid>/`` (a ``/`` in either becomes ``_``; a
second run with the same uid gets ``<uid>-2``, ...: a record is never overwritten):

``config.json``
    the run's options and its loggers' definitions (``Run.to_config()``), given when the record is made and again
    at ``close()``.
``points.jsonl``
    append-only, one JSON object per line:

    - ``{"run": {"env": ..., "uid": "exp1-2", "windows": "exp1", "format": 2, "started": ...}}`` first: ``uid`` is
      the folder's name, ``windows`` the uid the run's Visdom windows were drawn under (``<windows>_<plot>``);
    - ``{"plot": "loss", "kind": "line", "opts": {...}}`` when a plot is first seen (or its type/opts change);
    - ``{"seq": 7, "plot": "loss", "step": 3, "data": {"train_loss": 0.51, "test_loss": "nan"}}`` for every
      update of every window, its data written by its plot kind's data form (see
      :mod:`flexlogger.sinks.record_format`): line points, bar vectors, heatmap matrices, histogram bin counts
      (``{"counts": [...], "lo": x, "hi": y}``, never the values), curves, text.
``summary.json``
    written at ``close()`` (and whenever the run calls :meth:`RecordSink.write_summary`): updates and points per
    plot, the last step, the NaN/Inf count, the updates the disk did not take (``unwritten``) and what the run
    adds (e.g. ``undelivered``, ``status``).

What ``log()`` costs and what a crash can lose
    ``write()`` only queues the update: a writer thread of the record (``flexlogger-record-<uid>``) encodes it
    and appends its line, in order, with one ``write`` of the whole line, about every 10 ms or at once on
    :meth:`RecordSink.flush`. ``log()`` so costs the same whatever the data: a large matrix is kept whole (as
    nested lists, its size on disk grows with the matrix), but it is encoded on the writer thread, not the training
    loop's. A killed process (SIGKILL, OOM) loses the updates of its last ~10 ms that the writer had not written
    yet; every line written before is whole and readable. A normal exit (even without ``close()``) writes all.
When the disk is full or gone
    ``log()`` never raises for it. A line that does not fit is not written (a short write is truncated back to
    the line's start, so no torn line is ever left in the middle), the record warns once, counts the updates it
    could not write in ``summary.json`` (``unwritten``, warned about again at ``close()``) and writes again as soon
    as space returns.
Forked children
    A child made with ``os.fork()`` inherits the record but never writes or closes it: only the process that
    opened it does (``write()`` in a child warns once and does nothing).

:func:`read_record` (in :mod:`flexlogger.sinks.record_read`) reads a record back, skipping damaged lines with a
warning; ``flexlogger replay RUN_DIR`` (:func:`flexlogger.tools.replay`) draws it on a Visdom server.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see _lock
    fcntl = None  # type: ignore[assignment]

from flexlogger.closing import RECORDS, close_each, on_exit
from flexlogger.core.plots import APPEND_KINDS
from flexlogger.errors import FlexLoggerError
from flexlogger.io import append_line, atomic_write
from flexlogger.sinks.base import Update
from flexlogger.sinks.record_format import (
    CONFIG,
    FORMAT,
    POINTS,
    SUMMARY,
    RecordError,
    decode_data,
    decode_number,
    encode,
    encode_data,
    iso,
)
from flexlogger.sinks.record_read import RecordedRun, read_record

__all__ = ["CONFIG", "FORMAT", "POINTS", "SUMMARY", "RecordError", "RecordSink", "RecordedRun", "decode_data",
           "decode_number", "encode", "encode_data", "read_record"]

WRITE_INTERVAL = 0.01  # s between the writer's rounds: what a SIGKILL can lose at most (plus one round's work)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # one encoder: json.dumps(**options) makes one a call


class RecordSink:
    """Writes every update to ``<root>/<env>/<uid>/`` (see the module docstring for the layout): the folder used is
    :attr:`path`, its name :attr:`uid` (``<uid>-2`` when ``<uid>`` holds a record), and :attr:`window_uid` the uid
    the windows are drawn under.

    With ``resume=True`` a record already in ``<uid>`` whose windows are ``uid`` is continued instead: its
    ``points.jsonl`` is appended to (a torn last line, never acknowledged, cut off first), its counts carried on,
    no second header written. Each record holds an exclusive lock (``flock``) on its ``points.jsonl`` while open,
    so a record another process still writes is never continued (a fresh folder is taken then).

    Args:
        root: the ``log_dir`` folder.
        env, uid: the logger's env and run id (the windows' uid).
        config: the run's config (its options and its loggers' definitions), written now; ``close(config=)``
            writes it again as the run ends.
        resume: continue the record in ``<uid>`` when there is one (see above); :attr:`resumed` holds what it
            held (None when a fresh folder was taken).

    Raises:
        OSError: the folder or ``points.jsonl`` cannot be made (a run must not start without its record).
    """

    def __init__(self, root: Path, env: str, uid: str, config: Mapping[str, Any] | None = None, *,
                 resume: bool = False) -> None:
        self.env, self.window_uid = env, uid
        parent = Path(root) / _folder_name(env)
        self.resumed: RecordedRun | None
        fd, self.resumed = _continued(parent / _folder_name(uid), uid) if resume else (None, None)
        self.path = self.resumed.path if self.resumed is not None else _fresh_dir(parent, _folder_name(uid))
        self.uid = self.path.name
        self._config = config
        self._pid = os.getpid()
        self._plots: dict[str, tuple[str, Any]] = {}
        self._keys: dict[str, str] = {}  # name -> its JSON string
        self._stats: dict[str, dict[str, Any]] = {}
        self.updates = self.points = self.nonfinite = self.unwritten = 0
        self._synced_unwritten = 0  # unwritten as the last sync() saw it
        self.last_step: float | None = None
        self._started = time.time()
        self._write_config()
        if self.resumed is not None:
            for update in self.resumed.updates:
                self._count(update, written=True)
        if fd is None:
            fd = os.open(self.path / POINTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _lock(fd)  # just claimed with O_EXCL: nobody else holds it
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size  # where a line that does not fit is cut back to
        self._failing: OSError | None = None  # the error of the outage in progress
        self._warned_disk = False
        self._notices: collections.deque[str] = collections.deque()  # warnings the writer leaves for the caller
        self._forked_warned = False
        header = {"env": env, "uid": self.uid, "windows": uid, "format": FORMAT, "started": iso(self._started)}
        if self.resumed is None and not self._put(_line({"run": header})):
            os.close(fd)
            raise self._failing or OSError(errno.ENOSPC, "the run record's first line could not be written")
        self._queue: collections.deque[Update] = collections.deque()
        self._queued = 0  # updates queued by write(), in the caller's thread
        self._written = 0  # updates taken by the writer (written or counted unwritten)
        self._lock = threading.Lock()  # held by the writer while it writes a batch; summaries read under it
        self._done = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"flexlogger-record-{self.uid}", daemon=True)
        self._thread.start()
        _open_records.add(self)

    # the caller's side ---------------------------------------------------------------------------------------------
    def write(self, update: Update) -> None:
        """Queue ``update``; the writer thread appends its line (two when its plot is new or changed).

        Never raises for a full or vanished disk (see the module docstring).

        Raises:
            FlexLoggerError: the record is closed.
        """
        if self._pid != os.getpid():
            self._warn_forked()
            return
        if self._closed:
            raise FlexLoggerError(f"the run record {self.path} is closed")
        if self._notices:
            self._warn_notices()
        self._queue.append(update)
        self._queued += 1

    def flush(self, timeout: float | None = None) -> int:
        """Wait until the writer has written every queued update (or ``timeout`` s); return how many are left."""
        if self._pid != os.getpid() or self._closed:
            return 0
        target = self._queued
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._done:
            while self._written < target and self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._done.wait(0.1 if left is None else min(left, 0.1))
        if self._notices:
            self._warn_notices()
        return max(0, target - self._written)

    def sync(self, timeout: float | None = None) -> int:
        """Write every queued update and ``fsync`` the record: when it returns 0, every update written so far is on
        the disk and survives the process being killed (or the machine losing power). Updates the disk did not take
        are counted in :attr:`unwritten`, not here.

        Returns:
            How many queued updates are not written yet (``timeout`` passed).

        Raises:
            OSError: updates since the last sync could not be written (the disk was full or gone), or the disk did
                not confirm the write (``fsync`` failed).
        """
        left = self.flush(timeout)
        if left or self._pid != os.getpid():
            return left
        with self._lock:
            lost, self._synced_unwritten = self.unwritten - self._synced_unwritten, self.unwritten
            if self._fd is not None:
                os.fsync(self._fd)
        if lost:
            raise OSError(errno.ENOSPC, f"{lost} update(s) could not be written to the run record {self.path} (the "
                                        "disk was full or gone)")
        return 0

    def close(self, summary: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None) -> None:
        """Write every queued update, stop the writer, and write ``summary.json`` (and ``config.json`` again).

        Args:
            summary: extra fields for ``summary.json`` (the run's ``undelivered``, ``status``, ...).
            config: the run's config as it ends (its loggers' plots and meters), for ``config.json``; None: the
                config given when the record was made.

        In a forked child, and on a second call, this does nothing. A full disk is warned about, not raised.
        """
        if self._pid != os.getpid() or self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join()
        _open_records.discard(self)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.unwritten:
            self._notices.append(f"the run record {self.path}: {self.unwritten} of {self.updates} update(s) could not "
                                 "be written (the disk was full or gone), counted in summary.json 'unwritten'")
        if config is not None:
            self._config = config
        try:
            self._write_config()
            _write_json(self.path / SUMMARY, self._summary(summary, closed=True))
        except OSError as exc:
            self._notices.append(f"the run record {self.path}: summary.json could not be written ({_why(exc)})")
        if self._notices:
            self._warn_notices()

    def write_summary(self, extra: Mapping[str, Any] | None = None) -> None:
        """Rewrite ``summary.json`` now (atomically: a reader sees the old file or the new one), while running.

        Args:
            extra: fields to add (e.g. ``{"status": "running"}``).
        """
        if self._pid != os.getpid() or self._closed:  # closed: the final summary stays
            return
        with self._lock:
            summary = self._summary(extra, closed=False)
        try:
            _write_json(self.path / SUMMARY, summary)
        except OSError as exc:
            warnings.warn(f"the run record {self.path}: summary.json could not be written ({_why(exc)})",
                          RuntimeWarning, stacklevel=2)

    def summary(self) -> dict[str, Any]:
        """The summary as ``close()`` would write it now (without the run's extra fields)."""
        with self._lock:
            return self._summary(None, closed=self._closed)

    def _summary(self, extra: Mapping[str, Any] | None, closed: bool) -> dict[str, Any]:
        out = {"env": self.env, "uid": self.uid, "windows": self.window_uid, "started": iso(self._started),
               "closed": iso(time.time()) if closed else None, "updates": self.updates, "points": self.points,
               "last_step": self.last_step, "nonfinite": self.nonfinite, "unwritten": self.unwritten,
               "undelivered": None, "plots": {k: dict(v) for k, v in self._stats.items()}}
        out.update(extra or {})
        return out

    def _warn_notices(self) -> None:
        while self._notices:
            warnings.warn(self._notices.popleft(), RuntimeWarning, stacklevel=3)

    def _warn_forked(self) -> None:
        if not self._forked_warned:
            self._forked_warned = True
            warnings.warn(f"the run record {self.path} belongs to process {self._pid}; this forked child "
                          f"(pid {os.getpid()}) does not write to it", RuntimeWarning, stacklevel=3)

    # the writer thread ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(WRITE_INTERVAL)
            self._wake.clear()
            stopping = self._stopping
            with self._lock:
                while self._queue:
                    update = self._queue.popleft()
                    try:
                        self._write_one(update)
                    except Exception as exc:  # a bug must not stop the record: count the update and go on
                        self.unwritten += 1
                        self._written += 1
                        self._notices.append(f"the run record {self.path}: update {update.seq} of plot "
                                             f"{update.plot!r} could not be recorded ({type(exc).__name__}: {exc})")
            with self._done:
                self._done.notify_all()
            if stopping and not self._queue:
                return

    def _write_one(self, update: Update) -> None:
        """Encode and append ``update``; count it unwritten when the disk does not take it. Never raises."""
        try:
            line = self._encode(update)
        except Exception as exc:  # a value the record cannot encode: the run goes on
            line = None
            self._notices.append(f"the run record {self.path}: update {update.seq} of plot {update.plot!r} could "
                                 f"not be encoded ({type(exc).__name__}: {exc}); it is not recorded")
        self._count(update, written=line is not None and self._declared(update) and self._put(line))
        self._written += 1

    def _declared(self, update: Update) -> bool:
        """Whether the record declares ``update``'s plot as it is now, declaring it when it is new or changed."""
        seen = self._plots.get(update.plot)
        if seen is not None and seen[0] == update.kind and seen[1] is update.opts:
            return True
        if not self._put(_line({"plot": update.plot, "kind": update.kind, "opts": encode(update.opts)})):
            return False
        self._plots[update.plot] = (update.kind, update.opts)
        return True

    def _count(self, update: Update, written: bool) -> None:
        """Count ``update`` in the summary's totals and its plot's."""
        plot = update.plot
        n = len(update.data) if update.kind in APPEND_KINDS else 0
        if not written:
            self.unwritten += 1
        stats = self._stats.get(plot)
        if stats is None:
            stats = self._stats[plot] = {"kind": update.kind, "updates": 0, "points": 0, "last_step": None}
        stats["updates"] += 1
        stats["points"] += n
        stats["last_step"] = self.last_step = update.step
        self.updates += 1
        self.points += n

    def _encode(self, update: Update) -> bytes:
        if update.kind in APPEND_KINDS:  # the common case, {trace: float}: the line is formatted directly
            parts = []
            for name, value in update.data.items():
                key = self._keys.get(name) or self._keys.setdefault(name, _ENCODER.encode(str(name)))
                if type(value) is float and value - value == 0:
                    parts.append(f"{key}:{float.__repr__(value)}")
                else:
                    encoded = encode(value)
                    self.nonfinite += type(encoded) is str
                    parts.append(f"{key}:{_ENCODER.encode(encoded)}")
            step = update.step
            step_text = float.__repr__(step) if type(step) is float else _ENCODER.encode(encode(step))
            key = self._keys.get(update.plot) or self._keys.setdefault(update.plot, _ENCODER.encode(update.plot))
            text = f'{{"seq":{int(update.seq)},"plot":{key},"step":{step_text},"data":{{{",".join(parts)}}}}}\n'
        else:
            return _line({"seq": update.seq, "plot": update.plot, "step": encode(update.step),
                          "data": encode_data(update.kind, update.data)})
        return text.encode()

    def _put(self, data: bytes) -> bool:
        """Append one whole line with one ``write``; on failure leave the file as it was and note the outage."""
        fd = self._fd
        if fd is None:
            return False
        try:
            self._size = append_line(fd, data, self._size)  # a short write is cut back off: no torn line
        except OSError as exc:
            self._fail(exc)
            return False
        self._failing = None
        return True

    def _fail(self, exc: OSError) -> None:
        self._failing = exc
        if not self._warned_disk:  # once per record: a nearly full disk takes some lines and refuses others
            self._warned_disk = True
            self._notices.append(f"the run record {self.path} cannot be written ({_why(exc)}): the run goes on, "
                                 "updates that do not fit are counted in summary.json 'unwritten', and writing "
                                 "resumes when the disk takes lines again")

    def _write_config(self) -> None:
        if self._config is not None:
            _write_json(self.path / CONFIG, encode(self._config))


def _line(obj: Mapping[str, Any]) -> bytes:
    return (_ENCODER.encode(obj) + "\n").encode()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _folder_name(name: str) -> str:
    """``name`` as one folder name inside ``log_dir``: ``a/b`` -> ``a_b``, ``..`` -> ``__`` (as Visdom names its
    env files); the record's first line keeps the real env and the windows' uid."""
    name = name.replace("/", "_").replace("\\", "_")
    return "_" * len(name) if name.strip(".") == "" else name


def _fresh_dir(parent: Path, uid: str) -> Path:
    """A run folder no other record uses: ``<uid>``, else ``<uid>-2``, ... . The folder is claimed by creating its
    ``points.jsonl`` exclusively (``O_EXCL``), so two processes started at once with one fixed uid never share a
    folder, even one of them that made it and has not written anything yet; a folder holding anything else is left
    alone."""
    for n in range(1, 10_000):
        path = parent / (uid if n == 1 else f"{uid}-{n}")
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / POINTS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # claimed by another record (or a file of that name)
            continue
        os.close(fd)
        if [p.name for p in path.iterdir()] == [POINTS]:
            return path
        (path / POINTS).unlink()  # another run's folder (without a record): not ours
    raise RecordError(f"no free run folder for uid {uid!r} under {parent}")


def _lock(fd: int) -> bool:
    """Take the exclusive lock of a record's ``points.jsonl`` (held until ``fd`` is closed); False when another
    open record holds it. Where the OS has no ``fcntl`` (Windows) there is no lock: the record is taken, and two
    processes that continue one run folder at the same moment are not kept apart (new folders still are, by
    ``O_EXCL``)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _continued(path: Path, uid: str) -> tuple[int, RecordedRun] | tuple[None, None]:
    """The record in ``path``, opened to be continued: its ``points.jsonl`` open for appending (locked, a torn last
    line cut off) and what it holds; ``(None, None)`` when there is none, another open record holds it, or its
    windows are not ``uid``'s (a folder name two uids share)."""
    points = path / POINTS
    try:
        fd = os.open(points, os.O_RDWR | os.O_APPEND)
    except OSError:
        return None, None
    try:
        record = read_record(path) if _lock(fd) else None
        data = points.read_bytes() if record is not None else b""
        if record is None or record.window_uid != uid or not data.startswith(b'{"run"'):
            os.close(fd)
            return None, None
        if not data.endswith(b"\n"):  # the process stopped mid-line: that line was never acknowledged
            os.ftruncate(fd, data.rfind(b"\n") + 1)
    except BaseException:
        os.close(fd)
        raise
    return fd, record


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=str) + "\n")


# held strongly: a logger dropped without close() (a notebook cell run again) still gets its summary at exit
_open_records: set[RecordSink] = set()


def _close_open_records() -> None:
    """Write the queued updates and the summary of the records a user forgot to close."""
    close_each(_open_records, RecordSink.close)


on_exit(RECORDS, _close_open_records)
