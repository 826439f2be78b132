"""start_server(public=True) from Python says what it exposes, as `flexlogger serve --public --no-login` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexlogger.tools.server import start_server


def test_a_public_server_without_a_login_is_warned_about(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match=r"^start_server\(\): public=True without a login: anyone who can reach "
                                            r"this machine's port can read and write every env; pass username= and "
                                            r"password= to demand a login$"):
        server = start_server(env_path=tmp_path / "env", log_path=tmp_path / "server.log", public=True)
    server.stop()
