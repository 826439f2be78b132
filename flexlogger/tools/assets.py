"""Install Visdom's web assets (JavaScript, CSS, fonts) from the npm registry, offline from CDNs.

Visdom's server page loads jQuery, React, Plotly, MathJax and more from its ``static/`` folder, which
``python -m visdom.server`` fills by downloading them from CDNs (unpkg, cdn.plot.ly, d3js.org, cdnjs) at
start. Where those CDNs cannot be reached the page stays blank. :func:`ensure_assets` fetches the exact
versions the installed Visdom's own list names (``visdom/server/build.py``, ``download_scripts``, read from
its source: 29 files in visdom 0.2.4, 22 in 0.3.0, which moved to MathJax 3) with ``npm pack``,
puts each file where Visdom expects it, and writes ``static/version.built`` as Visdom does, so Visdom
considers its assets built. It does nothing when they are all present.

Example:
    >>> from flexlogger.tools.assets import ensure_assets
    >>> ensure_assets()                      # doctest: +SKIP
    [PosixPath('.../visdom/static/js/jquery.min.js'), ...]
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flexlogger.errors import FlexLoggerError
from flexlogger.io import atomic_write

__all__ = ["Asset", "AssetError", "assets_from_build_source", "ensure_assets", "missing_assets", "npm_asset",
           "visdom_assets", "visdom_static_dir"]


class AssetError(FlexLoggerError, RuntimeError):
    """Visdom's web assets could not be installed."""


