"""Every keyword option of a run and a logger, declared once: its default, its check and what it expects.

``Run(...)``, ``FlexLogger(...)``, ``TooledModelLogger(...)``, the Visdom sink and ``load_config`` all check options
through :func:`check_options`, so a config that loads is a config that builds, and an unknown or misspelt keyword
is reported by the public function the user called, with the closest valid names. An option's owner says who takes
it: the ``run`` (a logger given ``run=`` takes only :data:`GIVEN_RUN` of these, and sets them on that run), its
``visdom`` sender, a ``logger`` (FlexLogger) or a ``model_logger`` (TooledModelLogger). :class:`RunOptions` types
the ``run`` and ``visdom`` options for ``**options`` (a test keeps it and the table in step).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from torch import nn

from flexlogger.defaults import DEFAULT_ENV, DEFAULT_LOG_DIR, DEFAULT_PORT, DEFAULT_SERVER, resolve
from flexlogger.errors import (
    ConfigError,
    InvalidConfigError,
    Problem,
    UnknownNameError,
    closest,
    short_repr,
    unknown_name_message,
)
from flexlogger.sinks.visdom.rules import check_env

__all__ = ["GIVEN_RUN", "LOGGER_OWNERS", "MODEL_LOGGER_MODES", "OPTIONS", "Option", "RunOptions", "VisdomOptions",
           "check_option", "check_options", "defaults", "names", "raise_problems"]


@dataclass(frozen=True)
class Option:
    """One keyword option.

    Attributes:
        name: the keyword.
        default: its default value.
        check: ``value -> bool``; True when the value is valid.
        expected: what a valid value is, for error messages.
        owner: who takes it (see the module docstring); ``tooled`` or ``recorder`` in :data:`MODEL_ARGUMENTS`.
        pinned: written to a saved config even when it is the default (False for ``uid`` and ``distributed``: a
            reused config decides them afresh in each run).
        secret: never written to a config, a record or a repr.
        choices: the valid values of a named choice (``mode``): a bad one is reported as an unknown name, with the
            closest valid ones.
    """

    name: str
    default: Any
    check: Callable[[Any], bool]
    expected: str
    owner: str
    pinned: bool = True
    secret: bool = False
    choices: tuple[str, ...] = ()


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and len(v) <= 200


def _is_folder_name(v: Any) -> bool:
    """A name that also names a folder of the run record: a NUL cannot be in a file name."""
    return _is_name(v) and "\x00" not in v


def _is_int(v: Any, lo: int, hi: float = math.inf) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_seconds(v: Any, positive: bool = False) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > 0 if positive else v >= 0))


def _is_server(v: Any) -> bool:
    return v is None or (isinstance(v, str) and re.match(r"https?://[^/:\s]", v) is not None)


def _is_base_url(v: Any) -> bool:
    return isinstance(v, str) and (v == "" or (v.startswith("/") and not v.endswith("/") and " " not in v))


MIN_MAX_POINTS = 16
MODEL_LOGGER_MODES: tuple[str, ...] = ("by_metric", "by_layer")

OPTIONS: tuple[Option, ...] = (
    Option("env", DEFAULT_ENV, _is_folder_name, "a non-empty string (the Visdom environment) without NUL characters",
           "run"),
    Option("uid", None, lambda v: v is None or _is_folder_name(v),
           "a non-empty string without NUL characters, or None for a new uid (start time and a random suffix) per "
           "run", "run", pinned=False),
    Option("server", DEFAULT_SERVER, _is_server,
           "a URL with its scheme, such as 'http://localhost', or None to send nothing to Visdom", "run"),
    Option("port", DEFAULT_PORT, lambda v: _is_int(v, 1, 65535), "an int from 1 to 65535", "run"),
    Option("log_dir", DEFAULT_LOG_DIR, lambda v: v is None or _is_name(v) or isinstance(v, Path),
           "a folder (str or Path) for the run record, or None to turn it off", "run"),
    Option("disabled", None, lambda v: v is None or isinstance(v, bool),
           "True, False, or None (disabled on torch.distributed ranks other than 0)", "run", pinned=False),
    Option("max_steps", None, lambda v: v is None or _is_int(v, 1),
           "a positive int (the number of steps the run will log) or None", "run"),
    Option("max_points", 2000, lambda v: _is_int(v, MIN_MAX_POINTS),
           f"an int >= {MIN_MAX_POINTS} (points a line trace shows before it is downsampled)", "visdom"),
    Option("min_interval", 0.2, _is_seconds, "a finite number of seconds >= 0", "visdom"),
    Option("timeout", 10.0, lambda v: _is_seconds(v, positive=True), "a finite number of seconds > 0", "visdom"),
    Option("close_timeout", 10.0, _is_seconds, "a finite number of seconds >= 0", "visdom"),
    Option("save_every", 60.0, _is_seconds, "a finite number of seconds >= 0", "visdom"),
    Option("base_url", "", _is_base_url, "'' or a URL path such as '/visdom' (no trailing slash)", "visdom"),
    Option("username", None, lambda v: v is None or _is_name(v),
           "a non-empty string, or None to read VISDOM_USERNAME (a Visdom server with a login)", "visdom"),
    Option("password", None, lambda v: v is None or (isinstance(v, str) and bool(v)),
           "a non-empty string, or None to read VISDOM_PASSWORD (never written to a config, record or repr)",
           "visdom", pinned=False, secret=True),
    Option("strict", True, lambda v: isinstance(v, bool),
           "True or False (add() of an unknown key raises, or warns once)", "logger"),
    Option("distributed", None, lambda v: v is None or isinstance(v, bool),
           "True, False, or None to decide from torch.distributed", "logger", pinned=False),
    Option("mode", "by_metric", lambda v: isinstance(v, str) and v in MODEL_LOGGER_MODES,
           "'by_metric' (a window per group statistic) or 'by_layer' (a window per layer)", "model_logger",
           choices=MODEL_LOGGER_MODES),
    Option("hold", 100, lambda v: _is_int(v, 0),
           "an int >= 0 (the most logged steps held back until the logger's own windows are drawn)", "model_logger"),
)


class VisdomOptions(TypedDict, total=False):
    """The Visdom sender's options (``owner='visdom'`` in :data:`OPTIONS`), typed for ``**options``."""

    max_points: int
    min_interval: float
    timeout: float
    close_timeout: float
    save_every: float
    base_url: str
    username: str | None
    password: str | None


