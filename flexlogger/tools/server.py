"""Start, stop and restart a local Visdom server in a subprocess.

Visdom's own entry point (``python -m visdom.server``) downloads its JavaScript from CDNs before it starts
and fails without them, so the server is launched through ``visdom.server.run_server.main``, which skips
the downloads (see :mod:`flexlogger.tools.assets` for installing the web assets offline).

Works with visdom 0.2.4 and 0.3.x. Two differences matter here: visdom 0.3 moves to another free port when
the asked one is busy (0.2.4 fails), so the port is checked before starting and the port the server reports
is compared with the asked one; and 0.3's client asks ``env_state`` for one env's windows, so
:func:`delete_env` finds an env by its windows, not by that list.

A server started here dies with the process that started it (an ``atexit`` stop, and a watchdog in the
server that exits when its stdin pipe from the starter closes, which covers a crash or SIGKILL too), unless
it was started with ``detached=True`` (the demo's, which keeps running for the browser).

Example:
    >>> from flexlogger.tools.server import start_server
    >>> with start_server(env_path="/tmp/visdom") as srv:   # doctest: +SKIP
    ...     print(srv.url, srv.port)
    http://localhost 41873
"""

from __future__ import annotations

import errno
import http.cookiejar
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self

from flexlogger import defaults
from flexlogger.closing import SERVERS, close_each, on_exit
from flexlogger.defaults import DEFAULT_PORT
from flexlogger.errors import ConfigError, FlexLoggerError, short_repr
from flexlogger.sinks.visdom.auth import PASSWORD_VAR, USERNAME_VAR, password_digest, resolve_credentials
from flexlogger.tools.assets import AssetError, ensure_assets

__all__ = ["VisdomServer", "VisdomServerError", "check_port", "delete_env", "ensure_server", "find_free_port",
           "is_serving", "start_server"]

DEFAULT_ENV_PATH = Path.home() / ".visdom"
_PORT_LINE = "flexlogger: visdom listening on port "
# The server exits when the pipe on its stdin closes: the starter died (even by SIGKILL) or stopped it.
_LAUNCH = f"""import visdom.server.run_server as visdom_server, os, signal, sys, threading
if os.environ.pop("FLEXLOGGER_WATCH_STDIN", None):
    def _watch():
        while os.read(0, 1024):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=_watch, name="flexlogger-watch-starter", daemon=True).start()
visdom_server.main(print_func=lambda port: print({_PORT_LINE!r} + str(port), flush=True))
"""
_POLL_INTERVAL = 0.1
_LOG_TAIL_CHARS = 3000
# the servers started here and not detached: held until stopped (a dropped reference must not close the watchdog's
# pipe, which would stop the server), stopped at exit
_ATTACHED: set[VisdomServer] = set()


