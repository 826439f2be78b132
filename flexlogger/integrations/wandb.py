"""The part of wandb's API that training scripts use, on a flexlogger :class:`~flexlogger.core.run.Run`.

A script written for wandb runs on flexlogger when its import line changes (the wandb package is not needed)::

    import flexlogger.wandb as wandb

    run = wandb.init(project="mnist", config={"lr": 0.1})   # the project is the Visdom env
    for step in range(100):
        wandb.log({"train/loss": loss, "val/loss": val})     # one window `loss`, traces `train` and `val`
    wandb.finish()

What maps to what:
    - ``init(project=, name=, config=, dir=, id=, mode=)``: a Run in env ``project`` (``$WANDB_PROJECT``, else
      ``main``) whose uid is ``id`` (else a new one), record under ``dir`` (else ``$FLEXLOGGER_LOG_DIR`` or
      ``runs``); ``config`` goes to ``log_hparams``. ``mode='disabled'`` (or ``$WANDB_MODE=disabled``) makes a
      disabled run (nothing written, every call works); ``mode='offline'`` keeps the record and sends nothing to
      Visdom. The server is ``$FLEXLOGGER_SERVER``/``$FLEXLOGGER_PORT`` (see ``flexlogger.defaults``).
    - ``log(data, step=None, commit=None)``: wandb's step rule: without ``step`` each committed ``log`` is one
      step (0, 1, 2, ...); ``commit=False`` adds to the current step; a ``step`` larger than the current one
      commits what is pending and moves to it, a smaller one is dropped with a warning (as wandb does). Numbers,
      0-d tensors and numpy scalars are drawn in line windows (:func:`~flexlogger.integrations.windows.split_key`),
      :class:`Histogram` in histogram windows, :class:`Image` with ``log_image``, :class:`Table` as a Markdown table
      and :class:`Html` and strings with ``log_text`` (HTML is shown as its source, never run). Nested dicts are
      flattened with ``/``.
    - ``summary``: the last value of each key (or ``min``/``max``/``mean`` by :meth:`WandbRun.define_metric`) and
      what the script sets, in ``summary.json`` under ``summary``.
    - ``watch(model, log='gradients'|'parameters'|'all', log_freq=1000)``: a
      :class:`~flexlogger.model.logger.TooledModelLogger` (mean and std per layer, and histograms) that records one
      step per committed ``log``, every ``log_freq``-th.
    - Anything else of wandb's API (``wandb.Artifact``, ``run.log_artifact``, ``wandb.plot``, ...), and a keyword
      of ``init``, ``define_metric``, ``Image`` or ``Table`` not in their signatures here (``entity=``): one
      :class:`WandbCompatWarning` naming it, then a stand-in that accepts any call, so training goes on.

Keywords in these signatures that have no effect here, accepted as wandb accepts them and ignored: ``sync``,
``quiet``, ``reinit``, ``criterion``, ``idx``, ``allow_val_change``, ``step_sync``, ``hidden``, ``goal``,
``overwrite``, ``Image(mode=)`` and ``Html(inject=)``.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import fnmatch
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from flexlogger.core.logger import FlexLogger
from flexlogger.core.plots import Histogram as _Counts
from flexlogger.core.run import Run
from flexlogger.defaults import DEFAULT_ENV, DEFAULT_LOG_DIR
from flexlogger.errors import ConfigError, FlexLoggerError, UnknownNameError, short_repr, unknown_name_message
from flexlogger.experiment.folder import user_stacklevel
from flexlogger.experiment.textdiff import markdown_table
from flexlogger.integrations.common import Guard, is_number, warn_unsupported
from flexlogger.integrations.windows import Windows, as_float, bin_counts
from flexlogger.model.logger import TooledModelLogger

__all__ = ["Config", "Histogram", "Html", "Image", "Summary", "Table", "WandbCompatWarning", "WandbRun",
           "WandbUsageError", "define_metric", "finish", "init", "log", "login", "unwatch", "watch"]

MODES = ("online", "offline", "disabled", "shared", "run")
SUMMARIES = ("min", "max", "mean", "last", "first", "none")
# summary mode -> whether a new value replaces the kept one (a NaN never replaces a number, a number replaces a NaN)
_REPLACES = {"min": lambda new, old: old != old or new < old, "max": lambda new, old: old != old or new > old,
             "first": lambda new, old: False}
WATCH_LOGS: dict[str | None, tuple[str, ...]] = {"gradients": ("Weight_grad",), "parameters": ("Weights",),
                                                 "all": ("Weights", "Weight_grad"), None: ()}


class WandbCompatWarning(UserWarning):
    """A part of wandb's API that flexlogger does not have was called: it did nothing, and training goes on."""


