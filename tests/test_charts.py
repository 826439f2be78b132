"""The default charts of TooledModelLogger as a new user sees them: the demo's loggers, the env in headless Chromium.

A person opening the env should find their own metrics first and model charts whose every trace can be read: no
trace squashed flat against the axis because another trace of the window is orders of magnitude larger. The same
checks run on the old default (``mode='by_layer'``), where they must find flat traces: the test can tell the two
apart. Screenshots: ``artifacts/charts.png`` (the default) and ``artifacts/charts-by_layer.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import flexlogger
from flexlogger import TooledModelLogger
from flexlogger.model.logger import LOG_STATS
from flexlogger.model.recorder import RECORDER_STATS
from flexlogger.tools.server import VisdomServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
USER_WINDOWS = {"loss", "accuracy", "test confusion (rows: true digit)"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                       reason=f"{CHROMIUM} is missing (install the Debian package `chromium`; .ci/run does)"),
]

# Every window on the page, in reading order (top to bottom, left to right, as the grid places them), with what
# plotly drew: the axis type and range it chose and each trace's finite y values.
READ_WINDOWS = """() => Array.from(document.querySelectorAll('.window')).map(w => {
    const gd = w.querySelector('.js-plotly-plot');
    const box = w.getBoundingClientRect();
    const axis = gd && gd._fullLayout && gd._fullLayout.yaxis;
    return {
        title: w.querySelector('.bar .pull-right:not(button)')?.textContent ?? null,
        top: box.top + window.scrollY, left: box.left + window.scrollX, width: box.width, height: box.height,
        type: gd ? (gd.data[0] && gd.data[0].type) || 'scatter' : 'text',
        ytype: axis ? axis.type : null,
        yrange: axis ? axis.range : null,
        ylabels: gd && gd.data[0] ? Array.from(gd.data[0].y || []) : [],
        legendScrolls: gd ? Array.from(gd.querySelectorAll('.legend .scrollbar'))
            .some(s => parseFloat(s.getAttribute('height') || '0') > 0) : false,
        traces: gd ? gd.data.map(t => ({name: t.name,
            y: (t.y || []).filter(v => v !== null && isFinite(v))})) : [],
    };
})"""


def train_like_the_demo(model: nn.Module, stat: Any, tml: TooledModelLogger, epochs: int = 2,
                        batches_per_epoch: int = 6) -> None:
    """The demo's loop, shortened: statistics drawn every other step, the metrics once per epoch."""
    from flexlogger.tools import demo

    x_train, x_test, y_train, y_test = demo.load_data(0)
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        for i, (x, y) in enumerate(demo.batches(x_train, y_train, demo.BATCH, gen)):
            if i == batches_per_epoch:
                break
            optimizer.zero_grad()
            output = model(x)
            loss = nn.functional.cross_entropy(output, y)
            loss.backward()
            optimizer.step()
            tml.step(log=i % 2 == 1)
            stat.add({"train_loss": loss.detach(), "train_acc": [output.detach(), y]})
        with torch.no_grad():
            output = model(x_test)
            stat.add({"test_loss": nn.functional.cross_entropy(output, y_test), "test_acc": [output, y_test],
                      "test_confusion": [output, y_test]})
        stat.log(epoch)


def flat_traces(window: dict[str, Any]) -> list[str]:
    """Traces drawn flat because of the axis scale: the trace itself varies (its max is more than twice its
    min, or it changes sign) but spans less than 2% of the axis's height."""
    flat = []
    lo, hi = window["yrange"]
    log = window["ytype"] == "log"
    for trace in window["traces"]:
        ys = [y for y in trace["y"] if y > 0] if log else trace["y"]
        if len(ys) < 2:
            continue
        small, large = min(ys), max(ys)
        varies = small <= 0 < large or (small > 0 and large > 2 * small) or (large < 0 and small < 2 * large)
        if not varies:
            continue
        span = (torch.tensor([large, small]).log10().diff().abs().item() if log else large - small) / (hi - lo)
        if abs(span) < 0.02:
            flat.append(f"{window['title']}: {trace['name']} ({small:.3g}..{large:.3g}, {abs(span):.2%} of the axis)")
    return flat