class VisdomServerError(FlexLoggerError, RuntimeError):
    """The Visdom server could not be started, or died, or refused a request."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_serving(port: int, host: str = "127.0.0.1", timeout: float = 1.0, path: str = "/") -> bool:
    """Return True when something answers HTTP on ``host:port`` (at ``path``)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:  # it answered, with an error status
        return exc.code < 500
    except (OSError, ValueError):
        return False


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (Linux ``/proc/net/tcp*``; empty elsewhere)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile (the listing's own fd, for one)
        return ""


def _port_holder(port: int) -> str:
    """Who listens on ``port``: ``pid 123 (python -m ...)`` where /proc tells, else ``another process``."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders = []
    if wanted:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if any(_readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                    args = " ".join((proc / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
                    holders.append(f"pid {proc.name} ({args[:100]}{'...' if len(args) > 100 else ''})")
            except OSError:  # gone, or another user's
                continue
    who = ", ".join(holders) or "another process"
    if is_serving(port):
        who += f", which answers HTTP at http://localhost:{port}"
    return who


def _port_is_free(port: int, public: bool) -> bool:
    """Whether the server could bind ``port`` as it will (SO_REUSEADDR, as tornado does)."""
    addresses = [(socket.AF_INET, "0.0.0.0" if public else "127.0.0.1")]
    if public and socket.has_ipv6:
        addresses.append((socket.AF_INET6, "::"))
    for family, address in addresses:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno != errno.EADDRNOTAVAIL:  # no IPv6 on this machine: nothing to collide with
                raise
    return True


def check_port(port: int, public: bool = False, hint: str | None = None) -> None:
    """Raise :class:`VisdomServerError` when ``port`` is taken, naming what holds it.

    Visdom 0.3 would silently move to another port instead of failing, so this runs before a server starts.

    Args:
        port: the port a server is about to listen on.
        public: whether it will listen on every interface (otherwise localhost only).
        hint: how to pick another port (default: ``pass another port=, or port=None for a free one``).
    """
    if not _port_is_free(port, public):
        other = port + 1 if port < 65535 else port - 1
        hint = hint or f"pass another port (e.g. port={other}), or port=None to get a free one"
        raise VisdomServerError(f"Port {port} is already in use by {_port_holder(port)}; {hint}.")


def _check_base_url(base_url: str) -> str:
    if base_url in ("", "/"):
        return ""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", base_url):
        raise ConfigError(f"Expected `base_url` to be a path such as '/visdom' (starting with '/', no trailing '/', "
                          f"letters, digits and . _ ~ - only), but got {base_url!r}.")
    return base_url


class _Client:
    """A tiny Visdom HTTP client with a cookie jar: logs in (POST to the base URL) when given credentials."""

    def __init__(self, host: str, port: int, base_url: str, timeout: float,
                 credentials: tuple[str, str] | None) -> None:
        self.root = f"http://{host}:{port}{base_url}"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        if credentials is not None:
            username, password = credentials
            digest = password_digest(password)
            try:
                self.post("", {"username": username, "password": digest})
            except urllib.error.HTTPError as exc:
                raise VisdomServerError(f"The Visdom server at {host}:{port} refused the login of user "
                                        f"{username!r} (HTTP {exc.code}): wrong username or password?") from exc

    def post(self, endpoint: str, message: dict[str, object]) -> bytes:
        request = urllib.request.Request(f"{self.root}/{endpoint}" if endpoint else self.root,
                                         data=json.dumps(message).encode(), method="POST")
        with self._opener.open(request, timeout=self.timeout) as response:
            return bytes(response.read())


def delete_env(port: int, env: str, host: str = "127.0.0.1", timeout: float = 10.0, username: str | None = None,
               password: str | None = None, base_url: str = "") -> bool:
    """Delete the env ``env`` (its windows and its saved file) on the Visdom server at ``host:port``.

    The env is found by asking for its windows (``win_data``), which every Visdom version answers alike;
    ``env_state`` (what ``Visdom.get_env_list`` reads) lists envs in 0.2.4 but one env's windows in 0.3.

    Args:
        port: the server's port.
        env: the env to delete.
        host: the server's host.
        timeout: seconds to wait for each answer.
        username: the login, when the server demands one; ``None`` reads ``VISDOM_USERNAME``.
        password: its password; ``None`` reads ``VISDOM_PASSWORD``.
        base_url: the server's path prefix (``-base_url``), e.g. ``"/visdom"``.

    Returns:
        True when the env existed and was deleted, False when there was no such env.

    Raises:
        VisdomServerError: no server answered, it refused the login, or it demands one and none was given.
    """
    where = f"the Visdom server at {host}:{port}"
    credentials = resolve_credentials(username, password)
    try:
        client = _Client(host, port, _check_base_url(base_url), timeout, credentials)
        try:
            client.post("win_data", {"eid": env, "win": None})
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403):
                raise
            return False  # visdom answers 500 (a KeyError) for an env it does not hold
        # Visdom 0.2.4 fails to delete an env it has not saved yet (it removes the file unchecked): save it first.
        client.post("save", {"data": [env]})
        client.post("delete_env", {"eid": env})
        return True
    except urllib.error.HTTPError as exc:
        login = "it refused the credentials" if credentials else (
            f"it demands a login: set {USERNAME_VAR} and {PASSWORD_VAR}")
        raise VisdomServerError(f"could not delete env {env!r} on {where}: HTTP {exc.code}; {login}.") from exc
    except (OSError, ValueError) as exc:
        raise VisdomServerError(f"could not delete env {env!r} on {where}: {exc}. "
                                f"Is a server running there? Start one with `flexlogger serve --port {port}`.") from exc


class VisdomServer:
    """A Visdom server running in a child process.

    Use :func:`start_server` to create one. The server is stopped by :meth:`stop`, at the end of a ``with``
    block, or when the process that started it exits (unless ``detached``); :meth:`restart` starts it again
    on the same port and ``env_path``, with a new login cookie secret.

    Attributes:
        port: the TCP port it listens on.
        url: the server address as the Visdom client takes it (``"http://localhost"``).
        env_path: the folder where Visdom saves its envs.
        public: whether it listens on all interfaces (otherwise localhost only).
        log_path: the file that receives the server's stdout and stderr.
        base_url: the path prefix of every page (``""`` or e.g. ``"/visdom"``), for a reverse proxy.
        username: the login's username, or None when the server has no login.
        detached: whether it keeps running after the process that started it exits.
        process: the running child process (``None`` once stopped).
    """

    url = "http://localhost"

    def __init__(self, port: int, env_path: Path, public: bool, log_path: Path, logging_level: str,
                 base_url: str = "", credentials: tuple[str, str] | None = None, detached: bool = False) -> None:
        self.port = port
        self.env_path = env_path
        self.public = public
        self.log_path = log_path
        self.logging_level = logging_level
        self.base_url = base_url
        self.username = credentials[0] if credentials else None
        self.detached = detached
        self._password = credentials[1] if credentials else None  # for restart() only; never shown
        self._home: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The full address to open in a browser, e.g. ``http://localhost:8097``."""
        return f"{self.url}:{self.port}{self.base_url}"

    @property
    def login(self) -> bool:
        """Whether the server demands a login."""
        return self.username is not None

    @property
    def pid(self) -> int | None:
        """The child's process id, or None when it is not running."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """Return True while the child process is alive."""
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The command line that launches the server (never with a password: that goes in its environment)."""
        cmd = [sys.executable, "-c", _LAUNCH, "-port", str(self.port), "-env_path", str(self.env_path),
               "-logging_level", self.logging_level]
        if self.base_url:
            cmd += ["-base_url", self.base_url]
        if not self.public:
            cmd.append("-bind_local")
        if self.login:
            cmd.append("-enable_login")
        return cmd

    def log_tail(self, chars: int = _LOG_TAIL_CHARS, start: int = 0) -> str:
        """Return the last ``chars`` characters the server wrote to its log (after byte ``start``)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(start)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not self.detached:
            env["FLEXLOGGER_WATCH_STDIN"] = "1"
        if self.login:
            assert self.username is not None and self._password is not None
            # Visdom reads its cookie secret from ~/.visdom/COOKIE_SECRET: a private HOME with a new secret
            # per launch, so the user's own file is never touched and a restart invalidates old cookies.
            self._remove_home()
            self._home = Path(tempfile.mkdtemp(prefix="flexlogger-visdom-home-"))
            (self._home / ".visdom").mkdir()
            secret = self._home / ".visdom" / "COOKIE_SECRET"
            secret.touch(mode=0o600)
            secret.write_text(secrets.token_hex(32))
            env.update(HOME=str(self._home), VISDOM_USE_ENV_CREDENTIALS="1", VISDOM_USERNAME=self.username,
                       VISDOM_PASSWORD=self._password)
        return env

    def _remove_home(self) -> None:
        home, self._home = self._home, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)

    def _launch(self, timeout: float) -> None:
        """Start the child process and wait until it answers HTTP on the asked port."""
        if self.running():
            raise VisdomServerError(f"Visdom server on port {self.port} is already running (pid {self.pid}).")
        check_port(self.port, self.public)
        self.env_path.mkdir(parents=True, exist_ok=True)
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL if self.detached else subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, env=self._child_env(),
                start_new_session=True)  # Ctrl-C in a terminal reaches us, and we stop the child cleanly
        if not self.detached:
            _ATTACHED.add(self)
        try:
            self._wait_until_serving(self.process, timeout, start)
        except BaseException:  # also Ctrl-C while waiting: never leave the child behind
            self.stop()
            raise

    def _reported_port(self, start: int) -> int | None:
        found = re.search(re.escape(_PORT_LINE) + r"(\d+)", self.log_tail(1 << 20, start))
        return int(found.group(1)) if found else None

    def _wait_until_serving(self, process: subprocess.Popen[bytes], timeout: float, start: int) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = process.poll()
            if code is not None:
                raise VisdomServerError(
                    f"Visdom server on port {self.port} exited with code {code} before answering. "
                    f"Its log ({self.log_path}) ends with:\n{self.log_tail(start=start)}")
            reported = self._reported_port(start)
            if reported is not None and reported != self.port:
                raise VisdomServerError(
                    f"Visdom server asked for port {self.port} listens on port {reported} instead (the port was "
                    f"taken after it was checked, and this visdom version moves instead of failing); stopped it. "
                    f"Pick another port, or port=None to get a free one.")
            if reported is not None and is_serving(self.port, timeout=0.5, path=self.base_url + "/"):
                return
            if time.monotonic() > deadline:
                raise VisdomServerError(
                    f"Visdom server on port {self.port} did not answer within {timeout:g} s. "
                    f"Its log ({self.log_path}) ends with:\n{self.log_tail(start=start)}")
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it is still alive after ``timeout`` seconds.

        Does nothing when it is not running.
        """
        process, self.process = self.process, None
        _ATTACHED.discard(self)
        try:
            if process is None:
                return
            if process.stdin is not None:
                process.stdin.close()
            if process.poll() is not None:
                return
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            self._remove_home()

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
        login = f", login {self.username!r}" if self.login else ""
        return f"VisdomServer({self.address}, env_path={str(self.env_path)!r}{login}, {state})"


def _stop_attached() -> None:
    """Stop every server this process started and did not detach (runs at interpreter exit)."""
    close_each(_ATTACHED, VisdomServer.stop)


def start_server(port: int | None = None, env_path: str | Path | None = None, public: bool = False,
                 timeout: float = 30.0, log_path: str | Path | None = None, logging_level: str = "WARNING",
                 username: str | None = None, password: str | None = None, base_url: str = "",
                 detached: bool = False) -> VisdomServer:
    """Start a Visdom server in a child process and wait until it answers HTTP.

    Args:
        port: the port to listen on; ``None`` picks a free one.
        env_path: where Visdom saves envs; ``None`` uses Visdom's default ``~/.visdom``.
        public: listen on all interfaces instead of localhost only.
        timeout: seconds to wait for the server to answer.
        log_path: file receiving the server's output; ``None`` uses a new temporary file.
        logging_level: the server's logging level (``"INFO"`` logs every request).
        username: with ``password``, the server demands this login (Visdom's ``-enable_login``); both are
            passed to the server in its environment only, never on its command line. ``None``: no login.
        password: the login's password.
        base_url: a path prefix for every page, e.g. ``"/visdom"`` behind a reverse proxy.
        detached: keep the server running after this process exits (stop it by its pid); otherwise it dies
            with this process, even when this process crashes.

    Returns:
        The running server; stop it with ``.stop()`` or use it in a ``with`` block.

    Raises:
        VisdomServerError: the port is taken (the message names what holds it), or the server exited, did
            not answer within ``timeout`` (the message ends with the tail of its log), or moved to another port.
        ConfigError: ``port``, ``timeout`` or ``base_url`` is out of range, or only one of ``username`` and
            ``password`` is given.
    """
    call = "start_server()"
    base_url = _check_server_arguments(call, port, env_path, public, timeout, log_path, logging_level, username,
                                       password, base_url, detached)
    credentials = _credentials(call, username, password)
    if public and credentials is None:
        warnings.warn(f"{call}: public=True without a login: anyone who can reach this machine's port can read and "
                      "write every env; pass username= and password= to demand a login", RuntimeWarning, stacklevel=2)
    env_dir = Path(env_path).expanduser().resolve() if env_path is not None else DEFAULT_ENV_PATH
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="flexlogger-visdom-", suffix=".log")
        os.close(fd)
        log_path = name
    attempts = 3 if port is None else 1  # a free port can be taken between picking and binding it
    for attempt in range(attempts):
        server = VisdomServer(port if port is not None else find_free_port(), env_dir, public, Path(log_path),
                              logging_level, base_url, credentials, detached)
        try:
            server._launch(timeout)
            return server
        except VisdomServerError as exc:
            if attempt == attempts - 1 or not re.search(r"already in use|listens on port", str(exc)):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _check_server_arguments(call: str, port: Any, env_path: Any, public: Any, timeout: Any, log_path: Any,
                            logging_level: Any, username: Any, password: Any, base_url: Any, detached: Any) -> str:
    """Check :func:`start_server`'s arguments (each error names ``call``); return the normalised ``base_url``.

    Raises:
        ConfigError: the first bad argument (a password is never shown).
    """
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise ConfigError(f"{call}: Expected `port` to be an integer in 1..65535 or None, but got "
                          f"{short_repr(port, 60)}.")
    if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout)
            or timeout <= 0):
        raise ConfigError(f"{call}: Expected `timeout` to be a positive number of seconds, but got "
                          f"{short_repr(timeout, 60)}.")
    for name, flag in (("public", public), ("detached", detached)):
        if not isinstance(flag, bool):  # public='False' would serve on every interface
            raise ConfigError(f"{call}: Expected `{name}` to be True or False, but got {short_repr(flag, 60)}.")
    for name, path in (("env_path", env_path), ("log_path", log_path)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"{call}: Expected `{name}` to be a folder path (str or Path) or None, but got "
                              f"{type(path).__name__} {short_repr(path, 60)}.")
    for name, text in (("logging_level", logging_level), ("base_url", base_url), ("username", username),
                       ("password", password)):
        if text is not None and not isinstance(text, str):
            shown = "(hidden)" if name == "password" else short_repr(text, 60)
            raise ConfigError(f"{call}: Expected `{name}` to be a str, but got {type(text).__name__} {shown}.")
    try:
        return _check_base_url(base_url)
    except ConfigError as exc:
        raise ConfigError(f"{call}: {exc}") from None


