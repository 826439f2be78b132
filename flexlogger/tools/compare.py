"""Compare runs: the chosen plots of several run records drawn in one env, one trace per run and meter, and a table
of the runs' hyperparameters with the best and last value of their meters.

Example:
    >>> import flexlogger
    >>> flexlogger.compare(["runs/mnist/lr-0.1", "runs/mnist/lr-0.01"], plots=["loss"], port=8097)  # doctest: +SKIP
    CompareResult(env='compare', windows={'loss': 'compare_loss', 'hparams': 'compare_hparams'}, ...)

- Traces are named ``<run name>/<meter>``; a run's name is its uid (its folder's name when two runs share a uid),
  or the one given in ``names``.
- Plots: by default the line and scatter plots every run has; ``plots`` may name a plot only some runs have
  (drawn with those), but a name no run has is an error listing the ones they have. Line and scatter plots are
  compared (with their ``aggregate``/``smooth``, as the first run declares them); other kinds named in ``plots``
  are left out and listed in :attr:`CompareResult.skipped`.
- ``follow=True`` keeps drawing while the runs write: every ``poll`` seconds each ``points.jsonl`` that grew is read
  from where the last read stopped, whole lines only (a line being written is read once it is whole), until every
  run is finished (its ``summary.json`` says so) and read, or ``stop`` is set.
- The table (:func:`hparams_table`): a row per run, its hyperparameters (``hparams.json`` in the run folder, as
  ``Run.log_hparams`` writes it, nested keys shown as ``optim.lr``) and, for each chosen meter, its best and last
  finite value: by default the user's meters, not a TooledModelLogger's per-layer statistics
  (:func:`~flexlogger.model.logger.model_statistics`, ``0.Grad_out.std``; ``all_meters=True`` or ``meters``
  naming them brings them back; a run holding nothing else shows them). ``meters`` may hold shell-style
  patterns (``'*.Weights.std'``). Which way is best: the meter's ``best`` (``min``/``max``) in the run's
  ``config.json`` when set; else ``max`` for names that read as scores (acc, accuracy, auc, ap, map, precision,
  recall, f1, score, iou, dice), ``min`` for the rest (losses, errors).

:class:`~flexlogger.tools.follow.RecordFollower` reads the records, incrementally (as ``flexlogger replay --follow``).
"""

from __future__ import annotations

import fnmatch
import html
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from tabulate import tabulate

from flexlogger import defaults
from flexlogger.core.plots import APPEND_KINDS
from flexlogger.defaults import DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import ConfigError, DeliveryError, UnknownNameError, unknown_name_message
from flexlogger.experiment.checks import HPARAMS_FILE
from flexlogger.model.logger import model_statistics
from flexlogger.sinks.base import Update
from flexlogger.sinks.record import CONFIG, RecordError
from flexlogger.sinks.visdom.auth import resolve_credentials
from flexlogger.sinks.visdom.legible import text_page
from flexlogger.sinks.visdom.render import make_builder
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.sinks.visdom.transport import Transport
from flexlogger.tools.follow import RecordFollower, appended
from flexlogger.tools.replay import check_visdom

__all__ = ["CompareResult", "HparamsTable", "compare", "hparams_table"]

COMPARE_UID = "compare"
TABLE_WINDOW = f"{COMPARE_UID}__runs"  # the table's window id (no plot's: those are compare_<plot>)
_SCORE = re.compile(r"(^|[^a-z])(acc|accuracy|auc|ap|map|precision|recall|f1|score|iou|dice)([^a-z]|$)", re.I)


@dataclass(frozen=True)
class HparamsTable:
    """The compared runs' table: a row per run (``run``, its hyperparameters, ``<meter> best``/``<meter> last``).

    Attributes:
        headers: the column names, in order.
        rows: one dict per run (missing values are absent).
        best: meter -> ``min`` or ``max``, the way each meter's best was taken.
    """

    headers: list[str]
    rows: list[dict[str, Any]]
    best: dict[str, str]

    def text(self) -> str:
        """The table as text (tabulate)."""
        return str(tabulate([[row.get(h, "") for h in self.headers] for row in self.rows], headers=self.headers,
                            tablefmt="simple", floatfmt=".6g", missingval=""))

    def html(self) -> str:
        """The table as an HTML table (the Visdom window)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(h, '')))}</td>" for h in self.headers)
                       + "</tr>" for row in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare` drew.

    Attributes:
        env: the env drawn into.
        windows: plot -> window id.
        table_window: the table's window id.
        runs: run name -> run folder.
        traces: plot -> the trace names drawn in it.
        points: the points drawn (line/scatter).
        skipped: plot -> why it was left out (a kind compare does not draw).
        table: the hparams table.
    """

    env: str
    windows: dict[str, str]
    table_window: str
    runs: dict[str, Path]
    traces: dict[str, list[str]] = field(default_factory=dict)
    points: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    table: HparamsTable | None = None

    def __str__(self) -> str:
        return (f"{len(self.runs)} run(s), {len(self.windows)} plot(s), {self.points} point(s) in env {self.env!r}"
                + (f"; left out: {', '.join(f'{p} ({why})' for p, why in self.skipped.items())}"
                   if self.skipped else ""))


