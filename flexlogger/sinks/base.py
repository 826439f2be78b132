"""What flows from the logger to its sinks: one :class:`Update` per plot per ``log()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Update:
    """The values one ``log()`` sends to one window.

    Attributes:
        plot: the plot name (the window's title).
        kind: the plot type (``line``, ``bar``, ...; see ``flexlogger.core.plots``).
        step: the x value of this log.
        data: trace or meter name -> value. For ``line``/``scatter``: trace name -> float (NaN and inf are kept
            and shown as gaps). For ``bar``: meter -> 1-d array, or trace -> float. For ``histogram``/``heatmap``/
            ``image``: meter -> array. For ``curve``: meter -> (x, y). For ``text``: meter -> str.
        opts: the plot's Visdom options as the user gave them (sinks copy before use).
        seq: the logger's running count of updates, for delivery accounting.
    """

    plot: str
    kind: str
    step: float
    data: Mapping[str, Any]
    opts: Mapping[str, Any]
    seq: int = 0


class Sink(Protocol):
    """Where updates go. ``write`` must return quickly; delivery may happen later, in the background."""

    def write(self, update: Update) -> None: ...

    def flush(self, timeout: float | None = None) -> int:
        """Block until everything written has been delivered, or ``timeout`` seconds; return what is pending."""
        ...

    def close(self) -> None: ...
