"""Transport: the HTTP session to a Visdom server, posting, the backoff schedule and reconnect detection. No
threads (one sender thread uses it), no knowledge of windows beyond their ids.

- Every request replaces a whole window (``/events``), never a Visdom append: Visdom 0.2.4's ``/update``
  deep-copies and JSON-diffs the window, so an append of one point to a 6-trace window costs about 290 ms at
  1,000 points per trace and 2.8 s at 10,000, whereas replacing the whole window costs 9 ms and 34 ms (measured
  here). Replacing also makes every send self-healing: a server that lost the window gets all of it back.
- A failed request is retried with exponential backoff (:class:`Backoff`: 0.1 s doubling to 5 s).
- Reconnect detection: the session counts the TCP connections it opens (:func:`counting_session`). A server that
  restarts between two requests closed the keep-alive connection, so the next request opens a new one
  (:meth:`Transport.reconnected`); a false alarm costs one send per window.
- Login (a server started with ``-enable_login``): the username and the SHA-256 of the password are posted to the
  server's base URL, as Visdom's client does, and the session keeps the cookie (:meth:`Transport.check_login`). A
  request refused for want of a login (a restarted server: a new cookie secret) logs in again and is sent once
  more. Only the digest is kept, in a private object that no repr shows.
"""

from __future__ import annotations

import json
import math

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from flexlogger.errors import ConfigError
from flexlogger.sinks.visdom.auth import password_digest

BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
LOGIN_WRONG = 400  # Visdom's answer to a login with a wrong username or password
LOGIN_REFUSED = (400, 401)  # what Visdom answers a request without a valid login cookie: 0.2.4 400, 0.3 401
CHECK_TIMEOUT_S = 5.0  # the longest the sender thread's login check waits for an answer
QUICK_CHECK_S = 1.0  # the longest the sink's constructor waits for the login check's answer (then the sender checks)


class Backoff:
    """The delay before retrying after failures: ``start`` doubling to ``limit``, back to none after a success.

    Example:
        >>> backoff = Backoff()
        >>> [backoff.fail() for _ in range(3)], backoff.succeed(), backoff.fail()
        ([0.1, 0.2, 0.4], 0.0, 0.1)
    """

    def __init__(self, start: float = BACKOFF_START, limit: float = BACKOFF_MAX) -> None:
        self.start, self.limit = start, limit
        self.delay = 0.0

    def fail(self) -> float:
        """One more failure: the seconds to wait before the next try."""
        self.delay = min(max(2 * self.delay, self.start), self.limit)
        return self.delay

    def succeed(self) -> float:
        """A success: no wait."""
        self.delay = 0.0
        return self.delay


class _Login:
    """A Visdom login: the username and the SHA-256 of the password (what Visdom's client posts). Never shown."""

    __slots__ = ("_digest", "username")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._digest = password_digest(password)

    def payload(self) -> str:
        return json.dumps({"username": self.username, "password": self._digest})

    def __repr__(self) -> str:
        return f"_Login({self.username!r}, password=<hidden>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Visdom login is not copied or pickled")


