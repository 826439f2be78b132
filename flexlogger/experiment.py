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
import pickle
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from tabulate import tabulate

from . import images
from .errors import FlexLoggerError, short_repr
from .sinks.base import Update
from .textdiff import diff_html, diff_text, markdown_html, markdown_table, pre, word_diff

__all__ = ["HPARAMS_PLOT", "HTML_OPT", "STATUS_PLOT", "RecordCallError", "RecordCallTypeError", "RecordCalls",
           "command_line", "safe_name", "unwrap_model", "write_file"]

HPARAMS_PLOT = "hparams"
HPARAMS_FILE = "hparams.json"
STATUS_PLOT = "run_status"
SUMMARY_PLOT = "run_summary"
SUMMARY_FILE = "summary.json"
LOG_FILE = "log.txt"
HTML_OPT = "html"
"""A ``text`` window whose opts hold ``html: True`` shows its one value as HTML (made by this module, every piece
of user text escaped) instead of the escaped table of values."""
STATUS_EVERY = 1.0
"""Seconds between two rewrites of ``summary.json`` (and the status window) while a run is running; ``flush()``
and ``close()`` write them at once."""
T = TypeVar("T")


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


def check_max_steps(value: Any) -> list[str]:
    """The problems of a ``max_steps`` option (none or one)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return []
    return [f"max_steps: expected a positive int (the number of steps the run will log) or None, but got "
            f"{short_repr(value, 60)}"]


def check_name(call: str, name: Any, arg: str = "name") -> str:
    """A window or file name: a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise type_error(call, arg, "a non-empty string", name) if not isinstance(name, str) else RecordCallError(
            f"{call}: expected `{arg}` to be a non-empty string, but got {name!r}")
    return name


def check_step(call: str, step: Any) -> int | float | None:
    """``step`` as logged: None, or a finite number (an integral one as an int: file names ``-7``, not ``-7.0``)."""
    if step is None:
        return None
    if hasattr(step, "item") and getattr(step, "ndim", 0) == 0:
        step = step.item()  # a 0-d tensor or numpy number
    if not isinstance(step, numbers.Real) or isinstance(step, bool):
        raise type_error(call, "step", "a finite number or None", step)
    if not math.isfinite(float(step)):
        raise RecordCallError(f"{call}: expected `step` to be a finite number or None, but got {step!r}")
    number = float(step)
    return int(number) if number.is_integer() else number


def check_text(call: str, arg: str, value: Any) -> str:
    if not isinstance(value, str):
        raise type_error(call, arg, "a str", value)
    return value


def iso(t: float | None) -> str | None:
    """A local time as ``2026-11-30T11:40:02+0000`` (as the run record writes times)."""
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def duration(seconds: float) -> str:
    """``0.42 s`` under a minute, else ``0:03:12``, ``1 day, 2:00:00``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days} day{'s' if days > 1 else ''}, {text}" if days else text


# models -------------------------------------------------------------------------------------------------------
def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile`` wrappers (any
    nesting), whose ``state_dict()`` keys load into the model as defined (no ``module.`` or ``_orig_mod.``)."""
    wrappers: tuple[type, ...] = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while True:
        inner = model.module if isinstance(model, wrappers) else getattr(model, "_orig_mod", None)  # torch.compile
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def save_torch(call: str, arg: str, obj: Any, path: Path) -> Path:
    """``torch.save(obj)`` to ``path`` whole (a temporary file, then ``os.replace``); nothing is left on failure.

    Raises:
        RecordCallError: ``obj`` cannot be pickled (a lambda, an open file, a lock, ...).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        raise RecordCallError(f"{call}: expected `{arg}` to be an object torch.save can pickle (tensors, numbers, "
                              f"lists, dicts, classes defined at module level), but got {type(obj).__name__} "
                              f"{short_repr(obj, 80)}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# the command line ---------------------------------------------------------------------------------------------
def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The arguments that make ``parser`` give back ``args``: ``parser.parse_args(command_line(parser, args))``
    equals ``args`` for store, store_true/false, store_const, append, append_const, extend, count,
    BooleanOptionalAction and sub-commands. Positionals come first, then options (``--opt=value`` for one value,
    so a value starting with ``-`` is read as a value)."""
    positionals: list[str] = []
    options: list[str] = []
    tail: list[str] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.dest == argparse.SUPPRESS:
            if isinstance(action, argparse._SubParsersAction):
                pass
            else:
                continue
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
            if chosen is None:
                chosen = next((name for name, sub in action.choices.items() if _used_by(sub, args)), None)
            if chosen is not None:
                tail = [str(chosen), *command_line(action.choices[chosen], args)]
            continue
        if not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if not action.option_strings:
            positionals += [str(v) for v in value] if isinstance(value, list) else [] if value is None else [
                str(value)]
            continue
        options += _option_words(action, value)
    return [*positionals, *options, *tail]