class WandbUsageError(FlexLoggerError, RuntimeError):
    """A call that needs a run came before ``init()`` (as wandb, which raises then too)."""


_warned: set[str] = set()


def _unsupported(name: str) -> _Absent:
    """Warn once that ``name`` is not supported; return a stand-in that accepts any use."""
    warn_unsupported("flexlogger.wandb", name, WandbCompatWarning, _warned)
    return _Absent(name)


def _unsupported_options(call: str, options: Mapping[str, Any]) -> None:
    """Warn once about each keyword of wandb's ``call`` that flexlogger does not have."""
    for option in sorted(options):
        _unsupported(f"{call}({option}=...)")


class _Absent:
    """What an unsupported name gives: callable, with any attribute, usable in ``with``; false."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> _Absent:
        return self

    def __getattr__(self, name: str) -> _Absent:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Absent(f"{self._name}.{name}")

    def __enter__(self) -> _Absent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __bool__(self) -> bool:
        return False

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __repr__(self) -> str:
        return f"<unsupported {self._name}>"


# media -------------------------------------------------------------------------------------------------------------
class Image:
    """An image for :func:`log`: an array or tensor (H x W, C x H x W or H x W x C), a PIL image or a file path.

    Args:
        data_or_path: the image.
        caption: shown in a text window ``<key> caption`` beside the image, and kept in the record.
    """

    def __init__(self, data_or_path: Any, mode: str | None = None, caption: str | None = None, **ignored: Any) -> None:
        if isinstance(data_or_path, (str, Path)):
            from PIL import Image as PILImage

            with PILImage.open(data_or_path) as opened:
                data_or_path = np.asarray(opened.convert("RGB"))
        self.data = data_or_path
        self.caption = caption
        _unsupported_options("Image", ignored)


class Histogram:
    """A histogram for :func:`log`: of a sequence of values, or given as ``np_histogram=(counts, edges)``.

    Args:
        sequence: the values (a list, an array or a tensor); their bin counts are what travels.
        np_histogram: ``numpy.histogram``'s ``(counts, edges)`` (equal bins).
        num_bins: the number of bins of ``sequence`` (at most 512, as wandb).

    Raises:
        ConfigError: neither or both of ``sequence`` and ``np_histogram``, or unequal bins.
    """

    def __init__(self, sequence: Any = None, np_histogram: tuple[Any, Any] | None = None, num_bins: int = 64) -> None:
        if (sequence is None) == (np_histogram is None):
            raise ConfigError("Histogram(): expected one of `sequence` (the values) or `np_histogram` "
                              "((counts, edges)), but got " + ("both" if sequence is not None else "neither"))
        if np_histogram is not None:
            counts, edges = (np.asarray(a, dtype=np.float64).reshape(-1) for a in np_histogram)
            if len(edges) != len(counts) + 1 or len(counts) == 0:
                raise ConfigError(f"Histogram(): expected `np_histogram` as (counts, edges) with one more edge than "
                                  f"counts, but got {len(counts)} counts and {len(edges)} edges")
            self.counts = _Counts(tuple(float(c) for c in counts), float(edges[0]), float(edges[-1]))
            return
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 1 <= num_bins <= 512:
            raise ConfigError(f"Histogram(): expected `num_bins` to be an int from 1 to 512, but got "
                              f"{short_repr(num_bins)}")
        self.counts = bin_counts(sequence, num_bins)


class Table:
    """A table for :func:`log`, shown as a Markdown table: ``Table(columns=['a', 'b'], data=[[1, 2]])``, or a
    pandas ``dataframe``. ``add_data(*row)`` appends a row."""

    def __init__(self, columns: Sequence[str] | None = None, data: Sequence[Sequence[Any]] | None = None,
                 dataframe: Any = None, **ignored: Any) -> None:
        if dataframe is not None:
            columns, data = [str(c) for c in dataframe.columns], dataframe.values.tolist()
        self.data: list[list[Any]] = [list(row) for row in (data or [])]
        width = max((len(r) for r in self.data), default=0)
        self.columns = list(columns) if columns is not None else [f"c{i}" for i in range(width)]
        _unsupported_options("Table", ignored)

    def add_data(self, *row: Any) -> None:
        self.data.append(list(row))

    def markdown(self) -> str:
        return markdown_table([str(c) for c in self.columns], self.data)


class Html:
    """HTML for :func:`log`, shown as its source in a text window (flexlogger never runs a script's HTML)."""

    def __init__(self, data: str | Any, inject: bool = True) -> None:
        self.html = data if isinstance(data, str) else data.read()


# config and summary ------------------------------------------------------------------------------------------------
class Config(Mapping[str, Any]):
    """``run.config``: a read-only mapping with attribute access; setting a key (as an item, an attribute or with
    ``update()``) writes it with ``log_hparams``."""

    def __init__(self, run: Run) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_items", {})

    def update(self, values: Mapping[str, Any] | argparse.Namespace | Any = None, allow_val_change: bool = False,
               **more: Any) -> None:
        given = {**_as_dict(values), **more}
        self._items.update(given)
        if given:
            self._run.log_hparams(given)

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        self.update({k: v for k, v in values.items() if k not in self._items})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}; keys: {', '.join(self._items) or '(none)'}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"


