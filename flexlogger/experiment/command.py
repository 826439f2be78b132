"""The command line that gives back an ``argparse.Namespace``, and the table of its options."""

from __future__ import annotations

import argparse
from typing import Any


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The arguments that make ``parser`` give back ``args``: ``parser.parse_args(command_line(parser, args))``
    equals ``args`` for store, store_true/false, store_const, append, append_const, extend, count,
    BooleanOptionalAction and sub-commands. Positionals come first, then options (``--opt=value`` for one value,
    so a value starting with ``-`` is read as a value)."""
    positionals: list[str] = []
    options: list[str] = []
    tail: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
            if chosen is None:
                chosen = next((name for name, sub in action.choices.items() if _used_by(sub, args)), None)
            if chosen is not None:
                tail = [str(chosen), *command_line(action.choices[chosen], args)]
        elif (isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.dest == argparse.SUPPRESS
              or not hasattr(args, action.dest)):
            continue
        elif action.option_strings:
            options += _option_words(action, getattr(args, action.dest))
        else:
            value = getattr(args, action.dest)
            positionals += [] if value is None else [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return [*positionals, *options, *tail]


def _used_by(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether ``args`` holds every destination of ``parser``'s own arguments (a sub-command without a dest)."""
    dests = [a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.dest != "help"]
    return bool(dests) and all(hasattr(args, d) for d in dests)


def _option_words(action: argparse.Action, value: Any) -> list[str]:
    flag = max(action.option_strings, key=len)  # the long form reads best
    if isinstance(action, argparse.BooleanOptionalAction):
        if value is None:
            return []
        positive = next(o for o in action.option_strings if not o.startswith("--no-"))
        return [positive] if value else ["--no-" + positive[2:]]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag] if value is True else []
    if isinstance(action, argparse._StoreFalseAction):
        return [flag] if value is False else []
    if isinstance(action, argparse._StoreConstAction):
        return [flag] if value == action.const and value != action.default else []
    if isinstance(action, argparse._AppendConstAction):
        default = list(action.default or [])
        added = list(value or [])[len(default):]
        return [flag] * sum(1 for v in added if v == action.const)
    if isinstance(action, argparse._CountAction):
        return [flag] * max(0, int(value or 0) - int(action.default or 0))
    if value is None:
        return []
    if isinstance(action, argparse._AppendAction):
        default = list(action.default or [])
        return [word for item in list(value)[len(default):] for word in _valued(flag, item, action.nargs)]
    if isinstance(action, argparse._ExtendAction):
        default = list(action.default or [])
        added = list(value)[len(default):]
        return [flag, *map(str, added)] if added else []
    return _valued(flag, value, action.nargs)


def _valued(flag: str, value: Any, nargs: Any) -> list[str]:
    if isinstance(value, (list, tuple)) and (nargs not in (None, "?") or nargs == 1):
        return [flag, *map(str, value)] if value else ([flag] if nargs in ("*", "?") else [])
    return [f"{flag}={value}"]


def option_rows(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[list[Any]]:
    """``[option, value, default, changed]`` for every argument of ``parser`` (sub-commands' too)."""
    rows: list[list[Any]] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if _used_by(sub, args):
                    rows += option_rows(sub, args)
            continue
        if not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        name = ", ".join(action.option_strings) or action.dest
        default = None if action.default is argparse.SUPPRESS else action.default
        rows.append([name, value, default, "yes" if value != default else ""])
    return rows
