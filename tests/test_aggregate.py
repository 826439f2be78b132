"""Dense series: candlestick boxes (exact statistics of every point of a bucket) and smoothed traces, from the pure
functions to a real window read back from the Visdom server."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visdom

import flexlogger
from flexlogger import ConfigError, FlexLogger
from flexlogger.config.specs import parse_plot
from flexlogger.core.aggregate import SMOOTHED_SUFFIX, boxes_of, bucket_index, bucket_width, five_numbers, smooth
from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.buffer import BoxSeries, Buffer
from flexlogger.sinks.visdom.render import make_builder, render
from flexlogger.tools.server import VisdomServer


def expected_boxes(xs: np.ndarray, ys: np.ndarray, first: float, width: float) -> dict[int, list[float]]:
    """numpy's five numbers of each bucket's finite values, the plain way: one mask per bucket."""
    index = np.floor((xs - first) / width).astype(int)
    out = {}
    for bucket in np.unique(index):
        values = ys[(index == bucket) & np.isfinite(ys)]
        if values.size:
            out[int(bucket)] = np.quantile(values, [0, 0.25, 0.5, 0.75, 1], method="linear").tolist()
    return out


def irregular_series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points at irregular steps (gaps of 1 to 9), so that buckets hold unequal numbers of points."""
    rng = np.random.default_rng(seed)
    xs = np.cumsum(rng.integers(1, 10, n)).astype(np.float64)
    ys = rng.standard_normal(n) * np.exp(rng.standard_normal(n))
    return xs, ys


def test_five_numbers_equal_numpy_quantiles_on_1e4_points_in_unequal_buckets() -> None:
    xs, ys = irregular_series(10_000)
    width = bucket_width(xs[0], xs[-1], 100)
    boxes = boxes_of(xs, ys, xs[0], width)
    expected = expected_boxes(xs, ys, xs[0], width)
    assert set(boxes) == set(expected) and 50 <= len(boxes) <= 100
    counts = {b.count for b in boxes.values()}
    assert len(counts) > 5 and sum(counts) > 0  # buckets of unequal size
    assert sum(b.count for b in boxes.values()) == 10_000
    for bucket, box in boxes.items():
        assert [box.lo, box.q1, box.median, box.q3, box.hi] == expected[bucket]  # exactly numpy's numbers


@pytest.mark.parametrize("order", ["ordered", "fractional steps", "shuffled"])
def test_a_series_fed_point_by_point_keeps_exact_boxes_through_width_doublings(order: str) -> None:
    xs, ys = irregular_series(10_000, seed=1)
    ys[::97] = math.nan
    if order == "fractional steps":
        xs = xs * 0.001  # bucket edges that are not whole numbers
    elif order == "shuffled":  # two writers: steps out of order within each chunk
        rng = np.random.default_rng(3)
        for start in range(0, 10_000, 997):
            rng.shuffle(xs[start:start + 997])
    series = BoxSeries(max_boxes=64)
    widths = set()
    for start in range(0, 10_000, 997):  # boxes asked for between chunks: the cached ones must stay exact
        for x, y in zip(xs[start:start + 997], ys[start:start + 997]):
            series.append(float(x), float(y))
        boxes = series.source()()
        widths.add(series.width)
        assert len(boxes) <= 64
        seen_x, seen_y = xs[:start + 997], ys[:start + 997]
        expected = expected_boxes(seen_x, seen_y, seen_x.min(), series.width)
        assert [[b.lo, b.q1, b.median, b.q3, b.hi] for b in boxes] == [expected[k] for k in sorted(expected)]
    assert len(widths) > 3 and series.ordered == (order != "shuffled")  # the width doubled on the way


def test_nan_and_inf_are_left_out_of_the_statistics_and_counted() -> None:
    assert five_numbers([1.0, math.nan, 3.0, math.inf, 2.0]) == (1.0, 1.5, 2.0, 2.5, 3.0, 3, 2)
    lo, *_, count, bad = five_numbers([math.nan, -math.inf])
    assert math.isnan(lo) and (count, bad) == (0, 2)
    xs = np.arange(8, dtype=np.float64)
    ys = np.array([1.0, math.nan, 2.0, 3.0, math.nan, math.nan, math.nan, math.nan])
    boxes = boxes_of(xs, ys, 0.0, 4.0)
    assert list(boxes) == [0]  # the second bucket has no finite value: no box
    assert (boxes[0].median, boxes[0].count, boxes[0].nonfinite) == (2.0, 3, 1)


def test_bucket_width_is_the_least_power_of_two_that_fits() -> None:
    assert bucket_width(0, 999, 100) == 16.0 and bucket_width(5, 5, 10) == 1.0
    assert bucket_width(0.0, 0.01, 100) == 2.0 ** -13  # fractional steps get fractional buckets
    assert bucket_index(np.array([0.0, 15.9, 16.0]), 0.0, 16.0).tolist() == [0, 0, 1]


