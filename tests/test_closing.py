"""``flexlogger.closing``: calling each of several things (every one called, the first error raised) and the
at-exit closer's fixed order of stages."""

from __future__ import annotations

import pytest

from flexlogger import closing
from flexlogger.closing import RECORDS, RUNS, SENDERS, SERVERS, call_each, close_at_exit, close_each, on_exit


def test_call_each_calls_every_one_in_order_and_raises_the_first_error() -> None:
    called: list[int] = []

    def call(n: int) -> None:
        called.append(n)
        if n in (2, 4):
            raise ValueError(f"failed {n}")

    with pytest.raises(ValueError, match=r"^failed 2$"):
        call_each(range(6), call)
    assert called == [0, 1, 2, 3, 4, 5]


def test_call_each_works_on_a_copy_so_a_call_may_remove_its_thing() -> None:
    things = {1, 2, 3}
    call_each(things, things.discard)
    assert things == set()


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


def test_close_each_swallows_every_error() -> None:
    closed: list[str] = []

    def close(name: str) -> None:
        closed.append(name)
        raise OSError(name)

    close_each(["a", "b"], close)
    assert closed == ["a", "b"]


def test_the_exit_closer_runs_the_stages_in_order_whatever_order_they_were_registered_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(closing, "_closers", {})  # this process's own closers run at its real exit
    ran: list[str] = []

    def failing() -> None:
        ran.append("senders")
        raise RuntimeError("a sender that fails at exit")

    on_exit(SERVERS, lambda: ran.append("servers"))
    on_exit(RECORDS, lambda: ran.append("records"))
    on_exit(SENDERS, failing)
    on_exit(RUNS, lambda: ran.append("runs"))
    close_at_exit()
    assert ran == ["runs", "senders", "records", "servers"]


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^on_exit\(\): expected `stage` to be one of \(1, 2, 3, 4\), but got 7$"):
        on_exit(7, lambda: None)