class RunOptions(VisdomOptions, total=False):
    """A run's options (``owner='run'``) and its Visdom sender's, typed for ``**options``."""

    env: str
    uid: str | None
    server: str | None
    port: int
    log_dir: str | Path | None
    disabled: bool | None
    max_steps: int | None


BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
SECRET: frozenset[str] = frozenset(o.name for o in OPTIONS if o.secret)
LOGGER_OWNERS: tuple[str, ...] = ("run", "visdom", "logger")
"""Whose options a FlexLogger (and its config file) takes."""
GIVEN_RUN: frozenset[str] = frozenset({"max_steps"})
"""The run options a logger given ``run=`` still takes (from a keyword or a config): it sets them on that run."""


def names(*owners: str) -> list[str]:
    """The option names of ``owners`` (all when none is given), in declaration order."""
    return [o.name for o in OPTIONS if not owners or o.owner in owners]


def defaults(*owners: str) -> dict[str, Any]:
    """``{name: default}`` of ``owners``' options, as they stand now (``$FLEXLOGGER_SERVER``, ``$FLEXLOGGER_PORT``
    and ``$FLEXLOGGER_LOG_DIR`` when set: :func:`flexlogger.defaults.resolve`)."""
    return {o.name: resolve(o.name, o.default) for o in OPTIONS if not owners or o.owner in owners}


