"""How the record calls are reached: ``run.log_text(...)`` (the documented path), and ``Stat.log_text(...)`` on a
logger, a convenience for users of lavd, who hold one object.

The calls are methods of :class:`~flexlogger.experiment.calls.RecordCalls`, an object the run owns, and of its
:class:`~flexlogger.experiment.console.RunConsole` (the printing calls). A class shows
them with one :class:`RecordCall` per name; the delegation is written once, here, and keeps each call's signature
and docstring for IDEs and mypy. :class:`ShowsRecordCalls` lists them once for the run and its loggers, which
say where their record calls are::

    class Run(ShowsRecordCalls):
        def _record_calls(self) -> RecordCalls:
            return self.calls
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from flexlogger.experiment.calls import RecordCalls
from flexlogger.experiment.console import RunConsole

P = ParamSpec("P")
R = TypeVar("R")

RECORD_CALLS: tuple[str, ...] = ("log_hparams", "log_text", "log_markdown", "log_image", "log_command", "log_summary",
                                 "println", "eprintln", "print_table", "progress", "save_model", "save_obj",
                                 "file_path")
"""The record calls a :class:`~flexlogger.core.run.Run` and its loggers show."""


class RecordCall(Generic[P, R]):
    """A record call shown on another class: ``obj.<name>(...)`` is ``via(obj).<name>(...)``.

    Args:
        method: the call, as ``RecordCalls.<name>`` or ``RunConsole.<name>`` (its signature and docstring are
            shown).
        via: the object whose method it is, for an instance (its record calls, or their console).
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R], via: Callable[[Any], Any]) -> None:
        self.method = method
        self.via = via
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__
        self.__wrapped__ = method  # inspect.signature and help() show the call's own signature

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> RecordCall[P, R]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> RecordCall[P, R] | Callable[P, R]:
        if obj is None:
            return self
        bound: Callable[P, R] = getattr(self.via(obj), self.__name__)
        return bound


def _record_calls_of(obj: ShowsRecordCalls) -> RecordCalls:
    return obj._record_calls()


def _console_of(obj: ShowsRecordCalls) -> RunConsole:
    return obj._record_calls().console


class ShowsRecordCalls:
    """Shows every record call (:data:`RECORD_CALLS`) as a method: ``obj.log_text(...)`` is
    ``obj._record_calls().log_text(...)``, with the call's own signature and docstring."""

    __slots__ = ()

    def _record_calls(self) -> RecordCalls:
        """The record calls the methods go to (a run's own, or its run's for a logger)."""
        raise NotImplementedError

    log_hparams = RecordCall(RecordCalls.log_hparams, _record_calls_of)
    log_text = RecordCall(RecordCalls.log_text, _record_calls_of)
    log_markdown = RecordCall(RecordCalls.log_markdown, _record_calls_of)
    log_image = RecordCall(RecordCalls.log_image, _record_calls_of)
    log_command = RecordCall(RecordCalls.log_command, _record_calls_of)
    log_summary = RecordCall(RecordCalls.log_summary, _record_calls_of)
    println = RecordCall(RunConsole.println, _console_of)
    eprintln = RecordCall(RunConsole.eprintln, _console_of)
    print_table = RecordCall(RunConsole.print_table, _console_of)
    progress = RecordCall(RunConsole.progress, _console_of)
    save_model = RecordCall(RecordCalls.save_model, _record_calls_of)
    save_obj = RecordCall(RecordCalls.save_obj, _record_calls_of)
    file_path = RecordCall(RecordCalls.file_path, _record_calls_of)
