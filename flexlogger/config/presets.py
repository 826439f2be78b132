"""Presets: named, reusable plots and meter templates, composed with ``+`` and made once per phase.

    >>> Stat = flexlogger.get_preset_logger('loss+MSE', phases=('train', 'test'), env='exp1')
    >>> Stat.get_definitions()
    {'loss': ['train_loss', 'test_loss'], 'mse': ['train_mse', 'test_mse']}

A preset is a YAML (or JSON) file::

    description: what it shows and what add() takes
    per_phase: true            # default; false: meters are made once, named as written (the `lr` preset)
    required: {k: the number of classes}   # meter args the user must give in preset_args
    plots:  {confusion_{phase}: {type: heatmap, opts: {title: 'confusion ({phase})'}}}
    meters: {confusion: {type: ConfusionMeter, target: 'confusion_{phase}'}}

Every meter template is made once per phase as ``{phase}_{name}`` (or where ``{phase}`` sits in its name), with
``{phase}`` in its targets replaced too; its other keys (``args``, ``best``, ``display``) are kept as written. A
plot whose name holds ``{phase}`` is made once per phase (needed for plots that show one meter, like heatmaps);
other plots are shared by the phases. ``{phase}`` in a plot's string opts (its title) is replaced as well.

Preset parameters are the arguments of the preset's meters: ``preset_args={'confusion': {'k': 10}}`` passes
``k=10`` to every meter of the ``confusion`` preset whose type takes ``k``, over the preset's own ``args``.
``preset_info(name)['args']`` lists them with their defaults.

Presets are searched in the folders of ``FLEXLOGGER_PRESET_PATH`` (``os.pathsep``-separated), then
``$XDG_CONFIG_HOME/flexlogger/presets`` (``~/.config/flexlogger/presets``), then the built-ins (the package's
``presets/`` folder); the first file named ``<name>.yaml``/``.yml``/``.json`` wins. Names are case-insensitive.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flexlogger.config.parse import SUFFIXES, parse_text, read_file
from flexlogger.config.registry import METERS, meter_args, meter_info
from flexlogger.config.specs import MeterSpec, PlotSpec, check_definitions
from flexlogger.errors import ConfigError, InvalidConfigError, UnknownNameError, unknown_name_message

DEFAULT_PHASES: tuple[str, ...] = ("train", "test")
BUILTIN = "built-in"
PHASE = "{phase}"
PRESET_KEYS = ("description", "per_phase", "required", "plots", "meters")


@dataclass(frozen=True)
class Preset:
    """A parsed preset file: plot and meter *templates* (names may hold ``{phase}``)."""

    name: str
    source: str  # the folder it was found in, or 'built-in'
    description: str
    per_phase: bool
    required: Mapping[str, str]
    plots: Mapping[str, PlotSpec]
    meters: Mapping[str, MeterSpec]


# finding ---------------------------------------------------------------------------------------------------------
def user_preset_dirs() -> list[Path]:
    """The folders searched before the built-ins: ``FLEXLOGGER_PRESET_PATH``'s, then the user config folder."""
    dirs = [Path(p).expanduser() for p in os.environ.get("FLEXLOGGER_PRESET_PATH", "").split(os.pathsep) if p]
    config_home = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    dirs.append(Path(config_home).expanduser() / "flexlogger" / "presets")
    return dirs