@dataclass(frozen=True)
class Asset:
    """One file of Visdom's static folder and the npm package file it comes from.

    Attributes:
        package: npm package name.
        version: exact package version (the one Visdom's download list names).
        source: path of the file inside the package; ``""``: the package's main file (package.json ``main``).
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


# Where Visdom's download list points outside unpkg, the npm package holding the same file: plotly from
# cdn.plot.ly (npm: plotly.js-dist-min of the same version), d3 v3 and d3-selection-multi v1 from d3js.org
# (npm: d3@3.5.17, the last 3.x, and d3-selection-multi@1.0.1, the only 1.x), MathJax from cdnjs (npm: mathjax).
_D3JS = {"d3.v3.min.js": ("d3", "3.5.17", "d3.min.js"),
         "d3-selection-multi.v1.js": ("d3-selection-multi", "1.0.1", "build/d3-selection-multi.js")}
_UNPKG = re.compile(r"https?://unpkg\.com/(?P<package>(?:@[^/@]+/)?[^/@]+)@(?P<version>[^/]+)/?(?P<source>.*)")
_PLOTLY = re.compile(r"https?://cdn\.plot\.ly/plotly-(?P<version>[0-9.]+)\.min\.js")
_D3 = re.compile(r"https?://d3js\.org/(?P<file>[^/?#]+)")
_CDNJS = re.compile(r"https?://cdnjs\.cloudflare\.com/ajax/libs/(?P<package>[^/]+)/(?P<version>[^/]+)/(?P<source>.+)")


def _path(url_path: str) -> str:
    """A URL path without its query and fragment (``...svg#glyphicons`` names the file ``...svg``)."""
    return url_path.split("#")[0].split("?")[0]


def npm_asset(url: str, target: str) -> Asset:
    """The npm package file that holds what Visdom downloads from ``url`` into ``static/target``.

    Raises:
        AssetError: ``url`` is on a host flexlogger has no npm equivalent for.
    """
    if found := _UNPKG.fullmatch(url):
        # no path: unpkg serves the package's main file (the package.json "main", read at install)
        return Asset(found["package"], found["version"], _path(found["source"]), target)
    if found := _PLOTLY.fullmatch(url):
        return Asset("plotly.js-dist-min", found["version"], "plotly.min.js", target)
    if (found := _D3.fullmatch(url)) and found["file"] in _D3JS:
        return Asset(*_D3JS[found["file"]], target)
    if found := _CDNJS.fullmatch(url):
        return Asset(found["package"], found["version"], _path(found["source"]), target)
    raise AssetError(f"Visdom downloads {url!r} (its static/{target}), which flexlogger cannot map to an npm "
                     "package; flexlogger's assets module needs an entry for it.")


class _Strings(ast.NodeVisitor):
    """Evaluates the string assignments of ``download_scripts`` (constants, ``%`` formatting, names)."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {}

    def value(self, node: ast.expr) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.names[node.id]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return str(self.value(node.left)) % self.value(node.right)  # type: ignore[operator]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values) if k is not None}
        raise ValueError(ast.dump(node))

    def visit_Assign(self, node: ast.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                self.names[node.targets[0].id] = self.value(node.value)
            except (ValueError, KeyError, TypeError):
                pass  # not a string expression (a handler, a path join): not part of the list


def assets_from_build_source(source: str) -> tuple[Asset, ...]:
    """The assets named by a Visdom ``server/build.py`` source (``download_scripts``: ``ext_files`` and MathJax).

    Mirrors how ``download_scripts`` places each file: ``.js``/``.js.map`` in ``js/``, ``.css`` in ``css/``,
    the rest in ``fonts/``; MathJax files under ``js/mathjax/<version>/``.

    Raises:
        AssetError: the source lacks the list, or names a file on a host with no npm equivalent.
    """
    strings = _Strings()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "download_scripts":
            strings.visit(node)
    ext_files, cdnjs, mathjax_paths = (strings.names.get(k) for k in ("ext_files", "cdnjs_url", "mathjax_path"))
    if not isinstance(ext_files, dict) or not isinstance(cdnjs, str) or not isinstance(mathjax_paths, list):
        raise AssetError("visdom's server/build.py has no download list (`ext_files`, `cdnjs_url`, `mathjax_path` "
                         "in download_scripts()); this visdom version is not supported.")
    assets = []
    for url, name in ext_files.items():
        sub = "js" if name.endswith((".js", ".js.map")) else "css" if name.endswith(".css") else "fonts"
        assets.append(npm_asset(str(url), f"{sub}/{name}"))
    mathjax_dir = "/".join(cdnjs.rstrip("/").split("/")[-2:])  # "mathjax/3.2.2", as download_scripts joins it
    for path in mathjax_paths:
        path = str(path).split("?")[0]
        assets.append(npm_asset(cdnjs + path, f"js/{mathjax_dir}/{path}"))
    return tuple(assets)


@functools.cache
def visdom_assets() -> tuple[Asset, ...]:
    """The assets the installed visdom's own download list names (29 in visdom 0.2.4, 22 in 0.3.0)."""
    return assets_from_build_source((_visdom_dir() / "server" / "build.py").read_text())


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
    return [a for a in visdom_assets() if not (static / a.target).is_file()]


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


def _main_file(tar: tarfile.TarFile, asset: Asset) -> str:
    """The file unpkg serves for a bare ``name@version``: package.json's ``main`` (default ``index.js``)."""
    try:
        data = tar.extractfile("package/package.json")
        main = json.loads(data.read()).get("main", "index.js") if data is not None else "index.js"
    except (KeyError, json.JSONDecodeError) as exc:
        raise AssetError(f"npm package {asset.spec} has no readable package.json: {exc}") from exc
    main = str(main).removeprefix("./")
    return main if main.endswith(".js") else f"{main}.js"


def _install(asset: Asset, tarball: Path, static: Path) -> Path:
    target = static / asset.target
    with tarfile.open(tarball) as tar:
        source = asset.source or _main_file(tar, asset)
        try:
            member = tar.getmember(f"package/{source}")
        except KeyError:
            raise AssetError(f"npm package {asset.spec} has no file {source!r}.") from None
        data = tar.extractfile(member)
        if data is None:
            raise AssetError(f"npm package {asset.spec}: {asset.source!r} is not a regular file.")
        with data:
            atomic_write(target, lambda out: shutil.copyfileobj(data, out), make_parents=True)  # never half a file
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
