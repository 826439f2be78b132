"""Defaults every entry point shares, defined once: the Visdom server and port, the run folder's root.

The environment overrides them: ``FLEXLOGGER_SERVER``, ``FLEXLOGGER_PORT`` and ``FLEXLOGGER_LOG_DIR`` (with
``VISDOM_USERNAME`` and ``VISDOM_PASSWORD`` for a server with a login), read when a run or a command starts, never at
import, so that a script nobody edits can be pointed at a team server::

    FLEXLOGGER_SERVER=http://vis.lab FLEXLOGGER_PORT=8100 python train.py

The constants below are markers as well as values: a keyword left at ``DEFAULT_SERVER`` means "the default", which
:func:`resolve` turns into the environment's value when it is set; a value the user passes is kept as given.
"""

from __future__ import annotations

import os
import re
from typing import Any

from flexlogger.errors import ConfigError

SERVER_VAR, PORT_VAR, LOG_DIR_VAR = "FLEXLOGGER_SERVER", "FLEXLOGGER_PORT", "FLEXLOGGER_LOG_DIR"


class _Str(str):
    """A default string: equal to its value, but a distinct object, so ``value is DEFAULT_SERVER`` tells a keyword
    left at its default from the same text passed by the user."""

    __slots__ = ()


class _Int(int):
    """A default int (see :class:`_Str`)."""

    __slots__ = ()


DEFAULT_SERVER: str = _Str("http://localhost")
"""The Visdom server's address (scheme and host, without the port); ``FLEXLOGGER_SERVER`` overrides it."""

DEFAULT_PORT: int = _Int(8097)
"""Visdom's own default port; ``FLEXLOGGER_PORT`` overrides it."""

DEFAULT_LOG_DIR: str = _Str("runs")
"""The root of run folders: a run writes ``<log_dir>/<env>/<uid>``; ``FLEXLOGGER_LOG_DIR`` overrides it."""

DEFAULT_ENV = "main"
"""Visdom's default env."""


def _read(var: str) -> str | None:
    value = os.environ.get(var)
    return None if value is None or value.strip() == "" else value.strip()


def server() -> str:
    """The default Visdom server: ``$FLEXLOGGER_SERVER`` when set, else ``http://localhost``.

    Raises:
        ConfigError: the variable is not a URL with its scheme.
    """
    value = _read(SERVER_VAR)
    if value is None:
        return str.__str__(DEFAULT_SERVER)
    if re.match(r"https?://[^/:\s]+/?$", value) is None:
        raise ConfigError(f"environment variable {SERVER_VAR}: expected a URL with its scheme and without the port, "
                          f"such as 'http://vis.lab' (the port goes in {PORT_VAR}), but got {value!r}")
    return value.rstrip("/")


def port() -> int:
    """The default Visdom port: ``$FLEXLOGGER_PORT`` when set, else 8097.

    Raises:
        ConfigError: the variable is not an int from 1 to 65535.
    """
    value = _read(PORT_VAR)
    if value is None:
        return int(DEFAULT_PORT)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"environment variable {PORT_VAR}: expected an int from 1 to 65535, but got {value!r}")
    return int(value)


def log_dir() -> str:
    """The default root of run folders: ``$FLEXLOGGER_LOG_DIR`` when set, else ``runs``.

    Raises:
        ConfigError: the variable holds a NUL character (no folder can have that name).
    """
    value = _read(LOG_DIR_VAR)
    if value is None:
        return str.__str__(DEFAULT_LOG_DIR)
    if "\x00" in value:
        raise ConfigError(f"environment variable {LOG_DIR_VAR}: expected a folder name, but got {value!r}")
    return value


def resolve(name: str, value: Any) -> Any:
    """``value``, or the current default of option ``name`` (``server``, ``port`` or ``log_dir``) when ``value`` is
    that option's marker constant (a keyword left at its default). Any other value, ``None`` included, is kept.

    Example:
        >>> os.environ['FLEXLOGGER_PORT'] = '8100'
        >>> resolve('port', DEFAULT_PORT), resolve('port', 8097)
        (8100, 8097)
    """
    marker, current = _RESOLVED.get(name, (None, None))
    return current() if current is not None and value is marker else value


_RESOLVED: dict[str, tuple[Any, Any]] = {"server": (DEFAULT_SERVER, server), "port": (DEFAULT_PORT, port),
                                         "log_dir": (DEFAULT_LOG_DIR, log_dir)}