class Summary(dict):  # type: ignore[type-arg]
    """``run.summary``: a dict of the run's final values, written to ``summary.json`` (under ``summary``) when the
    script sets a key and when the run finishes."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self._run = run

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.write()

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(*args, **kwargs)
        self.write()

    def write(self) -> None:
        if not self._run.disabled and not self._run.closed:
            self._run.add_to_summary("summary", {k: _plain(v) for k, v in self.items()})


def _plain(value: Any) -> Any:
    """A one-element tensor or a numpy scalar as a Python number; anything else as it is."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        return value.item()
    return value


def _as_dict(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return dict(values)
    if isinstance(values, argparse.Namespace):
        return vars(values).copy()
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return dataclasses.asdict(values)
    raise ConfigError(f"config: expected a dict, an argparse.Namespace or a dataclass instance, but got "
                      f"{type(values).__name__} {short_repr(values)}")


def _flatten(data: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, name + "/", out)
        else:
            out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class _Metric:
    pattern: str
    step_metric: str | None
    summary: str | None


# the run -----------------------------------------------------------------------------------------------------------
class WandbRun:
    """What ``init()`` returns: wandb's ``Run`` on a flexlogger :class:`~flexlogger.core.run.Run` (``.run``).

    Attributes:
        run: the flexlogger run (its record folder is ``run.dir``).
        config, summary: see :class:`Config` and :class:`Summary`.
        name, id, project, dir: the run's display name, uid, Visdom env and record folder.
    """

    def __init__(self, run: Run, name: str | None, project: str) -> None:
        self.run = run
        self.id = run.uid
        self.name = name or run.uid
        self.project = project
        self.config = Config(run)
        self.summary = Summary(run)
        self._guard = Guard("flexlogger.wandb")
        self._windows = Windows(run, self._guard)
        self._step = 0
        self._pending: dict[str, Any] = {}
        self._last: dict[str, Any] = {}  # key -> its last logged value (a define_metric step_metric's x)
        self._metrics: list[_Metric] = []
        self._stats: dict[str, tuple[float, int]] = {}  # key -> (sum, count), for summary='mean'
        self._watched: list[TooledModelLogger] = []
        self._model_logger: FlexLogger | None = None
        self._finished = False

    @property
    def dir(self) -> str | None:
        return str(self.run.dir) if self.run.dir is not None else None

    @property
    def step(self) -> int:
        """The step the next committed :meth:`log` writes at."""
        return self._step

    @property
    def disabled(self) -> bool:
        return self.run.disabled

    # logging -----------------------------------------------------------------------------------------------
    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None,
            sync: bool | None = None) -> None:
        """Log ``data`` at the current step (see the module docstring for the step rule and the value kinds).

        Raises:
            ConfigError: ``data`` is not a dict with string keys, or ``step`` is not an int >= 0.
        """
        self._check_open("log()")
        if not isinstance(data, Mapping):
            raise ConfigError(f"log(): expected `data` to be a dict of name -> value, but got "
                              f"{type(data).__name__} {short_repr(data)}")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
                raise ConfigError(f"log(): expected `step` to be an int >= 0 or None, but got {short_repr(step)}")
            step = int(step)
            if step < self._step:
                warnings.warn(f"flexlogger.wandb: log(step={step}) is before the current step {self._step}: steps "
                              f"only increase, so this data is dropped (as wandb does): {sorted(data)}",
                              WandbCompatWarning, stacklevel=user_stacklevel())
                return
            if step > self._step:
                self._commit()
                self._step = step
        for key, value in _flatten(data, "", {}).items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"log(): expected every key of `data` to be a non-empty string, but got "
                                  f"{short_repr(key)}")
            self._pending[key] = value
        if commit or (commit is None and step is None):
            self._commit()
            self._step += 1

    def _commit(self) -> None:
        """Draw the pending row at the current step, advance the watched models' statistics, update the summary."""
        row, self._pending = self._pending, {}
        if not row:
            return
        step = self._step
        lines: dict[tuple[str, float], dict[str, Any]] = {}
        scalars = {k: v for k, v in row.items() if type(v) is float or type(v) is int or is_number(v)}
        self._last.update(scalars)
        place, summary = self._windows.place, self.summary
        for key, value in scalars.items():
            where = place(key)
            if where is not None:
                x = self._x(key, step) if self._metrics else step
                lines.setdefault((where[0], x), {})[where[1]] = value
            if self._metrics or type(value) is not float:
                self._summarise(key, value)
            else:  # the hot path: the last value of a float
                dict.__setitem__(summary, key, value if math.isfinite(value) else str(value))
        for key, value in row.items():
            if key not in scalars:
                self._draw_media(key, value, step)
        for (window, x), values in lines.items():
            self._windows.draw(window, values, x)
        for tooled in self._watched:
            tooled.step(log=True)

    def _draw_media(self, key: str, value: Any, step: int) -> None:
        if isinstance(value, Histogram):
            where = self._windows.place(key, "histogram")
            if where is not None:
                self._windows.draw(where[0], {where[1]: value.counts}, self._x(key, step))
        elif isinstance(value, Image) or (isinstance(value, (list, tuple)) and value
                                          and all(isinstance(v, Image) for v in value)):
            self._images(key, [value] if isinstance(value, Image) else list(value), step)
        elif isinstance(value, Table):
            self.run.log_markdown(key, value.markdown(), step)
        elif isinstance(value, (Html, str)):
            self.run.calls.keyed_text(key, value.html if isinstance(value, Html) else value, step)
        else:
            self._guard.warn("log", f"key {key!r}: {type(value).__name__} {short_repr(value, 80)} is not a value "
                                    "flexlogger.wandb draws (a number, Image, Histogram, Table, Html or str): skipped")

    def _images(self, key: str, images: list[Image], step: int) -> None:
        for i, image in enumerate(images):
            name = key if len(images) == 1 else f"{key}.{i}"
            self.run.log_image(name, image.data, step)
            if image.caption:
                self.run.calls.keyed_text(f"{name} caption", str(image.caption), step)

    def _metric(self, key: str) -> _Metric | None:
        """The last :meth:`define_metric` whose glob matches ``key``."""
        return next((m for m in reversed(self._metrics) if fnmatch.fnmatchcase(key, m.pattern)), None)

    def _x(self, key: str, step: int) -> float:
        metric = self._metric(key) if self._metrics else None
        if metric is None or metric.step_metric is None or metric.step_metric == key:
            return step
        x = self._last.get(metric.step_metric)
        return step if x is None else float(x)

    def _summarise(self, key: str, value: Any) -> None:
        """Keep ``value`` in the summary as ``key``'s metric says (:data:`SUMMARIES`; default ``last``)."""
        metric = self._metric(key) if self._metrics else None
        mode = metric.summary if metric is not None and metric.summary else "last"
        if mode == "none":
            return
        if mode == "last":
            new = _plain(value)
            new = as_float(new) if isinstance(new, (float, np.ndarray)) else new  # an int stays an int
        else:
            new, old = as_float(value), dict.get(self.summary, key)
            if isinstance(old, str):  # NaN and +-Inf are kept as 'nan', 'inf', '-inf' (JSON has no such numbers)
                old = float(old)
            if mode == "mean":
                total, n = self._stats.get(key, (0.0, 0))
                self._stats[key] = (total + new, n + 1)
                new = (total + new) / (n + 1)
            elif old is not None and not _REPLACES[mode](new, old):
                new = old
        dict.__setitem__(self.summary, key, new if not isinstance(new, float) or math.isfinite(new) else str(new))

    def define_metric(self, name: str, step_metric: str | None = None, step_sync: bool | None = None,
                      hidden: bool | None = None, summary: str | None = None, goal: str | None = None,
                      overwrite: bool | None = None, **ignored: Any) -> None:
        """Say how the keys matching ``name`` (a glob: ``val/*``) are drawn and summarised: ``step_metric``, a key
        whose last logged value is their x; ``summary``, ``min``, ``max``, ``mean``, ``last``, ``first`` or ``none``
        (``'min,max'`` keeps the first).

        Raises:
            UnknownNameError: an unknown summary.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"define_metric(): expected `name` to be a non-empty string (a key or a glob), but "
                              f"got {short_repr(name)}")
        mode = summary.split(",")[0].strip() if isinstance(summary, str) else summary
        if mode is not None and mode not in SUMMARIES:
            raise UnknownNameError("define_metric(): " + unknown_name_message("summary", mode, SUMMARIES))
        _unsupported_options("define_metric", ignored)
        self._metrics.append(_Metric(name, step_metric, mode))

    # models ------------------------------------------------------------------------------------------------
    def watch(self, models: torch.nn.Module | Sequence[torch.nn.Module], criterion: Any = None,
              log: str | None = "gradients", log_freq: int = 1000, idx: int | None = None,
              log_graph: bool = False) -> None:
        """Draw the models' per-layer mean and std and histograms of their ``log`` groups (``gradients``,
        ``parameters`` or ``all``), one step per committed :meth:`log`, every ``log_freq``-th step.

        Raises:
            UnknownNameError: an unknown ``log``.
            ConfigError: ``log_freq`` is not an int >= 1, or a model is not a ``torch.nn.Module``.
        """
        self._check_open("watch()")
        if log not in WATCH_LOGS:
            raise UnknownNameError("watch(): " + unknown_name_message("log", log, [k for k in WATCH_LOGS if k]))
        if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
            raise ConfigError(f"watch(): expected `log_freq` to be an int >= 1, but got {short_repr(log_freq)}")
        if log_graph:
            _unsupported("watch(log_graph=True)")
        groups = WATCH_LOGS[log]
        if not groups:
            return
        if self._model_logger is None:
            self._model_logger = FlexLogger(run=self.run)
        for model in [models] if isinstance(models, torch.nn.Module) else list(models):
            if not isinstance(model, torch.nn.Module):
                raise ConfigError(f"watch(): expected a torch.nn.Module or a list of them, but got "
                                  f"{type(model).__name__}")
            self._watched.append(TooledModelLogger(model, logger=self._model_logger, stats=("mean", "std"),
                                                   groups=groups, every=log_freq, histograms=list(groups),
                                                   anomaly=False, hold=0))

    def unwatch(self, models: Any = None) -> None:
        """Stop watching ``models`` (all when None): their hooks are removed, their windows stay."""
        chosen = None if models is None else {id(m) for m in ([models] if isinstance(models, torch.nn.Module)
                                                               else models)}
        keep: list[TooledModelLogger] = []
        for tooled in self._watched:
            if chosen is None or id(tooled.tooled.model) in chosen:
                tooled.close()
            else:
                keep.append(tooled)
        self._watched = keep

    # the end -----------------------------------------------------------------------------------------------
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Commit what is pending, write the summary and close the run (``crashed`` for a non-zero exit code)."""
        if self._finished:
            return
        self._finished = True
        global run
        try:
            if not self.run.closed:
                self._commit()
                self.unwatch()
                self.summary.write()
        finally:
            if run is self:
                run = None
            self.run.close("finished" if not exit_code else "crashed")

    def __enter__(self) -> WandbRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish(exit_code=0 if exc is None else 1)

    def _check_open(self, call: str) -> None:
        if self._finished:
            raise WandbUsageError(f"{call}: run {self.id!r} is finished; call flexlogger.wandb.init() for a new one")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _unsupported(f"run.{name}")

    def __repr__(self) -> str:
        return f"<flexlogger.wandb run {self.name!r} (project {self.project!r}, {self.run!r})>"


