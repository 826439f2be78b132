"""The run record: every update of a run, on disk, human-readable, written as it happens.

A run made with ``log_dir='runs'`` writes the folder ``runs/<env>/<uid>/`` (a ``/`` in either becomes ``_``):

``config.json``
    the logger's definitions (``FlexLogger.to_config()``), rewritten at ``close()`` if plots were added.
``points.jsonl``
    append-only, one JSON object per line:

    - ``{"run": {"env": ..., "uid": ..., "format": 1, "started": ...}}`` first;
    - ``{"plot": "loss", "kind": "line", "opts": {...}}`` when a plot is first seen (or its type/opts change);
    - ``{"seq": 7, "plot": "loss", "step": 3, "data": {"train_loss": 0.51, "test_loss": "nan"}}`` for every
      update of every window (line points, bar vectors, heatmap matrices, curves, text).

    JSON has no NaN: non-finite numbers are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` and read
    back as floats (a text plot's strings are left alone). Arrays are nested lists.
    Each line is written whole, with one ``write`` on an unbuffered file, at every ``log()``: a crash leaves every
    complete line readable, and :func:`read_record` skips a torn last line.
``summary.json``
    written at ``close()``: updates and points per plot, the last step, NaN/Inf count and the points the Visdom
    server did not get (``undelivered``).

``flexlogger replay RUN_DIR`` (:func:`flexlogger.replay`) draws a record on a Visdom server.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FlexLoggerError
from ..plots import PLOT_TYPES, Histogram
from .base import Update

FORMAT = 1
CONFIG, POINTS, SUMMARY = "config.json", "points.jsonl", "summary.json"
APPEND_KINDS = frozenset(p.name for p in PLOT_TYPES if p.append)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # one encoder: json.dumps(**options) makes one a call


class RecordError(FlexLoggerError, ValueError):
    """A run record folder is missing or unreadable."""


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data: arrays become nested lists, non-finite floats the strings nan/inf/-inf."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else _nonfinite(value)
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, Histogram):
        return {"counts": encode(list(value.counts)), "lo": encode(value.lo), "hi": encode(value.hi)}
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and not isinstance(value, (list, tuple))):
        array = np.asarray(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return _encode_list(array.tolist())
        return array.tolist()
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def _nonfinite(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _encode_list(items: list[Any]) -> list[Any]:
    return [_encode_list(v) if isinstance(v, list) else (_nonfinite(v) if isinstance(v, float) and not
                                                          math.isfinite(v) else v) for v in items]


def decode_number(value: Any) -> Any:
    """Undo :func:`encode` for numbers: ``"nan"``/``"inf"``/``"-inf"`` become floats, lists are walked."""
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, list):
        return [decode_number(v) for v in value]
    return value


def decode_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An update's ``data`` as the logger produced it (arrays back as ndarrays, for the sinks' drawing code)."""
    if kind == "text":
        return dict(data)
    if kind in APPEND_KINDS:
        return {k: float(decode_number(v)) for k, v in data.items()}
    out: dict[str, Any] = {}
    for name, value in data.items():
        if kind == "histogram" and isinstance(value, Mapping) and "counts" in value:
            out[name] = Histogram(tuple(float(c) for c in decode_number(value["counts"])),
                                  float(decode_number(value["lo"])), float(decode_number(value["hi"])))
            continue
        value = decode_number(value)
        if kind == "curve":
            out[name] = tuple(np.asarray(v, dtype=np.float64) for v in value)
        elif isinstance(value, list):
            out[name] = np.asarray(value)
        else:
            out[name] = float(value) if isinstance(value, (int, float)) else value
    return out


