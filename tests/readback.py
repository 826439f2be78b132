"""Reading a logger's windows back from the real Visdom server (shared by the test modules)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import visdom

from flexlogger.sinks.record import read_record


class Drawing(Protocol):
    """A FlexLogger or TooledModelLogger: anything with windows in an env that can be flushed."""

    @property
    def windows(self) -> Mapping[str, str]: ...

    env: str

    def flush(self, timeout: float | None = None) -> int: ...


def window(viz: visdom.Visdom, logger: Drawing, plot: str) -> dict[str, Any]:
    """The window of ``plot`` as the server holds it, once everything logged has been delivered."""
    assert logger.flush(10) == 0
    data: dict[str, Any] = json.loads(viz.get_window_data(logger.windows[plot], logger.env))
    return data


def traces(viz: visdom.Visdom, logger: Drawing, plot: str) -> dict[str, tuple[list[Any], list[Any]]]:
    """``{trace name: (x, y)}`` of a line/scatter window."""
    return {t["name"]: (t["x"], t["y"]) for t in window(viz, logger, plot)["content"]["data"]}


def _numbers(values: Any) -> list[float]:
    """The finite numbers in a (nested) list of a trace's values; None and strings are no numbers."""
    if isinstance(values, list):
        return [n for v in values for n in _numbers(v)]
    if isinstance(values, (int, float)) and not isinstance(values, bool) and math.isfinite(values):
        return [float(values)]
    return []


def empty_windows(viz: visdom.Visdom, env: str) -> dict[str, str]:
    """``{window title: why}`` of every window of ``env`` that a person would see empty: a plot with no finite
    value to draw (on a log axis: no positive one, since zeros are not drawn there), a text window with no text,
    an image without a picture."""
    found: dict[str, str] = {}
    for wid, win in json.loads(viz.get_window_data(env=env)).items():
        title = win.get("title") or wid
        content = win.get("content")
        if win.get("type") == "text":
            if not re.sub(r"<[^>]*>|\s", "", str(content or "")):
                found[title] = "no text"
            continue
        if win.get("type") == "image":
            if not (content or {}).get("src"):
                found[title] = "no picture"
            continue
        traces = content.get("data", []) if isinstance(content, dict) else []
        log_y = ((content or {}).get("layout", {}).get("yaxis") or {}).get("type") == "log"
        values = [n for t in traces for key in ("z", "y") if key in t for n in _numbers(t[key])]
        if not values and any(t.get("type") == "histogram" for t in traces):
            values = [n for t in traces for n in _numbers(t.get("x"))]
        drawn = [v for v in values if v > 0] if log_y else values
        if not drawn:
            found[title] = "no positive value on its log axis" if log_y and values else "no value"
    return found


def record_lines(run_dir: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """The line points of a run record: ``{(plot, trace): [(step, value), ...]}``, in the record's order."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for update in read_record(run_dir).updates:
        if update.kind == "line":
            for trace, value in update.data.items():
                out.setdefault((update.plot, trace), []).append((update.step, value))
    return out