def run_names(followers: Sequence[RecordFollower], names: Sequence[str] | None) -> list[str]:
    """The runs' names: ``names`` when given (one per run, distinct), else their uids (their folders' names when
    uids repeat)."""
    if names is not None:
        names = list(names)
        if len(names) != len(followers):
            raise ConfigError(f"compare(): expected one name per run ({len(followers)}), but got {len(names)}: "
                              f"{', '.join(map(repr, names))}")
        bad = [n for n in names if not isinstance(n, str) or not n or "/" in n]
        if bad or len(set(names)) != len(names):
            raise ConfigError(f"compare(): expected distinct non-empty run names without '/', but got "
                              f"{', '.join(map(repr, bad or names))}")
        return names
    uids = [f.uid for f in followers]
    if len(set(uids)) == len(uids):
        return uids
    folders = [f.path.name for f in followers]
    if len(set(folders)) == len(folders):
        return folders
    raise ConfigError(f"compare(): runs share the uid(s) {', '.join(sorted({u for u in uids if uids.count(u) > 1}))} "
                      "and their folders' names; expected distinct runs, or names= (--names a,b,...) to tell them "
                      "apart")


def compare(runs: Sequence[str | Path], plots: Sequence[str] | None = None, names: Sequence[str] | None = None,
            env: str | None = None, server: str = DEFAULT_SERVER, port: int = DEFAULT_PORT, follow: bool = False, *,
            meters: Sequence[str] | None = None, all_meters: bool = False, sort: str | None = None,
            poll: float = 0.5, stop: threading.Event | None = None, timeout: float = 120.0,
            **sink_options: Any) -> CompareResult:
    """Draw the chosen plots of several runs in one env, one trace per run and meter, and the hparams table.

    Args:
        runs: run folders (``<log_dir>/<env>/<uid>``, each holding ``points.jsonl``).
        plots: the plots to draw; None: those every run has.
        names: a name per run for its traces (default: the runs' uids).
        env: the env to draw into (default ``compare``). Window ids are ``compare_<plot>``.
        server, port: the Visdom server.
        follow: keep drawing what the runs append until every run finished or ``stop`` is set.
        meters: the meters of the table, names or shell-style patterns (default: every meter of the drawn plots
            but the per-layer statistics of a TooledModelLogger).
        all_meters: with ``meters=None``, the per-layer statistics too.
        sort: a meter of the table to sort its rows by (best first).
        poll: seconds between two reads of the records when following.
        stop: set it to end following (from another thread).
        timeout: seconds to wait for the server to take everything.
        **sink_options: passed to the Visdom sink (``max_points``, ``min_interval``, ...).

    Raises:
        RecordError: a folder holds no run record.
        UnknownNameError: a plot no run has, or a ``sort`` meter the table has not.
        ConfigError: bad ``names``, no run given, or nothing to compare.
        DeliveryError: no server answers, or it did not take everything within ``timeout``.
    """
    server, port = defaults.resolve("server", server), defaults.resolve("port", port)
    followers = _followers(runs)
    names = run_names(followers, names)
    batches = [f.poll() for f in followers]
    chosen, skipped = _line_plots(followers, plots)
    values: list[dict[str, list[float]]] = [{} for _ in followers]
    _collect(values, batches, chosen)
    build_table(followers, names, values, meters, sort, all_meters)  # bad meters or sort: an error before drawing
    env = env or "compare"
    login_options = {k: sink_options[k] for k in ("base_url", "username", "password") if k in sink_options}
    url = f"{server.rstrip('/')}:{port}{sink_options.get('base_url', '')}"
    check_visdom(url, port)
    if not follow:  # the records are read whole: one send per window at the end (flush), not one per min_interval
        sink_options.setdefault("min_interval", max(timeout, 0.0))
    sink = VisdomSink(server=server, port=port, env=env, uid=COMPARE_UID, **sink_options)
    if follow:  # the table of what the runs hold now; drawn again when they finish
        draw_table(build_table(followers, names, values, meters, sort, all_meters), server, port, env, timeout,
                   **login_options)
    try:
        traces, points = _draw_runs(sink, followers, names, batches, values, chosen, follow, poll, stop)
        pending = sink.flush(timeout)
    finally:
        sink.close()
    if pending:
        raise DeliveryError(f"the Visdom server at {url} did not take {pending} point(s) within {timeout:g} s")
    table = build_table(followers, names, values, meters, sort, all_meters)
    windows = {p: f"{COMPARE_UID}_{p}" for p in chosen}
    table_window = draw_table(table, server, port, env, timeout, **login_options)
    return CompareResult(env, windows, table_window, {n: f.path for n, f in zip(names, followers)},
                         {p: sorted(t) for p, t in traces.items()}, points, skipped, table)


