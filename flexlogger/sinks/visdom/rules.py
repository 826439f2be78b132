"""Visdom's naming rules: what the Visdom client and server accept as an env name and as plot options.

A leaf module (it imports only :mod:`flexlogger.errors` and Visdom's client), so that the option table
(:mod:`flexlogger.config.options`) and the plot specs (:mod:`flexlogger.config.specs`) check names and options
when a logger is built, with the same rules the sink applies when it draws, without importing the sink.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import visdom

from flexlogger.errors import ConfigError

_BAD_ENV = re.compile(r"[/\\<>&'\"\x00-\x1f\x7f]")


def check_env(env: str) -> None:
    """Raise :class:`ConfigError` for an env name Visdom rewrites (``/``, ``\\``, line breaks) or cannot show (its
    page puts env names in a script, HTML-escaped: ``<``, ``>``, ``&``, quotes)."""
    bad = sorted(set(_BAD_ENV.findall(env)))
    if bad:
        raise ConfigError(f"expected `env` to be a Visdom env name without {', '.join(map(repr, bad))} (Visdom "
                          f"rewrites / and \\ and line breaks, and cannot show < > & or quotes in its env list), "
                          f"but got {env!r}")


def check_opts(where: str, opts: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` when Visdom's client rejects ``opts`` whatever the data (e.g. a negative
    ``markersize``), or they are not JSON: found when the plot is defined rather than by the sender thread.

    Checks that depend on the data (e.g. ``rownames`` as long as the matrix) are left to drawing.
    """
    try:
        json.dumps(dict(opts), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected Visdom options that are JSON (str, numbers, lists, dicts), but got "
                          f"{dict(opts)!r}: {exc}") from None
    try:
        checked = dict(opts)
        with quiet_visdom():  # the checks every drawing function of Visdom's client makes
            visdom._title2str(checked)  # type: ignore[attr-defined]
            visdom._assert_opts(checked)  # type: ignore[attr-defined]
    except AssertionError as exc:
        raise ConfigError(f"{where}: Visdom's client rejects {dict(opts)!r}: {exc}") from None
    numbins = opts.get("numbins")
    if numbins is not None and (not isinstance(numbins, int) or isinstance(numbins, bool) or numbins < 2):
        raise ConfigError(f"{where}.numbins: expected an int >= 2 (Visdom cannot draw one bin), but got {numbins!r}")


@contextlib.contextmanager
def quiet_visdom() -> Iterator[None]:
    """Visdom's client logs set-up chatter and errors meant for interactive use: keep them down to errors."""
    log = logging.getLogger("visdom")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