def _files(folder: Any) -> list[tuple[str, Any]]:
    """``(lower-case name, file)`` of the preset files in ``folder`` (a Path or a Traversable), in suffix order."""
    try:
        entries = sorted(folder.iterdir(), key=lambda f: f.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    rank = list(SUFFIXES)
    found = []
    for entry in entries:
        stem, dot, suffix = entry.name.rpartition(".")
        if dot and f".{suffix.lower()}" in SUFFIXES and stem and "+" not in stem and entry.is_file():
            found.append((rank.index(f".{suffix.lower()}"), stem.lower(), entry))
    return [(stem, entry) for _, stem, entry in sorted(found, key=lambda f: f[0])]


def _index() -> dict[str, tuple[str, Any]]:
    """name -> (source, file) of every preset; the first folder that has a name wins."""
    index: dict[str, tuple[str, Any]] = {}
    for folder in user_preset_dirs():
        for stem, entry in _files(folder):
            index.setdefault(stem, (str(folder), entry))
    for stem, entry in _files(importlib.resources.files("flexlogger.builtin_presets")):
        index.setdefault(stem, (BUILTIN, entry))
    return index


def preset_names() -> dict[str, str]:
    """``{name: source}`` of every preset, sorted: source is the user folder it comes from, or ``'built-in'``.

    Example:
        >>> flexlogger.preset_names()['loss']
        'built-in'
    """
    return {name: source for name, (source, _) in sorted(_index().items())}


def _unknown(name: str, index: Mapping[str, Any]) -> str:
    searched = ", ".join([*(str(d) for d in user_preset_dirs()), BUILTIN])
    return f"{unknown_name_message('preset', name, index)} (searched: {searched})"


def load_preset(name: str) -> Preset:
    """Find and parse the preset called ``name`` (case-insensitive).

    Raises:
        UnknownNameError: no such preset (the message lists the close and the valid names).
        InvalidConfigError: the preset file has problems (all listed, with their paths in the file).
    """
    if not isinstance(name, str):
        raise ConfigError(f"expected a preset name (a string), but got {type(name).__name__} {name!r}")
    index = _index()
    key = name.strip().lower()
    if key not in index:
        raise UnknownNameError(_unknown(name, index))
    source, entry = index[key]
    where = entry.name if source == BUILTIN else str(entry)
    if isinstance(entry, Path):  # a user's file: read as a config file is (size checked before it is read)
        data, problems = read_file(entry)
    else:  # a built-in preset, shipped with the package
        data, problems = parse_text(entry.read_text(encoding="utf-8"), where, SUFFIXES[Path(entry.name).suffix.lower()])
    return _parse_preset(key, source, where, data, problems)


def _parse_preset(name: str, source: str, where: str, data: Any, problems: list[str]) -> Preset:
    if not isinstance(data, Mapping):
        raise InvalidConfigError(where, [f"(top level): expected a mapping with keys {', '.join(PRESET_KEYS)}, but "
                                         f"got {type(data).__name__} {data!r}"])
    for key in data:
        if key not in PRESET_KEYS:
            problems.append(f"{key}: " + unknown_name_message("preset key", key, PRESET_KEYS))
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(f"description: expected a string, but got {description!r}")
    per_phase = data.get("per_phase", True)
    if not isinstance(per_phase, bool):
        problems.append(f"per_phase: expected true or false, but got {per_phase!r}")
    required = data.get("required") or {}
    if not isinstance(required, Mapping) or not all(isinstance(v, str) for v in required.values()):
        problems.append(f"required: expected a mapping of meter argument -> description, but got {required!r}")
        required = {}
    # the templates' meters are built when expanded, with their final arguments; a per-phase template may share
    # its plot's name (the meter loss becomes train_loss)
    plots, meters, _ = check_definitions(data.get("plots"), data.get("meters"), problems, build=False,
                                         check_shared=per_phase is False)
    accepted = {a for spec in meters.values() for a in meter_args(spec.type)}
    for arg in required:
        if meters and arg not in accepted:
            problems.append(f"required.{arg}: no meter of the preset takes {arg!r}; valid arguments: "
                            f"{', '.join(sorted(accepted)) or '(none)'}")
    if per_phase is False:
        for key, names in (("plots", plots), ("meters", meters)):
            problems.extend(f"{key}.{n}: {PHASE} in a name, but per_phase is false; expected names without it"
                            for n in names if PHASE in n)
    if problems:
        raise InvalidConfigError(where, problems)
    return Preset(name, source, description if isinstance(description, str) else "", bool(per_phase),
                  MappingProxyType(dict(required)), MappingProxyType(plots), MappingProxyType(meters))


def preset_info(name: str) -> dict[str, Any]:
    """What a preset defines: its plots, its meters (with what each ``add()`` takes) and its arguments.

    A composed name (``'loss+Acc'``, as ``get_preset_logger`` takes it) gives the info of each preset under
    ``presets``, and their plots, meters and names together; ``args`` is then ``{preset: {argument: default}}``.

    Example:
        >>> info = flexlogger.preset_info('acc')
        >>> info['meters']['acc']['add']
        'add(output, target): output N x K class scores (or K scores for one sample), target N integer labels'
        >>> info['meter_names']
        ['train_acc', 'test_acc']
    """
    if isinstance(name, str) and "+" in name:
        return _composed_info(name)
    preset = load_preset(name)
    args: dict[str, Any] = {}
    for spec in preset.meters.values():
        for arg, default in meter_args(spec.type).items():
            args.setdefault(arg, spec.args.get(arg, default))
    for arg in preset.required:
        args[arg] = "(required)"
    plots, meters = _expand(preset, DEFAULT_PHASES, {})
    return {
        "name": preset.name,
        "source": preset.source,
        "description": preset.description,
        "per_phase": preset.per_phase,
        "plots": {n: s.to_dict() for n, s in preset.plots.items()},
        "meters": {n: {**s.to_dict(), "add": meter_info(s.type)["add"], "plots_as": METERS[s.type].plots_as}
                   for n, s in preset.meters.items()},
        "args": args,
        "required": dict(preset.required),
        "meter_names": list(meters),
        "plot_names": list(plots),
    }


def _composed_info(name: str) -> dict[str, Any]:
    names = split_names(name)
    if not all(names):
        raise ConfigError(f"preset_info(): empty preset name in {name!r}; expected names joined by '+', e.g. "
                          "'loss+acc'")
    infos = [preset_info(n) for n in names]  # every name checked
    joined = "+".join(info["name"] for info in infos)
    return {
        "name": joined,
        "source": ", ".join(sorted({str(info["source"]) for info in infos})),
        "description": "; ".join(info["description"] for info in infos if info["description"]),
        "per_phase": any(info["per_phase"] for info in infos),
        "plots": {k: v for info in infos for k, v in info["plots"].items()},
        "meters": {k: v for info in infos for k, v in info["meters"].items()},
        "args": {info["name"]: info["args"] for info in infos},
        "required": {info["name"]: info["required"] for info in infos if info["required"]},
        "meter_names": [m for info in infos for m in info["meter_names"]],
        "plot_names": [p for info in infos for p in info["plot_names"]],
        "presets": infos,
    }


# composing -------------------------------------------------------------------------------------------------------
def split_names(names: str | Iterable[str]) -> list[str]:
    """``'loss+MSE'`` or ``['loss', 'mse+acc']`` -> ``['loss', 'mse', 'acc']`` (lower case, stripped)."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Iterable):
        raise ConfigError(f"expected preset names such as 'loss+acc' or ['loss', 'acc'], but got {names!r}")
    out: list[str] = []
    for item in names:
        if not isinstance(item, str):
            raise ConfigError(f"expected preset names (strings) such as 'loss+acc', but got "
                              f"{type(item).__name__} {item!r}")
        out.extend(part.strip().lower() for part in item.split("+"))
    return out


def check_phases(phases: Any) -> tuple[str, ...]:
    """``phases`` as a tuple of distinct non-empty names (a single string is one phase)."""
    if phases is None:
        return DEFAULT_PHASES
    if isinstance(phases, str):
        phases = (phases,)
    if (not isinstance(phases, (list, tuple)) or not phases
            or not all(isinstance(p, str) and p and "{" not in p for p in phases)):
        raise ConfigError(f"phases: expected a non-empty list of phase names such as ['train', 'test'], "
                          f"but got {phases!r}")
    dup = sorted({p for p in phases if phases.count(p) > 1})
    if dup:
        raise ConfigError(f"phases: {', '.join(map(repr, dup))} given twice in {list(phases)!r}; expected "
                          "distinct phase names")
    return tuple(phases)


def _sub(value: Any, phase: str) -> Any:
    if isinstance(value, str):
        return value.replace(PHASE, phase)
    if isinstance(value, Mapping):
        return {k: _sub(v, phase) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, phase) for v in value]
    return value


def _expand(preset: Preset, phases: tuple[str, ...], args: Mapping[str, Any]
            ) -> tuple[dict[str, PlotSpec], dict[str, MeterSpec]]:
    """The preset's plots and meters for ``phases``, with ``args`` given to the meters that take them."""
    plots: dict[str, PlotSpec] = {}
    for name, plot in preset.plots.items():
        for phase in (phases if PHASE in name else phases[:1]):
            opts = _sub(dict(plot.opts), phase) if PHASE in name else dict(plot.opts)
            plots[name.replace(PHASE, phase)] = PlotSpec(plot.type, MappingProxyType(opts))
    meters: dict[str, MeterSpec] = {}
    for name, spec in preset.meters.items():
        valid = meter_args(spec.type)
        # replace(), not a new MeterSpec: every key of the template (best, display, ...) is kept as it is
        merged = replace(spec, args=MappingProxyType({**spec.args, **{k: v for k, v in args.items() if k in valid}}))
        if not preset.per_phase:
            meters[name] = merged
            continue
        for phase in phases:
            full = name.replace(PHASE, phase) if PHASE in name else f"{phase}_{name}"
            meters[full] = replace(merged, target=tuple(t.replace(PHASE, phase) for t in spec.target))
    return plots, meters


def expand_presets(names: Any, phases: Any = None, preset_args: Any = None, problems: list[str] | None = None,
                   taken: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Compose presets into plot and meter specs, appending every problem to ``problems``.

    Args:
        names: ``'loss+acc'``, or a list of names (each may hold ``+``).
        phases: the phases each per-phase meter is made for (default ``('train', 'test')``).
        preset_args: ``{preset: {meter argument: value}}``, e.g. ``{'confusion': {'k': 10}}``.
        problems: where problems go (with their config path: ``presets``, ``phases``, ``preset_args.confusion``).
        taken: names already used (by a logger the presets are added to): a preset may not redefine them.

    Returns:
        ``(plots, meters, origin)``: specs by name, and the preset each name came from.
    """
    problems = [] if problems is None else problems
    plots: dict[str, Any] = {}
    meters: dict[str, Any] = {}
    origin: dict[str, str] = {}
    try:
        wanted = split_names(names)
    except ConfigError as exc:
        problems.append(f"presets: {exc}")
        return plots, meters, origin
    try:
        phase_names = check_phases(phases)
    except ConfigError as exc:
        problems.append(str(exc))
        phase_names = DEFAULT_PHASES
    args_by_preset = _args_by_preset(preset_args, problems)
    taken = set(taken)
    seen: list[str] = []
    joined = "+".join(wanted)
    for name in wanted:
        preset = _next_preset(name, seen, joined, problems)
        if preset is None:
            continue
        args = args_by_preset.get(name, {})
        _check_preset_args(name, preset, args, problems)
        new_plots, new_meters = _expand(preset, phase_names, args)
        for key, new, into in (("plots", new_plots, plots), ("meters", new_meters, meters)):
            _merge(name, key, new, into, origin, taken, problems)
    for key in sorted(set(args_by_preset) - set(seen)):
        problems.append(f"preset_args.{key}: {key!r} is not one of the presets composed; expected arguments for "
                        f"one of: {', '.join(seen) or '(none)'}")
    return plots, meters, origin


def _args_by_preset(preset_args: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``preset_args`` checked: ``{preset name (lower case): {argument: value}}``."""
    args_by_preset: dict[str, dict[str, Any]] = {}
    if preset_args is not None and not isinstance(preset_args, Mapping):
        problems.append(f"preset_args: expected a mapping of preset name -> {{argument: value}}, e.g. "
                        f"{{'confusion': {{'k': 10}}}}, but got {preset_args!r}")
    elif preset_args:
        for key, value in preset_args.items():
            if not isinstance(value, Mapping):
                problems.append(f"preset_args.{key}: expected a mapping of argument -> value, but got {value!r}")
            else:
                args_by_preset[str(key).strip().lower()] = dict(value)
    return args_by_preset


def _next_preset(name: str, seen: list[str], joined: str, problems: list[str]) -> Preset | None:
    """The preset ``name`` (added to ``seen``), or None with a problem: an empty name, one given twice, or one
    that does not load."""
    if not name:
        problems.append(f"presets: empty preset name in {joined!r}; expected names joined by '+', e.g. 'loss+acc'")
        return None
    if name in seen:
        problems.append(f"presets: preset {name!r} given twice in {joined!r}; expected each preset once")
        return None
    seen.append(name)
    try:
        return load_preset(name)
    except InvalidConfigError as exc:
        problems.extend(f"preset {name!r} ({exc.source}): {p}" for p in exc.problems)
    except ConfigError as exc:
        problems.append(f"presets: {exc}")
    return None


def _check_preset_args(name: str, preset: Preset, args: Mapping[str, Any], problems: list[str]) -> None:
    """Every argument given to preset ``name`` is one its meters take, and every argument it needs is given."""
    accepted = {a for spec in preset.meters.values() for a in meter_args(spec.type)}
    for arg in sorted(set(args) - accepted, key=str):
        problems.append(f"preset_args.{name}.{arg}: unknown argument {arg!r} for preset {name!r}; valid "
                        f"arguments: {', '.join(sorted(accepted)) or '(none)'}")
    for arg, what in preset.required.items():
        if arg not in args:
            problems.append(f"preset_args.{name}.{arg}: missing; preset {name!r} needs {arg!r} ({what}), e.g. "
                            f"preset_args={{{name!r}: {{{arg!r}: ...}}}}")


def _merge(name: str, key: str, new: Mapping[str, Any], into: dict[str, Any], origin: dict[str, str],
           taken: set[str], problems: list[str]) -> None:
    """Add preset ``name``'s ``new`` plots or meters (``key``) to ``into``, each name defined once (``origin``
    says by which preset) and none of the ``taken`` ones."""
    for item, spec in new.items():
        if item in origin:
            problems.append(f"{key}.{item}: defined by both presets {origin[item]!r} and {name!r}; expected "
                            "presets that use distinct names")
        elif item in taken:
            problems.append(f"{key}.{item}: preset {name!r} defines {item!r}, which the logger already has; "
                            "expected a name that is free (remove() it first)")
        else:
            into[item] = spec
            origin[item] = name