def _line_plots(followers: Sequence[RecordFollower], plots: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The plots to draw: the line and scatter plots of ``plots`` (each must be in some run), by default those every
    run has (compare draws traces); and the asked-for ones left out, with why.

    Raises:
        UnknownNameError: a plot no run has (the message lists the ones they have).
        ConfigError: no line or scatter plot is left to compare.
    """
    have = [set(f.plots) for f in followers]
    every = set.union(*have)
    if plots is None:
        chosen = sorted(set.intersection(*have))
    else:
        missing = [p for p in plots if p not in every]
        if missing:
            message = unknown_name_message("plot", missing[0], every)
            raise UnknownNameError(f"compare(): no run has plot(s) {', '.join(map(repr, missing))}: {message}")
        chosen = list(dict.fromkeys(plots))
    kinds = {p: _opts(followers, p)[0] for p in chosen}
    skipped = {p: f"a {kind} plot; compare draws line and scatter plots" for p, kind in kinds.items()
               if kind not in APPEND_KINDS and plots is not None}  # by default, only the line/scatter ones
    chosen = [p for p in chosen if kinds[p] in APPEND_KINDS]
    if not chosen:
        raise ConfigError(f"compare(): the runs share no line or scatter plot to compare; their plots: "
                          f"{', '.join(sorted(every)) or '(none)'}; expected plots=[...] naming some of them")
    return chosen, skipped


def _draw_runs(sink: VisdomSink, followers: Sequence[RecordFollower], names: Sequence[str],
               first: list[list[Update]], values: list[dict[str, list[float]]], chosen: Sequence[str],
               follow: bool, poll: float, stop: threading.Event | None) -> tuple[dict[str, set[str]], int]:
    """Write every run's points of the ``chosen`` plots to ``sink`` as traces ``<run>/<meter>``: those of ``first``
    (already in ``values``) and, following, what the runs append (added to ``values``) until they finish or ``stop``
    is set. Returns the traces drawn per plot and the point count."""
    opts = {p: _opts(followers, p) for p in chosen}
    traces: dict[str, set[str]] = {p: set() for p in chosen}
    points = seq = 0
    for read, batches in enumerate(chain([first], appended(followers, poll, stop) if follow else [])):
        if read:
            _collect(values, batches, chosen)
        for name, batch in zip(names, batches):
            for update in batch:
                if update.plot not in traces:
                    continue
                seq += 1
                data = {f"{name}/{meter}": value for meter, value in update.data.items()}
                traces[update.plot].update(data)
                points += len(data)
                kind, plot_opts = opts[update.plot]
                sink.write(Update(update.plot, kind, update.step, data, plot_opts, seq))
    return traces, points


def hparams_table(runs: Sequence[str | Path], meters: Sequence[str] | None = None,
                  names: Sequence[str] | None = None, sort: str | None = None,
                  plots: Sequence[str] | None = None, all_meters: bool = False) -> HparamsTable:
    """A row per run: its name, its hyperparameters (``hparams.json``) and each meter's best and last value.

    Args:
        runs: run folders.
        meters: the meters to show, names or shell-style patterns (``'*.Weights.std'``; default: every meter of
            ``plots`` but the per-layer statistics of a TooledModelLogger, unless the runs hold nothing else).
        names: a name per run (default: the runs' uids).
        sort: a meter to sort the rows by, best first (runs without a value last).
        plots: the plots whose meters count (default: every line/scatter plot).
        all_meters: with ``meters=None``, the per-layer statistics too.

    Raises:
        RecordError: a folder holds no run record.
        UnknownNameError: ``sort``, or a meter or pattern of ``meters``, that no run has.
    """
    followers = _followers(runs)
    names = run_names(followers, names)
    values: list[dict[str, list[float]]] = [{} for _ in followers]
    _collect(values, [f.poll() for f in followers], plots)
    return build_table(followers, names, values, meters, sort, all_meters)


def build_table(followers: Sequence[RecordFollower], names: Sequence[str], values: Sequence[dict[str, list[float]]],
                meters: Sequence[str] | None, sort: str | None, all_meters: bool = False) -> HparamsTable:
    """The table of runs ``followers`` named ``names`` from each run's meter values ``values`` (``meters``,
    ``sort`` and ``all_meters`` as for :func:`hparams_table`)."""
    every = list(dict.fromkeys(m for series in values for m in series))
    if meters is None:
        per_layer = set() if all_meters else model_statistics(every)
        chosen = [m for m in every if m not in per_layer] or every
    else:
        chosen = list(dict.fromkeys(m for given in meters for m in _matching(given, every)))
        missing = [m for m in meters if not _matching(m, every)]
        if missing:
            raise UnknownNameError(f"compare(): no run has meter(s) {', '.join(map(repr, missing))} in the compared "
                                   f"plots: {unknown_name_message('meter', missing[0], every)}")
    best = {m: _direction(m, followers) for m in chosen}
    hparams = [_hparams(f.path) for f in followers]
    keys = list(dict.fromkeys(k for h in hparams for k in h))
    rows: list[dict[str, Any]] = []
    for name, h, series in zip(names, hparams, values):
        row: dict[str, Any] = {"run": name, **h}
        for meter in chosen:
            finite = [v for v in series.get(meter, []) if math.isfinite(v)]
            if finite:
                row[f"{meter} best"] = max(finite) if best[meter] == "max" else min(finite)
                row[f"{meter} last"] = finite[-1]
        rows.append(row)
    if sort is not None:
        if sort not in chosen:
            raise UnknownNameError(f"compare(): cannot sort by {sort!r}: "
                                   + unknown_name_message("table meter", sort, chosen))
        sign = -1.0 if best[sort] == "max" else 1.0
        rows.sort(key=lambda r: (f"{sort} best" not in r, sign * r.get(f"{sort} best", 0.0)))
    headers = ["run", *keys, *[f"{m} {w}" for m in chosen for w in ("best", "last")]]
    return HparamsTable(headers, rows, best)


def _table_size(table: HparamsTable) -> dict[str, int]:
    """A window wide enough for the table's columns (padded cells of 13 px text), up to 1200 px (wider tables
    scroll inside it), and tall enough for its rows."""
    widths = [max([len(h)] + [len(_cell(row.get(h, ""))) for row in table.rows]) for h in table.headers]
    width = sum(7 * w + 14 for w in widths) + 30
    return {"width": min(max(width, 400), 1200), "height": min(max(26 * (len(table.rows) + 1) + 90, 200), 700)}


def _matching(given: str, every: Sequence[str]) -> list[str]:
    """The meters of ``every`` that ``given`` names: itself, or those its shell-style pattern matches."""
    if given in every:
        return [given]
    return [m for m in every if fnmatch.fnmatchcase(m, given)] if any(c in given for c in "*?[") else []


def _collect(values: list[dict[str, list[float]]], batches: Sequence[list[Update]],
             plots: Sequence[str] | None) -> None:
    """Append each run's line/scatter values of ``plots`` (all when None) to its ``{meter: [values]}``."""
    for series, batch in zip(values, batches):
        for update in batch:
            if update.kind in APPEND_KINDS and (plots is None or update.plot in plots):
                for meter, value in update.data.items():
                    series.setdefault(meter, []).append(float(value))


