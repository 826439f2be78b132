"""The experiment record of a run: hyperparameters, text, markdown, images, the command line, a summary, printed
lines, progress bars and saved models (the calls of lavd, losswise and the original flexilogger).

Every call is a method of :class:`~flexlogger.run.Run` (inherited from :class:`RecordCalls`) and is handed on by
:class:`~flexlogger.logger.FlexLogger` (``Stat.log_text(...)`` is ``Stat.run.log_text(...)``). Each one

- draws a window in the run's env through the normal path (an :class:`~flexlogger.sinks.base.Update` of kind
  ``text`` or ``image`` given to :meth:`Run.write <flexlogger.run.Run.write>`), so the run record stores it and
  ``flexlogger replay`` redraws it;
- writes a readable file into the run folder (``run.dir``, when the run has a record), each written whole (a
  temporary file, then ``os.replace``), never half;
- does nothing at all on a disabled run (``Run(disabled=True)``, ``run.disable()``, ranks other than 0): no file,
  no thread, no server contacted.

Files in the run folder::

    hparams.json                      log_hparams (merged over every call)
    text/<name>-<step>.txt            log_text (with ``expected``: the word diff, [-deleted-] {+inserted+})
    text/<name>-<step>.md             log_markdown
    images/<name>-<step>.png          log_image (the boxes drawn), images/<name>-<step>.json: the boxes
    command.md, summary.md            log_command, log_summary
    log.txt                           println, eprintln, print_table, progress
    models/model-<step>.pt            save_model;  objects/<name>-<step>.pt: save_obj

A bad argument raises :class:`RecordCallError` (a ``ValueError``) or :class:`RecordCallTypeError` (also a
``TypeError``), naming the call, the argument, what was expected and what came.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FlexLoggerError, short_repr
from .sinks.base import Update

__all__ = ["HPARAMS_PLOT", "RecordCallError", "RecordCallTypeError", "RecordCalls", "safe_name", "write_file"]

HPARAMS_PLOT = "hparams"
HPARAMS_FILE = "hparams.json"


class RecordCallError(FlexLoggerError, ValueError):
    """An experiment-record call got a bad value (the message names the call, the argument, what was expected and
    what came)."""


class RecordCallTypeError(RecordCallError, TypeError):
    """An experiment-record call got a value of the wrong type."""


def type_error(call: str, arg: str, expected: str, got: Any) -> RecordCallTypeError:
    """``log_text(): expected `text` to be a str, but got int 5``."""
    return RecordCallTypeError(f"{call}: expected `{arg}` to be {expected}, but got {type(got).__name__} "
                               f"{short_repr(got, 120)}")


def write_file(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` whole: a temporary file in the same folder, then ``os.replace`` (a reader sees
    the old file or the new one, never half of one). Makes the parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+=-]+")


def safe_name(name: str) -> str:
    """``name`` as one file name: characters other than letters, digits and ``_.@+=-`` become ``_``, and a leading
    dot too (``../x`` -> ``_.._x`` never leaves the folder)."""
    out = _UNSAFE.sub("_", name)
    return "_" + out if out.startswith(".") or not out else out


def step_suffix(step: float | None) -> str:
    """The part of a file name that names the step: ``-7``, ``-0.5``; nothing without a step."""
    if step is None:
        return ""
    return f"-{int(step)}" if float(step).is_integer() else f"-{step:g}"


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: numbers, strings, bools, None, lists and dicts as they are; numpy and 0-d torch
    numbers as numbers; arrays and tensors as lists; tuples and sets as lists; paths, enums and any other object as
    its ``str()`` (a hyperparameter such as ``torch.float32`` or a loss function is shown as it prints)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if hasattr(value, "tolist") and hasattr(value, "shape"):  # numpy arrays, torch tensors
        return jsonable(value.tolist())
    return str(value)


def as_mapping(call: str, arg: str, value: Any) -> dict[str, Any]:
    """A dict from a mapping, an ``argparse.Namespace`` or a dataclass instance (``log_hparams(args)``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, argparse.Namespace):
        return dict(vars(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise type_error(call, arg, "a dict (nested dicts allowed), an argparse.Namespace or a dataclass instance",
                     value)


def check_keys(call: str, arg: str, value: Mapping[Any, Any], path: str = "") -> None:
    """Every key of a nested mapping is a non-empty string (the keys become file fields and table rows)."""
    for key, item in value.items():
        where = f"{arg}{path}[{key!r}]"
        if not isinstance(key, str) or not key:
            raise RecordCallTypeError(f"{call}: expected the keys of `{arg}` to be non-empty strings, but got "
                                      f"{type(key).__name__} {short_repr(key, 60)} at {where}")
        if isinstance(item, Mapping):
            check_keys(call, arg, item, f"{path}[{key!r}]")


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'optim': {'lr': 0.1}}`` -> ``{'optim.lr': 0.1}`` (an empty nested dict stays as one row, ``{}``)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(flatten(item, name + "."))
        else:
            out[name] = item
    return out


def merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``, nested dicts merged key by key."""
    out = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def cell(value: Any) -> str:
    """A hyperparameter as shown in the table window: JSON for lists and dicts, ``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class RecordCalls:
    """The experiment-record calls of a :class:`~flexlogger.run.Run` (see the module docstring).

    The state they keep (the hyperparameters so far, each window's options) lives on the run, made on first use.
    """

    if TYPE_CHECKING:  # given by Run
        env: str
        uid: str
        dir: Path | None
        disabled: bool

        def write(self, updates: Iterable[Update]) -> None: ...

        def next_seq(self) -> int: ...

        def claim(self, owner: object, plots: Iterable[str]) -> None: ...

    # the windows -------------------------------------------------------------------------------------------
    def _record_state(self) -> dict[str, Any]:
        state: dict[str, Any] | None = self.__dict__.get("_record_calls")
        if state is None:
            state = self.__dict__["_record_calls"] = {"opts": {}, "hparams": {}}
        return state

    def _draw(self, plot: str, kind: str, data: Mapping[str, Any], step: float | None,
              opts: Mapping[str, Any] | None = None) -> None:
        """Draw one window through the run's sinks (the record stores it, the Visdom sender draws it)."""
        self.claim(self, [plot])
        cache: dict[str, Mapping[str, Any]] = self._record_state()["opts"]
        given = MappingProxyType({"title": plot, **(opts or {})})
        seen = cache.get(plot)
        if seen is None or dict(seen) != dict(given):  # the same object each time: the record declares it once
            seen = cache[plot] = given
        self.write([Update(plot, kind, 0 if step is None else step, dict(data), seen, self.next_seq())])

    # hyperparameters ---------------------------------------------------------------------------------------
    def log_hparams(self, hparams: Mapping[str, Any] | argparse.Namespace | Any) -> None:
        """Record hyperparameters: a table window ``hparams`` (nested keys as ``optim.lr``) and ``hparams.json``.

        Args:
            hparams: a dict (nested dicts allowed), an ``argparse.Namespace`` or a dataclass instance. Values
                that are not JSON (a path, ``torch.float32``, a function) are stored as their ``str()``; tensors
                and arrays as lists. Several calls merge: later values win, nested dicts key by key.

        Raises:
            RecordCallTypeError: ``hparams`` is not a mapping, a Namespace or a dataclass, or a key is not a
                non-empty string.

        Example:
            >>> run.log_hparams({'lr': 0.1, 'optim': {'name': 'adam', 'betas': [0.9, 0.999]}})
        """
        if self.disabled:
            return
        call = "log_hparams()"
        given = as_mapping(call, "hparams", hparams)
        check_keys(call, "hparams", given)
        state = self._record_state()
        state["hparams"] = merge(state["hparams"], jsonable(given))
        everything: dict[str, Any] = state["hparams"]
        if self.dir is not None:
            write_file(self.dir / HPARAMS_FILE, json.dumps(everything, indent=2) + "\n")
        self._draw(HPARAMS_PLOT, "text", {k: cell(v) for k, v in flatten(everything).items()}, None)

    @property
    def hparams(self) -> dict[str, Any]:
        """The hyperparameters logged so far (as stored in ``hparams.json``)."""
        return json.loads(json.dumps(self._record_state()["hparams"]))