def _used_by(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether ``args`` holds every destination of ``parser``'s own arguments (a sub-command without a dest)."""
    dests = [a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.dest != "help"]
    return bool(dests) and all(hasattr(args, d) for d in dests)


def _option_words(action: argparse.Action, value: Any) -> list[str]:
    flag = max(action.option_strings, key=len)  # the long form reads best
    if isinstance(action, argparse.BooleanOptionalAction):
        if value is None:
            return []
        positive = next(o for o in action.option_strings if not o.startswith("--no-"))
        return [positive] if value else ["--no-" + positive[2:]]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag] if value is True else []
    if isinstance(action, argparse._StoreFalseAction):
        return [flag] if value is False else []
    if isinstance(action, argparse._StoreConstAction):
        return [flag] if value == action.const and value != action.default else []
    if isinstance(action, argparse._AppendConstAction):
        default = list(action.default or [])
        added = list(value or [])[len(default):]
        return [flag] * sum(1 for v in added if v == action.const)
    if isinstance(action, argparse._CountAction):
        return [flag] * max(0, int(value or 0) - int(action.default or 0))
    if value is None:
        return []
    if isinstance(action, argparse._AppendAction):
        default = list(action.default or [])
        out: list[str] = []
        for item in list(value)[len(default):]:
            out += _valued(flag, item, action.nargs)
        return out
    if isinstance(action, argparse._ExtendAction):
        default = list(action.default or [])
        added = list(value)[len(default):]
        return [flag, *map(str, added)] if added else []
    return _valued(flag, value, action.nargs)


def _valued(flag: str, value: Any, nargs: Any) -> list[str]:
    if isinstance(value, (list, tuple)) and (nargs not in (None, "?") or nargs == 1):
        return [flag, *map(str, value)] if value else ([flag] if nargs in ("*", "?") else [])
    return [f"{flag}={value}"]


def option_rows(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[list[Any]]:
    """``[option, value, default, changed]`` for every argument of ``parser`` (sub-commands' too)."""
    rows: list[list[Any]] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if _used_by(sub, args):
                    rows += option_rows(sub, args)
            continue
        if not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        name = ", ".join(action.option_strings) or action.dest
        default = None if action.default is argparse.SUPPRESS else action.default
        rows.append([name, value, default, "yes" if value != default else ""])
    return rows


# the summary ---------------------------------------------------------------------------------------------------
def git_info(repo: Path) -> dict[str, Any] | None:
    """The git commit, branch, status and diff (of tracked files against HEAD, plus the untracked files' names)
    of the repository holding ``repo``; None when it is not in one or git is not installed."""

    def git(*words: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *words], capture_output=True, text=True, timeout=30,
                              check=True)
        return done.stdout

    try:
        root = git("rev-parse", "--show-toplevel").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        commit = git("rev-parse", "HEAD").strip()
    except subprocess.SubprocessError:  # a repository without a commit yet
        commit = ""
    branch = git("rev-parse", "--abbrev-ref", "HEAD").strip() if commit else git(
        "symbolic-ref", "--short", "HEAD").strip()
    status = git("status", "--porcelain").splitlines()
    diff = git("diff", "HEAD") if commit else ""
    untracked = [line[3:] for line in status if line.startswith("??")]
    return {"root": root, "commit": commit, "branch": branch, "dirty": bool(status), "changed": status,
            "untracked": untracked, "diff": diff}


