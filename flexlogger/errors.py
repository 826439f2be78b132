"""Exceptions raised by flexlogger.

Every error subclasses :class:`FlexLoggerError` and the built-in exception a user would expect, so
``except KeyError`` keeps working for an unknown key and ``except ValueError`` for a bad config.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class FlexLoggerError(Exception):
    """Base class of every error raised by flexlogger."""


class ConfigError(FlexLoggerError, ValueError):
    """A plot, meter or config definition is invalid."""


class InvalidConfigError(ConfigError):
    """A config file, config dict or preset composition has problems: ``problems`` lists every one, each with its
    path in the config (``meters.train_loss.type: unknown meter type ...``); ``source`` names the file or dict."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, list(problems)
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = head + self.problems[0]
        else:
            message = f"{head}{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:
        return type(self), (self.source, self.problems)


class _UnquotedKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownNameError(ConfigError, _UnquotedKeyError):
    """A meter type, plot type, preset or key is not known; the message lists the close valid names."""


class UnknownKeyError(FlexLoggerError, _UnquotedKeyError):
    """``add()``/``log()`` got a key that names no meter or plot of the logger."""


class MeterInputError(FlexLoggerError, ValueError):
    """A meter was fed a value of the wrong type or shape."""


class ArgumentError(FlexLoggerError, ValueError):
    """A call got an argument value it cannot use (``log(step=nan)``); the message names the call, the argument,
    what was expected and what it got."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A call got an argument of a type it cannot use (``log(keys=5)``)."""


class LoggerClosedError(FlexLoggerError, RuntimeError):
    """A logging call on a logger that was closed (``close()``, or the end of its ``with`` block)."""


class RunFolderError(FlexLoggerError, OSError):
    """A run's record folder cannot be made (``log_dir`` is a file, read-only, on a full disk): the message names
    the call, the folder and why."""


class DeliveryError(FlexLoggerError, RuntimeError):
    """Points could not be delivered: the background sender died, or a flush timed out."""


class ModelAnomalyWarning(RuntimeWarning):
    """A model went wrong while training: a NaN/Inf value or an exploding L2 norm (``TooledModel``), or a
    flight-recorder rule fired (``FlightRecorder``). A warning, not an error: training goes on unless the user
    turns warnings into errors or stops it from ``on_trigger``."""


class Problem(str):
    """One problem of a definition or option, as a message that remembers the error class it came from (a config
    loader lists many; a constructor with only one raises it with its own class, e.g. :class:`UnknownNameError`)."""

    error: type[ConfigError] = ConfigError

    @classmethod
    def of(cls, exc: ConfigError, prefix: str = "") -> Problem:
        out = cls(prefix + str(exc))
        out.error = type(exc)
        return out


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` names of ``valid`` closest to ``name`` (case-insensitive)."""
    valid = list(valid)
    by_lower = {v.lower(): v for v in valid}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)
    # a name that starts or ends like a valid one: 'enviroment' -> 'env', 'acc' -> 'accuracy'
    prefix = [v for v in valid if v.lower() not in matches and (v.lower().startswith(name.lower()) or (
        len(v) >= 3 and name.lower().startswith(v.lower())))]
    return [by_lower[m] for m in matches] + prefix[: max(0, n - len(matches))]


def unknown_name_message(kind: str, name: object, valid: Iterable[str]) -> str:
    """``unknown meter type 'AverageMeter' (did you mean 'AverageValueMeter'?); valid: ...``."""
    valid = sorted(valid)
    near = closest(str(name), valid) if isinstance(name, str) else []
    hint = f" (did you mean {', '.join(repr(v) for v in near)}?)" if near else ""
    return f"unknown {kind} {name!r}{hint}; valid {kind}s: {', '.join(valid) or '(none)'}"


def short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (``...`` at the end), for error messages.

    Large containers are not rendered whole first (``reprlib`` stops early), so quoting a huge or deeply aliased
    value in a message stays cheap.

    Example:
        >>> short_repr("x" * 1000, 12)
        "'xxx...xxxx'"
    """
    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 4, limit, limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = max(4, limit // 8)
    try:
        text = shortener.repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