def layout_problems(windows: list[dict[str, Any]], page_width: float) -> list[str]:
    """What a person sees wrong with the page's grid: two windows drawn over each other (Visdom 0.3 widens a window
    past its grid cell to fit its title bar), or a window past the page's right edge, cut off."""
    problems = []
    for i, a in enumerate(windows):
        right = a["left"] + a["width"]
        if a["left"] < 0 or right > page_width + 0.5:
            problems.append(f"{a['title']!r} spans {a['left']:.0f}-{right:.0f} px, the page {page_width:.0f} px")
        for b in windows[i + 1:]:  # the grid's 10 px margins apart, or touching: not an overlap
            dx = min(right, b["left"] + b["width"]) - max(a["left"], b["left"])
            dy = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
            if dx > 0.5 and dy > 0.5:
                problems.append(f"{a['title']!r} and {b['title']!r} overlap by {dx:.0f} x {dy:.0f} px")
    return problems


def open_env(port: int, env: str, n_windows: int, screenshot: Path) -> list[dict[str, Any]]:
    """The env's windows as Chromium draws them, in reading order; fails on a failed request and on windows that
    overlap or stand past the page's width (:func:`layout_problems`)."""
    from playwright.sync_api import sync_playwright

    bad_requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("requestfailed", lambda r: bad_requests.append(f"{r.url}: {r.failure}"))
            page.goto(f"http://localhost:{port}/env/{env}")
            page.wait_for_function(f"document.querySelectorAll('.window').length >= {n_windows} && "
                                   f"document.querySelectorAll('.js-plotly-plot').length >= {n_windows - 1}",
                                   timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)  # plotly lays out the last plots
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            windows: list[dict[str, Any]] = page.evaluate(READ_WINDOWS)
            page_width: float = page.evaluate("document.documentElement.clientWidth")
        finally:
            browser.close()
    assert bad_requests == []
    assert layout_problems(windows, page_width) == []
    return sorted(windows, key=lambda w: (round(w["top"]), w["left"]))


def test_default_charts_read_at_a_glance(visdom_server: VisdomServer, env: str) -> None:
    from flexlogger.tools import demo

    torch.manual_seed(0)
    model = demo.make_model()
    stat, tml = demo.make_loggers(model, env, visdom_server.port, log_dir=None)  # what the demo builds
    with stat, tml:
        train_like_the_demo(model, stat, tml)
        assert tml.flush(30) == 0
        expected = len(stat.windows)
    windows = open_env(visdom_server.port, env, expected, ARTIFACTS / "charts.png")
    titles = [w["title"] for w in windows]
    assert len(titles) == expected == 16, titles  # 3 of the user's, 5 statistics, 8 histograms

    # the user's metrics first, in reading order, then the model's statistics, then its histograms
    assert set(titles[:3]) == USER_WINDOWS, titles
    lines = [w for w in windows if w["title"].endswith("(log scale)")]
    hists = [w for w in windows if w not in lines and w["title"] not in USER_WINDOWS]
    # (their order among themselves is the grid packer's)
    assert sorted(w["title"] for w in lines) == ["Grad_out std (log scale)", "Outputs std (log scale)",
                                                 "Weight_grad std (log scale)", "Weights std (log scale)",
                                                 "Weights update_ratio (log scale)"]
    # histograms say which step they show
    assert len(hists) == 8 and all(re.fullmatch(r".* (Weights|Weight_grad) \(step \d+\)", w["title"])
                                   for w in hists), titles
    assert windows[3:8] == lines, titles  # statistics before histograms

    # each statistic on a scale that fits it: log axes for spreads, norms and ratios; a trace per layer
    for w in lines:
        stat_name = w["title"].split(" ")[1]
        assert stat_name in LOG_STATS and w["ytype"] == "log", w["title"]
        assert sorted(t["name"].split(".")[0] for t in w["traces"]) == ["conv1", "conv2", "fc1", "fc2"], w["title"]
        assert all(len(t["y"]) == 6 for t in w["traces"]), w["title"]  # 2 epochs x 3 drawn steps, all visible
        assert not w["legendScrolls"], w["title"]
    assert [f for w in windows if w["type"] == "scatter" for f in flat_traces(w)] == []

    # histograms small: each takes less room than a statistics window
    hist, line = hists[-1], lines[0]
    assert hist["width"] * hist["height"] < 0.6 * line["width"] * line["height"]


