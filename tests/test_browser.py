"""End to end, as a user sees it: `flexlogger serve`, a logging script, the Visdom page in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flexlogger.tools.server import find_free_port, is_serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                       reason=f"{CHROMIUM} is missing (install the Debian package `chromium`; .ci/run does)"),
]

LOGGING_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import flexlogger

    port, env = int(sys.argv[1]), sys.argv[2]
    plots = {"loss": {"type": "line", "opts": {"xlabel": "epoch"}},
             "err": {"type": "line"},
             "confusion": {"type": "heatmap"}}
    meters = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
              "test_loss": {"type": "AverageValueMeter", "target": "loss"},
              "train_err": {"type": "ClassErrorMeter", "target": "err", "args": {"topk": [1, 2]}},
              "conf": {"type": "ConfusionMeter", "target": "confusion", "args": {"k": 3}}}
    gen = torch.Generator().manual_seed(0)
    with flexlogger.FlexLogger(plots, meters, env=env, port=port, log_dir=None) as Stat:
        for epoch in range(3):
            output, target = torch.rand(8, 3, generator=gen), torch.randint(0, 3, (8,), generator=gen)
            Stat.add({"train_loss": 1.0 / (epoch + 1), "test_loss": 1.2 / (epoch + 1),
                      "train_err": [output, target], "conf": [output, target]})
            Stat.log(epoch)
        Stat.flush(timeout=30)
""")
EXPECTED_TITLES = ["loss", "err", "confusion"]
EXPECTED_LEGENDS = {"loss": ["train_loss", "test_loss"], "err": ["train_err@1", "train_err@2"], "confusion": []}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`flexlogger serve` as a user runs it (installing the web assets when missing); yields its port."""
    port = find_free_port()
    env_path = tmp_path_factory.mktemp("browser-env")
    proc = subprocess.Popen([sys.executable, "-m", "flexlogger", "serve", "--port", str(port), "--env-path",
                             str(env_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:  # an "Installed N assets" line may come first
            if line.startswith("Visdom server running at"):
                break
        else:
            pytest.fail(f"`flexlogger serve` exited with {proc.wait()}: {proc.stderr.read()}")
        assert is_serving(port)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_windows_render_in_chromium(served: int, env: str) -> None:
    from playwright.sync_api import sync_playwright

    done = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, str(served), env], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    bad_requests: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("requestfailed", lambda r: bad_requests.append(f"{r.url}: {r.failure}"))
            # visdom 0.3.0's page links a favicon.png it does not ship (a 404 for the tab icon, nothing drawn)
            page.on("response", lambda r: bad_requests.append(f"{r.url}: HTTP {r.status}")
                    if r.status >= 400 and not r.url.endswith("/favicon.png") else None)
            page.goto(f"http://localhost:{served}/env/{env}")
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {len(EXPECTED_TITLES)}",
                                   timeout=30_000)
            page.wait_for_selector(".legendtext", timeout=10_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / f"browser-{env}.png"), full_page=True)
            windows = page.evaluate("""() => Array.from(document.querySelectorAll('.window')).map(w => ({
                bar: w.querySelector('.bar .pull-right:not(button)')?.textContent ?? null,
                // the title's first line (the second says which run drew the chart)
                title: (w.querySelector('.js-plotly-plot .gtitle tspan.line')
                        ?? w.querySelector('.js-plotly-plot .gtitle'))?.textContent ?? null,
                legend: Array.from(w.querySelectorAll('.js-plotly-plot .legendtext')).map(t => t.textContent),
                traces: w.querySelector('.js-plotly-plot')?.data?.length ?? 0}))""")
            plotly_version = page.evaluate("() => window.Plotly && window.Plotly.version")
        finally:
            browser.close()

    assert bad_requests == []
    assert plotly_version == "2.11.1"  # the asset Visdom's download list names, served locally
    by_title = {w["title"]: w for w in windows}
    assert sorted(by_title) == sorted(EXPECTED_TITLES), windows
    for title, legend in EXPECTED_LEGENDS.items():
        assert by_title[title]["bar"] == title
        assert by_title[title]["legend"] == legend
        assert by_title[title]["traces"] == max(1, len(legend))


# --- user strings are shown as text, never run ------------------------------------------------------------------

IMG = "<img src=x data-xss=1 onerror=__xss('{}')>"  # no '.' or '/': also a valid layer name
# Plotly ignores those two tags but reads its own (<b>, <a href>, ...) and entities: shown as written too
SCRIPT = "<script data-xss=1>__xss('{}')</script><b>&amp;</b>"
XSS_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from torch import nn
    import flexlogger

    port, env, payload = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    IMG, SCRIPT = payload["img"], payload["script"]
    def p(where): return IMG.format(where) + SCRIPT.format(where)
    plots = {"loss": {"type": "line", "opts": {"title": p("title"), "xlabel": p("xlabel"), "ylabel": p("ylabel")}},
             "notes": {"type": "text", "opts": {"title": p("texttitle")}},
             "conf": {"type": "heatmap", "opts": {"title": "conf", "rownames": [p("row"), "b"],
                                                  "columnnames": [p("column"), "d"]}}}
    meters = {p("legend"): {"type": "AverageValueMeter", "target": "loss"},
              p("cellname"): {"type": "ValueMeter", "target": "notes"},
              "confusion": {"type": "ConfusionMeter", "target": "conf", "args": {"k": 2}}}
    with flexlogger.FlexLogger(plots, meters, env=env, port=port, log_dir=None) as Stat:
        for epoch in range(2):
            Stat.add({p("legend"): 1.0 / (epoch + 1), p("cellname"): p("cellvalue"),
                      "confusion": [torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1])]})
            Stat.log(epoch)
        assert Stat.flush(timeout=30) == 0
    model = nn.Sequential()
    model.add_module(IMG.format("layer"), nn.Linear(2, 2))
    with flexlogger.TooledModelLogger(model, env=env, port=port, log_dir=None) as TM:
        model(torch.randn(3, 2)).sum().backward()
        TM.step(log=True)
        assert TM.flush(timeout=30) == 0
""")


