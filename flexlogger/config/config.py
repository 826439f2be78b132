"""Config files and dicts -> validated plot and meter specs and FlexLogger options.

A config is a mapping (a YAML or JSON file, or a dict) with these keys, all optional::

    env: mnist                  # FlexLogger options: env, uid, server, port, log_dir, strict
    port: 8097                  # ... and the Visdom sink's options (min_interval, timeout, ...)
    max_steps: 500              # the steps the run will log (progress and ETA); see flexlogger.config.options
    presets: loss+acc           # presets to expand (a '+'-joined string or a list), see flexlogger.config.presets
    phases: [train, test]       # the phases the presets' meters are made for (default: train, test)
    preset_args: {confusion: {k: 10}}
    plots:  {grad_norm: {type: line, opts: {ylabel: norm}}}     # plots and meters as FlexLogger takes them
    meters: {train_grad_norm: {type: AverageValueMeter, target: grad_norm}}

The whole config is checked before anything is built and every problem is reported in one
:class:`~flexlogger.errors.InvalidConfigError`, each with its path (``meters.train_loss.type: ...``).

Files are read by ``flexlogger.config.parse`` (the only module that imports ``yaml``), which only ever uses the safe
loader: a config builds plain data (mappings, lists, strings, numbers, booleans, null), never Python objects, and
meter and plot ``type`` names resolve only through flexlogger's registries. A config can never import or run code.

A config saved by ``FlexLogger.save_config`` leaves out ``uid`` unless the logger was given one: a config is
meant to be reused across experiments, and each run then gets its own windows (uid = its start time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from flexlogger.config import options as options_
from flexlogger.config.parse import SUFFIXES, dump_text, read_file
from flexlogger.config.presets import expand_presets
from flexlogger.config.specs import Checked, MeterSpec, PlotSpec, check_definitions
from flexlogger.errors import ConfigError, InvalidConfigError, unknown_name_message
from flexlogger.io import atomic_write

PRESET_KEYS = ("presets", "phases", "preset_args")
DEFINITION_KEYS = ("plots", "meters")


def option_names() -> list[str]:
    """Every top-level key a config may have, in the order ``to_config`` writes them (secrets excluded)."""
    names = options_.names(*options_.LOGGER_OWNERS)
    return [*(n for n in names if n not in options_.SECRET), *PRESET_KEYS, *DEFINITION_KEYS]


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
    return read_config(source, overrides)[0]


def read_config(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[Config, Checked]:
    """:func:`load_config`, and its checked definitions with the meters built while checking them, for a logger to
    use (each meter built once)."""
    raw, name, problems = _read(source)
    raw = {**raw, **overrides}
    options = _options(raw, problems)
    checked = check_definitions(*_definitions(raw, problems), problems)
    if problems:
        raise InvalidConfigError(name, problems)
    config = Config(MappingProxyType(checked.plots), MappingProxyType(checked.meters), MappingProxyType(options), name)
    return config, checked


def _read(source: Any) -> tuple[Mapping[str, Any], str, list[str]]:
    """``(the config's top-level mapping, its name, the problems of reading it)`` of a path or a dict.

    Raises:
        ConfigError: ``source`` is neither; the file cannot be read or parsed.
        InvalidConfigError: the top level is not a mapping.
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
    return raw, name, problems


def _options(raw: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The config's valid FlexLogger options; unknown keys, bad values and secrets go to ``problems``."""
    valid = option_names()
    for key in raw:
        if key not in valid:
            problems.append(f"{key}: " + unknown_name_message("config key", key, valid))
    given = {k: raw[k] for k in options_.names(*options_.LOGGER_OWNERS) if k in raw}
    options_.check_options(given, "config", problems=problems)
    for key in sorted(options_.SECRET & set(given)):
        problems.append(f"{key}: a secret, which a config file must not hold (it would be written to the run "
                        f"record); expected it from the environment (VISDOM_PASSWORD) or the keyword argument")
    return {k: v for k, v in given.items() if options_.BY_NAME[k].check(v)}


def _definitions(raw: Mapping[str, Any], problems: list[str]) -> tuple[Any, Any]:
    """The config's plots and meters: its presets expanded, then its own (which may not reuse a preset's name)."""
    plots_raw: dict[str, Any] = {}
    meters_raw: dict[str, Any] = {}
    origin: dict[str, str] = {}  # expanded name -> the preset it came from
    if raw.get("presets") not in (None, "", []):
        plots_raw, meters_raw, origin = expand_presets(raw["presets"], raw.get("phases"), raw.get("preset_args"),
                                                       problems)
    else:
        for key in ("phases", "preset_args"):
            if raw.get(key) is not None:
                problems.append(f"{key}: only used with presets, but the config names none; expected a `presets` "
                                f"key (e.g. presets: loss+acc) or no `{key}`")
    merged = []
    for key, expanded in (("plots", plots_raw), ("meters", meters_raw)):
        own = raw.get(key) or {}
        if isinstance(own, Mapping):  # anything else is reported by check_definitions
            problems.extend(f"{key}.{item}: already defined by preset {origin[item]!r}; expected a name that no "
                            "preset uses" for item in own if item in expanded)
            own = {**expanded, **own}
        merged.append(own)
    return merged[0], merged[1]


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
    """Write a config dict to ``path`` as YAML (``.yaml``/``.yml``) or JSON (``.json``), whole (an existing file is
    replaced only by a complete new one); return the path."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"save_config: unknown suffix {path.suffix!r} of {str(path)!r}; expected one of "
                          f"{', '.join(SUFFIXES)}")
    text = dump_text(plain(config, "config"), fmt, header=f"flexlogger config: FlexLogger.from_config({path.name!r})")
    return atomic_write(path, text, make_parents=True)
