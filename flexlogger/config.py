"""Config files and dicts -> validated plot and meter specs and FlexLogger options.

A config is a mapping (a YAML or JSON file, or a dict) with these keys, all optional::

    env: mnist                  # FlexLogger options: env, uid, server, port, log_dir, strict
    port: 8097                  # ... and the Visdom sink's options (min_interval, timeout, ...)
    presets: loss+acc           # presets to expand (a '+'-joined string or a list), see flexlogger.presets
    phases: [train, test]       # the phases the presets' meters are made for (default: train, test)
    preset_args: {confusion: {k: 10}}
    plots:  {grad_norm: {type: line, opts: {ylabel: norm}}}     # plots and meters as FlexLogger takes them
    meters: {train_grad_norm: {type: AverageValueMeter, target: grad_norm}}

The whole config is checked before anything is built and every problem is reported in one
:class:`~flexlogger.errors.InvalidConfigError`, each with its path (``meters.train_loss.type: ...``).

This is the only module that imports ``yaml``, and it only ever uses the safe loader: a config builds plain data
(mappings, lists, strings, numbers, booleans, null), never Python objects, and meter and plot ``type`` names
resolve only through flexlogger's registries. A config can never import or run code.

A config saved by ``FlexLogger.save_config`` leaves out ``uid`` unless the logger was given one: a config is
meant to be reused across experiments, and each run then gets its own windows (uid = its start time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from . import options as options_
from .errors import ConfigError, InvalidConfigError, short_repr, unknown_name_message
from .specs import MeterSpec, PlotSpec, check_definitions

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


PRESET_KEYS = ("presets", "phases", "preset_args")
DEFINITION_KEYS = ("plots", "meters")


def option_names() -> list[str]:
    """Every top-level key a config may have, in the order ``to_config`` writes them (secrets excluded)."""
    return [*(n for n in options_.names() if n not in options_.SECRET), *PRESET_KEYS, *DEFINITION_KEYS]


@dataclass(frozen=True)
class Config:
    """A validated config: specs ready for ``FlexLogger(config.plots, config.meters, **config.options)``.

    Attributes:
        plots: plot name -> spec (presets expanded, then the config's own plots).
        meters: meter name -> spec.
        options: FlexLogger keyword options that the config sets (``env``, ``port``, Visdom sink options, ...).
        source: the file it was read from, or ``'config'`` for a dict.
    """

    plots: Mapping[str, PlotSpec]
    meters: Mapping[str, MeterSpec]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "config"

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (what ``save_config`` writes)."""
        return config_dict(self.plots, self.meters, self.options)


# reading ---------------------------------------------------------------------------------------------------------
MAX_FILE_BYTES = 1 << 20  # a config file is a few KiB; more is a mistake (or an attack)
MAX_ALIASES = 100  # YAML aliases (*name) in one config: enough for any shared block, too few for billion laughs
MAX_NODES = 100_000  # values in a config once every alias is expanded
MAX_DEPTH = 64  # nesting of mappings and lists (a real config nests 4 or 5 deep)


class _SafeLoader(yaml.SafeLoader):
    """YAML's safe loader, which also records duplicate keys (plain YAML keeps the last one silently) and refuses
    documents that would expand past ``MAX_ALIASES`` aliases, ``MAX_NODES`` values or ``MAX_DEPTH`` levels."""

    def __init__(self, stream: str, source: str = "config") -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []
        self.source = source
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.source}:{mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); "
                                  f"expected at most {MAX_ALIASES} (a config that repeats a block this often is "
                                  "refused: its expansion could be huge)")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(f"{self.source}:{mark.line + 1}: nested more than {MAX_DEPTH} levels deep; expected "
                              f"at most {MAX_DEPTH} levels of mappings and lists")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expanded_size(node, self.source)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append(f"line {line}: duplicate key {short_repr(key)} (first at line {seen[key]}); "
                                       "expected each name once in a mapping")
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_text(text: str, source: str, fmt: str = "yaml") -> tuple[Any, list[str]]:
    """Parse YAML (safe loader only) or JSON text; return the data and the duplicate-key problems.

    Raises:
        ConfigError: the text is not valid YAML/JSON, it uses a YAML tag that would build a Python object, it is
            longer than ``MAX_FILE_BYTES``, uses more than ``MAX_ALIASES`` YAML aliases, expands to more than
            ``MAX_NODES`` values, or nests deeper than ``MAX_DEPTH``.
    """
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_FILE_BYTES else len(text)
    if size > MAX_FILE_BYTES:
        raise ConfigError(_too_large(source, size))
    if fmt == "json":
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in items:
                if key in out:
                    duplicates.append(f"duplicate key {key!r} in one object; expected each name once")
                out[key] = value
            return out

        try:
            data = json.loads(text, object_pairs_hook=pairs)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep; expected at most {MAX_DEPTH} "
                              "levels of objects and arrays") from None
        _check_depth(data, source)
        return data, duplicates
    loader = _SafeLoader(text, source)
    try:
        data = loader.get_single_data()
    except yaml.constructor.ConstructorError as exc:
        where = f"{source}:{exc.problem_mark.line + 1}" if exc.problem_mark else source
        raise ConfigError(f"{where}: {exc.problem}; config files are read with YAML's safe loader, which builds "
                          "only plain data (mappings, lists, strings, numbers, true/false, null): a tag such as "
                          "!!python/object that would import or run code is not allowed") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep; expected at most {MAX_DEPTH} "
                          "levels of mappings and lists") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, loader.duplicates


