"""The plot-kind table against the Visdom renderers: every kind has a valid data form and a renderer, and each
renderer draws a sample update of its form into a real server window (read back with ``get_window_data``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import visdom

from flexlogger.core.plots import DATA_FORMS, PLOT_KINDS, PLOT_TYPES, Histogram, bin_values
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.legible import text_page
from flexlogger.sinks.visdom.render import RENDERERS, make_builder, render
from flexlogger.sinks.visdom.transport import Transport
from flexlogger.tools.server import VisdomServer

KINDS = [p.name for p in PLOT_TYPES]
MATRIX = np.linspace(0.0, 1.0, 12).reshape(3, 4)

# one sample update's data per data form
SAMPLES: dict[str, dict[str, Any]] = {
    "points": {"train": 1.5, "test": -2.0},
    "vector": {"ap": np.array([0.25, 0.5, 0.75])},
    "matrix": {"m": MATRIX},
    "histogram": {"w": Histogram((1.0, 3.0, 2.0), 0.0, 3.0)},
    "curve": {"roc": (np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]))},
    "text": {"note": "hello <world>"},
}


def _traces(content: Any) -> dict[str, tuple[Any, Any]]:
    return {t.get("name"): (t["x"], t["y"]) for t in content["data"]}


# what each kind's window must show for its sample
CHECKS: dict[str, Callable[[Any], None]] = {
    "line": lambda c: _check(_traces(c) == {"train": ([7], [1.5]), "test": ([7], [-2.0])}),
    "scatter": lambda c: _check(_traces(c) == {"train": ([7], [1.5]), "test": ([7], [-2.0])}),
    "bar": lambda c: _check([(t["name"], t["y"]) for t in c["data"]] == [("ap", [0.25, 0.5, 0.75])]),
    "histogram": lambda c: _check([(t["x"], t["y"]) for t in c["data"]] == [([0.0, 1.5, 3.0], [1.0, 3.0, 2.0])]),
    "heatmap": lambda c: _check(np.allclose(c["data"][0]["z"], MATRIX)),
    "image": lambda c: _check(c["src"].startswith("data:image/")),
    "text": lambda c: _check(c == text_page("<table><tr><td><b>note</b></td><td>hello &lt;world&gt;</td></tr>"
                                            "</table>")),
    "curve": lambda c: _check(_traces(c) == {"roc": ([0.0, 0.5, 1.0], [0.0, 0.8, 1.0])}),
}


def _check(ok: bool) -> None:
    assert ok


def test_every_kind_has_a_data_form_a_renderer_and_a_sample() -> None:
    assert set(PLOT_KINDS) == set(KINDS)
    for kind in PLOT_TYPES:
        assert kind.data in DATA_FORMS, f"plot kind {kind.name!r}: data form {kind.data!r} not in {DATA_FORMS}"
        assert callable(RENDERERS.get(kind.name)), f"plot kind {kind.name!r} has no renderer in RENDERERS"
        assert kind.data in SAMPLES and kind.name in CHECKS, f"add a sample and a check for {kind.name!r} here"
    assert set(RENDERERS) == set(KINDS)  # no renderer for a kind the table does not hold


@pytest.mark.parametrize("kind", KINDS)
def test_each_renderer_draws_a_sample_of_its_form(kind: str, visdom_server: VisdomServer, viz: visdom.Visdom,
                                                  env: str) -> None:
    update = Update(f"sample_{kind}", kind, 7, SAMPLES[PLOT_KINDS[kind].data], {}, 1)
    win = f"run_{update.plot}"
    body = render(make_builder(visdom_server.url, visdom_server.port, env), win, env, update)
    transport = Transport(f"{visdom_server.url}:{visdom_server.port}", 10.0)
    try:
        assert transport.post("events", body), transport.failure
    finally:
        transport.close()
    content = json.loads(viz.get_window_data(win, env))["content"]
    CHECKS[kind](content)


# the one histogram binning: the logger's windows and the Visdom renderer both draw what bin_values counts
@pytest.mark.parametrize(("values", "bins", "expected"), [
    ([0.0, 1.0, 1.0, math.nan, 3.0], 3, Histogram((1.0, 2.0, 1.0), 0.0, 3.0)),  # NaN not counted
    ([2.0, 2.0, 2.0], 2, Histogram((0.0, 3.0), 1.5, 2.5)),  # constant: widened by 0.5 each side, as numpy does
    ([7.0], 4, Histogram((0.0, 0.0, 1.0, 0.0), 6.5, 7.5)),  # a single value
    ([], 3, Histogram((0.0, 0.0, 0.0), -0.5, 0.5)),  # empty: zero counts
    ([math.inf, -math.inf, math.nan], 3, Histogram((0.0, 0.0, 0.0), -0.5, 0.5)),  # no finite value: as empty
    ([-math.inf, 1.0, 2.0, math.inf], 2, Histogram((1.0, 1.0), 1.0, 2.0)),  # Inf not counted, nor in the range
])
def test_bin_values_edge_cases_agree_with_the_device_binning(values: list[float], bins: int,
                                                             expected: Histogram) -> None:
    from flexlogger.model.stats import histogram

    got = bin_values(np.array(values, dtype=np.float64), {"numbins": bins})
    assert got == expected
    device = histogram(torch.tensor(values, dtype=torch.float64), bins).tolist()
    assert Histogram(tuple(device[:bins]), device[bins], device[bins + 1]) == got


def test_bin_values_passes_a_histogram_and_defaults_to_30_bins() -> None:
    counted = Histogram((1.0, 2.0), 0.0, 1.0)
    assert bin_values(counted, {"numbins": 5}) is counted
    assert len(bin_values(np.arange(100.0)).counts) == 30 and bin_values(np.arange(100.0)).total == 100