def draw_table(table: HparamsTable, server: str, port: int, env: str, timeout: float = 10.0, base_url: str = "",
               username: str | None = None, password: str | None = None) -> str:
    """Draw ``table`` as an HTML table in window ``compare__runs`` of ``env``; return the window id. A server with
    a login is logged in to as the Visdom sink does (``username``/``password``, else VISDOM_USERNAME/PASSWORD).

    Raises:
        DeliveryError: the server did not take it.
    """
    win = TABLE_WINDOW
    best = ", ".join(f"{m}: {w}" for m, w in table.best.items())
    body = table.html() + (f"<p>best = {html.escape(best)}</p>" if best else "")
    msg, _ = make_builder(server, port, env).text(text_page(body), win=win, env=env,
                                                  opts={"title": "runs compared", **_table_size(table)})
    login = resolve_credentials(username, password)
    transport = Transport(f"{server.rstrip('/')}:{port}{base_url}", timeout, *(login or (None, None)))
    try:
        if not transport.post("events", json.dumps(msg)):
            raise DeliveryError(f"the Visdom server at {server}:{port}{base_url} did not take the runs' table: "
                                f"{transport.failure}")
    finally:
        transport.close()
    return win


# helpers ------------------------------------------------------------------------------------------------------
def _followers(runs: Sequence[str | Path] | str | Path) -> list[RecordFollower]:
    if isinstance(runs, (str, Path)):
        runs = [runs]
    if not runs:
        raise ConfigError("compare(): expected at least one run folder, but got none")
    try:
        return [RecordFollower(run) for run in runs]
    except RecordError as exc:
        raise RecordError(f"compare(): {exc}") from None