def read_file(path: str | Path) -> tuple[Any, list[str]]:
    """Read a ``.yaml``/``.yml``/``.json`` file: the parsed data and its duplicate-key problems."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"config file {str(path)!r}: unknown suffix {path.suffix!r}; expected one of "
                          f"{', '.join(SUFFIXES)}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(_too_large(str(path), size))
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # a file growing since stat() is still read no further
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(_too_large(str(path), len(data)))
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: byte {exc.start} is not UTF-8 ({exc.reason}); expected a "
                          "UTF-8 text file") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found (working directory: {Path.cwd()}); expected "
                          "the path of a .yaml, .yml or .json file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} could not be read: {exc.strerror or exc}") from None
    return parse_text(text, str(path), fmt)


def _too_large(source: str, size: int) -> str:
    return (f"config file {source!r} is {size} bytes; expected at most {MAX_FILE_BYTES} bytes (1 MiB): a config "
            "holds definitions and options, not data")


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Refuse a YAML document whose values, once every alias is expanded, exceed ``MAX_NODES`` (billion laughs).

    Sizes are counted per node once (memoised), so this is linear in the document, not in its expansion.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not children_done:
            if key in active:
                raise ConfigError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a value that holds "
                                  "it (a recursive structure); expected plain, finite data")
            active.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        active.discard(key)
        total = 1 + sum(sizes.get(id(c), 0) for c in children)
        if total > MAX_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: this value expands (through YAML aliases) to "
                              f"more than {MAX_NODES} values; expected at most {MAX_NODES} in a config")
        sizes[key] = total


def _check_depth(data: Any, source: str) -> None:
    """Refuse JSON data nested deeper than ``MAX_DEPTH`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep; expected at most "
                                  f"{MAX_DEPTH} levels of objects and arrays")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


# validation ------------------------------------------------------------------------------------------------------
def load_config(source: str | Path | Mapping[str, Any], **overrides: Any) -> Config:
    """Read and validate a config (a ``.yaml``/``.yml``/``.json`` path, or a dict) as a whole.

    Args:
        source: the config file, or the config as a dict.
        **overrides: top-level keys that replace the config's (``env='exp2'``, ``port=8098``, ``phases=[...]``).

    Returns:
        The validated :class:`Config`.

    Raises:
        InvalidConfigError: listing every problem with its path, e.g.
            ``meters.train_loss.type: unknown meter type 'AverageMeter' (did you mean 'AverageValueMeter'?)``.
        ConfigError: the file cannot be read or parsed (not YAML/JSON, or a YAML tag that would build an object).

    Example:
        >>> cfg = load_config({'presets': 'loss', 'env': 'exp1'}, env='exp2')
        >>> sorted(cfg.meters), cfg.options['env']
        (['test_loss', 'train_loss'], 'exp2')
    """
    if isinstance(source, Mapping):
        raw: Any = dict(source)
        name, problems = "config", list[str]()
    elif isinstance(source, (str, Path)):
        raw, problems = read_file(source)
        name = str(source)
    else:
        raise ConfigError(f"expected a config file path or a dict, but got {type(source).__name__} {source!r}")
    if raw is None:
        raw = {}  # an empty file: an empty logger
    if not isinstance(raw, Mapping):
        raise InvalidConfigError(name, [f"(top level): expected a mapping of config keys ({', '.join(option_names())})"
                                        f", but got {type(raw).__name__} {raw!r}"])
    raw = {**raw, **overrides}
    valid = option_names()
    for key in raw:
        if key not in valid:
            problems.append(f"{key}: " + unknown_name_message("config key", key, valid))
    given = {k: raw[k] for k in options_.names() if k in raw}
    options_.check_options(given, "config", problems=problems)
    for key in sorted(options_.SECRET & set(given)):
        problems.append(f"{key}: a secret, which a config file must not hold (it would be written to the run "
                        f"record); expected it from the environment (VISDOM_PASSWORD) or the keyword argument")
    options = {k: v for k, v in given.items() if options_.BY_NAME[k].check(v)}
    plots_raw: dict[str, Any] = {}
    meters_raw: dict[str, Any] = {}
    origin: dict[str, str] = {}  # expanded name -> the preset it came from
    if raw.get("presets") not in (None, "", []):
        from .presets import expand_presets

        plots_raw, meters_raw, origin = expand_presets(raw["presets"], raw.get("phases"), raw.get("preset_args"),
                                                       problems)
    else:
        for key in ("phases", "preset_args"):
            if raw.get(key) is not None:
                problems.append(f"{key}: only used with presets, but the config names none; expected a `presets` "
                                f"key (e.g. presets: loss+acc) or no `{key}`")
    own_plots, own_meters = raw.get("plots") or {}, raw.get("meters") or {}
    for key, own, expanded in (("plots", own_plots, plots_raw), ("meters", own_meters, meters_raw)):
        if isinstance(own, Mapping):
            for item in own:
                if item in expanded:
                    problems.append(f"{key}.{item}: already defined by preset {origin[item]!r}; expected a name "
                                    "that no preset uses")
    all_plots = {**plots_raw, **own_plots} if isinstance(own_plots, Mapping) else own_plots
    all_meters = {**meters_raw, **own_meters} if isinstance(own_meters, Mapping) else own_meters
    plots, meters = check_definitions(all_plots, all_meters, problems)
    if problems:
        raise InvalidConfigError(name, problems)
    return Config(MappingProxyType(plots), MappingProxyType(meters), MappingProxyType(options), name)


# writing ---------------------------------------------------------------------------------------------------------
def plain(value: Any, where: str, strict: bool = True) -> Any:
    """``value`` as plain YAML/JSON data (dicts, lists, str, int, float, bool, None).

    A value with no such form raises :class:`ConfigError` (``strict``) or is left as it is.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}", strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]", strict) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if not strict:
        return value
    raise ConfigError(f"{where}: {type(value).__name__} {value!r} cannot be written to a config file; expected "
                      "plain data (mappings, lists, strings, numbers, booleans, None)")


def config_dict(plots: Mapping[str, PlotSpec], meters: Mapping[str, MeterSpec],
                options: Mapping[str, Any]) -> dict[str, Any]:
    """A config as plain data: the options first (in :func:`option_names` order), then ``plots`` and ``meters``.

    Secrets are left out, and options that each run decides afresh (``uid``, ``distributed``) when they are None.
    Tuples become lists and numpy values numbers; a value with no plain form (an object in a plot's opts) is kept
    as it is here, and :func:`save_config` reports it.
    """
    return merge_configs(options, [{"plots": {n: plain(s.to_dict(), f"plots.{n}", False) for n, s in plots.items()},
                                    "meters": {n: plain(s.to_dict(), f"meters.{n}", False)
                                               for n, s in meters.items()}}])


def merge_configs(run_options: Mapping[str, Any], configs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One config for a run that several loggers write to: the run's options, then each logger's options (the first
    one's win), plots and meters (window names are unique within a run, so they never clash)."""
    options: dict[str, Any] = dict(run_options)
    plots: dict[str, Any] = {}
    meters: dict[str, Any] = {}
    for config in configs:
        for key, value in config.items():
            if key == "plots":
                plots.update(value)
            elif key == "meters":
                meters.update(value)
            else:
                options.setdefault(key, value)
    order = option_names()
    keys = [k for k in options if k not in options_.SECRET
            and not (k in options_.BY_NAME and not options_.BY_NAME[k].pinned and options[k] is None)]
    out = {k: plain(options[k], k, False)
           for k in sorted(keys, key=lambda k: order.index(k) if k in order else len(order))}
    out["plots"], out["meters"] = plots, meters
    return out


def save_config(config: Mapping[str, Any], path: str | Path) -> Path:
    """Write a config dict to ``path`` as YAML (``.yaml``/``.yml``) or JSON (``.json``); return the path."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"save_config: unknown suffix {path.suffix!r} of {str(path)!r}; expected one of "
                          f"{', '.join(SUFFIXES)}")
    data = plain(config, "config")
    if fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = (f"# flexlogger config: FlexLogger.from_config({path.name!r})\n"
                + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