def test_smoothing_is_the_debiased_moving_average_and_continues_from_its_state() -> None:
    values = [1.0, 3.0, math.nan, 2.0, 10.0]
    out, _ = smooth(values, 0.6)
    average = weight = 0.0
    expected = []
    for y in values:
        if math.isnan(y):
            expected.append(math.nan)
            continue
        average, weight = 0.6 * average + 0.4 * y, 0.6 * weight + 0.4
        expected.append(average / weight)
    np.testing.assert_array_equal(out, expected)
    assert out[0] == 1.0
    head, state = smooth(values[:2], 0.6)
    tail, _ = smooth(values[2:], 0.6, state)
    np.testing.assert_array_equal(head + tail, out)


@pytest.mark.parametrize(("spec", "match"), [
    ({"type": "line", "aggregate": "boxes"},
     r"^plots\.p\.aggregate: expected one of 'candlestick', 'auto', but got 'boxes'$"),
    ({"type": "line", "smooth": 1.0},
     r"^plots\.p\.smooth: expected a smoothing weight w with 0 < w < 1 .*, but got 1\.0$"),
    ({"type": "line", "smooth": True}, r"^plots\.p\.smooth: expected a smoothing weight .* but got True$"),
    ({"type": "bar", "aggregate": "candlestick"},
     r"^plots\.p\.aggregate: only a 'line' plot can be drawn with `aggregate`, but this plot's type is 'bar'"),
    ({"type": "scatter", "smooth": 0.5}, r"^plots\.p\.smooth: only a 'line' plot can be drawn with `smooth`"),
    ({"type": "line", "opts": {"smooth": 0.5}},
     r"^plots\.p\.opts\.smooth: expected `smooth` beside `type` and `opts` in the plot spec"),
])
def test_bad_aggregate_and_smooth_are_refused(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_plot("p", spec)
    with pytest.raises(ConfigError, match=match[1:]):  # the constructor reports the same problem
        FlexLogger({"p": spec}, {}, server=None, log_dir=None)


def test_a_spec_with_aggregate_and_smooth_survives_a_config_round_trip(tmp_path: Path) -> None:
    plots = {"loss": {"type": "line", "opts": {"xlabel": "step"}, "aggregate": "candlestick", "smooth": 0.9}}
    meters = {"v": {"type": "ValueMeter", "target": "loss"}}
    with FlexLogger(plots, meters, server=None, log_dir=None) as stat:
        stat.save_config(tmp_path / "c.yaml")
        assert stat.to_config()["plots"]["loss"] == plots["loss"]
    with FlexLogger.from_config(tmp_path / "c.yaml", server=None, log_dir=None) as again:
        assert again.to_config()["plots"]["loss"] == plots["loss"]


def test_auto_draws_lines_until_max_points_then_boxes() -> None:
    buffer = Buffer(max_points=64)
    opts = {"aggregate": "auto"}
    for step in range(64):
        buffer.write(Update("loss", "line", step, {"a": float(step)}, opts, step))
    window = buffer.windows["loss"]
    assert isinstance(buffer.snapshot(window).body, dict)  # lines
    buffer.write(Update("loss", "line", 64, {"a": 64.0}, opts, 65))
    body = buffer.snapshot(window).body
    assert not isinstance(body, dict) and sum(b.count for b in body.boxes["a"]) == 65
    assert window.traces["a"].xs == [] and buffer.pending() == 65


def test_series_names_are_escaped_once_in_a_candlestick_window() -> None:
    buffer = Buffer(max_points=64)
    for step in range(10):
        buffer.write(Update("<i>p</i>", "line", step, {"<b>x</b>": float(step)},
                            {"aggregate": "candlestick", "smooth": 0.5}, step))
    body = buffer.snapshot(buffer.windows["<i>p</i>"]).body
    msg = json.loads(render(make_builder("http://localhost", 8097, "e"), "w", "e", body))
    assert [t["name"] for t in msg["data"]] == ["&lt;b&gt;x&lt;/b&gt;", "&lt;b&gt;x&lt;/b&gt; (smoothed)"]
    title = msg["layout"]["title"]  # a dict where it is placed or sized to fit (legible.py)
    assert (title["text"] if isinstance(title, dict) else title) == "&lt;i&gt;p&lt;/i&gt;"


def window_data(viz: visdom.Visdom, stat: FlexLogger, plot: str) -> list[dict[str, Any]]:
    assert stat.flush(30) == 0
    data: list[dict[str, Any]] = json.loads(viz.get_window_data(stat.windows[plot], stat.env))["content"]["data"]
    return data


def test_a_candlestick_window_read_back_holds_numpy_s_numbers(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                              tmp_path: Path, env: str) -> None:
    xs, ys = irregular_series(10_000, seed=2)
    ys[::500] = math.nan
    plots = {"loss": {"type": "line", "aggregate": "candlestick", "smooth": 0.99}}
    meters = {"train": {"type": "ValueMeter", "target": "loss"}}
    with FlexLogger(plots, meters, env=env, port=visdom_server.port, log_dir=tmp_path, uid="u") as stat:
        for x, y in zip(xs, ys):
            stat.add({"train": float(y)})
            stat.log(float(x))
        data = window_data(viz, stat, "loss")
        with pytest.warns(RuntimeWarning, match="NaN/Inf"):
            stat.close()
    boxes = {t["name"]: t for t in data if t.get("type") == "box"}
    lines = {t["name"]: t for t in data if t.get("type") != "box"}
    assert list(boxes) == ["train"] and list(lines) == ["train" + SMOOTHED_SUFFIX]
    box = boxes["train"]
    first_x, last_x = xs[0], xs[-1]
    expected = expected_boxes(xs, ys, first_x, bucket_width(first_x, last_x, 2000 // 16))
    got = list(zip(box["lowerfence"], box["q1"], box["median"], box["q3"], box["upperfence"]))
    assert got == [tuple(expected[k]) for k in sorted(expected)]
    counted = [re.search(r"(\d+) point\(s\)(?:, (\d+) NaN/Inf)?$", text) for text in box["text"]]
    assert sum(int(m[1]) for m in counted if m) == 10_000 - 20  # every finite point is in a box
    assert sum(int(m[2] or 0) for m in counted if m) == 20  # the NaN are counted in theirs
    smoothed = lines["train" + SMOOTHED_SUFFIX]
    assert len(smoothed["x"]) <= 2000 and smoothed["x"][-1] == last_x
    assert smoothed["y"][-1] == pytest.approx(smooth(ys.tolist(), 0.99)[0][-1], rel=1e-12)
    record = flexlogger.sinks.record.read_record(tmp_path / env / "u")
    assert len(record.updates) == 10_000  # the run record keeps every point
    assert record.plots["loss"][1] == {"aggregate": "candlestick", "smooth": 0.99}


def test_a_smoothed_window_keeps_the_raw_trace_fainter(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                       env: str) -> None:
    plots = {"loss": {"type": "line", "smooth": 0.5}}
    meters = {"train": {"type": "ValueMeter", "target": "loss"}, "test": {"type": "ValueMeter", "target": "loss"}}
    with FlexLogger(plots, meters, env=env, port=visdom_server.port, log_dir=None) as stat:
        for step, y in enumerate([1.0, 3.0, 2.0]):
            stat.add({"train": y, "test": 2.0})
            stat.log(step)
        traces = {t["name"]: t for t in window_data(viz, stat, "loss")}
    assert traces["train"]["y"] == [1.0, 3.0, 2.0] and traces["test"]["y"] == [2.0, 2.0, 2.0]
    assert traces["train (smoothed)"]["y"] == smooth([1.0, 3.0, 2.0], 0.5)[0]
    # a series and its smoothed trace share a colour, the raw one faint (the alpha: Visdom's page resets opacity)
    assert traces["train"]["line"]["color"] == "rgba(31,119,180,0.35)"
    assert traces["train (smoothed)"]["line"]["color"] == "#1f77b4"
    assert traces["test"]["line"]["color"] == "rgba(255,127,14,0.35)"
    assert traces["test (smoothed)"]["line"]["color"] == "#ff7f0e"


def test_a_smoothed_window_keeps_its_colours_and_templates_across_writes() -> None:
    buffer = Buffer(max_points=64)
    opts = {"smooth": 0.5}
    buffer.write(Update("loss", "line", 0, {"a": 1.0, "b": 2.0}, opts, 1))
    window = buffer.windows["loss"]
    window.templates["a"] = {"kept": True}
    buffer.write(Update("loss", "line", 1, {"a": 1.0, "b": 2.0}, dict(opts), 2))  # equal opts: nothing rebuilt
    assert window.templates == {"a": {"kept": True}} and window.opts["series_colors"] == {"a": 0, "b": 1}
    buffer.write(Update("loss", "line", 2, {"c": 1.0}, {**opts, "xlabel": "x"}, 3))  # new opts: colours kept
    assert window.templates == {} and window.opts == {"smooth": 0.5, "xlabel": "x",
                                                      "series_colors": {"a": 0, "b": 1, "c": 2}}


def test_smoothing_and_boxes_take_a_meter_s_display_colour_and_best_legend(visdom_server: VisdomServer,
                                                                           viz: visdom.Visdom, env: str) -> None:
    plots = {"loss": {"type": "line", "smooth": 0.5}, "dense": {"type": "line", "aggregate": "candlestick"}}
    meters = {"train": {"type": "ValueMeter", "target": "loss", "display": {"color": "#ff0000"}},
              "test": {"type": "ValueMeter", "target": "loss", "best": "min"},
              "d": {"type": "ValueMeter", "target": "dense", "best": "max", "display": {"color": "rgb(0, 128, 0)"}}}
    with FlexLogger(plots, meters, env=env, port=visdom_server.port, log_dir=None) as stat:
        for step, y in enumerate([3.0, 1.0, 2.0]):
            stat.add({"train": y, "test": y + 1, "d": y})
            stat.log(step)
        traces = {t["name"]: t for t in window_data(viz, stat, "loss")}
        (box,) = window_data(viz, stat, "dense")
    assert traces["train"]["line"]["color"] == "rgba(255,0,0,0.35)"
    assert traces["train (smoothed)"]["line"]["color"] == "#ff0000"
    test = "test (best 2 @ 1)"  # the legend of a `best` meter: its raw trace, in the palette's second colour
    assert traces[test]["line"]["color"] == "rgba(255,127,14,0.35)" and traces[test]["y"] == [4.0, 2.0, 3.0]
    assert traces["test (smoothed)"]["line"]["color"] == "#ff7f0e"
    assert box["name"] == "d (best 3 @ 0)" and box["line"]["color"] == "rgb(0, 128, 0)"
    assert box["median"] == [3.0, 1.0, 2.0]


def test_replay_redraws_candlesticks_from_the_record(visdom_server: VisdomServer, viz: visdom.Visdom,
                                                     tmp_path: Path, env: str) -> None:
    plots = {"loss": {"type": "line", "aggregate": "candlestick"}}
    with FlexLogger(plots, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env, uid="r", server=None,
                    log_dir=tmp_path) as stat:
        for step in range(300):
            stat.add({"v": float(step % 10)})
            stat.log(step)
    flexlogger.replay(tmp_path / env / "r", port=visdom_server.port)
    data = json.loads(viz.get_window_data("r_loss", env))["content"]["data"]
    assert [t["type"] for t in data] == ["box"]
    width = bucket_width(0, 299, 2000 // 16)
    assert width == 4.0 and len(data[0]["median"]) == 75
    assert (data[0]["lowerfence"][0], data[0]["median"][0], data[0]["upperfence"][0]) == (0.0, 1.5, 3.0)
    assert (data[0]["lowerfence"][-1], data[0]["median"][-1], data[0]["upperfence"][-1]) == (6.0, 7.5, 9.0)


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is missing (Debian `chromium`)")
def test_boxes_and_faint_raw_traces_render_in_chromium(visdom_server: VisdomServer, env: str) -> None:
    from playwright.sync_api import sync_playwright

    from flexlogger.tools.assets import ensure_assets

    ensure_assets()  # as `flexlogger serve` does: the page's plotly from the npm registry, once
    plots = {"loss": {"type": "line", "aggregate": "candlestick", "smooth": 0.9},
             "acc": {"type": "line", "smooth": 0.9}}
    meters = {"train": {"type": "ValueMeter", "target": "loss"}, "test": {"type": "ValueMeter", "target": "loss"},
              "a": {"type": "ValueMeter", "target": "acc"}}
    with FlexLogger(plots, meters, env=env, port=visdom_server.port, log_dir=None, uid="u") as stat:
        for step in range(1000):
            stat.add({"train": math.sin(step), "test": math.cos(step), "a": step % 3})
            stat.log(step)
        boxes = len(window_data(viz_of(visdom_server), stat, "loss")[0]["median"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"http://localhost:{visdom_server.port}/env/{env}")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .legendtext').length >= 6",
                                   timeout=30_000)
            drawn = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot'))
                .map(p => [(p.querySelector('.gtitle tspan.line') ?? p.querySelector('.gtitle')).textContent, {
                    boxes: p.querySelectorAll('g.trace.boxes path.box').length,
                    strokes: Array.from(p.querySelectorAll('g.scatterlayer path.js-line'))
                        .map(l => getComputedStyle(l).stroke + ' ' + getComputedStyle(l).strokeOpacity)}]))""")
        finally:
            browser.close()
    assert drawn["loss"]["boxes"] == 2 * boxes and boxes > 30  # every box of both series is drawn
    assert drawn["loss"]["strokes"] == ["rgb(31, 119, 180) 1", "rgb(255, 127, 14) 1"]  # the smoothed lines
    assert drawn["acc"]["strokes"] == ["rgb(31, 119, 180) 0.35", "rgb(31, 119, 180) 1"]  # raw faint, same hue


def viz_of(server: VisdomServer) -> visdom.Visdom:
    return visdom.Visdom(server=server.url, port=server.port, raise_exceptions=True, use_incoming_socket=False)
