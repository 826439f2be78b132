"""Windows a person can read at a glance: the legibility touches (``sinks/visdom/legible.py``), as functions and
as Chromium draws them from a real logger and run on a real server (screenshot: ``artifacts/legible.png``): line,
log-axis, heatmap and histogram windows, a table, a Markdown page and a small image."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import flexlogger
from flexlogger.sinks.visdom.legible import (
    BAR_BUTTONS,
    MARKER_POINTS,
    TOP_ROOM_MENU,
    bar_width,
    histogram_title,
    label_run,
    legible_heatmap,
    legible_layout,
    legible_traces,
    title_size,
)
from flexlogger.tools.server import VisdomServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def _window(n_traces: int, n_points: int, name: str = "s") -> dict[str, Any]:
    return {"data": [{"type": "scatter", "mode": "lines", "name": f"{name}{i}", "marker": {"size": 10,
                                                                                          "line": {"width": 0.5}}}
                     for i in range(n_traces)],
            "layout": {"title": "loss", "showlegend": True, "margin": {"l": 60, "r": 60, "t": 60, "b": 60}}}


@pytest.mark.parametrize("points, markers", [(0, True), (1, True), (MARKER_POINTS, True), (MARKER_POINTS + 1, False)])
def test_a_trace_with_few_points_shows_its_points(points: int, markers: bool) -> None:
    msg = legible_traces(_window(1, points), [points], (0.0, float(points)))
    assert (msg["data"][0]["mode"] == "lines+markers") is markers
    if points == 1:
        assert msg["data"][0]["marker"]["size"] == 8


def test_whole_steps_tick_at_every_step_and_an_untitled_axis_says_step() -> None:
    msg = legible_traces(_window(2, 3), [3, 3], (0.0, 7.0))
    assert msg["layout"]["xaxis"] == {"title": "step", "dtick": 1, "tickformat": "d"}
    one = legible_traces(_window(1, 1), [1], (4.0, 4.0))["layout"]["xaxis"]
    assert one["range"] == [3.0, 5.0]
    wide = legible_traces(_window(1, 100), [100], (0.0, 99.0))["layout"]["xaxis"]
    assert "dtick" not in wide
    fractional = legible_traces(_window(1, 3), [3], (0.0, 0.5))["layout"]["xaxis"]
    assert "dtick" not in fractional


def test_the_users_opts_win() -> None:
    msg = _window(6, 2, "a_long_series_name_")
    msg["layout"]["xaxis"] = {"title": "epoch", "dtick": 2}
    msg["layout"]["legend"] = {"x": 1}
    legible_traces(msg, [2] * 6, (0.0, 5.0))
    assert msg["layout"]["xaxis"]["title"] == "epoch" and msg["layout"]["xaxis"]["dtick"] == 2
    assert msg["layout"]["legend"] == {"x": 1}


def test_a_crowded_legend_moves_above_the_plot_under_the_title() -> None:
    few = legible_traces(_window(2, 5), [5, 5], (0.0, 4.0))
    assert "legend" not in few["layout"]
    many = legible_traces(_window(6, 5, "validation_loss_"), [5] * 6, (0.0, 4.0))["layout"]
    assert many["legend"]["orientation"] == "h" and many["legend"]["yanchor"] == "bottom"
    assert many["margin"]["t"] >= 50 + 22 * 3  # 6 long names: 3 rows of 2
    assert many["title"]["yref"] == "container" and many["title"]["text"] == "loss"


def test_the_legends_room_is_held_by_an_empty_menu() -> None:
    """A page that sets the top margin itself (visdom 0.3) still leaves the legend's rows their room."""
    assert "updatemenus" not in legible_traces(_window(2, 5), [5, 5], (0.0, 4.0))["layout"]
    msg = legible_traces(_window(6, 5, "validation_loss_"), [5] * 6, (0.0, 4.0))
    [room] = msg["layout"]["updatemenus"]
    assert room["name"] == TOP_ROOM_MENU and room["buttons"] == []  # nothing drawn, nothing to click
    assert room["y"] == 1 and room["yanchor"] == "bottom" and 0 < room["pad"]["t"] < msg["layout"]["margin"]["t"]
    before = room["pad"]["t"]
    [room] = label_run(msg, "run x")["layout"]["updatemenus"]  # resized, not added again
    assert room["pad"]["t"] == before + 16


