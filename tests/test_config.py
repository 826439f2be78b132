"""Config files: round trips (YAML and JSON), presets in configs, overrides, the safe loader, every error path."""

from __future__ import annotations

import inspect
import json
import pickle
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import visdom

import flexlogger
from flexlogger import ConfigError, FlexLogger, InvalidConfigError, load_config
from flexlogger.config import options as options_
from flexlogger.config.config import option_names, save_config
from flexlogger.core.run import Run
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.tools.server import VisdomServer

FLEXLOGGER_DIR = Path(flexlogger.__file__).parent
OFFLINE: dict[str, Any] = {"server": None, "log_dir": None}
PLOTS = {"loss": {"type": "line", "opts": {"xlabel": "epoch", "legend_loc": None}},
         "err": {"type": "line"}, "conf": {"type": "heatmap", "opts": {"colormap": "Viridis"}}}
METERS = {"train_loss": {"type": "AverageValueMeter", "target": "loss"},
          "train_err": {"type": "ClassErrorMeter", "target": ["err"], "args": {"topk": (1, 3), "accuracy": False}},
          "cm": {"type": "ConfusionMeter", "target": "conf", "args": {"k": 3, "normalized": True}}}


@pytest.fixture(autouse=True)
def no_user_presets(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEXLOGGER_PRESET_PATH", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config_home")))


@pytest.fixture
def closing() -> Iterator[Callable[[FlexLogger], FlexLogger]]:
    made: list[FlexLogger] = []
    yield lambda logger: made.append(logger) or logger  # type: ignore[func-returns-value]
    for logger in made:
        logger.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_options_match_the_signatures() -> None:
    """The one option table names exactly the keywords of Run, the Visdom sink and FlexLogger."""
    def keywords(fn: Any, skip: set[str]) -> set[str]:
        params = inspect.signature(fn).parameters
        return {n for n, p in params.items() if n not in skip and p.kind is not inspect.Parameter.VAR_KEYWORD}

    assert set(options_.names("run")) == keywords(Run.__init__, {"self", "sinks"})
    # where windows go and what they say drew them (uid, label) are the run's, not options a user sets
    assert set(options_.names("visdom")) == keywords(VisdomSink.__init__, {"self", "server", "port", "env", "uid",
                                                                           "label"})
    assert set(options_.names("logger")) == keywords(FlexLogger.__init__, {"self", "plots", "meters", "run",
                                                                           "sinks"})


def test_only_config_imports_yaml() -> None:
    users = sorted(str(p.relative_to(FLEXLOGGER_DIR)) for p in FLEXLOGGER_DIR.rglob("*.py")
                   if re.search(r"^\s*(import yaml|from yaml)", p.read_text(), re.M))
    assert users == ["config/parse.py"]


# round trips -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_then_load_gives_an_identical_logger(tmp_path: Path, suffix: str, visdom_server: VisdomServer,
                                                  env: str, viz: visdom.Visdom,
                                                  closing: Callable[[FlexLogger], FlexLogger]) -> None:
    stat = closing(FlexLogger(PLOTS, METERS, env=env, server=visdom_server.url, port=visdom_server.port,
                              log_dir=tmp_path / "runs", strict=False, min_interval=0.05))
    path = stat.save_config(tmp_path / f"exp{suffix}")
    config = stat.to_config()
    assert "uid" not in config  # not pinned: a reused config gives each run its own windows
    assert config["log_dir"] == str(tmp_path / "runs") and config["min_interval"] == 0.05
    assert config["meters"]["train_err"]["args"]["topk"] == [1, 3]
    loaded = closing(FlexLogger.from_config(path, uid="second"))  # an override pins it
    assert loaded.uid == "second" and loaded.to_config() == {**config, "uid": "second"}
    assert loaded.get_definitions() == stat.get_definitions()
    assert (loaded.env, loaded.server, loaded.port, loaded.strict) == (env, visdom_server.url, visdom_server.port,
                                                                       False)
    assert loaded.plots == stat.plots and loaded.meter_specs == stat.meter_specs
    loaded.add({"train_loss": 2.0, "train_err": [torch.eye(4)[[0, 1, 2]], torch.tensor([0, 1, 3])]})
    loaded.log(4)
    assert loaded.flush(10) == 0
    win = json.loads(viz.get_window_data(loaded.windows["err"], env))
    assert {t["name"]: (t["x"], t["y"]) for t in win["content"]["data"]} == {
        "train_err@1": ([4], [pytest.approx(100 / 3)]), "train_err@3": ([4], [0.0])}


