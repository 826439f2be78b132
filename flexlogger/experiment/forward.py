"""How the record calls are reached: ``run.log_text(...)`` (the documented path), and ``Stat.log_text(...)`` on a
logger, a convenience for users of lavd, who hold one object.

The calls are methods of :class:`~flexlogger.experiment.calls.RecordCalls`, an object the run owns, and of its
:class:`~flexlogger.experiment.console.RunConsole` (the printing calls). :class:`ShowsRecordCalls` shows them with
one :class:`RecordCall` per name, which keeps each call's signature and docstring for IDEs and mypy; the run and its
loggers say where their record calls are::

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


class RecordCall(Generic[P, R]):
    """A record call shown on another class: ``obj.<name>(...)`` is ``obj._record_calls().<name>(...)``, or
    ``obj._record_calls().console.<name>(...)`` for a printing call.

    Args:
        method: the call, as ``RecordCalls.<name>`` or ``RunConsole.<name>`` (its signature and docstring are
            shown).
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R]) -> None:
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__
        self.__wrapped__ = method  # inspect.signature and help() show the call's own signature
        self.on_console = getattr(RunConsole, method.__name__, None) is method

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> RecordCall[P, R]: ...

    @overload
    def __get__(self, obj: ShowsRecordCalls, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, obj: ShowsRecordCalls | None, owner: type | None = None) -> RecordCall[P, R] | Callable[P, R]:
        if obj is None:
            return self
        calls = obj._record_calls()
        bound: Callable[P, R] = getattr(calls.console if self.on_console else calls, self.__name__)
        return bound


class ShowsRecordCalls:
    """Shows every record call (:data:`RECORD_CALLS`) as a method, with the call's own signature and docstring."""

    __slots__ = ()

    def _record_calls(self) -> RecordCalls:
        """The record calls the methods go to (a run's own, or its run's for a logger)."""
        raise NotImplementedError

    log_hparams = RecordCall(RecordCalls.log_hparams)
    log_text = RecordCall(RecordCalls.log_text)
    log_markdown = RecordCall(RecordCalls.log_markdown)
    log_image = RecordCall(RecordCalls.log_image)
    log_command = RecordCall(RecordCalls.log_command)
    log_summary = RecordCall(RecordCalls.log_summary)
    println = RecordCall(RunConsole.println)
    eprintln = RecordCall(RunConsole.eprintln)
    print_table = RecordCall(RunConsole.print_table)
    progress = RecordCall(RunConsole.progress)
    save_model = RecordCall(RecordCalls.save_model)
    save_obj = RecordCall(RecordCalls.save_obj)
    file_path = RecordCall(RecordCalls.file_path)


RECORD_CALLS: tuple[str, ...] = tuple(name for name, value in vars(ShowsRecordCalls).items()
                                      if isinstance(value, RecordCall))
"""The record calls a :class:`~flexlogger.core.run.Run` and its loggers show."""