class RecordSink:
    """Writes every update to ``<root>/<env>/<uid>/`` (see the module docstring for the layout).

    When that folder already holds a record (a fixed ``uid`` run twice), the new run goes to ``<uid>-2``,
    ``<uid>-3``, ...: a record is never overwritten. The folder used is :attr:`path`.

    Args:
        root: the ``log_dir`` folder.
        env, uid: the logger's env and run id.
        config: the logger's definitions, or a callable returning them (called now and at ``close()``).
        undelivered: a callable returning how many points the Visdom sink could not deliver (for the summary).
    """

    def __init__(self, root: Path, env: str, uid: str, config: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
                 | None = None, undelivered: Callable[[], int] | None = None) -> None:
        self.env, self.uid = env, uid
        self.path = _fresh_dir(Path(root) / _folder_name(env), _folder_name(uid))
        self._config = config
        self.undelivered = undelivered
        self._plots: dict[str, tuple[str, Any]] = {}
        self._keys: dict[str, str] = {}  # name -> its JSON string
        self._stats: dict[str, dict[str, Any]] = {}
        self.updates = 0
        self.points = 0
        self.nonfinite = 0
        self.last_step: float | None = None
        self._started = time.time()
        self._write_config()
        self._fd: int | None = os.open(self.path / POINTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._line({"run": {"env": env, "uid": uid, "format": FORMAT, "started": _iso(self._started)}})
        _open_records.add(self)

    def _write_config(self) -> None:
        config = self._config() if callable(self._config) else self._config
        if config is not None:
            _write_json(self.path / CONFIG, encode(config))

    def _line(self, obj: Mapping[str, Any]) -> None:
        self._raw(_ENCODER.encode(obj) + "\n")

    def _raw(self, line: str) -> None:
        if self._fd is None:
            raise FlexLoggerError(f"the run record {self.path} is closed")
        os.write(self._fd, line.encode())  # one write of a whole line: line-atomic

    def write(self, update: Update) -> None:
        """Append one line (two when the plot is new or changed) for ``update``."""
        plot = update.plot
        seen = self._plots.get(plot)
        if seen is None or seen[0] != update.kind or seen[1] is not update.opts:
            self._plots[plot] = (update.kind, update.opts)
            self._line({"plot": plot, "kind": update.kind, "opts": encode(update.opts)})
        if update.kind in APPEND_KINDS:  # the hot path, {trace: float}: the line is formatted directly
            n = len(update.data)
            self.points += n
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
            key = self._keys.get(plot) or self._keys.setdefault(plot, _ENCODER.encode(plot))
            self._raw(f'{{"seq":{int(update.seq)},"plot":{key},"step":{step_text},"data":{{{",".join(parts)}}}}}\n')
        else:
            n = 0
            self._line({"seq": update.seq, "plot": plot, "step": update.step, "data": encode(update.data)})
        stats = self._stats.get(plot)
        if stats is None:
            stats = self._stats[plot] = {"kind": update.kind, "updates": 0, "points": 0, "last_step": None}
        stats["updates"] += 1
        stats["points"] += n
        stats["last_step"] = self.last_step = update.step
        self.updates += 1

    def flush(self, timeout: float | None = None) -> int:
        """Nothing to wait for: every line is written by :meth:`write`."""
        return 0

    def close(self) -> None:
        """Write ``summary.json`` (and ``config.json`` again, for plots added during the run)."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        _open_records.discard(self)
        self._write_config()
        _write_json(self.path / SUMMARY, self.summary())

    def summary(self) -> dict[str, Any]:
        undelivered = self.undelivered() if self.undelivered is not None else None
        return {"env": self.env, "uid": self.uid, "started": _iso(self._started), "closed": _iso(time.time()),
                "updates": self.updates, "points": self.points, "last_step": self.last_step,
                "nonfinite": self.nonfinite, "undelivered": undelivered, "plots": self._stats}


@dataclass(frozen=True)
class RecordedRun:
    """A run record read back by :func:`read_record`.

    Attributes:
        path: the run folder.
        env, uid: as recorded.
        plots: plot -> (kind, opts), as last declared.
        updates: every update in order, with decoded data.
        torn: True when the last line was incomplete (the run crashed mid-write) and was skipped.
    """

    path: Path
    env: str
    uid: str
    plots: dict[str, tuple[str, dict[str, Any]]]
    updates: list[Update]
    torn: bool = False


def read_record(run_dir: str | Path) -> RecordedRun:
    """Read ``points.jsonl`` of a run folder back into :class:`~flexlogger.sinks.base.Update` objects.

    Raises:
        RecordError: the folder has no ``points.jsonl``, or a line other than the last is not valid JSON.
    """
    path = Path(run_dir)
    points = path / POINTS
    if not points.is_file():
        found = sorted(str(p.parent) for p in path.glob(f"*/*/{POINTS}"))[:5] if path.is_dir() else []
        hint = f"; run folders under it: {', '.join(found)}" if found else ""
        raise RecordError(f"expected a run record folder holding {POINTS}, but {str(path)!r} has none{hint}")
    env, uid, torn = path.parent.name, path.name, False
    plots: dict[str, tuple[str, dict[str, Any]]] = {}
    updates: list[Update] = []
    for number, line, last in _lines(points):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if last:
                torn = True
                warnings.warn(f"{points}: skipping the incomplete last line {number} (the run stopped mid-write)",
                              RuntimeWarning, stacklevel=2)
                break
            raise RecordError(f"{points}:{number}: expected a JSON object, but got {line[:80]!r} ({exc})") from None
        if "seq" in obj:
            kind, opts = plots[obj["plot"]]
            updates.append(Update(obj["plot"], kind, obj["step"], decode_data(kind, obj["data"]), opts, obj["seq"]))
        elif "plot" in obj:
            plots[obj["plot"]] = (obj["kind"], obj.get("opts") or {})
        elif "run" in obj:
            env, uid = obj["run"].get("env", env), obj["run"].get("uid", uid)
    return RecordedRun(path, env, uid, plots, updates, torn)


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    complete = lines[-1] == ""  # the file ends with a newline: every line is whole
    body = lines[:-1] if complete else lines
    for i, line in enumerate(body):
        if line.strip():
            yield i + 1, line, i == len(body) - 1 and not complete


def _folder_name(name: str) -> str:
    """``name`` as one folder name inside ``log_dir``: ``a/b`` -> ``a_b``, ``..`` -> ``__`` (as Visdom names its
    env files); the record's first line keeps the real env and uid."""
    name = name.replace("/", "_").replace("\\", "_")
    return "_" * len(name) if name.strip(".") == "" else name


def _fresh_dir(parent: Path, uid: str) -> Path:
    for n in range(1, 10_000):
        path = parent / (uid if n == 1 else f"{uid}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            if not any(path.iterdir()):
                return path
    raise RecordError(f"no free run folder for uid {uid!r} under {parent}")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # never a half-written file


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


# held strongly: a logger dropped without close() (a notebook cell run again) still gets its summary at exit
_open_records: set[RecordSink] = set()


@atexit.register
def _close_open_records() -> None:
    """Write the summary of records a user forgot to close."""
    for sink in list(_open_records):
        try:
            sink.close()
        except Exception:  # never fail interpreter shutdown
            pass
