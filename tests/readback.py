"""Reading a logger's windows back from the real Visdom server (shared by the test modules)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import visdom


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