def check_options(given: Mapping[str, Any], caller: str, owners: Iterable[str] = LOGGER_OWNERS,
                  problems: list[str] | None = None, also: Iterable[str] = (),
                  synonyms: Mapping[str, str] | None = None) -> list[str]:
    """Check keyword options; return (and append to ``problems``) one message per problem.

    Args:
        given: the options as the user gave them.
        caller: the public function they were given to, e.g. ``'FlexLogger()'``; unknown names are reported as
            its unknown keyword arguments.
        owners: whose options ``caller`` takes.
        problems: a list to append to (a config loader collects every problem of a file).
        also: the names of ``caller``'s other keyword arguments (checked by ``caller``), listed first among the valid
            names of an unknown one.
        synonyms: names users write for a valid one (``{'metrics': 'stats'}``), suggested first.

    Example:
        >>> check_options({'enviroment': 'x'}, 'FlexLogger()')[0]
        "unknown keyword argument 'enviroment' (did you mean 'env'?); valid keyword arguments: env, uid, ..."
    """
    out = problems if problems is not None else []
    owners = tuple(owners)
    also = tuple(also)
    valid = [*also, *(n for n in names(*owners) if n not in also)]
    for key, value in given.items():
        option = BY_NAME.get(key) if isinstance(key, str) else None
        if option is None or option.owner not in owners:
            out.append(_unknown_keyword(key, valid, synonyms or {}))
            continue
        problem = check_option(key, value)
        if problem:
            out.append(problem)
    env = given.get("env", BY_NAME["env"].default)
    if "run" in owners and given.get("server", BY_NAME["server"].default) is not None and _is_name(env):
        try:
            check_env(env)
        except ConfigError as exc:
            out.append(f"env: {exc}")
    if "visdom" in owners and given.get("server", "") is None:
        for key in [k for k in given if k in BY_NAME and BY_NAME[k].owner == "visdom"]:
            out.append(f"{key}: a Visdom sender option, but server is None (nothing is sent to Visdom); expected "
                       "no Visdom options, or a server")
    return out


def _unknown_keyword(name: Any, valid: Sequence[str], synonyms: Mapping[str, str]) -> str:
    """``unknown keyword argument 'metrics' (did you mean 'stats'?); valid keyword arguments: ...``: the closest
    valid names, a known synonym first."""
    near = [synonyms[name]] if isinstance(name, str) and synonyms.get(name) in valid else []
    near += [n for n in (closest(name, valid) if isinstance(name, str) else []) if n not in near]
    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
    return f"unknown keyword argument {short_repr(name)}{hint}; valid keyword arguments: {', '.join(valid)}"


def check_option(name: str, value: Any) -> str | None:
    """The problem of one option's value (``'max_steps: expected a positive int ..., but got 0'``), or None.

    Raises:
        KeyError: ``name`` is not an option.
    """
    option = BY_NAME[name]
    if option.check(value):
        return None
    if option.choices:
        problem = Problem(f"{name}: {unknown_name_message(name, value, option.choices)}")
        problem.error = UnknownNameError
        return problem
    return f"{name}: expected {option.expected}, but got {'(hidden)' if option.secret else short_repr(value)}"


def raise_problems(caller: str, problems: list[str]) -> None:
    """Raise the problems found by :func:`check_options` (nothing when there are none).

    One problem is a :class:`ConfigError` naming ``caller``; several, an :class:`InvalidConfigError` listing all.
    """
    if len(problems) == 1:
        raise getattr(problems[0], "error", ConfigError)(f"{caller}: {problems[0]}")
    if problems:
        raise InvalidConfigError(caller, problems)


# ---- TooledModel() and FlightRecorder(): the model statistics' arguments ------------------------------------------
# Their constructors are decorated with :func:`checked_arguments`, which checks every keyword against the
# constructor's own (keyword-only, typed) signature and every value given against its row here, before the body
# runs, and raises from the constructor the user called. Arguments whose check depends on another argument (the
# groups a TooledModel records depend on its ``params``) or is shared with the config loader (a recorder's
# ``rules``: ``check_rules``) are checked by the constructor after these rows.

__all__ += ["KEYWORD_SYNONYMS", "MODEL_ARGUMENTS", "checked_arguments"]

_Init = TypeVar("_Init", bound=Callable[..., None])

