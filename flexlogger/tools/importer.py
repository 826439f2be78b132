"""``flexlogger import PATH...``: old runs become run records that ``replay`` and ``compare`` read like our own.

What it reads:
    - TensorBoard event files: each folder holding ``events.out.tfevents.*`` files is one run (with the numbered
      sub-folders that ``torch.utils.tensorboard``'s ``add_hparams`` writes): scalars, histograms, text and hparams,
      read with the tensorboard package's own reader (``LegacyEventFileLoader``), one event at a time, so memory stays
      bounded whatever the file's size. Needs ``pip install 'flexlogger[tensorboard]'``.
    - Lightning ``CSVLogger`` folders (``metrics.csv`` and ``hparams.yaml``).
    - A plain CSV file with a step column (``step``, ``global_step``, ``iteration``, ``iter`` or ``epoch``).

A folder holding several runs (``lightning_logs/``, ``runs/``) imports each. Scalars are drawn as
:mod:`flexlogger.integrations.windows` draws them (``train/loss`` and ``val/loss``: window ``loss``, traces ``train``
and ``val``); float32 values are kept exactly (a float64 holds every float32). A damaged file is named with what is
wrong in its result's ``problems`` and the rest is imported.

Example:
    >>> from flexlogger.tools.importer import import_runs
    >>> for result in import_runs(["runs/"], log_dir="imported"):  # doctest: +SKIP
    ...     print(result.source, result.run_dir, result.points)
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flexlogger.core.plots import Histogram
from flexlogger.core.run import Run
from flexlogger.defaults import DEFAULT_LOG_DIR, DEFAULT_PORT
from flexlogger.errors import ConfigError, FlexLoggerError
from flexlogger.integrations.common import Guard
from flexlogger.integrations.windows import Windows

__all__ = ["STEP_COLUMNS", "RunImportError", "ImportResult", "find_sources", "import_runs"]

STEP_COLUMNS = ("step", "global_step", "iteration", "iter", "epoch")
EVENTS = "events.out.tfevents."
HISTOGRAM_BINS = 30


class RunImportError(FlexLoggerError, ValueError):
    """A path holds nothing that can be imported (the message says what was looked for)."""


@dataclass
class ImportResult:
    """One imported run: where it came from, its record folder, how many points, and what could not be read."""

    source: Path
    kind: str
    run_dir: Path | None
    points: int = 0
    problems: list[str] = field(default_factory=list)


def find_sources(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """``(kind, path)`` of every run under ``paths``: ``tensorboard`` (a folder of event files), ``lightning``
    (a folder with ``metrics.csv``) or ``csv`` (a CSV file).

    Raises:
        RunImportError: a path does not exist or holds none of them.
    """
    out: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise RunImportError(f"import: {str(path)!r} does not exist; expected a TensorBoard event folder or file, "
                               "a Lightning CSVLogger folder (metrics.csv) or a CSV file")
        found: list[tuple[str, Path]] = []
        if path.is_file():
            if path.name.startswith(EVENTS):
                found.append(("tensorboard", path.parent))
            elif path.name == "metrics.csv":
                found.append(("lightning", path.parent))
            elif path.suffix.lower() == ".csv":
                found.append(("csv", path))
        else:
            folders = {p.parent for p in path.rglob(EVENTS + "*")}
            for folder in sorted(folders):
                if _is_hparams_folder(folder) and folder.parent in folders:
                    continue  # torch's add_hparams writes a numbered sub-folder: part of the run above it
                found.append(("tensorboard", folder))
            found.extend(("lightning", m.parent) for m in sorted(path.rglob("metrics.csv")))
        if not found:
            raise RunImportError(f"import: {str(path)!r} holds no TensorBoard event files ({EVENTS}*), no Lightning "
                               "metrics.csv and is not a CSV file; expected one of those")
        out.extend(f for f in found if f not in out)
    return out


def _is_hparams_folder(folder: Path) -> bool:
    return re.fullmatch(r"\d+(\.\d+)?", folder.name) is not None


def import_runs(paths: Iterable[str | Path], log_dir: str | Path = DEFAULT_LOG_DIR, env: str = "imported",
                server: str | None = None, port: int = DEFAULT_PORT) -> list[ImportResult]:
    """Import every run under ``paths`` into ``<log_dir>/<env>/<name>`` (see the module docstring).

    Args:
        paths: event folders or files, Lightning folders, CSV files, or folders holding several of them.
        log_dir: the records' root (default ``$FLEXLOGGER_LOG_DIR``, else ``runs``).
        env: the env of the records (and of the windows when drawn).
        server, port: draw each run on this Visdom server as it is imported; None: the record only.

    Raises:
        RunImportError: a path holds nothing to import.
        MissingExtraError: event files, without the tensorboard package.
    """
    results: list[ImportResult] = []
    for kind, source in find_sources(paths):
        name = _run_name(kind, source)
        run = Run._from_options("import_runs()", {"env": env, "uid": name, "log_dir": log_dir, "server": server,
                                                  "port": port})
        result = ImportResult(source, kind, run.dir)
        writer = _Writer(run)
        try:
            if kind == "tensorboard":
                _tensorboard(source, writer, result)
            elif kind == "lightning":
                _lightning(source, writer, result)
            else:
                _csv(source, writer, result, STEP_COLUMNS)
        except BaseException as exc:
            run.close("crashed", exc)
            raise
        result.points = writer.points
        if result.problems and not run.disabled:
            run.add_to_summary("import_problems", result.problems)
        if not run.disabled:
            run.add_to_summary("imported_from", {"kind": kind, "path": str(source)})
        run.close()
        results.append(result)
    return results


def _run_name(kind: str, source: Path) -> str:
    if kind == "csv":
        return source.stem
    name = source.resolve().name
    if kind == "lightning" and name.startswith("version_"):
        return f"{source.resolve().parent.name}-{name}"
    return name


class _Writer:
    """Writes imported values to the run through :class:`~flexlogger.integrations.windows.Windows`, one update per
    value, straight from the reader (nothing held)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.windows = Windows(run, Guard("flexlogger import"))

    @property
    def points(self) -> int:
        return self.windows.points

    def scalar(self, key: str, value: float, step: float) -> None:
        where = self.windows.place(key)
        if where is not None:
            self.windows.draw(where[0], {where[1]: value}, step)

    def histogram(self, key: str, counts: Histogram, step: float) -> None:
        where = self.windows.place(key, "histogram")
        if where is not None:
            self.windows.draw(where[0], {where[1]: counts}, step)


