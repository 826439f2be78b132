"""``flexlogger.closing``: ``call_each`` (every call made, the first error raised) and ``close_each`` (errors
swallowed, for interpreter exit)."""

from __future__ import annotations

import pytest

from flexlogger.closing import call_each, close_each


def test_call_each_calls_in_order() -> None:
    seen: list[int] = []
    call_each([3, 1, 2], seen.append)
    assert seen == [3, 1, 2]


def test_call_each_calls_every_thing_and_raises_the_first_error() -> None:
    seen: list[str] = []

    def call(name: str) -> None:
        seen.append(name)
        if name == "a":
            raise KeyError(name)
        if name == "c":
            raise ValueError(name)

    with pytest.raises(KeyError, match="'a'"):
        call_each(["a", "b", "c", "d"], call)
    assert seen == ["a", "b", "c", "d"]


def test_call_each_nested_reaches_every_pair_and_raises_the_first_error() -> None:
    """The shape of ``Run`` writing updates to sinks: every sink gets every update, the first error last."""
    seen: list[tuple[int, str]] = []

    def write(update: int, sink: str) -> None:
        seen.append((update, sink))
        if sink == "dead":
            raise ConnectionError(f"update {update}")

    with pytest.raises(ConnectionError, match=r"^update 1$"):
        call_each([1, 2], lambda update: call_each(["dead", "record"], lambda sink: write(update, sink)))
    assert seen == [(1, "dead"), (1, "record"), (2, "dead"), (2, "record")]


def test_call_each_of_nothing_does_nothing() -> None:
    call_each([], lambda thing: 1 / 0)


def test_close_each_swallows_errors_and_closes_every_thing() -> None:
    things = {1, 2, 3}

    def close(thing: int) -> None:
        things.discard(thing)  # closing removes the thing from the set it iterates (a copy)
        raise OSError(thing)

    close_each(things, close)
    assert things == set()