# names from other libraries a user may reach for, and the keyword meant (difflib cannot see these)
KEYWORD_SYNONYMS: dict[str, str] = {"metrics": "stats", "metric": "stats", "statistics": "stats",
                                    "modules": "layers", "module": "layers", "hist": "histograms",
                                    "histogram": "histograms", "nbins": "bins", "num_bins": "bins",
                                    "interval": "every", "log_every": "every", "log_freq": "every"}


def _is_a(v: Any, class_name: str) -> bool:
    """``isinstance`` by class name, for classes of the model package, which sits above this table."""
    return any(c.__name__ == class_name for c in type(v).__mro__)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _are_callables(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(callable(f) for f in v)


MODEL_ARGUMENTS: dict[str, tuple[Option, ...]] = {
    "TooledModel()": (
        Option("model", None, lambda v: isinstance(v, nn.Module), "a torch.nn.Module", "tooled"),
        Option("every", 1, lambda v: _is_int(v, 1), "an int >= 1", "tooled"),
        Option("bins", 30, lambda v: _is_int(v, 1), "an int >= 1", "tooled"),
        Option("anomaly", True, _is_bool, "True or False", "tooled"),
        Option("explode", 1e3, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 1,
               "a number > 1", "tooled"),
        Option("recorder", None, lambda v: v is None or _is_a(v, "FlightRecorder"), "a FlightRecorder", "tooled"),
        Option("sync", False, _is_bool, "True or False", "tooled"),
    ),
    "FlightRecorder()": (
        Option("window", 64, lambda v: _is_int(v, 2), "an int >= 2", "recorder"),
        Option("after", 20, lambda v: _is_int(v, 0), "an int >= 0", "recorder"),
        Option("check_every", 1, lambda v: _is_int(v, 1), "an int >= 1", "recorder"),
        Option("on_trigger", None, lambda v: v is None or callable(v), "a callable (event) -> None", "recorder"),
        Option("listeners", (), _are_callables, "a list of callables (event) -> None", "recorder"),
        Option("min_history", 16, lambda v: _is_int(v, 2), "an int >= 2", "recorder"),
        Option("sync", False, _is_bool, "True or False", "recorder"),
        Option("warn", True, _is_bool, "True or False", "recorder"),
        Option("update_ratio", True, _is_bool, "True or False", "recorder"),
    ),
}


def _shown(value: Any) -> str:
    """A bad value as an error shows it: its repr, and its type when the repr does not make it plain."""
    text = short_repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return text
    return f"{text} ({type(value).__name__})"


def checked_arguments(caller: str) -> Callable[[_Init], _Init]:
    """Decorate a constructor to check its arguments through :data:`MODEL_ARGUMENTS` ``[caller]``.

    An unknown keyword raises :class:`ConfigError` naming ``caller``, the bad name and the closest valid ones
    (instead of a bare TypeError); a value its row refuses raises ``ConfigError('TooledModel(): expected `every`
    to be an int >= 1, but got 0')``. The decorated constructor keeps its signature for type checkers and IDEs.
    Every row must name a parameter of the constructor (checked when the class is defined).
    """
    rows = {o.name: o for o in MODEL_ARGUMENTS[caller]}

    def decorate(init: _Init) -> _Init:
        signature = inspect.signature(init)
        valid = [n for n, p in signature.parameters.items() if n != "self"
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        stray = set(rows) - set(valid)
        if stray:  # a mistake in this table, found at import
            raise TypeError(f"{caller}: MODEL_ARGUMENTS rows {sorted(stray)} name no parameter of {init.__qualname__}")

        @functools.wraps(init)
        def checked(*args: Any, **kwargs: Any) -> None:
            for name in kwargs:
                if name not in valid:
                    raise ConfigError(f"{caller}: {_unknown_keyword(name, valid, KEYWORD_SYNONYMS)}")
            for name, value in signature.bind(*args, **kwargs).arguments.items():
                row = rows.get(name)
                if row is not None and not row.check(value):
                    raise ConfigError(f"{caller}: expected `{name}` to be {row.expected}, but got {_shown(value)}")
            init(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
