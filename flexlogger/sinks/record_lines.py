"""One line of a run record, checked as untrusted input: :class:`LineReader`.

A record may come from anyone (another program writes it, a colleague sends a run folder), so
:func:`~flexlogger.sinks.record.read_record` and :class:`~flexlogger.tools.follow.RecordFollower` read every line
through the same checks, those a user's plot spec goes through, and with bounds on size and depth:

- a line is at most :data:`MAX_LINE` bytes of UTF-8 JSON holding one object, nested no deeper than the JSON
  reader allows (a deeper one is damaged, not a crash);
- a plot declaration names a known kind, and its ``opts`` are a mapping, at most :data:`MAX_OPTS_CHARS` as JSON
  and :data:`MAX_OPTS_DEPTH` deep, that Visdom's client accepts
  (:func:`~flexlogger.sinks.visdom.check_opts`); ``legend`` is refused as in a spec; ``html`` only as ``True`` on
  a ``text`` plot, and then every value drawn in it is re-made by :func:`~flexlogger.sinks.safe_html.safe_html`;
- an update's ``step`` is a finite number, its ``seq`` an int in ``[0, 2**63)``, its data of its kind's form, with
  numbers within float range and arrays numeric.

A line that fails raises :class:`DamagedLineError` saying why; the callers skip it with a warning naming the file and
line, and read on.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

from flexlogger.core.plots import APPEND_KINDS, PLOT_KINDS
from flexlogger.errors import short_repr
from flexlogger.sinks.base import Update
from flexlogger.sinks.record_format import FORMAT, RecordError, decode_data, decode_number, to_float
from flexlogger.sinks.safe_html import safe_html
from flexlogger.sinks.visdom.rules import check_opts

MAX_LINE = 256 * 2**20  # bytes: a line larger than this is skipped unread (a big image is a few MB)
MAX_OPTS_CHARS = 65536  # a plot's opts as JSON
MAX_OPTS_DEPTH = 16
MAX_SEQ = 2**63
HTML_OPT = "html"


class DamagedLineError(RecordError):
    """A record line that is not a valid record line; the message says why.

    Attributes:
        syntax: the line is not JSON (a torn last line looks like this).
        quiet: an update of a plot whose declaration was itself skipped (warned about once, there).
    """

    def __init__(self, message: str, *, syntax: bool = False, quiet: bool = False) -> None:
        super().__init__(message)
        self.syntax = syntax
        self.quiet = quiet


class LineReader:
    """Reads record lines one at a time, keeping what the lines before declared.

    Attributes:
        plots: plot -> (kind, opts), as last declared.
        env, uid, window_uid: from the ``{"run": ...}`` header (None until one is read).
    """

    def __init__(self, source: str = "points.jsonl") -> None:
        self.source = source
        self.plots: dict[str, tuple[str, dict[str, Any]]] = {}
        self.skipped: set[str] = set()  # plots whose declaration was skipped: their updates are skipped quietly
        self.env: str | None = None
        self.uid: str | None = None
        self.window_uid: str | None = None

    def read(self, raw: bytes) -> Update | None:
        """The update ``raw`` holds, or None for a header or a plot declaration (which it records).

        Raises:
            DamagedLineError: ``raw`` is not a valid record line (the message says why).
        """
        obj = load_line(raw)
        try:
            if "seq" in obj:
                return self._update(obj)
            if "plot" in obj:
                self._declare(obj)
            elif "run" in obj:
                self._header(obj["run"])
            else:
                raise DamagedLineError(f"expected a header, a plot declaration or an update, but got {_short(raw)}")
        except DamagedLineError:
            raise
        except KeyError as exc:
            raise DamagedLineError(f"a damaged line {_short(raw)} (missing key {exc})") from None
        except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            raise DamagedLineError(f"a damaged line {_short(raw)} ({_short_text(why)})") from None
        return None

    def _header(self, run: Any) -> None:
        if not isinstance(run, Mapping):
            raise DamagedLineError(f"expected the header's run to be an object, but got {_short(run)}")
        for key in ("env", "uid", "windows"):
            if key in run and not isinstance(run[key], str):
                raise DamagedLineError(f"expected the header's {key} to be a string, but got {_short(run[key])}")
        version = run.get("format", 1)
        if type(version) is not int or not 1 <= version <= FORMAT:
            warnings.warn(f"{self.source}: the record says format {_short(version)}; this flexlogger reads formats 1 "
                          f"to {FORMAT} and reads it as format {FORMAT}: lines it does not know are skipped (a newer "
                          "flexlogger may read them)", RuntimeWarning, stacklevel=5)
        self.env = run.get("env", self.env)
        self.uid = run.get("uid", self.uid)
        self.window_uid = run.get("windows", run.get("uid", self.window_uid))

    def _declare(self, obj: Mapping[str, Any]) -> None:
        name, kind = _name(obj["plot"]), obj["kind"]
        self.plots.pop(name, None)
        self.skipped.add(name)  # until the declaration is found good
        if not isinstance(kind, str) or kind not in PLOT_KINDS:
            raise DamagedLineError(f"plot {name!r} of unknown kind {_short(kind)} and its updates; expected one of "
                              f"{', '.join(PLOT_KINDS)}")
        opts = check_record_opts(name, kind, obj.get("opts") or {})
        self.skipped.discard(name)
        self.plots[name] = (kind, opts)

    def _update(self, obj: Mapping[str, Any]) -> Update:
        name = _name(obj["plot"])
        if name in self.skipped:
            raise DamagedLineError(f"an update of plot {name!r}, whose declaration was skipped", quiet=True)
        if name not in self.plots:
            raise DamagedLineError(f"an update of plot {name!r}, which no line before declared")
        kind, opts = self.plots[name]
        step = _step(obj["step"])
        seq = obj["seq"]
        if type(seq) is not int or not 0 <= seq < MAX_SEQ:
            raise ValueError(f"expected seq to be an int in [0, 2**63), but got {_short(seq)}")
        data = obj["data"]
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise ValueError(f"expected data to be an object of named values, but got {_short(data)}")
        if kind in APPEND_KINDS:  # the hot path: {trace: number}
            data = {k: float(v) if type(v) is float or type(v) is int else to_float(v) for k, v in data.items()}
        else:
            data = decode_data(kind, data)
        if opts.get(HTML_OPT) is True:
            if not all(isinstance(v, str) for v in data.values()):
                raise ValueError(f"expected the HTML of text plot {name!r} as strings, but got {_short(data)}")
            data = {k: safe_html(v) for k, v in data.items()}
        return Update(name, kind, step, data, opts, seq)


def load_line(raw: bytes) -> dict[str, Any]:
    """One record line as a JSON object.

    Raises:
        DamagedLineError: too long, not UTF-8, not JSON (``syntax`` set), nested too deep, or not an object.
    """
    if len(raw) > MAX_LINE:
        raise DamagedLineError(f"a line of {len(raw)} bytes; expected at most {MAX_LINE}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedLineError("a damaged line (not UTF-8 text)") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedLineError(f"a damaged line: expected a JSON object, but got {_short(raw)} ({exc.msg})",
                          syntax=True) from None
    except RecursionError:
        raise DamagedLineError(f"a line nested too deeply to read: {_short(raw)}") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DamagedLineError(f"a damaged line {_short(raw)} ({_short_text(str(exc))})") from None
    if not isinstance(obj, dict):
        raise DamagedLineError(f"a damaged line: expected a JSON object, but got {_short(raw)}")
    return obj


def check_record_opts(plot: str, kind: str, opts: Any) -> dict[str, Any]:
    """A recorded plot's ``opts``, checked as a user's plot spec's are (see the module docstring).

    Raises:
        DamagedLineError: the opts break a rule; the message names the rule and the value.
    """
    where = f"plot {plot!r} and its updates: opts"
    if not isinstance(opts, dict):
        raise DamagedLineError(f"{where}: expected a mapping of Visdom options, but got {_short(opts)}")
    if _depth(opts) > MAX_OPTS_DEPTH:
        raise DamagedLineError(f"{where}: nested deeper than {MAX_OPTS_DEPTH}")
    try:
        size = len(json.dumps(opts, allow_nan=False))
    except (ValueError, TypeError, RecursionError) as exc:
        raise DamagedLineError(f"{where}: expected JSON options, but got {_short(opts)} ({exc})") from None
    if size > MAX_OPTS_CHARS:
        raise DamagedLineError(f"{where}: {size} characters as JSON; expected at most {MAX_OPTS_CHARS}")
    if HTML_OPT in opts and (kind != "text" or opts[HTML_OPT] is not True):
        raise DamagedLineError(f"{where}.html: expected no `html` (only a run's own text windows, kind 'text', carry "
                          f"`html: true`), but got {_short(opts[HTML_OPT])} on a plot of kind {kind!r}")
    if "legend" in opts:
        raise DamagedLineError(f"{where}.legend: expected no `legend`: a window's legend is the names of its meters")
    try:
        check_opts(where, {k: v for k, v in opts.items() if k != HTML_OPT})
    except (ValueError, TypeError, OverflowError) as exc:
        raise DamagedLineError(str(exc)) from None
    return opts


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a plot name (a non-empty string), but got {_short(value)}")
    return value


def _step(value: Any) -> int | float:
    step = decode_number(value)
    if isinstance(step, bool) or not isinstance(step, (int, float)):
        raise ValueError(f"expected step to be a number, but got {_short(value)}")
    try:
        finite = math.isfinite(float(step))
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"expected step to be a finite number within float range, but got {_short(value)}")
    return step


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts (walked without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth > MAX_OPTS_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _short(value: Any) -> str:
    """A short repr (a line's bytes shown as text)."""
    return short_repr(value.decode("utf-8", "replace")[:200] if isinstance(value, bytes) else value, 80)


def _short_text(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
