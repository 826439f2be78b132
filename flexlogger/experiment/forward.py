"""How the record calls are reached: ``run.log_text(...)`` (the documented path), and ``Stat.log_text(...)`` on a
logger, a convenience for users of lavd, who hold one object.

The calls are methods of :class:`~flexlogger.experiment.calls.RecordCalls`, an object the run owns. A class shows
them with one :class:`RecordCall` per name; the delegation is written once, here, and keeps each call's signature
and docstring for IDEs and mypy::

    class Run:
        log_text = RecordCall(RecordCalls.log_text, via=attrgetter("calls"))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from flexlogger.experiment.calls import RecordCalls

P = ParamSpec("P")
R = TypeVar("R")

RECORD_CALLS: tuple[str, ...] = ("log_hparams", "log_text", "log_markdown", "log_image", "log_command", "log_summary",
                                 "println", "eprintln", "print_table", "progress", "save_model", "save_obj",
                                 "file_path")
"""The record calls a :class:`~flexlogger.core.run.Run` and its loggers show."""


class RecordCall(Generic[P, R]):
    """A record call shown on another class: ``obj.<name>(...)`` is ``via(obj).<name>(...)``.

    Args:
        method: the call, as ``RecordCalls.<name>`` (its signature and docstring are shown).
        via: the record calls of an instance (``attrgetter('calls')`` on a run, ``attrgetter('run.calls')`` on a
            logger).
    """

    def __init__(self, method: Callable[Concatenate[RecordCalls, P], R], via: Callable[[Any], RecordCalls]) -> None:
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