# TensorBoard -------------------------------------------------------------------------------------------------------
def _tensorboard(folder: Path, writer: _Writer, result: ImportResult) -> None:
    from flexlogger.integrations.common import import_framework

    loader_module = import_framework(["tensorboard.backend.event_processing.event_file_loader"], "tensorboard",
                                     "flexlogger import of TensorBoard event files")
    from tensorboard.util import tensor_util

    files = sorted(folder.glob(EVENTS + "*")) + sorted(
        f for sub in sorted(folder.iterdir()) if sub.is_dir() and _is_hparams_folder(sub)
        for f in sorted(sub.glob(EVENTS + "*")))
    for path in files:
        with _damage_reports() as damage:
            try:
                # the raw events: scalars and histograms as written (simple_value, histo), without the reader's
                # per-value migration to tensors, which costs more than everything else of the import together
                for event in loader_module.LegacyEventFileLoader(str(path)).Load():
                    for value in event.summary.value:
                        _tb_value(value, event.step, writer, tensor_util)
            except Exception as exc:  # a damaged file: named, and the others imported
                damage.append(f"{type(exc).__name__}: {exc}")
        result.problems.extend(f"{path}: {what}; the events before it were imported" for what in damage)


@contextmanager
def _damage_reports() -> Iterator[list[str]]:
    """The reader's own reports of a damaged record: it stops at a truncated or corrupted record and says so only
    in a debug message of the ``tensorboard`` logger, which is caught here (and not shown)."""
    found: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Truncated record"):
                found.append(message)

    log = logging.getLogger("tensorboard")
    handler = Catch(logging.DEBUG)
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield found
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _tb_value(value: Any, step: int, writer: _Writer, tensor_util: Any) -> None:
    plugin = value.metadata.plugin_data.plugin_name
    if plugin == "hparams":
        _tb_hparams(value.metadata.plugin_data.content, writer)
        return
    field = value.WhichOneof("value")
    if field == "simple_value":
        writer.scalar(value.tag, float(value.simple_value), step)  # float32 -> float64: exact
        return
    if field == "histo":
        histo = value.histo
        limits = np.asarray(histo.bucket_limit, dtype=np.float64)
        lefts = np.concatenate(([histo.min], limits[:-1])) if limits.size else limits
        rights = np.minimum(limits, histo.max) if limits.size else limits
        writer.histogram(value.tag, _rebin(np.stack([lefts, rights, np.asarray(histo.bucket, np.float64)], 1)
                                           if limits.size else np.zeros((0, 3))), step)
        return
    if field != "tensor":
        return
    array = tensor_util.make_ndarray(value.tensor)
    if plugin == "scalars" or (plugin == "" and array.size == 1 and array.dtype.kind == "f"):
        writer.scalar(value.tag, float(array.reshape(-1)[0]), step)  # float32 -> float64: exact
    elif plugin == "histograms" and array.ndim == 2 and array.shape[1] == 3:
        writer.histogram(value.tag, _rebin(array.astype(np.float64)), step)
    elif plugin == "text":
        texts = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in array.reshape(-1)]
        tag = value.tag.removesuffix("/text_summary")
        writer.run.log_text(tag, "\n".join(texts), step)


