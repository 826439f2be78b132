"""Visdom login handling: where the username and password come from, and what is posted for them.

A leaf module (it imports only :mod:`flexlogger.errors`), shared by the Visdom sink's transport, the server
launcher (:mod:`flexlogger.tools.server`), ``compare`` and the CLI, so that each reads the same environment
variables and sends the same digest.
"""

from __future__ import annotations

import hashlib
import os

from flexlogger.errors import ConfigError

USERNAME_VAR, PASSWORD_VAR = "VISDOM_USERNAME", "VISDOM_PASSWORD"


def resolve_credentials(username: str | None, password: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from the arguments, else from VISDOM_USERNAME / VISDOM_PASSWORD; None: no login.

    Raises:
        ConfigError: only one of the two is given (or set).
    """
    username = username if username is not None else os.environ.get(USERNAME_VAR) or None
    password = password if password is not None else os.environ.get(PASSWORD_VAR) or None
    if username is None and password is None:
        return None
    if not username or not password:
        missing = "username" if not username else "password"
        raise ConfigError(f"A Visdom login needs a username and a password, but the {missing} is missing: pass "
                          f"`{missing}=` or set {USERNAME_VAR if missing == 'username' else PASSWORD_VAR}.")
    return username, password


def password_digest(password: str) -> str:
    """The SHA-256 hex digest of ``password``: what Visdom's client posts to log in (never the password itself).
    A :class:`PasswordDigest` is already one, and comes back unchanged."""
    if isinstance(password, PasswordDigest):
        return str.__str__(password)
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


class PasswordDigest(str):
    """A password already turned into what Visdom's login posts (its SHA-256), for a program that opens sinks
    later and must not keep the password meanwhile (``flexlogger ingest`` opens a run per model as points come).

    It is accepted wherever ``password=`` is (a string), and logs in as the password would. It is still a
    credential (Visdom takes the digest as the login), so its ``repr`` and ``str`` hide it.

    Example:
        >>> digest = PasswordDigest.of("s3cret")
        >>> digest
        PasswordDigest(<hidden>)
    """

    __slots__ = ()

    @classmethod
    def of(cls, password: str) -> PasswordDigest:
        """The digest of ``password`` (a digest given is returned as is)."""
        return password if isinstance(password, PasswordDigest) else cls(password_digest(password))

    def __repr__(self) -> str:
        return "PasswordDigest(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Visdom login is not copied or pickled")