def built_meters(make: Callable[[], FlexLogger]) -> tuple[int, FlexLogger]:
    """How many meters ``make()`` builds, counted by a profiler watching ``Meter.__init__`` (nothing is replaced),
    and the logger it made."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is flexlogger.Meter.__init__.__code__:
            calls += 1

    before = sys.getprofile()
    sys.setprofile(profile)
    try:
        logger = make()
    finally:
        sys.setprofile(before)
    return calls, logger


@pytest.mark.parametrize("make", [
    lambda path: FlexLogger(PLOTS, METERS, **OFFLINE),
    lambda path: FlexLogger.from_config({"plots": PLOTS, "meters": METERS}, **OFFLINE),
    lambda path: FlexLogger.from_config(save_config({"plots": PLOTS, "meters": METERS}, path), **OFFLINE),
    lambda path: FlexLogger.from_config({"presets": "acc+lr", "meters": METERS, "plots": PLOTS}, **OFFLINE),
    lambda path: flexlogger.get_preset_logger("loss+confusion", preset_args={"confusion": {"k": 4}}, **OFFLINE),
], ids=["constructor", "from_config dict", "from_config file", "from_config presets", "get_preset_logger"])
def test_each_meter_is_built_once(tmp_path: Path, make: Callable[[Path], FlexLogger],
                                  closing: Callable[[FlexLogger], FlexLogger]) -> None:
    calls, logger = built_meters(lambda: closing(make(tmp_path / "c.yaml")))
    assert len(logger.meters) >= 3 and calls == len(logger.meters)


def test_uid_given_is_kept_and_dict_round_trip(closing: Callable[[FlexLogger], FlexLogger]) -> None:
    stat = FlexLogger(PLOTS, METERS, uid="fixed", distributed=False, **OFFLINE)
    config = stat.to_config()
    assert config["uid"] == "fixed" and config["distributed"] is False
    assert list(config)[:3] == ["env", "uid", "server"] and list(config)[-2:] == ["plots", "meters"]
    again = FlexLogger.from_config(config)
    assert again.uid == "fixed" and again.to_config() == config
    assert json.loads(json.dumps(config)) == config  # plain data


def test_yaml_file_by_hand_with_presets_and_overrides(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                      viz: visdom.Visdom,
                                                      closing: Callable[[FlexLogger], FlexLogger]) -> None:
    path = write(tmp_path / "mnist.yaml", f"""\
# reused across experiments
env: not-this-one
port: {visdom_server.port}
log_dir: null
presets: loss+Confusion
phases: [train, val]
preset_args:
  confusion: {{k: 3}}
plots:
  grad: {{type: line, opts: {{ylabel: norm}}}}
meters:
  grad_norm: {{type: AverageValueMeter, target: grad}}