def fenced(text: str, lang: str = "") -> str:
    """``text`` as a Markdown code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


class RecordCalls:
    """The experiment-record calls of a :class:`~flexlogger.run.Run` (see the module docstring).

    The state they keep (the hyperparameters so far, each window's options, the status) lives on the run, made on
    first use.
    """

    if TYPE_CHECKING:  # given by Run
        env: str
        uid: str
        dir: Path | None
        disabled: bool
        status: str
        started: float
        max_steps: int | None
        _record: Any
        _opened: bool
        _summary: dict[str, Any]

        def write(self, updates: Iterable[Update]) -> None: ...

        def next_seq(self) -> int: ...

        def claim(self, owner: object, plots: Iterable[str]) -> None: ...

    # state, windows, files ---------------------------------------------------------------------------------
    def _record_state(self) -> dict[str, Any]:
        state: dict[str, Any] | None = self.__dict__.get("_record_calls")
        if state is None:
            state = self.__dict__["_record_calls"] = {
                "opts": {}, "hparams": {}, "best": {}, "last_update": None, "last_step": None, "written": 0.0,
                "drawing": False}
        return state

    def _draw(self, plot: str, kind: str, data: Mapping[str, Any], step: float | None,
              opts: Mapping[str, Any] | None = None) -> None:
        """Draw one window through the run's sinks (the record stores it, the Visdom sender draws it)."""
        self.claim(self, [plot])
        state = self._record_state()
        cache: dict[str, Mapping[str, Any]] = state["opts"]
        given = MappingProxyType({"title": plot, **(opts or {})})
        seen = cache.get(plot)
        if seen is None or dict(seen) != dict(given):  # the same object each time: the record declares it once
            seen = cache[plot] = given
        state["drawing"] = True
        try:
            self.write([Update(plot, kind, 0 if step is None else step, dict(data), seen, self.next_seq())])
        finally:
            state["drawing"] = False

    def _draw_html(self, plot: str, html: str, step: float | None) -> None:
        self._draw(plot, "text", {plot: html}, step, {HTML_OPT: True})

    def _file(self, relative: str, data: str | bytes) -> Path | None:
        """Write a file of the run folder whole; None (nothing written) without a run folder."""
        if self.dir is None:
            return None
        return write_file(self.dir / relative, data)

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
        self._file(HPARAMS_FILE, json.dumps(everything, indent=2) + "\n")
        self._draw(HPARAMS_PLOT, "text", {k: cell(v) for k, v in flatten(everything).items()}, None)

    @property
    def hparams(self) -> dict[str, Any]:
        """The hyperparameters logged so far (as stored in ``hparams.json``)."""
        return json.loads(json.dumps(self._record_state()["hparams"]))

    # text, markdown, images ----------------------------------------------------------------------------------
    def log_text(self, name: str, text: str, step: float | None = None, expected: str | None = None) -> None:
        """Show ``text`` in the window ``name`` and store it as ``text/<name>-<step>.txt``.

        Args:
            name: the window (and file) name.
            text: the text, shown as written (HTML special characters escaped, line breaks kept).
            step: the step it belongs to (None: no step in the file name; a later call replaces the file).
            expected: the text it should have been: the window shows a word-level diff against it (deletions
                struck through in red, insertions in green) and ``text/<name>-<step>.diff.txt`` holds it marked as
                ``[-deleted-]`` and ``{+inserted+}``.

        Raises:
            RecordCallError: a bad name, text, expected or step.
        """
        if self.disabled:
            return
        call = "log_text()"
        name = check_name(call, name)
        text = check_text(call, "text", text)
        if expected is not None:
            expected = check_text(call, "expected", expected)
        step = check_step(call, step)
        base = f"text/{safe_name(name)}{step_suffix(step)}"
        self._file(base + ".txt", text)
        if expected is None:
            self._draw(name, "text", {name: text}, step)
            return
        ops = word_diff(expected, text)
        self._file(base + ".diff.txt", diff_text(ops))
        self._draw_html(name, pre(diff_html(ops)), step)

    def log_markdown(self, name: str, markdown: str, step: float | None = None) -> None:
        """Show Markdown rendered in the window ``name`` and store it as ``text/<name>-<step>.md``.

        Raw HTML in ``markdown`` is shown as text, never run (see :func:`flexlogger.textdiff.markdown_html`).

        Raises:
            RecordCallError: a bad name, markdown or step.
        """
        if self.disabled:
            return
        call = "log_markdown()"
        name = check_name(call, name)
        markdown = check_text(call, "markdown", markdown)
        step = check_step(call, step)
        self._file(f"text/{safe_name(name)}{step_suffix(step)}.md", markdown)
        self._draw_html(name, markdown_html(markdown), step)

    def log_image(self, name: str, image: Any, step: float | None = None, boxes: Sequence[Mapping[str, Any]] |
                  None = None, classes: Sequence[str] | None = None, threshold: float | None = None) -> None:
        """Show an image in the window ``name``, with bounding boxes drawn on it, and store it as
        ``images/<name>-<step>.png`` (the boxes: ``images/<name>-<step>.json``).

        Args:
            name: the window (and file) name.
            image: a tensor or numpy array (H x W, C x H x W or H x W x C; floats in [0, 1] or integers in
                [0, 255]) or a PIL image; see :mod:`flexlogger.images`.
            step: the step it belongs to.
            boxes: dicts ``{'xStart', 'yStart', 'xEnd', 'yEnd', 'className', 'probability'}`` in pixels
                (``className`` and ``probability`` optional): each is drawn with its class's colour, its class
                name and its probability.
            classes: the valid class names (``className`` may then also be an index into them); each class keeps
                its colour across images.
            threshold: boxes whose probability is below it are left out of the drawing (the JSON file lists them
                under ``left_out``).

        Raises:
            ImageInputError: not an image, bad values, a malformed box, a box outside the image, an unknown class.
        """
        if self.disabled:
            return
        call = "log_image()"
        name = check_name(call, name)
        step = check_step(call, step)
        rgb = images.to_rgb(call, image)
        height, width = rgb.shape[:2]
        shown, left_out, names = images.check_boxes(call, boxes, classes, threshold, width, height)
        drawn = images.draw_boxes(rgb, shown, names) if shown else rgb
        base = f"images/{safe_name(name)}{step_suffix(step)}"
        self._file(base + ".png", images.png_bytes(drawn))
        if boxes is not None:
            self._file(base + ".json", json.dumps({"width": width, "height": height, "classes": names,
                                                   "threshold": threshold, "boxes": shown, "left_out": left_out},
                                                  indent=2) + "\n")
        self._draw(name, "image", {name: drawn}, step)

    # the command, the summary ----------------------------------------------------------------------------------
    def log_command(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
        """Record how to run the experiment again: the command line that gives back ``args`` and a table of every
        option with its value and default; a window ``command`` and ``command.md``.

        Returns:
            The command line (``python train.py --lr=0.1 ...``), empty on a disabled run.

        Raises:
            RecordCallTypeError: ``parser`` is not an ``argparse.ArgumentParser`` or ``args`` not an
                ``argparse.Namespace``.
        """
        if self.disabled:
            return ""
        call = "log_command()"
        if not isinstance(parser, argparse.ArgumentParser):
            raise type_error(call, "parser", "an argparse.ArgumentParser", parser)
        if not isinstance(args, argparse.Namespace):
            raise type_error(call, "args", "an argparse.Namespace (what parser.parse_args() returns)", args)
        script = sys.argv[0] if sys.argv and sys.argv[0] else parser.prog
        command = shlex.join(["python", script, *command_line(parser, args)])
        rows = option_rows(parser, args)
        text = "\n\n".join([
            "# Command", fenced(command, "bash"),
            f"Started as: `{shlex.join(sys.argv)}`" if sys.argv else "",
            "## Options", markdown_table(["option", "value", "default", "changed"], rows)]) + "\n"
        self._file("command.md", text)
        self._draw_html("command", markdown_html(text), None)
        return command

    def log_summary(self, infos: Mapping[str, Any] | None = None, sections: Mapping[str, str] | None = None,
                    repo: str | Path | None = None) -> dict[str, Any]:
        """Record what the run is: the git commit, branch and diff of a dirty tree (when ``repo``, by default the
        current folder, is in a git repository), the Python, torch and flexlogger versions, the host, the start
        time and the command, plus your ``infos`` (a table) and ``sections`` (title -> Markdown); a window
        ``summary`` and ``summary.md``.

        Returns:
            What was gathered (``{'started', 'host', 'python', 'torch', 'flexlogger', 'command', 'git', 'infos'}``;
            ``git`` is None outside a repository); empty on a disabled run.

        Raises:
            RecordCallTypeError: ``infos`` or ``sections`` is not a mapping of strings, a section is not a str.
        """
        if self.disabled:
            return {}
        call = "log_summary()"
        infos = {} if infos is None else as_mapping(call, "infos", infos)
        check_keys(call, "infos", infos)
        if sections is None:
            sections = {}
        if not isinstance(sections, Mapping):
            raise type_error(call, "sections", "a dict of title -> Markdown text", sections)
        for title, body in sections.items():
            check_name(call, title, "sections' titles")
            check_text(call, f"sections[{title!r}]", body)
        from . import __version__

        where = Path(repo) if repo is not None else Path.cwd()
        git = git_info(where)
        facts: dict[str, Any] = {
            "env": self.env, "uid": self.uid, "started": iso(self.started), "host": socket.gethostname(),
            "python": platform.python_version(), "torch": torch.__version__, "flexlogger": __version__,
            "command": shlex.join(sys.argv), "git": git, "infos": jsonable(infos)}
        rows: list[list[Any]] = [["run", f"{self.env}/{self.uid}"], ["started", facts["started"]],
                                 ["host", facts["host"]], ["python", facts["python"]], ["torch", facts["torch"]],
                                 ["flexlogger", facts["flexlogger"]], ["command", facts["command"]]]
        if git is None:
            rows.append(["git", f"not a git repository: {where}"])
        else:
            changed = len(git["changed"])
            rows += [["git commit", git["commit"] or "(no commit yet)"], ["git branch", git["branch"]],
                     ["git status", f"dirty: {changed} file(s) changed or untracked" if git["dirty"] else "clean"]]
        parts = [f"# Summary of run {self.env}/{self.uid}", markdown_table(["", ""], rows)]
        if infos:
            parts += ["## Infos", markdown_table(["key", "value"],
                                                 [[k, cell(v)] for k, v in flatten(jsonable(infos)).items()])]
        for title, body in sections.items():
            parts += [f"## {title}", body]
        if git is not None and git["dirty"]:
            parts += ["## Git diff", fenced(git["diff"] or "(no change to tracked files)", "diff")]
            if git["untracked"]:
                parts += ["Untracked files: " + ", ".join(f"`{f}`" for f in git["untracked"])]
        text = "\n\n".join(parts) + "\n"
        self._file("summary.md", text)
        self._draw_html(SUMMARY_PLOT, markdown_html(text), None)
        return facts

    # printing, progress --------------------------------------------------------------------------------------
    def _log_lines(self, text: str, stream: IO[str], tag: str = "") -> None:
        print(text, file=stream, flush=True)
        if self.dir is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = "".join(f"{stamp} {tag}{line}\n" for line in (text.split("\n") or [""]))
        fd = os.open(self.dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines.encode("utf-8"))  # one write: lines from two threads do not interleave
        finally:
            os.close(fd)

    @staticmethod
    def _format(call: str, fmt: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
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

    def println(self, fmt: Any = "", *args: Any, **kwargs: Any) -> None:
        """Print a line to stdout and append it to the run's ``log.txt`` (with the time).

        ``fmt.format(*args, **kwargs)`` when arguments are given, else ``str(fmt)`` (braces in a plain message
        are kept). Example: ``run.println('epoch {} loss {:.3f}', epoch, loss)``.
        """
        if self.disabled:
            return
        self._log_lines(self._format("println()", fmt, args, kwargs), sys.stdout)

    def eprintln(self, fmt: Any = "", *args: Any, **kwargs: Any) -> None:
        """As :meth:`println`, to stderr; the line in ``log.txt`` is tagged ``[stderr]``."""
        if self.disabled:
            return
        self._log_lines(self._format("eprintln()", fmt, args, kwargs), sys.stderr, "[stderr] ")

    def print_table(self, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
        """Print a table (tabulate; ``None`` shown as ``-``) and append it to ``log.txt``; return it.

        Raises:
            RecordCallTypeError: ``header`` is not a list of column names, or ``rows`` not a list of rows.
            RecordCallError: a row has another number of cells than the header.
        """
        if self.disabled:
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
        self._log_lines(text, sys.stdout)
        return text

    def progress(self, iterable: Iterable[T], desc: str | None = None, total: int | None = None) -> Iterable[T]:
        """``iterable`` with a tqdm progress bar; its start, end (or where it stopped) and duration are written
        to ``log.txt``. On a disabled run: ``iterable`` itself, no bar.

        Example:
            >>> for x, y in run.progress(loader, desc='epoch 3'): ...

        Raises:
            RecordCallTypeError: ``iterable`` is not iterable, ``desc`` not a str, ``total`` not an int >= 0.
        """
        if self.disabled:
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
        return self._progress(iterable, desc, total)

    def _progress(self, iterable: Iterable[T], desc: str | None, total: int | None) -> Iterator[T]:
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:  # pragma: no cover - tqdm is a dependency
            raise RecordCallError("progress(): needs tqdm; install it with `pip install tqdm`") from exc
        what = f"progress {desc!r}" if desc else "progress"
        of = f" of {total}" if total is not None else ""
        self._log_file_line(f"{what}: start ({total if total is not None else 'unknown'} items)")
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
            self._log_file_line(f"{what}: end after {done}{of} items in {took}" if finished else
                                f"{what}: stopped after {done}{of} items in {took}")

    def _log_file_line(self, text: str) -> None:
        if self.dir is None or self.disabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        fd = os.open(self.dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{stamp} {text}\n".encode())
        finally:
            os.close(fd)

    # models and objects ----------------------------------------------------------------------------------------
    def save_model(self, model: torch.nn.Module, step: float | None = None, grads: bool = False) -> Path | None:
        """Save the model's state dict as ``models/model-<step>.pt`` (``models/model.pt`` without a step),
        unwrapped from ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile``, so that it loads into
        the bare model: ``model.load_state_dict(torch.load(path))``. With ``grads=True`` the parameters' gradients
        go to ``models/model-<step>.grads.pt`` (``{name: grad}``).

        Returns:
            The path, or None on a disabled run or a run without a folder (``log_dir=None``).

        Raises:
            RecordCallTypeError: ``model`` is not a ``torch.nn.Module``, a bad step or ``grads``.
        """
        if self.disabled:
            return None
        call = "save_model()"
        if not isinstance(model, torch.nn.Module):
            raise type_error(call, "model", "a torch.nn.Module", model)
        if not isinstance(grads, bool):
            raise type_error(call, "grads", "True or False", grads)
        step = check_step(call, step)
        if self.dir is None:
            return None
        bare = unwrap_model(model)
        path = save_torch(call, "model", bare.state_dict(), self.dir / "models" / f"model{step_suffix(step)}.pt")
        if grads:
            gradients = {n: p.grad for n, p in bare.named_parameters() if p.grad is not None}
            save_torch(call, "model", gradients, self.dir / "models" / f"model{step_suffix(step)}.grads.pt")
        return path

    def save_obj(self, obj: Any, name: str, step: float | None = None) -> Path | None:
        """Save any picklable object with ``torch.save`` as ``objects/<name>-<step>.pt`` (load it with
        ``torch.load(path, weights_only=False)``).

        Returns:
            The path, or None on a disabled run or a run without a folder.

        Raises:
            RecordCallError: ``obj`` cannot be pickled (nothing is written); a bad name or step.
        """
        if self.disabled:
            return None
        call = "save_obj()"
        name = check_name(call, name)
        step = check_step(call, step)
        if self.dir is None:
            return None
        return save_torch(call, "obj", obj, self.dir / "objects" / f"{safe_name(name)}{step_suffix(step)}.pt")

    # status, progress, best ------------------------------------------------------------------------------------
    def set_max_steps(self, max_steps: int | None) -> None:
        """Set the number of steps the run will log (progress and ETA in the status window and the summary).

        Raises:
            RecordCallTypeError: not a positive int or None.
        """
        problems = check_max_steps(max_steps)
        if problems:
            raise RecordCallTypeError(f"set_max_steps(): {problems[0]}")
        if max_steps and not self.disabled and self._opened:
            self.claim(self, [STATUS_PLOT])
        self.max_steps = max_steps

    def track_best(self, owner: object, best: Callable[[], Mapping[str, tuple[float, float]]],
                   modes: Callable[[], Mapping[str, str]]) -> None:
        """Register a logger's ``best()`` (``{meter: (value, step)}``) and its meters' modes for the summary."""
        self._record_state()["best"][id(owner)] = (best, modes)

    def best(self) -> dict[str, tuple[float, float]]:
        """The best logged value of every ``best: min|max`` meter of the run's loggers and its step."""
        out: dict[str, tuple[float, float]] = {}
        for best, _ in self._record_state()["best"].values():
            out.update(best())
        return out

    def _note_updates(self, updates: Sequence[Update]) -> None:
        """After a write: the time of the last update, the last step logged; the summary now and then."""
        state = self._record_state()
        now = time.time()
        state["last_update"] = now
        if not state["drawing"]:
            steps = [u.step for u in updates]
            if steps:
                last = max(steps)
                state["last_step"] = last if state["last_step"] is None else max(state["last_step"], last)
        if now - state["written"] >= STATUS_EVERY and not state["drawing"]:
            self._write_status()

    def progress_info(self) -> dict[str, Any]:
        """``{'step', 'max_steps', 'progress', 'elapsed', 'eta_seconds', 'eta'}``: steps done count from 0 (a run
        that logged step 9 of ``max_steps=100`` is 10 % done); the ETA extrapolates the time per step so far."""
        state = self._record_state()
        last = state["last_step"]
        elapsed = (state["last_update"] or time.time()) - self.started
        out: dict[str, Any] = {"step": last, "max_steps": self.max_steps, "elapsed": round(elapsed, 3)}
        if self.max_steps:
            done = 0.0 if last is None else min(float(last) + 1, float(self.max_steps))
            out["progress"] = done / self.max_steps
            if done > 0:
                eta = elapsed / done * (self.max_steps - done)
                out["eta_seconds"], out["eta"] = round(eta, 3), duration(eta)
            else:
                out["eta_seconds"], out["eta"] = None, None
        return out

    def status_line(self) -> str:
        """``step 9 of 100 (10.0%), elapsed 0:00:12, ETA 0:01:48`` (``step 9`` without ``max_steps``)."""
        info = self.progress_info()
        step = "-" if info["step"] is None else f"{info['step']:g}"
        if not self.max_steps:
            return f"{self.status}, step {step}, elapsed {duration(info['elapsed'])}"
        eta = info["eta"] or "-"
        return (f"{self.status}, step {step} of {self.max_steps} ({100 * info['progress']:.1f}%), elapsed "
                f"{duration(info['elapsed'])}, ETA {eta}")

    def summary_fields(self) -> dict[str, Any]:
        """What the run adds to ``summary.json``: its status (``running``, ``finished``, ``crashed``,
        ``interrupted``), the time of the last update, the error and traceback of a crash, progress and ETA
        (with ``max_steps``) and the best values (``{meter: {'value', 'step', 'mode'}}``)."""
        state = self._record_state()
        out: dict[str, Any] = {"status": self.status, "last_update": iso(state["last_update"]),
                               "last_update_unix": state["last_update"]}
        out.update(self.progress_info())
        best: dict[str, Any] = {}
        for get, modes in state["best"].values():
            kinds = modes()
            best.update({name: {"value": jsonable(value), "step": step, "mode": kinds.get(name)}
                         for name, (value, step) in get().items()})
        if best:
            out["best"] = best
        out.update(self._summary)
        return out

    def _write_status(self) -> None:
        """Rewrite ``summary.json`` (status ``running`` while the run lives) and the status window."""
        if self.disabled:
            return
        state = self._record_state()
        state["written"] = time.time()
        if self.max_steps:
            self._draw(STATUS_PLOT, "text", self._status_rows(), None)
        if self._record is not None:
            self._record.write_summary(self.summary_fields())

    def _status_rows(self) -> dict[str, str]:
        info = self.progress_info()
        rows = {"status": self.status, "step": "-" if info["step"] is None else f"{info['step']:g}"}
        if self.max_steps:
            rows["progress"] = f"{100 * info['progress']:.1f}% of {self.max_steps} steps"
            rows["ETA"] = info["eta"] or "-"
        rows["elapsed"] = duration(info["elapsed"])
        for name, (value, step) in self.best().items():
            rows[f"best {name}"] = f"{value:.4g} @ {step:g}"
        return rows

    def _final_status(self) -> None:
        """The status window as the run ends (with ``max_steps``)."""
        if self.max_steps and not self.disabled:
            self._draw(STATUS_PLOT, "text", self._status_rows(), None)
