"""A password given to a run is not kept once the connection has what it needs."""

from __future__ import annotations

from pathlib import Path

from flexlogger import Run
from flexlogger.tools.server import find_free_port


def held(obj: object, secret: str) -> bool:
    return any(secret in repr(value) for value in vars(obj).values())


def test_a_disabled_runs_password_is_dropped_at_close(tmp_path: Path) -> None:
    secret = "s3cret-never-kept"
    run = Run(env="e", uid="u", log_dir=None, username="me", password=secret, disabled=True)
    assert held(run, secret)  # kept until enable() opens the sink with it
    run.close()
    assert not held(run, secret)


def test_an_opened_runs_password_is_only_in_the_transport(tmp_path: Path) -> None:
    secret = "s3cret-not-at-the-server"
    run = Run(env="e", uid="u", log_dir=None, port=find_free_port(), username="me", password=secret)
    try:  # the server is down: the run opens anyway, and its sink holds the login only as a digest
        assert not held(run, secret)
    finally:
        run.close()