def _opts(followers: Sequence[RecordFollower], plot: str) -> tuple[str, dict[str, Any]]:
    """The kind and opts of ``plot`` as the first run that has it declares them."""
    return next(f.plots[plot] for f in followers if plot in f.plots)


def _direction(meter: str, followers: Sequence[RecordFollower]) -> str:
    """``min`` or ``max``: the meter's ``best`` in a run's config.json, else from its name."""
    for follower in followers:
        try:
            config = json.loads((follower.path / CONFIG).read_text())
            best = config["meters"][meter].get("best")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if best in ("min", "max"):
            return str(best)
    return "max" if _SCORE.search(meter.replace("_", " ")) else "min"


MAX_HPARAMS_BYTES = 8 << 20  # hyperparameters are a few KiB; more is not hyperparameters (or an attack)
MAX_HPARAMS_DEPTH = 32


def _hparams(path: Path) -> dict[str, Any]:
    """The run's ``hparams.json`` as ``{name: value}`` (nested dicts flattened as ``a.b``); {} when absent.

    Raises:
        RecordError: the file is not a JSON object, larger than :data:`MAX_HPARAMS_BYTES` (refused before it is
            read) or nested deeper than :data:`MAX_HPARAMS_DEPTH`.
    """
    file = path / HPARAMS_FILE
    if not file.is_file():
        return {}
    try:
        with open(file, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            raw = stream.read(MAX_HPARAMS_BYTES + 1) if size <= MAX_HPARAMS_BYTES else b""
    except OSError as exc:
        raise RecordError(f"{file} could not be read: {exc.strerror or exc}") from None
    if size > MAX_HPARAMS_BYTES or len(raw) > MAX_HPARAMS_BYTES:
        raise RecordError(f"{file}: {max(size, len(raw))} bytes; expected a JSON object of hyperparameters of at "
                          f"most {MAX_HPARAMS_BYTES} bytes")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise RecordError(f"{file}: expected a JSON object of hyperparameters, but it is nested too deeply to "
                          "read") from None
    except ValueError as exc:
        raise RecordError(f"{file}: expected a JSON object of hyperparameters, but it is not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise RecordError(f"{file}: expected a JSON object of hyperparameters, but got {type(data).__name__}")
    return _flatten(data, file)


def _flatten(data: Mapping[str, Any], file: Path) -> dict[str, Any]:
    """``data`` with nested mappings flattened as ``a.b``, in order (walked without recursion, at most
    MAX_HPARAMS_DEPTH deep)."""
    out: dict[str, Any] = {}
    stack: list[tuple[Iterator[tuple[str, Any]], str]] = [(iter(data.items()), "")]
    while stack:
        items, prefix = stack[-1]
        for key, value in items:
            if isinstance(value, Mapping):
                if len(stack) >= MAX_HPARAMS_DEPTH:
                    raise RecordError(f"{file}: expected hyperparameters nested at most {MAX_HPARAMS_DEPTH} deep, "
                                      f"but {(prefix + str(key))[:80]!r} holds more")
                stack.append((iter(value.items()), f"{prefix}{key}."))
                break
            out[f"{prefix}{key}"] = value
        else:
            stack.pop()
    return out


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)