class Transport:
    """Posts to one Visdom server over a keep-alive session that counts its connections, logged in if need be.

    Args:
        url: the server's URL with port and base path, e.g. ``http://localhost:8097``.
        timeout: seconds a request may take (inf or NaN: no limit).
        username: the login's username, for a server started with a login; None: no login.
        password: its password (only its SHA-256 is kept), or a ``PasswordDigest`` (used as that SHA-256).

    Attributes:
        sent_requests, failed_requests: counts of requests posted, and of those, failed.
        failure: why the last request failed (None after a success).
    """

    def __init__(self, url: str, timeout: float, username: str | None = None, password: str | None = None) -> None:
        self.url = url
        self._login = _Login(username, password) if username is not None and password is not None else None
        self._refused = False  # the last request was refused, and so was the login it tried again
        self.timeout: float | None = float(timeout) if math.isfinite(timeout) else None
        self.sent_requests = 0
        self.failed_requests = 0
        self.failure: str | None = None
        self._connects = [0]  # TCP connections opened by self._http
        self._http = counting_session(self._connects)
        self._connections: int | None = None

    def post(self, endpoint: str, body: str | bytes) -> bool:
        """POST ``body`` to ``/endpoint``; True when the server answered 200 (else ``failure`` says why)."""
        return self._request(endpoint, body) is not None

    def _request(self, endpoint: str, body: str | bytes) -> str | None:
        """The answer's text, or None when the request failed."""
        data = body.encode() if isinstance(body, str) else body
        text: str | None = None
        try:
            response = self._send(endpoint, data)
            if response.status_code == 200:
                text, self.failure = response.text, None
            elif self._refused and self._login is not None:
                self.failure = (f"the server refused the login of user {self._login.username!r}: wrong username or "
                                f"password?")
            else:
                self.failure = f"HTTP {response.status_code} on /{endpoint}"
                if response.status_code in LOGIN_REFUSED and self._login is None:
                    self.failure += (": the server demands a login (pass username= and password=, or set "
                                     "VISDOM_USERNAME and VISDOM_PASSWORD)")
        except requests.RequestException as exc:
            self.failure = type(exc).__name__
        self.sent_requests += 1
        if text is None:
            self.failed_requests += 1
        return text

    def _send(self, endpoint: str, data: bytes) -> requests.Response:
        """POST; a request refused for want of a login (a restarted server: new cookie secret) logs in again and is
        sent once more."""
        self._refused = False
        response = self._http.post(f"{self.url}/{endpoint}", data=data, timeout=self.timeout)
        if response.status_code in LOGIN_REFUSED and self._login is not None:
            if self._log_in(self.timeout) == LOGIN_WRONG:
                self._refused = True  # the password changed with the restart?
                return response
            response = self._http.post(f"{self.url}/{endpoint}", data=data, timeout=self.timeout)
        return response

    def _log_in(self, timeout: float | None) -> int:
        """Post the login; the session keeps the cookie. Returns the HTTP status (200: logged in)."""
        assert self._login is not None
        return int(self._http.post(self.url, data=self._login.payload(), timeout=timeout).status_code)

    def check_login(self, timeout: float | None = None) -> bool:
        """Log in, or check that the server demands no login when none was given.

        Args:
            timeout: seconds to wait for the answer (None: the transport's ``timeout``, at most
                ``CHECK_TIMEOUT_S``).

        Returns:
            True when the server answered (and took the login, or demands none); False when it did not answer in
            time (the caller may check again later: a request refused for want of a login logs in anyway).

        Raises:
            ConfigError: the server refused the credentials, or it demands a login and none was given.
        """
        if timeout is None:
            timeout = CHECK_TIMEOUT_S if self.timeout is None else min(self.timeout, CHECK_TIMEOUT_S)
        try:
            if self._login is not None:
                status = self._log_in(timeout)  # 500 from a server without a login: nothing to log in to
                if status == LOGIN_WRONG:
                    raise ConfigError(f"the Visdom server at {self.url} refused the login of user "
                                      f"{self._login.username!r}: wrong username or password (HTTP {status})")
                return True
            response = self._http.post(f"{self.url}/win_exists", data=json.dumps({"win": "", "eid": "main"}),
                                       timeout=timeout)
        except requests.RequestException:
            return False
        if response.status_code in LOGIN_REFUSED:
            raise ConfigError(f"the Visdom server at {self.url} demands a login: pass username= and password=, or "
                              f"set VISDOM_USERNAME and VISDOM_PASSWORD (HTTP {response.status_code} without one)")
        return True

    @property
    def username(self) -> str | None:
        """The login's username, or None without a login."""
        return self._login.username if self._login is not None else None

    def save(self, env: str) -> bool:
        """Ask the server to save ``env`` to its disk; True when it did."""
        try:
            response = self._send("save", json.dumps({"data": [env]}).encode())
        except requests.RequestException:
            return False
        return response.status_code == 200

    def win_exists(self, win: str, env: str) -> bool | None:
        """Whether the server has window ``win`` of ``env``; None when it did not answer (``failure`` says why)."""
        text = self._request("win_exists", json.dumps({"win": win, "eid": env}))
        return None if text is None else text.strip() == "true"

    def reconnected(self) -> bool:
        """True when requests since the last call opened a new TCP connection, after a first one (the server
        restarted?)."""
        previous, self._connections = self._connections, self._connects[0]
        return previous is not None and self._connections > previous

    def close(self) -> None:
        self._http.close()


def counting_session(counter: list[int]) -> requests.Session:
    """A requests session that counts the TCP connections it opens in ``counter[0]``.

    urllib3 reopens a dropped keep-alive connection silently; counting the opens is how the sender learns that
    the server closed it (a restart) even when no request failed.
    """

    class Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            counter[0] += 1

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    session = requests.Session()
    adapter = HTTPAdapter()
    adapter.poolmanager.pool_classes_by_scheme = {**adapter.poolmanager.pool_classes_by_scheme, "http": Pool}
    session.mount("http://", adapter)
    return session
