"""Install Visdom's web assets (JavaScript, CSS, fonts) from the npm registry, offline from CDNs.

Visdom's server page loads jQuery, React, Plotly, MathJax and more from its ``static/`` folder, which
``python -m visdom.server`` fills by downloading them from CDNs (unpkg, cdn.plot.ly, d3js.org, cdnjs) at
start. Where those CDNs cannot be reached the page stays blank. :func:`ensure_assets` fetches the exact
versions Visdom's own list names (``visdom/server/build.py``, ``download_scripts``) with ``npm pack``,
puts each file where Visdom expects it, and writes ``static/version.built`` as Visdom does, so Visdom
considers its assets built. It does nothing when they are all present.

Example:
    >>> from flexlogger.assets import ensure_assets
    >>> ensure_assets()                      # doctest: +SKIP
    [PosixPath('.../visdom/static/js/jquery.min.js'), ...]
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import FlexLoggerError

__all__ = ["ASSETS", "Asset", "AssetError", "ensure_assets", "missing_assets", "visdom_static_dir"]

_MATHJAX = "js/mathjax/2.7.5/"


class AssetError(FlexLoggerError, RuntimeError):
    """Visdom's web assets could not be installed."""


@dataclass(frozen=True)
class Asset:
    """One file of Visdom's static folder and the npm package file it comes from.

    Attributes:
        package: npm package name.
        version: exact package version (the one Visdom's download list names).
        source: path of the file inside the package.
        target: path under Visdom's ``static/`` folder, as ``download_scripts`` names it.
    """

    package: str
    version: str
    source: str
    target: str

    @property
    def spec(self) -> str:
        """``name@version`` as ``npm pack`` takes it."""
        return f"{self.package}@{self.version}"


def _bootstrap(source: str, target: str) -> Asset:
    return Asset("bootstrap", "3.3.7", f"dist/{source}", target)


def _mathjax(source: str) -> Asset:
    return Asset("mathjax", "2.7.5", source, _MATHJAX + source)


# Mirrors visdom 0.2.4's download_scripts(); tests/test_assets.py checks every target it names is here.
# Two files are not on unpkg there: plotly 2.11.1 comes from cdn.plot.ly (npm: plotly.js-dist-min of the
# same version) and d3 v3 / d3-selection-multi v1 from d3js.org (npm: d3@3.5.17, the last 3.x, and
# d3-selection-multi@1.0.1, the only 1.x).
ASSETS: tuple[Asset, ...] = (
    Asset("jquery", "3.1.1", "dist/jquery.min.js", "js/jquery.min.js"),
    _bootstrap("js/bootstrap.min.js", "js/bootstrap.min.js"),
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
    _bootstrap("css/bootstrap.min.css", "css/bootstrap.min.css"),
    Asset("classnames", "2.2.5", "index.js", "fonts/classnames"),  # unpkg serves the package's main file
    Asset("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    _bootstrap("fonts/glyphicons-halflings-regular.eot", "fonts/glyphicons-halflings-regular.eot"),
    _bootstrap("fonts/glyphicons-halflings-regular.woff2", "fonts/glyphicons-halflings-regular.woff2"),
    _bootstrap("fonts/glyphicons-halflings-regular.woff", "fonts/glyphicons-halflings-regular.woff"),
    _bootstrap("fonts/glyphicons-halflings-regular.ttf", "fonts/glyphicons-halflings-regular.ttf"),
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


def _visdom_dir() -> Path:
    spec = importlib.util.find_spec("visdom")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError("The `visdom` package is not installed; install flexlogger's dependencies first.")
    return Path(next(iter(spec.submodule_search_locations)))


def visdom_static_dir() -> Path:
    """The ``static/`` folder of the installed visdom package."""
    return _visdom_dir() / "static"


def _visdom_version() -> str:
    try:
        return (_visdom_dir() / "VERSION").read_text().strip()
    except OSError:
        return "no_version_file"


def missing_assets(static_dir: str | Path | None = None) -> list[Asset]:
    """Return the assets not present in ``static_dir`` (default: visdom's static folder)."""
    static = Path(static_dir) if static_dir is not None else visdom_static_dir()
    return [a for a in ASSETS if not (static / a.target).is_file()]


def _npm_pack(npm: str, specs: Sequence[str], dest: Path) -> dict[str, Path]:
    """``npm pack`` every spec into ``dest``; return {spec: tarball}."""
    cmd = [npm, "pack", "--json", "--silent", "--pack-destination", str(dest), *specs]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if done.returncode != 0:
        raise AssetError(f"`npm pack` exited with code {done.returncode} for {', '.join(specs)}. "
                         f"Is the npm registry reachable? Its output ends with:\n{done.stderr[-2000:]}")
    try:
        packed = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssetError(f"`npm pack --json` printed no JSON: {done.stdout[-500:]!r}") from exc
    return {f"{p['name']}@{p['version']}": dest / p["filename"] for p in packed}


def _install(asset: Asset, tarball: Path, static: Path) -> Path:
    target = static / asset.target
    with tarfile.open(tarball) as tar:
        try:
            member = tar.getmember(f"package/{asset.source}")
        except KeyError:
            raise AssetError(f"npm package {asset.spec} has no file {asset.source!r}.") from None
        data = tar.extractfile(member)
        if data is None:
            raise AssetError(f"npm package {asset.spec}: {asset.source!r} is not a regular file.")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with data, open(tmp, "wb") as out:
            shutil.copyfileobj(data, out)
        os.replace(tmp, target)  # never a half-written file under the final name
    return target


def ensure_assets(static_dir: str | Path | None = None, npm: str = "npm") -> list[Path]:
    """Install the Visdom assets that are missing, from the npm registry; do nothing when all are present.

    Args:
        static_dir: the folder to fill; default: the installed visdom package's ``static/``.
        npm: the npm executable (name or path).

    Returns:
        The files installed (empty when nothing was missing).

    Raises:
        AssetError: npm is missing, ``npm pack`` failed (e.g. the registry is unreachable), or a package
            lacks the expected file.
    """
    static = Path(static_dir) if static_dir is not None else visdom_static_dir()
    missing = missing_assets(static)
    built = static / "version.built"
    if not missing:
        if not built.is_file():
            built.write_text(_visdom_version())
        return []
    npm_path = shutil.which(npm)
    if npm_path is None:
        names = ", ".join(a.target for a in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise AssetError(
            f"npm executable {npm!r} not found; it is needed to install {len(missing)} missing Visdom web "
            f"assets ({names}) into {static}. Install Node.js/npm (Debian: `apt-get install npm`).")
    specs = sorted({a.spec for a in missing})
    with tempfile.TemporaryDirectory(prefix="flexlogger-npm-") as tmp:
        tarballs = _npm_pack(npm_path, specs, Path(tmp))
        lost = [s for s in specs if s not in tarballs]
        if lost:
            raise AssetError(f"`npm pack` did not return {', '.join(lost)}; got {', '.join(tarballs) or 'nothing'}.")
        installed = [_install(a, tarballs[a.spec], static) for a in missing]
    built.write_text(_visdom_version())
    return installed