""")
    stat = closing(FlexLogger.from_config(path, env=env, uid="run"))
    assert stat.env == env
    assert stat.get_definitions() == {"loss": ["train_loss", "val_loss"], "confusion_train": ["train_confusion"],
                                      "confusion_val": ["val_confusion"], "grad": ["grad_norm"]}
    stat.add({"val_loss": 1.5, "grad_norm": 3.0, "val_confusion": [torch.tensor([0, 2]), torch.tensor([0, 1])]})
    stat.log(0)
    assert stat.flush(10) == 0
    loss = json.loads(viz.get_window_data(stat.windows["loss"], env))["content"]["data"]
    assert [(t["name"], t["x"], t["y"]) for t in loss] == [("val_loss", [0], [1.5])]
    heat = json.loads(viz.get_window_data(stat.windows["confusion_val"], env))["content"]["data"][0]
    assert heat["z"] == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    # the saved form expands the presets: reloading needs no preset
    assert FlexLogger.from_config(stat.to_config(), **OFFLINE).get_definitions() == stat.get_definitions()


def test_max_steps_from_a_config_file_and_back(tmp_path: Path, closing: Callable[[FlexLogger], FlexLogger]) -> None:
    """max_steps is an option like the others: a config file sets it, a saved config keeps it."""
    path = write(tmp_path / "steps.yaml", "max_steps: 500\nserver: null\nlog_dir: null\n"
                                          "plots: {loss: {type: line}}\n"
                                          "meters: {train_loss: {type: AverageValueMeter, target: loss}}\n")
    assert load_config(path).options["max_steps"] == 500
    stat = closing(FlexLogger.from_config(path))
    assert stat.run.max_steps == 500 and stat.to_config()["max_steps"] == 500
    saved = stat.save_config(tmp_path / "saved.json")
    assert json.loads(saved.read_text())["max_steps"] == 500
    assert closing(FlexLogger.from_config(saved, max_steps=20)).run.max_steps == 20  # an override wins
    stat.run.set_max_steps(40)
    assert stat.to_config()["max_steps"] == 40  # the run's current value
    assert FlexLogger(**OFFLINE).to_config()["max_steps"] is None  # pinned: a reused config keeps "no max_steps"
    with Run(**OFFLINE) as run:  # a given run takes the config's max_steps, as FlexLogger(run=run, max_steps=...) does
        shared = FlexLogger.from_config(path, run=run)
        assert run.max_steps == 500 and shared.to_config()["max_steps"] == 500
    with Run(**OFFLINE, max_steps=7) as run:
        assert run.to_config()["max_steps"] == 7


def test_load_config_returns_specs_and_empty_file(tmp_path: Path) -> None:
    config = load_config({"presets": ["mse"], "env": "a"}, env="b", phases="fit")
    assert config.options == {"env": "b"} and list(config.meters) == ["fit_mse"]
    assert config.meters["fit_mse"].target == ("mse",) and config.source == "config"
    assert config.to_dict()["meters"] == {"fit_mse": {"type": "MSEMeter", "target": "mse"}}
    assert load_config({}, log_dir=tmp_path).options == {"log_dir": tmp_path}  # an override may be a Path
    empty = FlexLogger.from_config(write(tmp_path / "empty.yaml", "# nothing yet\n"), **OFFLINE)
    assert empty.get_definitions() == {}


def test_save_config_writes_plain_data(tmp_path: Path) -> None:
    stat = FlexLogger({"h": {"type": "histogram", "opts": {"numbins": np.int64(4)}}},
                      {"w": {"type": "ValueMeter", "target": "h"}}, **OFFLINE)
    text = stat.save_config(tmp_path / "sub" / "c.yaml").read_text()
    assert text.startswith("# flexlogger config: FlexLogger.from_config('c.yaml')\n") and "numbins: 4\n" in text
    assert "!!" not in text


# the safe loader -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tagged", [
    "env: !!python/object/apply:os.system ['touch {marker}']\n",
    "plots: !!python/object/new:collections.OrderedDict [[[loss, {{type: line}}]]]\n",
    "env: !!python/name:os.system\n",
    "meters: !!python/object:argparse.Namespace {{type: line}}\n",
])
def test_python_tags_are_rejected_and_nothing_runs(tmp_path: Path, tagged: str) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path / "evil.yaml", "port: 8097\n" + tagged.format(marker=marker))
    with pytest.raises(ConfigError, match=r"evil.yaml:2: could not determine a constructor for the tag "
                                          r"'tag:yaml.org,2002:python/.*'; config files are read with YAML's safe "
                                          r"loader, which builds only plain data .*: a tag such as !!python/object "
                                          r"that would import or run code is not allowed"):
        FlexLogger.from_config(path, **OFFLINE)
    assert not marker.exists()


# errors ----------------------------------------------------------------------------------------------------------
def test_every_problem_reported_at_once_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", """\
evn: exp
port: eighty
strict: yes please
min_interval: -1
max_steps: 2.5
plots:
  loss: {type: line}
  err: {type: lines}
  conf: {type: heatmap}
  both: {type: line}
meters:
  train_loss: {type: AverageMeter, target: loss}
  test_loss: {type: AverageValueMeter}
  raw: 5
  e1: {type: ClassErrorMeter, target: err, args: {top_k: [1]}}
  c1: {type: ConfusionMeter, target: conf, args: {k: ten}}
  c2: {type: ConfusionMeter, target: conf, args: {k: 3}}
  c3: {type: ConfusionMeter, target: loss, args: {k: 3}}
  both: {type: ValueMeter, target: lost}