def test_log_axes_label_numbers() -> None:
    msg = legible_layout({"layout": {"yaxis": {"type": "log"}, "xaxis": {"type": "linear"}}})
    assert msg["layout"]["yaxis"] == {"type": "log", "tickformat": "~g", "exponentformat": "none", "nticks": 3}
    assert msg["layout"]["xaxis"] == {"type": "linear"}


def test_titles_shrink_to_fit() -> None:
    assert title_size("loss") == 17
    long = "Grad_out update_ratio of every layer (log scale), per batch"
    assert 10 <= title_size(long) < 17
    msg = legible_layout({"layout": {"title": long}})
    assert msg["layout"]["title"] == {"text": long, "font": {"size": title_size(long)}}


def test_a_title_bar_is_its_buttons_and_its_title() -> None:
    assert bar_width("") == BAR_BUTTONS
    title = "fc1 (Linear) Weights"
    assert bar_width("loss") < bar_width(title) < bar_width(histogram_title(title, 11))
    # Chromium draws the demo's longest histogram bar 300 px wide (DejaVu Sans, 11 px): the estimate holds it
    assert 300 <= bar_width("conv1 (Conv2d) Weight_grad (step 11)") <= 340
    assert histogram_title(title, 11.0) == "fc1 (Linear) Weights (step 11)"


def test_each_chart_says_which_run_drew_it() -> None:
    msg = label_run({"layout": {"title": "loss", "margin": {"t": 60}}}, "run <b>x</b>")
    assert msg["layout"]["title"] == {"text": 'loss<br><span style="font-size:11px;color:#777">run &lt;b&gt;x&lt;/b&gt;'
                                              '</span>'}
    assert msg["layout"]["margin"]["t"] == 76
    assert label_run({"layout": {"title": "loss"}}, None) == {"layout": {"title": "loss"}}
    assert legible_layout(label_run({"layout": {"title": "l" * 50}}, "run " + "u" * 60))["layout"]["title"]["font"][
        "size"] == title_size("l" * 50) < 17  # sized by the title, not by the run's label


@pytest.mark.parametrize("k, ticked", [(10, True), (30, True), (31, False)])
def test_heatmaps_tick_every_class(k: int, ticked: bool) -> None:
    msg = legible_heatmap({"layout": {}}, (k, k))
    assert ("dtick" in msg["layout"]["xaxis"]) is ticked and ("dtick" in msg["layout"]["yaxis"]) is ticked


# --- in Chromium ------------------------------------------------------------------------------------------------
READ = """() => Array.from(document.querySelectorAll('.window')).map(w => {
    const gd = w.querySelector('.js-plotly-plot');
    const rect = el => { if (!el) return null; const r = el.getBoundingClientRect();
                         return r.width && r.height ? {l: r.left, r: r.right, t: r.top, b: r.bottom} : null; };
    const cell = w.querySelector('.content td');
    const img = w.querySelector('img');
    return {
        title: w.querySelector('.bar .pull-right:not(button)')?.textContent ?? null,
        cellPadding: cell ? parseFloat(getComputedStyle(cell).paddingRight) : null,
        headingPx: Array.from(w.querySelectorAll('.content h1, .content h2'))
            .map(h => parseFloat(getComputedStyle(h).fontSize)),
        image: img ? {w: img.getBoundingClientRect().width, h: img.getBoundingClientRect().height} : null,
        legend: gd ? rect(gd.querySelector('.legend')) : null,
        xtitle: gd ? rect(gd.querySelector('.g-xtitle text')) : null,
        gtitle: gd ? rect(gd.querySelector('.g-gtitle text')) : null,
        gtitleText: gd ? gd.querySelector('.g-gtitle text')?.textContent ?? '' : '',
        plot: gd ? rect(gd.querySelector('.nsewdrag')) : null,
        window: rect(w),
        yticks: gd ? Array.from(gd.querySelectorAll('.ytick text')).map(t => t.textContent) : [],
        xticks: gd ? Array.from(gd.querySelectorAll('.xtick text')).map(t => t.textContent) : [],
        points: gd ? gd.querySelectorAll('.scatterlayer .point').length : 0,
    };
})"""