def _rebin(buckets: np.ndarray) -> Histogram:
    """TensorBoard's ``(left, right, count)`` buckets as counts in equal bins from the lowest left edge to the
    highest right one (each bucket's count goes to the bin of its centre: the total is kept)."""
    if buckets.size == 0:
        return Histogram((0.0,) * HISTOGRAM_BINS, 0.0, 1.0)
    lo, hi = float(buckets[:, 0].min()), float(buckets[:, 1].max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    centres = (buckets[:, 0] + buckets[:, 1]) / 2
    index = np.clip(((centres - lo) / (hi - lo) * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
    counts = np.bincount(index, weights=buckets[:, 2], minlength=HISTOGRAM_BINS)
    return Histogram(tuple(float(c) for c in counts), lo, hi)


def _tb_hparams(content: bytes, writer: _Writer) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if not data.HasField("session_start_info"):
        return
    hparams: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[name] = getattr(value, kind) if kind else None
    if hparams:
        writer.run.log_hparams(hparams)


# CSV ---------------------------------------------------------------------------------------------------------------
def _lightning(folder: Path, writer: _Writer, result: ImportResult) -> None:
    hparams_file = folder / "hparams.yaml"
    if hparams_file.is_file():
        from flexlogger.config.parse import read_file

        try:
            data, problems = read_file(hparams_file)
        except ConfigError as exc:
            result.problems.append(f"{hparams_file}: {exc}")
        else:
            result.problems.extend(f"{hparams_file}: {p}" for p in problems)
            if isinstance(data, Mapping) and data:
                writer.run.log_hparams(dict(data))
    _csv(folder / "metrics.csv", writer, result, ("step",))


def _csv(path: Path, writer: _Writer, result: ImportResult, step_columns: tuple[str, ...]) -> None:
    """Each row's non-empty cells at the row's step; a cell that is not a number is named in the problems."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        result.problems.append(f"{path}: {exc.strerror or exc}")
        return
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            result.problems.append(f"{path}: empty; expected a header row")
            return
        step_column = next((c for c in step_columns if c in header), None)
        if step_column is None:
            raise RunImportError(f"import: {path} has no step column; expected one of {', '.join(step_columns)}, "
                               f"but the columns are {', '.join(header)}")
        at = header.index(step_column)
        bad = 0
        for line, row in enumerate(reader, start=2):
            try:
                step = float(row[at])
            except (ValueError, IndexError):
                bad += 1
                if bad <= 5:
                    result.problems.append(f"{path}:{line}: step {row[at] if at < len(row) else ''!r} is not a "
                                           "number; row skipped")
                continue
            x: float = int(step) if step.is_integer() else step
            for column, cell in zip(header, row):
                if column == step_column or cell == "":
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    bad += 1
                    if bad <= 5:
                        result.problems.append(f"{path}:{line}: {column} = {cell!r} is not a number; skipped")
                    continue
                writer.scalar(column, value, x)
        if bad > 5:
            result.problems.append(f"{path}: {bad} cells skipped in all")
