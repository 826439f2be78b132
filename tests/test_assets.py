"""Visdom's web assets, installed from the npm registry."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from flexlogger.assets import ASSETS, AssetError, _visdom_dir, ensure_assets, missing_assets

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def _download_scripts_targets() -> set[str]:
    """The static/ paths visdom's own download_scripts() writes, read from its source."""
    tree = ast.parse((_visdom_dir() / "server" / "build.py").read_text())
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and t.id == "ext_files" for t in node.targets):
            for value in node.value.values:
                assert isinstance(value, ast.Constant)
                name = str(value.value)
                sub = "js" if name.endswith((".js", ".js.map")) else "css" if name.endswith(".css") else "fonts"
                targets.add(f"{sub}/{name}")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "mathjax_path"
                                                for t in node.targets):
            assert isinstance(node.value, ast.List)
            for elt in node.value.elts:
                assert isinstance(elt, ast.Constant)
                targets.add("js/mathjax/2.7.5/" + str(elt.value).split("?")[0])
    return targets


def test_assets_mirror_visdom_download_list() -> None:
    expected = _download_scripts_targets()
    assert len(expected) == 29
    assert {a.target for a in ASSETS} == expected


@needs_npm
def test_ensure_assets_installs_once(tmp_path: Path) -> None:
    installed = ensure_assets(tmp_path)
    assert sorted(installed) == sorted(tmp_path / a.target for a in ASSETS)
    assert missing_assets(tmp_path) == []
    assert (tmp_path / "version.built").read_text() == (_visdom_dir() / "VERSION").read_text().strip()
    assert (tmp_path / "js/plotly-plotly.min.js").read_text().count("2.11.1") > 0
    assert ensure_assets(tmp_path) == []  # idempotent: nothing to do the second time


def test_missing_npm_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match=r"npm executable '/nonexistent/npm' not found; it is needed to install "
                                         r"29 missing Visdom web assets \(js/jquery.min.js, .*apt-get install npm"):
        ensure_assets(tmp_path, npm="/nonexistent/npm")


def test_nothing_missing_needs_no_npm(tmp_path: Path) -> None:
    for asset in ASSETS:
        (tmp_path / asset.target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / asset.target).write_text("x")
    assert ensure_assets(tmp_path, npm="/nonexistent/npm") == []
    assert (tmp_path / "version.built").is_file()
