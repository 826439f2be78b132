"""The arguments of ``flexlogger.tools.server.start_server``: every odd argument is refused naming the call, before any
process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexlogger import ConfigError
from flexlogger.tools.server import start_server


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"port": "8097"}, r"^start_server\(\): Expected `port` to be an integer in 1\.\.65535 or None, but got '8097'"),
    ({"port": True}, r"`port` to be an integer in 1\.\.65535 or None, but got True"),
    ({"port": 8097.5}, r"`port` to be an integer in 1\.\.65535 or None, but got 8097\.5"),
    ({"port": 0}, r"^start_server\(\): Expected `port` to be an integer in 1\.\.65535 or None, but got 0"),
    ({"timeout": float("nan")}, r"^start_server\(\): Expected `timeout` to be a positive number of seconds, but got "
                                r"nan"),
    ({"timeout": float("inf")}, r"`timeout` to be a positive number of seconds, but got inf"),
    ({"timeout": "5"}, r"`timeout` to be a positive number of seconds, but got '5'"),
    ({"public": "False"}, r"^start_server\(\): Expected `public` to be True or False, but got 'False'"),
    ({"detached": 1}, r"^start_server\(\): Expected `detached` to be True or False, but got 1"),
    ({"env_path": 5}, r"^start_server\(\): Expected `env_path` to be a folder path \(str or Path\) or None, but got "
                      r"int 5"),
    ({"log_path": [Path("x")]}, r"Expected `log_path` to be a folder path \(str or Path\) or None, but got list"),
    ({"base_url": 5}, r"^start_server\(\): Expected `base_url` to be a str, but got int 5"),
    ({"base_url": "visdom"}, r"^start_server\(\): Expected `base_url` to be a path such as '/visdom'"),
    ({"username": 5, "password": "x"}, r"^start_server\(\): Expected `username` to be a str, but got int 5"),
    ({"username": "u", "password": 12345}, r"^start_server\(\): Expected `password` to be a str, but got int "
                                           r"\(hidden\)"),
    ({"username": "alice"}, r"^start_server\(\): Expected both `username` and `password` .* but got no password"),
])
def test_start_server_refuses_odd_arguments_naming_itself(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        start_server(**kwargs)  # type: ignore[arg-type]
    assert "12345" not in str(caught.value)  # a password is never shown