def test_the_old_default_draws_flat_traces(visdom_server: VisdomServer, env: str) -> None:
    """The checks above find what the issue describes in ``mode='by_layer'``: gradient traces flat at zero."""
    from flexlogger.tools import demo

    torch.manual_seed(0)
    model = demo.make_model()
    stat = flexlogger.get_preset_logger("loss+acc", env=env, port=visdom_server.port, log_dir=None)
    stat.update_config({"confusion": {"type": "heatmap", "opts": {"title": "test confusion (rows: true digit)"}}},
                       {"test_confusion": {"type": "ConfusionMeter", "target": "confusion",
                                           "args": {"k": demo.CLASSES}}})
    with stat, TooledModelLogger(model, logger=stat, mode="by_layer", stats=("mean", "std"),
                                 layers=(nn.Conv2d, nn.Linear)) as tml:
        train_like_the_demo(model, stat, tml)
        assert tml.flush(30) == 0
        expected = len(stat.windows)
    windows = open_env(visdom_server.port, env, expected, ARTIFACTS / "charts-by_layer.png")
    layer_windows = [w for w in windows if w["title"] not in USER_WINDOWS]
    assert len(layer_windows) == 4
    flat = [f for w in layer_windows for f in flat_traces(w)]
    assert any(".Weight_grad.mean" in f for f in flat), flat


def test_recorder_heatmaps_in_chromium(visdom_server: VisdomServer, env: str) -> None:
    """A NaN in one layer's gradient: the heatmaps of the steps before it, layers as rows in forward order."""
    from flexlogger import FlightRecorder
    from flexlogger.tools import demo

    torch.manual_seed(0)
    model = demo.make_model()
    stat = flexlogger.get_preset_logger("loss", env=env, port=visdom_server.port, log_dir=None)
    rec = FlightRecorder(window=12, after=3, warn=False)
    x_train, _, y_train, _ = demo.load_data(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with stat, TooledModelLogger(model, logger=stat, recorder=rec, layers=(nn.Conv2d, nn.Linear),
                                 anomaly=False) as tml:
        for step, (x, y) in enumerate(demo.batches(x_train, y_train, demo.BATCH)):
            if step == 16:
                break
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if step == 13:
                with torch.no_grad():
                    model[6].weight.grad[0, 0] = float("nan")  # the first Linear layer
            else:
                optimizer.step()
            tml.step(log=step % 4 == 3)
            stat.add({"train_loss": loss.detach()})
            stat.log(step)
        assert tml.flush(30) == 0
        expected = len(tml.windows)  # loss, 5 statistics, 6 heatmaps, the events
    windows = open_env(visdom_server.port, env, expected, ARTIFACTS / "charts-recorder.png")
    heatmaps = {w["title"]: w for w in windows if w["type"] == "heatmap"}
    assert sorted(heatmaps) == [f"recorder {s}, steps 1-13" for s in sorted(RECORDER_STATS)]
    for w in heatmaps.values():  # layer names as labels (not numbers), in forward order
        assert w["ytype"] == "category" and w["ylabels"] == ["conv1", "conv2", "fc1", "fc2"], w
    assert windows[0]["title"] == "loss"
    assert "flight recorder events (1)" in [w["title"] for w in windows]
