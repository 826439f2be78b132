"""The environment's defaults: FLEXLOGGER_SERVER, FLEXLOGGER_PORT and FLEXLOGGER_LOG_DIR reach every entry point
when a keyword is left at its default, and a bad value is an error naming the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import visdom

import flexlogger
from flexlogger import defaults
from flexlogger.errors import ConfigError
from flexlogger.tools.cli import main
from flexlogger.tools.server import VisdomServer


@pytest.fixture
def team_server(monkeypatch: pytest.MonkeyPatch, visdom_server: VisdomServer, tmp_path: Path) -> Path:
    """The variables point at the session's real server and a temporary record root."""
    monkeypatch.setenv("FLEXLOGGER_SERVER", "http://localhost")
    monkeypatch.setenv("FLEXLOGGER_PORT", str(visdom_server.port))
    monkeypatch.setenv("FLEXLOGGER_LOG_DIR", str(tmp_path / "team"))
    return tmp_path / "team"


def test_a_logger_without_options_draws_on_the_environments_server(team_server: Path, viz: visdom.Visdom,
                                                                   env: str) -> None:
    stat = flexlogger.FlexLogger({"loss": {"type": "line"}},
                                 {"train_loss": {"type": "ValueMeter", "target": "loss"}}, env=env)
    stat.add({"train_loss": 0.5})
    stat.log(3)
    assert stat.flush(10) == 0
    window = json.loads(viz.get_window_data(stat.windows["loss"], env))
    stat.close()
    assert window["content"]["data"][0]["y"] == [0.5]
    assert stat.run_dir is not None and stat.run_dir.parent.parent == team_server
    assert stat.port == int(defaults.port()) and stat.run.options["port"] == stat.port


def test_a_keyword_given_wins_over_the_environment(team_server: Path, tmp_path: Path) -> None:
    with flexlogger.Run(env="given", server=None, log_dir=tmp_path / "mine", port=8097) as run:
        assert run.server is None and run.port == 8097 and run.dir is not None
        assert run.dir.parent.parent == tmp_path / "mine"
    assert not team_server.exists()


@pytest.mark.parametrize(("var", "value", "match"), [
    ("FLEXLOGGER_PORT", "abc", r"FLEXLOGGER_PORT: expected an int from 1 to 65535, but got 'abc'"),
    ("FLEXLOGGER_PORT", "70000", r"FLEXLOGGER_PORT: expected an int from 1 to 65535, but got '70000'"),
    ("FLEXLOGGER_SERVER", "vis.lab:8097", r"FLEXLOGGER_SERVER: expected a URL with its scheme"),
    ("FLEXLOGGER_SERVER", "http://vis.lab:8097", r"the port goes in FLEXLOGGER_PORT"),
])
def test_a_bad_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str, value: str,
                                              match: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=match):
        flexlogger.Run(env="bad", log_dir=tmp_path)


def test_unset_or_empty_variables_give_the_built_in_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLEXLOGGER_SERVER", "FLEXLOGGER_PORT", "FLEXLOGGER_LOG_DIR"):
        monkeypatch.setenv(var, "")
    assert (defaults.server(), defaults.port(), defaults.log_dir()) == ("http://localhost", 8097, "runs")
    assert defaults.resolve("port", 8097) == 8097 and defaults.resolve("server", None) is None


def test_the_cli_takes_the_environments_server(team_server: Path, capsys: pytest.CaptureFixture[str],
                                               visdom_server: VisdomServer) -> None:
    with flexlogger.Run(env="cli_env_defaults", server=None) as run:  # the record under FLEXLOGGER_LOG_DIR
        run.log_text("note", "hello")
    assert run.dir is not None and run.dir.parent.parent == team_server
    assert main(["replay", str(run.dir)]) == 0
    assert f"http://localhost:{visdom_server.port}" in capsys.readouterr().out


def test_the_option_tables_defaults_are_todays(team_server: Path, visdom_server: VisdomServer) -> None:
    from flexlogger.config.options import defaults as option_defaults

    current = option_defaults("run")
    assert (current["port"], current["log_dir"], current["server"]) == (visdom_server.port, str(team_server),
                                                                        "http://localhost")
    assert type(current["port"]) is int and type(current["log_dir"]) is str  # plain values: YAML can write them