def _overlap(a: dict[str, float] | None, b: dict[str, float] | None) -> bool:
    return bool(a and b and a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"])


def _inside(inner: dict[str, float] | None, outer: dict[str, float] | None) -> bool:
    return bool(inner and outer and inner["l"] >= outer["l"] - 1 and inner["r"] <= outer["r"] + 1
                and inner["t"] >= outer["t"] - 1 and inner["b"] <= outer["b"] + 1)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                    reason=f"{CHROMIUM} is missing (install the Debian package `chromium`; .ci/run does)")
def test_windows_read_at_a_glance_in_chromium(visdom_server: VisdomServer, env: str) -> None:
    from playwright.sync_api import sync_playwright

    plots = {"loss": {"type": "line"},
             "lr": {"type": "line", "opts": {"ytype": "log", "xlabel": "epoch"}},
             "confusion": {"type": "heatmap", "opts": {"xlabel": "predicted", "ylabel": "target"}},
             "weights": {"type": "histogram"}}
    meters = {f"fold{i}_validation_loss": {"type": "AverageValueMeter", "target": "loss"} for i in range(6)}
    meters |= {"lr": {"type": "ValueMeter", "target": "lr"},
               "conf": {"type": "ConfusionMeter", "target": "confusion", "args": {"k": 12}},
               "w": {"type": "ValueMeter", "target": "weights"}}
    gen = torch.Generator().manual_seed(0)
    with flexlogger.FlexLogger(plots, meters, env=env, server=visdom_server.url, port=visdom_server.port,
                               log_dir=None) as stat:
        stat.add({**{f"fold{i}_validation_loss": 1.0 + i for i in range(6)}, "lr": 3e-4,
                  "conf": [torch.rand(60, 12, generator=gen), torch.randint(0, 12, (60,), generator=gen)],
                  "w": torch.randn(1000, generator=gen)})
        stat.log(0)  # one point per trace: drawn after the first epoch, before any line can be
        stat.run.log_hparams({"lr": 0.1, "bs": 16, "optim": {"name": "adam"}})
        stat.run.log_markdown("notes", "# Results\n## Ablation\n| bs | top-1 |\n|---|---|\n| 16 | 1.10086 |")
        stat.run.log_image("sample", torch.rand(3, 32, 32, generator=gen), boxes=[
            {"xStart": 4, "yStart": 8, "xEnd": 20, "yEnd": 28, "className": "cat", "probability": 0.93}])
        assert stat.flush(30) == 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{visdom_server.url}:{visdom_server.port}/env/{env}")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 4 && "
                                   "document.querySelectorAll('.window img').length >= 1", timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "legible.png"), full_page=True)
            windows = {w["title"]: w for w in page.evaluate(READ)}
        finally:
            browser.close()
    loss, lr, confusion, weights = (windows[t] for t in ("loss", "lr", "confusion", "weights (step 0)"))
    assert loss["points"] == 6  # every one-point trace is visible
    assert loss["gtitleText"] == f"lossrun {stat.uid}" and lr["gtitleText"] == f"lrrun {stat.uid}"  # which run
    assert loss["legend"] and not _overlap(loss["legend"], loss["xtitle"])
    assert not _overlap(loss["legend"], loss["plot"])
    assert _inside(loss["legend"], loss["window"]) and _inside(loss["gtitle"], loss["window"])
    assert loss["xticks"] == ["−1", "0", "1"]  # whole steps around the one step, Plotly's minus sign
    number = re.compile(r"^[0-9.]+$")
    assert lr["yticks"] and all(number.match(t) for t in lr["yticks"]), lr["yticks"]  # 0.0005, never "5" nor "µ"
    assert lr["points"] == 1
    assert [int(t) for t in confusion["xticks"]] == list(range(12))
    assert [int(t) for t in confusion["yticks"]] == list(range(12))
    assert weights["xticks"]
    hparams, notes, sample = windows["hparams"], windows["notes"], windows["sample"]
    assert hparams["cellPadding"] >= 8 and notes["cellPadding"] >= 8  # "bs 16", never "bs16" nor "161.10086"
    assert notes["headingPx"] and max(notes["headingPx"]) <= 20  # a heading sized to the window, not the page
    assert sample["image"] and min(sample["image"]["w"], sample["image"]["h"]) >= 200  # 32 px shown large
    assert not _overlap(loss["legend"], loss["gtitle"])
