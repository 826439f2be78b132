"""Start, stop and restart a local Visdom server in a subprocess.

Visdom's own entry point (``python -m visdom.server``) downloads its JavaScript from CDNs before it starts
and fails without them, so the server is launched through ``visdom.server.run_server.main``, which skips
the downloads (see :mod:`flexlogger.assets` for installing the web assets offline).

Example:
    >>> from flexlogger.server import start_server
    >>> with start_server(env_path="/tmp/visdom") as srv:   # doctest: +SKIP
    ...     print(srv.url, srv.port)
    http://localhost 41873
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

from .errors import FlexLoggerError

__all__ = ["VisdomServer", "VisdomServerError", "delete_env", "ensure_server", "find_free_port", "is_serving",
           "start_server"]

DEFAULT_ENV_PATH = Path.home() / ".visdom"
_LAUNCH = "from visdom.server.run_server import main; main()"
_POLL_INTERVAL = 0.1
_LOG_TAIL_CHARS = 3000


class VisdomServerError(FlexLoggerError, RuntimeError):
    """The Visdom server could not be started, or died."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_serving(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Return True when something answers HTTP on ``host:port``."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:  # it answered, with an error status
        return exc.code < 500
    except (OSError, ValueError):
        return False


def _post(host: str, port: int, endpoint: str, message: dict[str, object], timeout: float) -> bytes:
    request = urllib.request.Request(f"http://{host}:{port}/{endpoint}", data=json.dumps(message).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def delete_env(port: int, env: str, host: str = "127.0.0.1", timeout: float = 10.0) -> bool:
    """Delete the env ``env`` (its windows and its saved file) on the Visdom server at ``host:port``.

    Returns:
        True when the env existed and was deleted, False when there was no such env.

    Raises:
        VisdomServerError: no server answered, or it refused the request.
    """
    try:
        if env not in json.loads(_post(host, port, "env_state", {}, timeout)):
            return False
        # Visdom 0.2.4 fails to delete an env it has not saved yet (it removes the file unchecked): save it first.
        _post(host, port, "save", {"data": [env]}, timeout)
        _post(host, port, "delete_env", {"eid": env}, timeout)
        return True
    except (OSError, ValueError) as exc:
        raise VisdomServerError(f"could not delete env {env!r} on the Visdom server at {host}:{port}: {exc}. "
                                f"Is a server running there? Start one with `flexlogger serve --port {port}`.") from exc


class VisdomServer:
    """A Visdom server running in a child process.

    Use :func:`start_server` to create one. The server is stopped by :meth:`stop` or at the end of a
    ``with`` block; :meth:`restart` starts it again on the same port and ``env_path``.

    Attributes:
        port: the TCP port it listens on.
        url: the server address as the Visdom client takes it (``"http://localhost"``).
        env_path: the folder where Visdom saves its envs.
        public: whether it listens on all interfaces (otherwise localhost only).
        log_path: the file that receives the server's stdout and stderr.
        process: the running child process (``None`` once stopped).
    """

    url = "http://localhost"

    def __init__(self, port: int, env_path: Path, public: bool, log_path: Path, logging_level: str) -> None:
        self.port = port
        self.env_path = env_path
        self.public = public
        self.log_path = log_path
        self.logging_level = logging_level
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The full address to open in a browser, e.g. ``http://localhost:8097``."""
        return f"{self.url}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child's process id, or None when it is not running."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """Return True while the child process is alive."""
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The command line that launches the server."""
        cmd = [sys.executable, "-c", _LAUNCH, "-port", str(self.port), "-env_path", str(self.env_path),
               "-logging_level", self.logging_level]
        if not self.public:
            cmd.append("-bind_local")
        return cmd

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """Return the last ``chars`` characters the server wrote to its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def _launch(self, timeout: float) -> None:
        """Start the child process and wait until it answers HTTP."""
        if self.running():
            raise VisdomServerError(f"Visdom server on port {self.port} is already running (pid {self.pid}).")
        if is_serving(self.port):
            raise VisdomServerError(
                f"Port {self.port} is already in use by another server; pick another port or leave `port=None` "
                "to get a free one.")
        self.env_path.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # Ctrl-C in a terminal reaches us, and we stop the child cleanly
        try:
            self._wait_until_serving(self.process, timeout)
        except BaseException:  # also Ctrl-C while waiting: never leave the child behind
            self.stop()
            raise

    def _wait_until_serving(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = process.poll()
            if code is not None:
                raise VisdomServerError(
                    f"Visdom server on port {self.port} exited with code {code} before answering. "
                    f"Its log ({self.log_path}) ends with:\n{self.log_tail()}")
            if is_serving(self.port, timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise VisdomServerError(
                    f"Visdom server on port {self.port} did not answer within {timeout:g} s. "
                    f"Its log ({self.log_path}) ends with:\n{self.log_tail()}")
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it is still alive after ``timeout`` seconds.

        Does nothing when it is not running.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop the server and start it again on the same port and ``env_path``."""
        self.stop()
        self._launch(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running() else "stopped"
        return f"VisdomServer({self.address}, env_path={str(self.env_path)!r}, {state})"


def start_server(port: int | None = None, env_path: str | Path | None = None, public: bool = False,
                 timeout: float = 30.0, log_path: str | Path | None = None,
                 logging_level: str = "WARNING") -> VisdomServer:
    """Start a Visdom server in a child process and wait until it answers HTTP.

    Args:
        port: the port to listen on; ``None`` picks a free one.
        env_path: where Visdom saves envs; ``None`` uses Visdom's default ``~/.visdom``.
        public: listen on all interfaces instead of localhost only.
        timeout: seconds to wait for the server to answer.
        log_path: file receiving the server's output; ``None`` uses a new temporary file.
        logging_level: the server's logging level (``"INFO"`` logs every request).

    Returns:
        The running server; stop it with ``.stop()`` or use it in a ``with`` block.

    Raises:
        VisdomServerError: the port is taken, or the server exited or did not answer within ``timeout``
            (the message ends with the tail of its log).
        ValueError: ``port`` or ``timeout`` is out of range.
    """
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"Expected `port` to be an integer in 1..65535 or None, but got {port!r}.")
    if timeout <= 0:
        raise ValueError(f"Expected `timeout` to be a positive number of seconds, but got {timeout!r}.")
    env_dir = Path(env_path).expanduser().resolve() if env_path is not None else DEFAULT_ENV_PATH
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="flexlogger-visdom-", suffix=".log")
        os.close(fd)
        log_path = name
    attempts = 3 if port is None else 1  # a free port can be taken between picking and binding it
    for attempt in range(attempts):
        server = VisdomServer(port if port is not None else find_free_port(), env_dir, public, Path(log_path),
                              logging_level)
        try:
            server._launch(timeout)
            return server
        except VisdomServerError:
            if attempt == attempts - 1 or "Address already in use" not in server.log_tail():
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_server(port: int = 8097, state_dir: str | Path = ".visdom", install_assets: bool = True,
                  timeout: float = 30.0) -> VisdomServer | None:
    """Reuse the server answering on ``port``, or start one that keeps running after this process exits.

    Used by the demo and the examples: a started server saves envs in ``state_dir/env``, logs to
    ``state_dir/server.log`` and writes its pid to ``state_dir/server.pid`` (``make stop`` reads it).

    Args:
        port: the port to find or start the server on.
        state_dir: folder for the env path, log and pid file of a started server.
        install_assets: install Visdom's web assets from npm first when missing (a failure is a warning:
            the server still accepts plots).
        timeout: seconds to wait for a started server to answer.

    Returns:
        The started server (not stopped when it is garbage-collected or this process exits), or ``None``
        when a server already answered on ``port``.
    """
    if is_serving(port):
        return None
    if install_assets:
        import warnings

        from .assets import AssetError, ensure_assets

        try:
            ensure_assets()
        except AssetError as exc:
            warnings.warn(f"{exc} The Visdom page will be blank.", RuntimeWarning, stacklevel=2)
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    server = start_server(port=port, env_path=state / "env", log_path=state / "server.log", timeout=timeout)
    (state / "server.pid").write_text(f"{server.pid}\n")
    return server