# the module's functions --------------------------------------------------------------------------------------------
run: WandbRun | None = None
"""The current run (``wandb.run``), None before :func:`init` and after :func:`finish`."""


def init(project: str | None = None, name: str | None = None, config: Any = None, dir: str | Path | None = None,
         id: str | None = None, tags: Sequence[str] | None = None, notes: str | None = None,
         group: str | None = None, mode: str | None = None, reinit: Any = None, job_type: str | None = None,
         **ignored: Any) -> WandbRun:
    """Start a run (finishing the current one first); see the module docstring.

    Raises:
        UnknownNameError: an unknown ``mode``.
        ConfigError: a bad ``project`` (env), ``id`` (uid) or ``config``.
    """
    global run
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    if mode == "dryrun":
        mode = "offline"
    if mode not in MODES:
        raise UnknownNameError("init(): " + unknown_name_message("mode", mode, MODES))
    _unsupported_options("init", ignored)
    if run is not None:
        run.finish()
    project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_ENV
    options: dict[str, Any] = {"env": project, "uid": id or os.environ.get("WANDB_RUN_ID") or None,
                               "log_dir": dir if dir is not None else DEFAULT_LOG_DIR}
    if mode == "offline":
        options["server"] = None
    if mode == "disabled":
        options["disabled"] = True
    new = WandbRun(Run._from_options("flexlogger.wandb.init()", options), name, project)
    try:
        info = {k: v for k, v in (("name", name), ("tags", list(tags) if tags else None), ("notes", notes),
                                  ("group", group), ("job_type", job_type)) if v}
        if info and not new.disabled:
            new.run.add_to_summary("wandb", info)
        if config is not None:
            new.config.update(config)
    except BaseException:
        new.run.close("crashed")
        raise
    run = new
    return new