def _credentials(call: str, username: str | None, password: str | None) -> tuple[str, str] | None:
    """``(username, password)`` for a server with a login, or None without one.

    Raises:
        ConfigError: only one of the two is given (or one is empty).
    """
    if username is None and password is None:
        return None
    if not username or not password:
        raise ConfigError(f"{call}: Expected both `username` and `password` for a server with a login, or "
                          f"neither, but got {'no username' if not username else 'no password'}.")
    return username, password


def ensure_server(port: int = DEFAULT_PORT, state_dir: str | Path = ".visdom", install_assets: bool = True,
                  timeout: float = 30.0) -> VisdomServer | None:
    """Reuse the server answering on ``port``, or start one that keeps running after this process exits.

    Used by the demo and the examples: a started server saves envs in ``state_dir/env``, logs to
    ``state_dir/server.log`` and writes its pid to ``state_dir/server-<port>.pid``: one file per port, so a
    second server (the quickstart's beside the demo's) never hides the first from ``make stop``, which reads them.

    Args:
        port: the port to find or start the server on.
        state_dir: folder for the env path, log and pid file of a started server.
        install_assets: install Visdom's web assets from npm first when missing (a failure is a warning:
            the server still accepts plots).
        timeout: seconds to wait for a started server to answer.

    Returns:
        The started server (detached: not stopped when this process exits), or ``None`` when a server
        already answered on ``port``.
    """
    port = defaults.resolve("port", port)
    if is_serving(port):
        return None
    if install_assets:
        try:
            ensure_assets()
        except AssetError as exc:
            warnings.warn(f"{exc} The Visdom page will be blank.", RuntimeWarning, stacklevel=2)
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    server = start_server(port=port, env_path=state / "env", log_path=state / "server.log", timeout=timeout,
                          detached=True)
    (state / f"server-{port}.pid").write_text(f"{server.pid}\n")
    return server


on_exit(SERVERS, _stop_attached)
