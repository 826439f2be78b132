"""The background Visdom sender on a real server: batching, coalescing, bounded windows, NaN, env saving."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visdom

from flexlogger import ConfigError, DeliveryError, FlexLogger, Update
from flexlogger.core.plots import Histogram
from flexlogger.sinks.visdom.buffer import downsample
from flexlogger.sinks.visdom.legible import text_page, upscale_factor
from flexlogger.sinks.visdom.render import make_builder, render
from flexlogger.sinks.visdom.sender import VisdomSink, _close_open_sinks
from flexlogger.tools.server import VisdomServer


@pytest.fixture
def sink(visdom_server: VisdomServer, env: str) -> Iterator[VisdomSink]:
    made = VisdomSink(port=visdom_server.port, env=env, uid="run")
    yield made
    made.close()


def traces(viz: visdom.Visdom, sink: VisdomSink, plot: str) -> dict[str, tuple[list[Any], list[Any]]]:
    assert sink.flush(10) == 0
    data = json.loads(viz.get_window_data(sink.window_id(plot), sink.env))
    return {t["name"]: (t["x"], t["y"]) for t in data["content"]["data"]}


def line(step: float, seq: int = 0, plot: str = "loss", **values: float) -> Update:
    return Update(plot, "line", step, values, {}, seq)


def test_points_arrive_exact_in_few_requests(sink: VisdomSink, viz: visdom.Visdom) -> None:
    names = [f"s{i}" for i in range(6)]
    for step in range(200):
        sink.write(line(step, **{n: step * 10.0 + i for i, n in enumerate(names)}))
    got = traces(viz, sink, "loss")
    assert list(got) == names
    for i, n in enumerate(names):
        assert got[n] == (list(range(200)), [step * 10.0 + i for step in range(200)])
    assert sink.sent_requests <= 5  # coalesced: all 6 traces of many log() calls go in one request


def test_appends_after_the_first_send_keep_order(sink: VisdomSink, viz: visdom.Visdom) -> None:
    for chunk in range(4):
        for step in range(chunk * 5, chunk * 5 + 5):
            sink.write(line(step, a=float(step)))
        assert sink.flush(10) == 0
    sink.write(line(20, a=20.0, b=-1.0))  # a new trace: the window is sent whole again
    assert traces(viz, sink, "loss") == {"a": (list(range(21)), [float(s) for s in range(21)]), "b": ([20], [-1.0])}


def test_long_series_are_downsampled_keeping_spikes_and_the_last_step(visdom_server: VisdomServer, env: str,
                                                                      viz: visdom.Visdom) -> None:
    sink = VisdomSink(port=visdom_server.port, env=env, uid="run", max_points=40)
    try:
        def f(step: float) -> float:
            return 100.0 if step == 123 else (-50.0 if step == 777 else math.sin(step / 50))

        for step in range(1000):
            sink.write(line(step, a=f(step), b=-f(step)))
            if step % 37 == 0:  # sends between downsamplings
                xs, ys = traces(viz, sink, "loss")["a"]
                assert all(y == f(x) for x, y in zip(xs, ys)) and xs[-1] == step
        xs, ys = traces(viz, sink, "loss")["a"]
        assert all(y == f(x) for x, y in zip(xs, ys))
        assert traces(viz, sink, "loss")["b"] == (xs, [-y for y in ys])
        assert len(xs) <= 40 and xs == sorted(xs)
        assert max(ys) == 100.0 and xs[ys.index(100.0)] == 123
        assert min(ys) == -50.0 and xs[ys.index(-50.0)] == 777
        assert xs[-1] == 999 and sink.downsamplings > 0
        assert sink.held_points() <= 80
        sink.write(line(1000, a=7.0, b=-7.0))  # appends go on after the replace
        xs2, ys2 = traces(viz, sink, "loss")["a"]
        assert (xs2[-1], ys2[-1]) == (1000, 7.0) and xs2[:-1] == xs
    finally:
        sink.close()


def test_downsample_keeps_min_max_and_gaps() -> None:
    assert downsample([0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 1, 2, 3, -5, 4, 4], 2) == (
        [0.0, 1.0, 5.0, 6.0, 7.0], [0.0, 9.0, -5.0, 4.0, 4.0])
    xs, ys = downsample(list(range(8)), [1.0, math.nan, math.nan, 2.0, 3.0, 4.0, math.inf, 0.0], 2)
    assert xs == [0.0, 1.0, 3.0, 5.0, 6.0, 7.0]
    assert [y if math.isfinite(y) else "gap" for y in ys] == [1.0, "gap", 2.0, 4.0, "gap", 0.0]
    assert downsample([5, 5, 5, 5], [1.0, 3.0, 2.0, 2.5], 4) == ([5.0, 5.0, 5.0], [1.0, 3.0, 2.5])


def test_nan_and_inf_are_gaps_and_one_warning(visdom_server: VisdomServer, env: str, viz: visdom.Visdom) -> None:
    sink = VisdomSink(port=visdom_server.port, env=env, uid="run", max_points=16)
    for step, y in enumerate([1.0, math.nan, math.inf, -math.inf, 2.0] * 10):
        sink.write(line(step, a=y))
    xs, ys = traces(viz, sink, "loss")["a"]
    assert None in ys and xs[-1] == 49 and ys[-1] == 2.0
    with pytest.warns(RuntimeWarning, match=r"^30 NaN/Inf value\(s\) were logged .* shown as gaps") as caught:
        sink.close()
    assert len([w for w in caught if "NaN/Inf" in str(w.message)]) == 1


def test_replace_kinds_keep_only_the_latest(sink: VisdomSink, viz: visdom.Visdom) -> None:
    for step in range(5):
        sink.write(Update("bars", "bar", step, {"a": float(step), "b": 2.0 * step}, {}, step))
    assert sink.flush(10) == 0
    data = json.loads(viz.get_window_data(sink.window_id("bars"), sink.env))["content"]["data"]
    assert [d["y"] for d in data] == [[4.0, 8.0]]
    assert sink.pending() == 0


def test_env_is_saved_at_close(visdom_server: VisdomServer, env: str) -> None:
    sink = VisdomSink(port=visdom_server.port, env=env, uid="run", save_every=3600)
    sink.write(line(0, a=1.0))
    sink.close()
    saved = json.loads((visdom_server.env_path / f"{env}.json").read_text())
    assert "run_loss" in saved["jsons"]


def test_flush_timeout_says_what_is_pending(env: str) -> None:
    from flexlogger.tools.server import find_free_port

    port = find_free_port()
    sink = VisdomSink(port=port, env=env, uid="run", close_timeout=0.5)
    with pytest.warns(RuntimeWarning, match=rf"server at http://localhost:{port} does not answer"):
        for step in range(3):  # the outage is reported by whichever call comes after the first failed request
            sink.write(line(step, a=1.0, b=2.0))
        assert sink.flush(2.0) == 6  # long enough for the sender to have tried, however loaded the machine
    with pytest.warns(RuntimeWarning, match=r"^6 point\(s\) could not be delivered .*`flexlogger replay RUN_DIR"):
        sink.close()


def test_write_after_close_raises(sink: VisdomSink) -> None:
    sink.close()
    with pytest.raises(DeliveryError, match=r"^write\(\) to the Visdom sink of env .* after close\(\)"):
        sink.write(line(0, a=1.0))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_points": 3}, r"^VisdomSink\(\): max_points: expected an int >= 16 .*, but got 3$"),
    ({"max_points": 100.0}, r"^VisdomSink\(\): max_points: expected an int >= 16 .*, but got 100.0$"),
    ({"min_interval": -1}, r"^VisdomSink\(\): min_interval: expected a finite number of seconds >= 0, but got -1$"),
    ({"timeout": "1"}, r"^VisdomSink\(\): timeout: expected a finite number of seconds > 0, but got '1'$"),
    ({"server": "localhost"}, r"^VisdomSink\(\): server: expected a URL with its scheme, such as 'http://localhost', "
                              r".*but got 'localhost'$"),  # requests would fail forever, warning that no server answers
    ({"port": "8097"}, r"^VisdomSink\(\): port: expected an int from 1 to 65535, but got '8097'$"),
])
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        VisdomSink(**kwargs)


def test_logger_passes_sink_options(visdom_server: VisdomServer, env: str, viz: visdom.Visdom) -> None:
    with FlexLogger({"loss": {"type": "line"}}, {"v": {"type": "ValueMeter", "target": "loss"}}, env=env,
                    uid="run", port=visdom_server.port, log_dir=None, max_points=16) as stat:
        for step in range(100):
            stat.add({"v": float(step)})
            stat.log(step)
        assert stat.flush(10) == 0
        data = json.loads(viz.get_window_data(stat.windows["loss"], env))["content"]["data"][0]
        assert len(data["x"]) <= 16 and data["x"][-1] == 99 and data["y"][-1] == 99.0


def test_env_is_saved_on_a_schedule(visdom_server: VisdomServer, env: str) -> None:
    sink = VisdomSink(port=visdom_server.port, env=env, uid="run", save_every=0)
    try:
        sink.write(line(0, a=1.0))
        assert sink.flush(10) == 0
        sink.write(line(1, a=2.0))  # the save follows the next send
        assert sink.flush(10) == 0
        saved = json.loads((visdom_server.env_path / f"{env}.json").read_text())
        assert "run_loss" in saved["jsons"]
    finally:
        sink.close()


def test_atexit_delivers_a_logger_never_closed(visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
                                              tmp_path: Path) -> None:
    script = (f"import flexlogger\n"
              f"s = flexlogger.FlexLogger({{'loss': {{'type': 'line'}}}}, "
              f"{{'v': {{'type': 'ValueMeter', 'target': 'loss'}}}}, env={env!r}, uid='run', "
              f"port={visdom_server.port}, log_dir=None, min_interval=3600)\n"
              f"for step in range(50):\n    s.add({{'v': step / 2}}); s.log(step)\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=tmp_path)
    data = json.loads(viz.get_window_data("run_loss", env))["content"]["data"][0]
    assert (data["x"], data["y"]) == (list(range(50)), [s / 2 for s in range(50)])


def window_data(viz: visdom.Visdom, sink: VisdomSink, plot: str) -> Any:
    assert sink.flush(10) == 0
    return json.loads(viz.get_window_data(sink.window_id(plot), sink.env))["content"]


def test_contents_visdom_rejects_are_drawn_and_the_sender_lives(sink: VisdomSink, viz: visdom.Visdom) -> None:
    """One bar, a histogram with no finite value, a ROC curve of a single class: Visdom's client rejects each
    as such (a squeezed 0-d bar, min() of nothing, NaN in JSON); each is drawn and the sender goes on."""
    nan = math.nan
    sink.write(Update("one", "bar", 0, {"acc": 0.5}, {}, 1))  # one scalar meter
    sink.write(Update("ap1", "bar", 0, {"ap": np.array([0.75])}, {}, 2))  # one class
    sink.write(Update("ap2", "bar", 0, {"a": np.array([0.25]), "b": np.array([0.5])}, {}, 3))  # two meters
    sink.write(Update("hist", "histogram", 0, {"w": np.array([nan, nan, math.inf])}, {}, 4))
    sink.write(Update("roc", "curve", 0, {"auc": (np.array([nan, nan]), np.array([0.0, 1.0]))}, {}, 5))
    assert [(d["x"], d["y"]) for d in window_data(viz, sink, "one")["data"]] == [(["acc"], [0.5])]
    assert [(d["name"], d["y"]) for d in window_data(viz, sink, "ap1")["data"]] == [("ap", [0.75])]
    assert [(d["name"], d["y"]) for d in window_data(viz, sink, "ap2")["data"]] == [("a", [0.25]), ("b", [0.5])]
    assert set(window_data(viz, sink, "hist")["data"][0]["y"]) == {0}  # every bin empty
    assert [(d["x"], d["y"]) for d in window_data(viz, sink, "roc")["data"]] == [([None, None], [0.0, 1.0])]
    sink.write(line(0, a=1.0))
    assert traces(viz, sink, "loss") == {"a": ([0], [1.0])}


def test_replace_windows_keep_the_meters_not_logged_this_time(sink: VisdomSink, viz: visdom.Visdom) -> None:
    sink.write(Update("b", "bar", 0, {"train": 1.0, "test": 2.0}, {}, 1))
    sink.write(Update("b", "bar", 1, {"train": 3.0}, {}, 2))  # log(keys=['train']), or test received nothing
    assert [(d["x"], d["y"]) for d in window_data(viz, sink, "b")["data"]] == [(["train", "test"], [3.0, 2.0])]
    sink.write(Update("t", "text", 0, {"train": "0.5", "test": "0.25"}, {}, 3))
    sink.write(Update("t", "text", 1, {"test": "0.125"}, {}, 4))
    content = window_data(viz, sink, "t")
    assert "0.5" in content and "0.125" in content and "0.25" not in content


def test_text_is_shown_as_written(sink: VisdomSink, viz: visdom.Visdom) -> None:
    sink.write(Update("t", "text", 0, {"sample<1>": "the <unk> & co\nnext"}, {}, 1))
    assert window_data(viz, sink, "t") == text_page("<table><tr><td><b>sample&lt;1&gt;</b></td>"
                                                    "<td>the &lt;unk&gt; &amp; co<br>next</td></tr></table>")


def test_flush_after_close_returns_what_was_never_delivered(env: str) -> None:
    from flexlogger.tools.server import find_free_port

    sink = VisdomSink(port=find_free_port(), env=env, uid="run", close_timeout=0.2)
    sink.write(line(0, a=1.0, b=2.0))
    with pytest.warns(RuntimeWarning) as caught:
        sink.close()
    assert any("could not be delivered" in str(w.message) for w in caught)
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(sink.flush()), daemon=True)
    waiter.start()
    waiter.join(10)
    assert result == [2]  # at once, not waiting forever for a sender that is gone


@pytest.mark.parametrize("layout", ["CHW", "HWC", "HW"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float64])
def test_images_of_common_layouts_and_dtypes(sink: VisdomSink, viz: visdom.Visdom, layout: str, dtype: Any) -> None:
    from PIL import Image

    rgb = np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4  # H x W x C, values 0..236
    pixels = rgb if layout != "HW" else np.repeat(rgb[:, :, :1], 3, axis=2)
    value = {"CHW": np.moveaxis(rgb, -1, 0), "HWC": rgb, "HW": rgb[:, :, 0]}[layout]
    value = value / 255.0 if dtype is np.float64 else value.astype(dtype)
    sink.write(Update("img", "image", 0, {"pic": value}, {}, 1))
    src = window_data(viz, sink, "img")["src"]
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
    s = upscale_factor(4, 5)  # shown large enough to see, each pixel a sharp s x s square
    np.testing.assert_allclose(shown, np.repeat(np.repeat(pixels, s, axis=0), s, axis=1), atol=1)


def test_histogram_is_drawn_from_bin_counts(sink: VisdomSink, viz: visdom.Visdom) -> None:
    sink.write(Update("h", "histogram", 0, {"w": Histogram((1.0, 3.0, 2.0, 0.0), -1.0, 1.0)}, {}, 1))
    assert [(d["x"], d["y"]) for d in window_data(viz, sink, "h")["data"]] == [
        (np.linspace(-1.0, 1.0, 4).tolist(), [1.0, 3.0, 2.0, 0.0])]
    sink.write(Update("one", "histogram", 0, {"w": Histogram((5.0,), 0.0, 1.0)}, {}, 2))  # one bin
    assert [(d["x"], d["y"]) for d in window_data(viz, sink, "one")["data"]] == [([0.0], [5.0])]


@pytest.mark.parametrize("numbins", [None, 7])
def test_raw_arrays_are_binned_as_visdom_bins_them(sink: VisdomSink, viz: visdom.Visdom,
                                                   numbins: int | None) -> None:
    values = np.random.default_rng(0).normal(size=500)
    opts = {} if numbins is None else {"numbins": numbins}
    sink.write(Update("h", "histogram", 0, {"w": values}, opts, 1))
    counts = np.histogram(values, bins=numbins or 30, range=(values.min(), values.max()))[0]
    assert [d["y"] for d in window_data(viz, sink, "h")["data"]] == [counts.astype(float).tolist()]


def test_histogram_message_from_counts_is_visdoms_own() -> None:
    builder = make_builder("http://localhost", 8097, "e")
    values = np.random.default_rng(1).uniform(-3.0, 5.0, size=300)
    # the title says which step the histogram shows
    visdoms, _ = builder.histogram(X=values, win="w", env="e", opts={"title": "h (step 0)", "numbins": 12})
    counts, _ = np.histogram(values, bins=12, range=(values.min(), values.max()))
    hist = Histogram(tuple(float(c) for c in counts), float(values.min()), float(values.max()))
    ours = json.loads(render(builder, "w", "e", Update("h", "histogram", 0, {"v": hist}, {}, 1)))
    assert ours == json.loads(json.dumps(visdoms))


def test_a_non_finite_timeout_is_refused_at_construction() -> None:
    """Was accepted, then killed the sender at its first request (and close() raised OverflowError)."""
    inf = math.inf
    with pytest.raises(ConfigError, match=r"^VisdomSink\(\): 4 problems:\n  min_interval: expected a finite number "
                                          r"of seconds >= 0, but got inf\n  timeout: expected a finite number of "
                                          r"seconds > 0, but got inf"):
        VisdomSink(timeout=inf, min_interval=inf, close_timeout=inf, save_every=inf)


def test_a_forked_child_neither_waits_nor_warns_nor_writes(sink: VisdomSink, viz: visdom.Visdom) -> None:
    sink.write(line(0, a=1.0))
    assert sink.flush(10) == 0
    sink.write(line(1, a=2.0))  # pending in the parent when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        report: dict[str, Any] = {}
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with pytest.raises(DeliveryError, match=rf"^this Visdom sink belongs to process {os.getppid()}; a "
                                   rf"forked child \(process {os.getpid()}\) cannot use it; create a logger in the "
                                   rf"child$"):
                    sink.write(line(2, a=3.0))
                start = time.monotonic()
                report["flush"] = sink.flush()
                sink.close()
                _close_open_sinks()  # what the atexit handler runs
                report["seconds"] = time.monotonic() - start
                report["warnings"] = [str(w.message) for w in caught]
        except BaseException as exc:
            report["error"] = repr(exc)
        finally:
            os.write(write, json.dumps(report).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert "error" not in report, report["error"]
    assert report["flush"] == 0 and report["seconds"] < 0.5 and report["warnings"] == []
    sink.write(line(3, a=4.0))  # the parent's sink goes on
    assert traces(viz, sink, "loss") == {"a": ([0, 1, 3], [1.0, 2.0, 4.0])}