def test_user_strings_are_shown_as_text_never_run(served: int, env: str) -> None:
    """Window titles, axis labels, legends, text cells (names and values), heatmap row and column names and layer
    names each carry an <img onerror> and a <script> payload: none runs, none becomes an element, each reads as
    written (visdom renders text windows as raw HTML: visdom issue 1506)."""
    from playwright.sync_api import sync_playwright

    payload = json.dumps({"img": IMG, "script": SCRIPT})
    done = subprocess.run([sys.executable, "-c", XSS_SCRIPT, str(served), env, payload], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.add_init_script("window.__xssRan = []; window.__xss = (where) => window.__xssRan.push(where);")
            page.goto(f"http://localhost:{served}/env/{env}")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
            page.wait_for_selector(".legendtext", timeout=10_000)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1000)  # an onerror fires once the broken image fails to load
            page.screenshot(path=str(ARTIFACTS / f"browser-{env}.png"), full_page=True)
            ran = page.evaluate("window.__xssRan")
            injected = page.evaluate("Array.from(document.querySelectorAll('[data-xss]')).map(e => e.outerHTML)")
            text = page.evaluate("document.body.innerText")
            # each text and each line of a multi-line text (a chart's title and the run under it)
            svg_text = page.evaluate("Array.from(document.querySelectorAll('svg text, svg text tspan.line'))"
                                     ".map(t => t.textContent)")
        finally:
            browser.close()

    assert ran == []
    assert injected == []
    for where in ("cellname", "cellvalue"):  # the text window's table: every character as written
        assert IMG.format(where) + SCRIPT.format(where) in text.replace("\n", ""), where
    for where in ("title", "xlabel", "ylabel", "legend", "row", "column"):  # Plotly text: every character as written
        assert IMG.format(where) + SCRIPT.format(where) in svg_text, where
    assert any(IMG.format("layer") in t for t in svg_text)  # a layer's window title and its traces' legend
    assert IMG.format("texttitle") + SCRIPT.format("texttitle") in text  # the text window's title bar
