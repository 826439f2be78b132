"""close() honours close_timeout, also against a server that accepts connections and never answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from flexlogger.sinks.base import Update
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.sinks.visdom.transport import QUICK_CHECK_S


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections, reads what comes and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_close_returns_within_close_timeout_against_a_silent_server(silent_port: int) -> None:
    sink = VisdomSink(port=silent_port, env="silent", timeout=30.0, close_timeout=1.5)
    sink.write(Update("loss", "line", 0, {"train": 1.0}, {}, 1))
    time.sleep(0.3)  # the sender's request is in flight, and will wait 30 s for an answer
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"1 point\(s\) could not be delivered"):
        sink.close()
    assert time.monotonic() - start < 1.5 + 1.0


@pytest.mark.parametrize("login", [{}, {"username": "me", "password": "pw"}])
def test_the_constructor_waits_about_a_second_for_a_silent_server(silent_port: int, login: dict[str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_USERNAME", raising=False)
    monkeypatch.delenv("VISDOM_PASSWORD", raising=False)
    start = time.monotonic()
    sink = VisdomSink(port=silent_port, env="silent", timeout=30.0, close_timeout=0.5, **login)
    assert time.monotonic() - start < QUICK_CHECK_S + 0.5  # not the 5 s it used to block
    sink.close()
