"""The README's screenshots, made as a person sees the windows: ``make screenshots``.

Starts a Visdom server of its own (a free port, envs in a temporary folder), trains the demo twice (two seeds),
compares the two runs with ``flexlogger.compare``, opens the envs in headless Chromium and saves three PNGs in
``docs/screenshots/``:

- ``demo.png``: the demo's loss, accuracy, confusion matrix and hyperparameters,
- ``model.png``: the demo's model-statistics windows (a window per statistic, a trace per layer, histograms),
- ``compare.png``: the two runs compared (a trace per run and meter, the runs' table).

Each is reduced to a 256-colour palette (the windows are flat colours: nothing visible is lost), so that the three
stay a few hundred KB in the repository. Needs Chromium (``/usr/bin/chromium``, or ``CHROMIUM=/path``) and the
``test`` extra (playwright).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

import flexlogger
from flexlogger.tools import demo
from flexlogger.tools.server import start_server

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
VIEWPORT = {"width": 1400, "height": 1000}
DEMO_ENV, RUNS_ENV, COMPARE_ENV = "flexlogger_demo", "demo_runs", "compare"
# every window's title bar and box, in page coordinates (the page scrolls: full-page screenshots)
WINDOWS = """() => Array.from(document.querySelectorAll('.window')).map(w => {
    const r = w.getBoundingClientRect();
    return {title: w.querySelector('.bar .pull-right:not(button)')?.textContent ?? '',
            l: r.left + window.scrollX, t: r.top + window.scrollY, r: r.right + window.scrollX,
            b: r.bottom + window.scrollY};
})"""


def train(port: int, env: str, log_dir: Path, seed: int, epochs: int) -> Path:
    """One demo run (quietly); returns its run folder."""
    before = set((log_dir / env).glob("*")) if (log_dir / env).exists() else set()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        demo.main(["--port", str(port), "--env", env, "--log-dir", str(log_dir), "--seed", str(seed),
                   "--epochs", str(epochs)])
    (run,) = set((log_dir / env).glob("*")) - before
    return run


def shoot(page: Any, url: str, path: Path, windows: int, keep: Callable[[str], bool]) -> list[str]:
    """Open ``url``, wait for ``windows`` windows to be drawn, save the part of the page that holds the windows
    whose title ``keep`` accepts; return their titles."""
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('.window').length >= {windows}", timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)  # Plotly's last relayout
    chosen = [w for w in page.evaluate(WINDOWS) if keep(w["title"])]
    if not chosen:
        raise RuntimeError(f"{url}: no window to photograph among {[w['title'] for w in page.evaluate(WINDOWS)]}")
    pad = 6
    left, top = max(min(w["l"] for w in chosen) - pad, 0), max(min(w["t"] for w in chosen) - pad, 0)
    clip = {"x": left, "y": top, "width": max(w["r"] for w in chosen) + pad - left,
            "height": max(w["b"] for w in chosen) + pad - top}
    png = page.screenshot(clip=clip, full_page=True)
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)
    return [w["title"] for w in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the PNGs (default: docs/screenshots)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each demo run (default: %(default)s)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        parser.error(f"{CHROMIUM} is missing: install the Debian package `chromium`, or set CHROMIUM=/path")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flexlogger-screenshots-") as tmp:
        server = start_server(env_path=Path(tmp, "env"), log_path=Path(tmp, "server.log"))
        try:
            root = Path(tmp, "runs")
            train(server.port, DEMO_ENV, root, seed=0, epochs=args.epochs)
            runs = [train(server.port, RUNS_ENV, root, seed=s, epochs=args.epochs) for s in (1, 2)]
            flexlogger.compare(runs, plots=["loss", "acc"], names=["seed1", "seed2"], env=COMPARE_ENV,
                               port=server.port)
            base = f"{server.url}:{server.port}/env"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                try:
                    page = browser.new_page(viewport=VIEWPORT)
                    user = ("loss", "accuracy", "test confusion", "hparams")
                    shots = {
                        "demo.png": shoot(page, f"{base}/{DEMO_ENV}", args.out / "demo.png", 10,
                                          lambda t: t.startswith(user)),
                        "model.png": shoot(page, f"{base}/{DEMO_ENV}", args.out / "model.png", 10,
                                           lambda t: not t.startswith(user)),
                        "compare.png": shoot(page, f"{base}/{COMPARE_ENV}", args.out / "compare.png", 3,
                                             lambda t: True),
                    }
                finally:
                    browser.close()
        finally:
            server.stop()
    for name, titles in shots.items():
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {size // 1024} KB, windows: {', '.join(titles)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