@atexit.register
def _commit_at_exit() -> None:
    """A script that never calls ``finish()``: its last row (``commit=False`` or a ``step=`` not yet committed) is
    drawn and its summary written before the run itself is closed at exit (``finished``, or ``crashed`` with the
    error, like any run; this handler, registered after the run's, runs before it)."""
    current = run
    if current is None or current.run.closed:
        return
    try:
        current._commit()
        current.summary.write()
    except Exception:  # never fail interpreter shutdown
        pass


def _current(call: str) -> WandbRun:
    if run is None:
        raise WandbUsageError(f"flexlogger.wandb.{call}: no run; call flexlogger.wandb.init() first")
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None) -> None:
    """:meth:`WandbRun.log` of the current run."""
    _current("log()").log(data, step, commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run (nothing when there is none)."""
    if run is not None:
        run.finish(exit_code)


def watch(models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
          idx: int | None = None, log_graph: bool = False) -> None:
    """:meth:`WandbRun.watch` of the current run."""
    _current("watch()").watch(models, criterion, log, log_freq, idx, log_graph)


def unwatch(models: Any = None) -> None:
    """:meth:`WandbRun.unwatch` of the current run."""
    _current("unwatch()").unwatch(models)


def define_metric(name: str, step_metric: str | None = None, **options: Any) -> None:
    """:meth:`WandbRun.define_metric` of the current run."""
    _current("define_metric()").define_metric(name, step_metric, **options)


def login(*args: Any, **kwargs: Any) -> bool:
    """Nothing to log in to (a Visdom login comes from ``VISDOM_USERNAME``/``VISDOM_PASSWORD``): True."""
    return True


def module_getattr(name: str) -> Any:
    """The module's ``__getattr__``: ``config`` and ``summary`` of the current run, and a warned stand-in for any
    other name of wandb's API."""
    if name == "run":
        return run
    if name in ("config", "summary"):
        return getattr(_current(name), name)
    if name.startswith("_"):
        raise AttributeError(name)
    return _unsupported(f"wandb.{name}")
