"""Shared fixtures: one real Visdom server for the session, a client to read windows back, unique envs."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import visdom

from flexlogger.tools.server import VisdomServer, start_server

THREAD_PREFIX = "flexlogger"
THREAD_GRACE_S = 2.0


@pytest.fixture(scope="session")
def visdom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisdomServer]:
    """A real Visdom server on a free localhost port, saving envs in a temporary folder."""
    root = tmp_path_factory.mktemp("visdom")
    server = start_server(env_path=root / "env", log_path=root / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def viz(visdom_server: VisdomServer) -> visdom.Visdom:
    """A Visdom client on the session server, for reading windows back with ``get_window_data``."""
    return visdom.Visdom(server=visdom_server.url, port=visdom_server.port, raise_exceptions=True,
                         use_incoming_socket=False)


def env_name(nodeid: str) -> str:
    """A Visdom env name unique to a test, from its pytest node id."""
    path, _, name = nodeid.partition("::")
    name = f"{Path(path).stem}__{name}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


@pytest.fixture
def env(request: pytest.FixtureRequest) -> str:
    """A Visdom env name unique to this test (module, test name and parameters)."""
    return env_name(request.node.nodeid)


def _flexlogger_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves FlexLogger threads (named ``flexlogger...``) running: close your loggers."""
    before = _flexlogger_threads()
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    leaked = _flexlogger_threads() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = _flexlogger_threads() - before
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test leaked FlexLogger threads still alive after it ended: {names}. "
                    "Call close() or use `with FlexLogger(...)`.", pytrace=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs to fill (see tests/disk.py; needs root and mount permission: skipped otherwise)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {result.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
