"""The record calls' names (windows, files), errors, argument checks and value conversions (JSON, table cells,
times)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from flexlogger.errors import FlexLoggerError, short_repr

HPARAMS_PLOT = "hparams"
HPARAMS_FILE = "hparams.json"
STATUS_PLOT = "run_status"
SUMMARY_PLOT = "run_summary"
COMMAND_PLOT = "command"
FIXED_WINDOWS = frozenset({HPARAMS_PLOT, STATUS_PLOT, SUMMARY_PLOT, COMMAND_PLOT})
"""The windows of the run's own calls (log_hparams, the status, log_summary, log_command): no log_text,
log_markdown or log_image may draw over them."""
LOG_FILE = "log.txt"
HTML_OPT = "html"
"""A ``text`` window whose opts hold ``html: True`` shows its one value as HTML (made by this module, every piece
of user text escaped) instead of the escaped table of values."""
STATUS_EVERY = 1.0
"""Seconds between two rewrites of ``summary.json`` (and the status window) while a run is running; ``flush()``
and ``close()`` write them at once."""


class RecordCallError(FlexLoggerError, ValueError):
    """An experiment-record call got a bad value (the message names the call, the argument, what was expected and
    what came)."""


class RecordCallTypeError(RecordCallError, TypeError):
    """An experiment-record call got a value of the wrong type."""


def type_error(call: str, arg: str, expected: str, got: Any) -> RecordCallTypeError:
    """``log_text(): expected `text` to be a str, but got int 5``."""
    return RecordCallTypeError(f"{call}: expected `{arg}` to be {expected}, but got {type(got).__name__} "
                               f"{short_repr(got, 120)}")


_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+=-]+")


NAME_MAX = 120
"""The longest file name :func:`safe_name` makes (file systems refuse names over 255 bytes; a step and a suffix
such as ``.diff.txt`` still fit)."""


def safe_name(name: str) -> str:
    """``name`` as one file name: characters other than letters, digits and ``_.@+=-`` become ``_``, and a leading
    dot too (``../x`` -> ``_.._x`` never leaves the folder). A name longer than :data:`NAME_MAX` is cut and ends
    with a hash of the whole name, so two long names that differ only at the end get two files."""
    out = _UNSAFE.sub("_", name)
    out = "_" + out if out.startswith(".") or not out else out
    if len(out) > NAME_MAX:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        out = f"{out[:NAME_MAX - 13]}-{digest}"
    return out


def step_suffix(step: float | None) -> str:
    """The part of a file name that names the step: ``-7``, ``-0.5``; nothing without a step. A step is written
    whole (``-1234567.5``, not ``-1.23457e+06``), so two steps never share a file."""
    if step is None:
        return ""
    return f"-{int(step)}" if float(step).is_integer() else f"-{float(step)!r}"


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


def tree(call: str, arg: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` checked (:func:`check_keys`) and as JSON data (:func:`jsonable`).

    Raises:
        RecordCallTypeError: a key that is not a non-empty string.
        RecordCallError: a dict or list that holds itself (it has no end as JSON), or nesting too deep for JSON.
    """
    try:
        check_keys(call, arg, value)
        out: dict[str, Any] = jsonable(value)
        json.dumps(out)  # as deep as the files will be
    except RecursionError:
        raise RecordCallError(f"{call}: expected `{arg}` to be a tree of values, but it holds itself (a dict or list "
                              f"inside itself) or is nested too deep to store as JSON") from None
    return out


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


def check_name(call: str, name: Any, arg: str = "name") -> str:
    """A window or file name: a non-empty string."""
    if not isinstance(name, str):
        raise type_error(call, arg, "a non-empty string", name)
    if not name.strip():
        raise RecordCallError(f"{call}: expected `{arg}` to be a non-empty string, but got {name!r}")
    return name


def _spaced(value: str) -> bool:
    return any(c.isspace() for c in value)


def check_order(call: str, name: Any, content: Any, arg: str) -> None:
    """Refuse a call written in lavd's argument order, ``log_text(text, name)``: flexlogger takes the window name
    first, and a swapped call would otherwise write the name into a file named after the content.

    The rule: a window name holds no whitespace in a call whose ``arg`` (the content) has none. A ``name`` with a
    space, tab or line break beside a one-word content of at most :data:`NAME_MAX` characters is the two swapped
    (``log_text('hello world', 'sample2')``); a name with spaces beside content with spaces
    (``log_text('val sample', 'the cat sat')``) is taken as written. One-word content beside a one-word name
    cannot be told apart and is taken as written.

    Raises:
        RecordCallError: the arguments look swapped; the message shows the call in flexlogger's order.
    """
    if not (isinstance(name, str) and isinstance(content, str)):
        return
    if name.strip() and _spaced(name) and content and not _spaced(content) and len(content) <= NAME_MAX:
        raise RecordCallError(
            f"{call}: expected the window name first and the {arg} second, but got name {short_repr(name, 60)} "
            f"(with whitespace, so not a window name) and {arg} {content!r}: this is lavd's order, "
            f"{call[:-2]}({arg}, name); write {call[:-2]}({content!r}, {short_repr(name, 40)}, ...). A window name "
            f"has no whitespace: if {short_repr(name, 40)} is the name, write it as {safe_name(name)[:40]!r}")


def check_step(call: str, step: Any) -> int | float | None:
    """``step`` as logged: None, or a finite number (an integral one as an int: file names ``-7``, not ``-7.0``)."""
    if step is None:
        return None
    step = unwrap_scalar(step)
    if not isinstance(step, numbers.Real) or isinstance(step, bool):
        raise type_error(call, "step", "a finite number or None", step)
    if not finite_number(step):
        raise RecordCallError(f"{call}: expected `step` to be a finite number or None, but got "
                              f"{short_repr(step, 60)}")
    number = float(step)
    return int(number) if number.is_integer() else number


def finite_number(value: Any) -> bool:
    """A real number (not a bool) that a float holds and that is finite (a huge int is not: it overflows)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def unwrap_scalar(value: Any) -> Any:
    """A 0-d tensor or numpy number as its Python number; any other value as it is."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value


def check_text(call: str, arg: str, value: Any) -> str:
    if not isinstance(value, str):
        raise type_error(call, arg, "a str", value)
    return value


def duration(seconds: float) -> str:
    """``0.42 s`` under a minute, else ``0:03:12``, ``1 day, 2:00:00``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days} day{'s' if days > 1 else ''}, {text}" if days else text