""")
    with pytest.raises(InvalidConfigError) as info:
        FlexLogger.from_config(path, **OFFLINE)
    problems = info.value.problems
    expected = [
        r"evn: unknown config key 'evn' \(did you mean 'env'\?\); valid config keys: ",
        r"port: expected an int from 1 to 65535, but got 'eighty'",
        r"strict: expected True or False .*, but got 'yes please'",
        r"min_interval: expected a finite number of seconds >= 0, but got -1",
        r"min_interval: a Visdom sender option, but server is None \(nothing is sent to Visdom\); expected no Visdom "
        r"options, or a server",
        r"max_steps: expected a positive int \(the number of steps the run will log\) or None, but got 2.5",
        r"plots.err.type: unknown plot type 'lines' \(did you mean 'line'\?\); valid plot types: bar, curve",
        r"meters.train_loss.type: unknown meter type 'AverageMeter' \(did you mean 'AverageValueMeter'.*\); "
        r"valid meter types: APMeter",
        r"meters.test_loss.target: missing; expected the name of the plot \(or a list of plots\) it feeds",
        r"meters.raw: expected a mapping with keys type, target, args, but got int 5",
        r"meters.e1.args: unknown argument\(s\) 'top_k' for ClassErrorMeter; valid arguments: topk, accuracy",
        r"meters.c1.args: meter 'c1' \(ConfusionMeter\): expected `k` \(number of classes\) to be an int >= 2, "
        r"but got 'ten'",
        r"meters.c3.target: plot 'loss' is a 'line' plot, which cannot draw a ConfusionMeter .*; plot types that "
        r"can: heatmap, image, text",
        r"meters.both.target: unknown plot 'lost' \(did you mean 'loss', 'both'\?\); valid plots: both, conf, loss",
        r"meters.both: 'both' names both a plot and a meter, and meter 'both' does not feed plot 'both': "
        r"log\(keys=...\) would be ambiguous",
        r"plots.conf: a 'heatmap' plot shows at most 1 meter\(s\), but c1, c2 target it; give each its own plot",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for pattern in expected:
        assert any(re.fullmatch(pattern + ".*", p, re.S) for p in problems), (pattern, problems)
    assert str(info.value).startswith(f"{path}: {len(expected)} problems:\n  evn: unknown config key")


@pytest.mark.parametrize(("config", "message"), [
    ({"plots": [1, 2]}, r"^config: plots: expected a mapping of plot name -> \{type, opts\}, but got list \[1, 2\]$"),
    ({"meters": "loss"}, r"^config: meters: expected a mapping of meter name -> \{type, target, args\}, but got str "
                         r"'loss'$"),
    ({"plots": {"p": "line"}},
     r"^config: plots.p: expected a mapping with keys type, opts, aggregate, smooth, but got str 'line'$"),
    ({"plots": {"p": {"type": "line", "opt": {}}}},
     r"plots.p: unknown key\(s\) 'opt'; valid keys: type, opts, aggregate, smooth$"),
    ({"plots": {"p": {}}}, r"plots.p.type: missing; valid plot types: bar, curve, heatmap"),
    ({"plots": {"p": {"type": "line", "opts": 3}}}, r"plots.p.opts: expected a mapping of Visdom options, but got 3"),
    ({"plots": {"p": {"type": "line"}}, "meters": {"m": {"type": "ValueMeter", "target": []}}},
     r"meters.m.target: expected a plot name or a non-empty list of plot names, but got \[\]"),
    ({"env": ""}, r"^config: env: expected a non-empty string \(the Visdom environment\) without NUL characters, but "
                  r"got ''$"),
    ({"uid": 3}, r"uid: expected a non-empty string without NUL characters, or None for a new uid \(start time and a "
                 r"random suffix\) per run, but got 3"),
    ({"server": 8097}, r"server: expected a URL with its scheme, such as 'http://localhost', or None to send nothing "
                       r"to Visdom, but got 8097"),
    ({"server": "localhost"}, r"server: expected a URL with its scheme, .* but got 'localhost'"),
    ({"port": 0}, r"port: expected an int from 1 to 65535, but got 0"),
    ({"port": True}, r"port: expected an int from 1 to 65535, but got True"),
    ({"log_dir": 5}, r"log_dir: expected a folder \(str or Path\) for the run record, or None to turn it off, but "
                     r"got 5"),
    ({"distributed": "no"}, r"distributed: expected True, False, or None to decide from torch.distributed, "
                            r"but got 'no'"),
    ({"base_url": 1}, r"base_url: expected '' or a URL path such as '/visdom' \(no trailing slash\), but got 1"),
    ({"max_points": 2.5}, r"max_points: expected an int >= 16 \(points a line trace shows before it is "
                          r"downsampled\), but got 2.5"),
    ({"max_points": 5}, r"max_points: expected an int >= 16 .*, but got 5"),
    ({"timeout": float("inf")}, r"timeout: expected a finite number of seconds > 0, but got inf"),
    ({"max_steps": 0}, r"^config: max_steps: expected a positive int \(the number of steps the run will log\) or "
                       r"None, but got 0$"),
    ({"max_steps": True}, r"^config: max_steps: expected a positive int .* or None, but got True$"),
    ({"plots": {"p": {"type": "line", "opts": {"markersize": -1}}}},
     r"plots.p.opts: Visdom's client rejects \{'markersize': -1\}: marker size should be a positive number"),
    ({"server": None, "timeout": 3}, r"timeout: a Visdom sender option, but server is None \(nothing is sent to "
                                     r"Visdom\); expected no Visdom options, or a server"),
    ({"phases": ["a"]}, r"phases: only used with presets, but the config names none; expected a `presets` key "
                        r"\(e.g. presets: loss\+acc\) or no `phases`$"),
    ({"preset_args": {"confusion": {"k": 3}}}, r"preset_args: only used with presets, .* or no `preset_args`$"),
    ({"presets": "loss", "plots": {"loss": {"type": "bar"}}},
     r"^config: plots.loss: already defined by preset 'loss'; expected a name that no preset uses$"),
    ({"presets": "lose"}, r"^config: presets: unknown preset 'lose' \(did you mean 'loss'"),
    ({"presets": 3}, r"^config: presets: expected preset names such as 'loss\+acc' or \['loss', 'acc'\], but got 3$"),
    ({"presets": "confusion", "preset_args": {"confusion": {"k": 2}}, "phases": "x",
      "meters": {"x_confusion": {"type": "ValueMeter", "target": "confusion_x"}}},
     r"meters.x_confusion: already defined by preset 'confusion'; expected a name that no preset uses"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        load_config(config)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("dup.yaml", "env: a\nplots:\n  loss: {type: line}\n  loss: {type: bar}\n",
     r"^.*dup.yaml: line 4: duplicate key 'loss' \(first at line 3\); expected each name once in a mapping$"),
    ("dup.json", '{"env": "a", "env": "b"}',
     r"^.*dup.json: duplicate key 'env' in one object; expected each name once$"),
    ("syntax.yaml", "plots: {loss: [\n",
     r"^.*syntax.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'$"),
    ("syntax.json", '{"env": }', r"^.*syntax.json:1:9: invalid JSON: Expecting value$"),
    ("list.yaml", "- env\n", r"^.*list.yaml: \(top level\): expected a mapping of config keys \(env, uid, .*\), "
                             r"but got list \['env'\]$"),
    ("conf.txt", "env: a\n", r"^config file '.*conf.txt': unknown suffix '.txt'; expected one of .yaml, .yml, .json$"),
])
def test_file_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FlexLogger.from_config(write(tmp_path / name, text), **OFFLINE)


def test_invalid_config_error_lists_problems_and_pickles() -> None:
    error = InvalidConfigError("c.yaml", ["env: bad", "port: bad"])
    assert str(error) == "c.yaml: 2 problems:\n  env: bad\n  port: bad" and isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.source, again.problems, str(again)) == ("c.yaml", ["env: bad", "port: bad"], str(error))


def test_missing_file_and_bad_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope.yaml' not found \(working directory: .*\); expected "
                                          r"the path of a .yaml, .yml or .json file"):
        FlexLogger.from_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"expected a config file path or a dict, but got int 5"):
        load_config(5)  # type: ignore[arg-type]
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"config file '.*dir.yaml' could not be read: Is a directory"):
        load_config(tmp_path / "dir.yaml")


def test_save_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): plots.p.opts: expected Visdom options that are JSON "
                                          r"\(str, numbers, lists, dicts\), but got \{'callback': <object"):
        FlexLogger({"p": {"type": "line", "opts": {"callback": object()}}}, {}, **OFFLINE)
    with pytest.raises(ConfigError, match=r"config.plots.p.opts.callback: object <object object at .*> cannot be "
                                          r"written to a config file; expected plain data"):
        save_config({"plots": {"p": {"type": "line", "opts": {"callback": object()}}}}, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"save_config: unknown suffix '.toml' of '.*c.toml'; expected one of "
                                          r".yaml, .yml, .json"):
        save_config({}, tmp_path / "c.toml")


def test_option_names_order() -> None:
    names = option_names()
    assert names[:5] == ["env", "uid", "server", "port", "log_dir"] and names[-2:] == ["plots", "meters"]
    assert "password" not in names  # a secret is never written to a config


def test_typed_options_are_the_option_table() -> None:
    """The ``**options`` types IDEs and mypy see (RunOptions, VisdomOptions) name exactly the table's options."""
    from typing import get_type_hints

    from flexlogger.config import options

    assert set(get_type_hints(options.RunOptions)) == set(options.names("run", "visdom"))
    assert set(get_type_hints(options.VisdomOptions)) == set(options.names("visdom"))
