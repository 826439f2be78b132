"""How the run record writes each data form as JSON and reads it back: one table, keyed by the data form.

Every plot kind declares the form of its data (``flexlogger.core.plots.PLOT_KINDS[kind].data``, one of
``DATA_FORMS``); :data:`FORMS` holds, for each form, how one value is written and how it is read back. The writer
(:mod:`flexlogger.sinks.record`) and the reader (:mod:`flexlogger.sinks.record_read`) both go through it, and
``tests/test_record.py`` checks that every form round-trips exactly (NaN and Inf included).

JSON has no NaN: non-finite numbers are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` and read back
as floats (a text plot's strings are left alone). Arrays are nested lists; a histogram is its bin counts,
``{"counts": [...], "lo": x, "hi": y}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexlogger.core.plots import DATA_FORMS, PLOT_KINDS, Histogram
from flexlogger.errors import FlexLoggerError, short_repr

FORMAT = 2  # 2: the header names the folder ("uid") and the windows' uid ("windows"); 1 had "uid" only
CONFIG, POINTS, SUMMARY = "config.json", "points.jsonl", "summary.json"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def iso(t: float | None) -> str | None:
    """A local time as ``2026-11-30T11:40:02+0000``, as the run record writes times."""
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


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
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
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


def to_float(value: Any) -> float:
    """A recorded number as a float (``"nan"`` too).

    Raises:
        RecordError: ``value`` is not a number.
        OverflowError: an int beyond float range.
    """
    number = decode_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise RecordError(f"expected a number, but got {short_repr(value, 80)}")
    return float(number)


def _array_or_number(value: Any) -> Any:
    if isinstance(value, list):
        array = np.asarray(decode_number(value))
        if array.dtype.kind not in "biuf":  # strings, or integers beyond int64 (an object array)
            raise RecordError(f"expected an array of numbers, but got {short_repr(value, 80)}")
        return array
    return to_float(value)


def _decode_histogram(value: Any) -> Any:
    if isinstance(value, Mapping):
        try:
            counts = tuple(to_float(c) for c in value["counts"])
            return Histogram(counts, to_float(value["lo"]), to_float(value["hi"]))
        except (KeyError, TypeError) as exc:
            raise RecordError(f"expected a histogram {{counts, lo, hi}}, but got {short_repr(value, 80)} "
                              f"({exc})") from None
    return _array_or_number(value)  # the raw array a logger passed before it binned histograms itself


def _decode_curve(value: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(value, list) or len(value) != 2:
        raise RecordError(f"expected a curve [x, y], but got {short_repr(value, 80)}")
    return tuple(np.asarray(decode_number(v), dtype=np.float64) for v in value)  # type: ignore[return-value]


def _encode_text(value: Any) -> Any:
    return value if isinstance(value, str) else encode(value)


@dataclass(frozen=True)
class DataForm:
    """How one value of a data form is written to the record and read back.

    Attributes:
        name: the data form (one of ``flexlogger.core.plots.DATA_FORMS``).
        encode: a value as the logger made it -> JSON-ready data.
        decode: what :attr:`encode` returned, after a trip through JSON -> the value again.
    """

    name: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


FORMS: dict[str, DataForm] = {form.name: form for form in (
    DataForm("points", encode, to_float),
    DataForm("vector", encode, _array_or_number),
    DataForm("matrix", encode, _array_or_number),
    DataForm("histogram", encode, _decode_histogram),
    DataForm("curve", encode, _decode_curve),
    DataForm("text", _encode_text, lambda value: value),
)}
assert set(FORMS) == set(DATA_FORMS), "every data form of flexlogger.core.plots needs a row in FORMS"


def form_of(kind: str) -> DataForm:
    """The :class:`DataForm` of plot kind ``kind``.

    Raises:
        RecordError: ``kind`` is not a known plot kind.
    """
    plot = PLOT_KINDS.get(kind)
    if plot is None:
        raise RecordError(f"unknown plot kind {kind!r}; expected one of {', '.join(PLOT_KINDS)}")
    return FORMS[plot.data]


def encode_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An update's ``data`` as JSON-ready data, by the data form of ``kind``."""
    write = form_of(kind).encode
    return {str(name): write(value) for name, value in data.items()}


def decode_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An update's ``data`` as the logger produced it (arrays back as ndarrays, histograms as Histogram).

    Raises:
        RecordError: ``kind`` is unknown, or a value is not of the kind's data form.
    """
    read = form_of(kind).decode
    return {name: read(value) for name, value in data.items()}
