"""Visdom's web assets, installed from the npm registry, following the installed visdom's own download list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import visdom

from flexlogger.tools.assets import (
    Asset,
    AssetError,
    _visdom_dir,
    assets_from_build_source,
    ensure_assets,
    missing_assets,
    npm_asset,
    visdom_assets,
)

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
VISDOM_03 = tuple(int(p) for p in visdom.__version__.split(".")[:2]) >= (0, 3)


def _bootstrap(source: str, target: str = "") -> Asset:
    return Asset("bootstrap", "3.3.7", f"dist/{source}", target or source)


def _mathjax(source: str, version: str = "2.7.5") -> Asset:
    return Asset("mathjax", version, source, f"js/mathjax/{version}/{source}")


# visdom 0.2.4's list, as flexlogger shipped it by hand before reading it from visdom (and as Chromium loads it).
ASSETS_024 = (
    Asset("jquery", "3.1.1", "dist/jquery.min.js", "js/jquery.min.js"),
    _bootstrap("js/bootstrap.min.js"),
    Asset("react", "16.2.0", "umd/react.production.min.js", "js/react-react.min.js"),
    Asset("react-dom", "16.2.0", "umd/react-dom.production.min.js", "js/react-dom.min.js"),
    Asset("react-modal", "3.1.10", "dist/react-modal.min.js", "js/react-modal.min.js"),
    Asset("plotly.js-dist-min", "2.11.1", "plotly.min.js", "js/plotly-plotly.min.js"),
    Asset("sjcl", "1.0.7", "sjcl.js", "js/sjcl.js"),
    Asset("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js.map", "js/layout-bin-packer.js.map"),
    Asset("d3", "3.5.17", "d3.min.js", "js/d3.v3.min.js"),
    Asset("d3-selection-multi", "1.0.1", "build/d3-selection-multi.js", "js/d3-selection-multi.v1.js"),
    Asset("save-svg-as-png", "1.4.17", "lib/saveSvgAsPng.js", "js/saveSvgAsPng.js"),
    Asset("react-resizable", "1.4.6", "css/styles.css", "css/react-resizable-styles.css"),
    Asset("react-grid-layout", "0.16.3", "css/styles.css", "css/react-grid-layout-styles.css"),
    _bootstrap("css/bootstrap.min.css"),
    Asset("classnames", "2.2.5", "", "fonts/classnames"),  # unpkg serves the package's main file
    Asset("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    _bootstrap("fonts/glyphicons-halflings-regular.eot"),
    _bootstrap("fonts/glyphicons-halflings-regular.woff2"),
    _bootstrap("fonts/glyphicons-halflings-regular.woff"),
    _bootstrap("fonts/glyphicons-halflings-regular.ttf"),
    _bootstrap("fonts/glyphicons-halflings-regular.svg",
               "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular"),
    _mathjax("config/Safe.js"),
    _mathjax("config/TeX-AMS-MML_HTMLorMML.js"),
    _mathjax("extensions/Safe.js"),
    _mathjax("jax/output/SVG/fonts/TeX/fontdata.js"),
    _mathjax("jax/output/SVG/jax.js"),
    _mathjax("jax/output/SVG/fonts/TeX/Size1/Regular/Main.js"),
    _mathjax("jax/output/SVG/config.js"),
    _mathjax("MathJax.js"),
)
# visdom 0.3.0: newer react-resizable and react-grid-layout styles, MathJax 3 in one file (22 entries).
_NEWER = {"react-resizable": "3.1.3", "react-grid-layout": "2.2.3"}
ASSETS_030 = (*(Asset(a.package, _NEWER.get(a.package, a.version), a.source, a.target)
                for a in ASSETS_024 if a.package != "mathjax"),
              _mathjax("es5/tex-mml-svg.js", "3.2.2"))


def test_asset_list_is_the_installed_visdoms() -> None:
    expected = ASSETS_030 if VISDOM_03 else ASSETS_024
    assert len(expected) == (22 if VISDOM_03 else 29)
    assert visdom_assets() == expected


def _as_visdom_030(build_source: str) -> str:
    """visdom 0.2.4's build.py with visdom 0.3.0's changes to the download list applied."""
    start = build_source.index('    cdnjs_url = "')
    end = build_source.index("]", build_source.index("mathjax_path = [")) + 1
    changed = (build_source[:start] + '    mathjax_version = "3.2.2"\n'
               '    cdnjs_url = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/%s/" % mathjax_version\n'
               '    mathjax_dir = os.path.join(*cdnjs_url.split("/")[-3:])\n'
               '    mathjax_path = ["es5/tex-mml-svg.js"]' + build_source[end:])
    return (changed.replace("react-resizable@1.4.6", "react-resizable@3.1.3")
            .replace("react-grid-layout@0.16.3", "react-grid-layout@2.2.3"))


def test_a_changed_visdom_list_is_followed() -> None:
    """The list is read from the source of the installed visdom, so visdom 0.3's list (22 entries) is mirrored
    without a flexlogger release; checked here on 0.2.4's build.py with 0.3.0's edits."""
    source = (_visdom_dir() / "server" / "build.py").read_text()
    if VISDOM_03:
        pytest.skip("the installed visdom is 0.3 already: test_asset_list_is_the_installed_visdoms covers it")
    assert assets_from_build_source(source) == ASSETS_024
    assert assets_from_build_source(_as_visdom_030(source)) == ASSETS_030


def test_a_build_py_without_a_list_is_a_clear_error() -> None:
    with pytest.raises(AssetError, match=r"visdom's server/build.py has no download list \(`ext_files`, "
                                         r"`cdnjs_url`, `mathjax_path` in download_scripts\(\)\); this visdom "
                                         r"version is not supported"):
        assets_from_build_source("def download_scripts():\n    pass\n")


def test_an_unknown_download_host_is_a_clear_error() -> None:
    with pytest.raises(AssetError, match=r"Visdom downloads 'https://example.org/x.js' \(its static/js/x.js\), "
                                         r"which flexlogger cannot map to an npm package"):
        npm_asset("https://example.org/x.js", "js/x.js")


@needs_npm
def test_ensure_assets_installs_once(tmp_path: Path) -> None:
    installed = ensure_assets(tmp_path)
    assert sorted(installed) == sorted(tmp_path / a.target for a in visdom_assets())
    assert missing_assets(tmp_path) == []
    assert (tmp_path / "version.built").read_text() == (_visdom_dir() / "VERSION").read_text().strip()
    assert (tmp_path / "js/plotly-plotly.min.js").read_text().count("2.11.1") > 0
    assert "classNames" in (tmp_path / "fonts/classnames").read_text()  # the package's main file
    assert ensure_assets(tmp_path) == []  # idempotent: nothing to do the second time


def test_missing_npm_is_a_clear_error(tmp_path: Path) -> None:
    count = len(visdom_assets())
    with pytest.raises(AssetError, match=rf"npm executable '/nonexistent/npm' not found; it is needed to install "
                                         rf"{count} missing Visdom web assets \(js/jquery.min.js, .*apt-get install"):
        ensure_assets(tmp_path, npm="/nonexistent/npm")


def test_nothing_missing_needs_no_npm(tmp_path: Path) -> None:
    for asset in visdom_assets():
        (tmp_path / asset.target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / asset.target).write_text("x")
    assert ensure_assets(tmp_path, npm="/nonexistent/npm") == []
    assert (tmp_path / "version.built").is_file()
