"""The ``flexlogger`` command: ``serve``, ``presets``, ``preset-info``, ``meters``, ``plots``, ``replay``,
``compare``, ``ingest``, ``demo``, ``import``; each is a function declared with its arguments by ``@_command``.

``main(argv)`` returns the exit code instead of exiting, so tests call it in-process:

    >>> from flexlogger.tools.cli import main
    >>> main(["meters"])                     # doctest: +SKIP
    0

Exit codes: 0 success, 1 a runtime failure (server died, npm failed), 2 bad arguments (unknown
subcommand, option or name), each reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from flexlogger import defaults
from flexlogger.config.presets import preset_info, preset_names, split_names
from flexlogger.config.registry import meter_info, meter_types, plot_info, plot_types
from flexlogger.defaults import DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import ConfigError, FlexLoggerError
from flexlogger.sinks.visdom.auth import PASSWORD_VAR, USERNAME_VAR
from flexlogger.tools.assets import AssetError, ensure_assets
from flexlogger.tools.compare import compare, hparams_table
from flexlogger.tools.ingest import IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_MODELS, SYNC_TIMEOUT, TIMEOUT, IngestServer
from flexlogger.tools.replay import replay
from flexlogger.tools.server import check_port, start_server

__all__ = ["main"]

PROG = "flexlogger"


class _UsageError(Exception):
    """Bad command-line arguments (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``flexlogger serve: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def _format(value: Any) -> str:
    """A value on one line: strings as they are, lists of scalars comma-separated, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value) or "(none)"
    return json.dumps(value, default=str)


def _info_lines(info: dict[str, Any], indent: int = 0, width: int = 110) -> list[str]:
    """``key: value`` lines; a dict too long for one line continues on indented lines below its key."""
    pad = " " * indent
    keys = max((len(str(k)) for k in info), default=0) + 1
    lines = []
    for key, value in info.items():
        text = _format(value)
        if isinstance(value, dict) and value and indent + keys + 1 + len(text) > width:
            lines.append(f"{pad}{key}:")
            lines += _info_lines(value, indent + 2, width)
        else:
            lines.append(f"{pad}{str(key) + ':':<{keys}} {text}")
    return lines


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    # imported here: a broken install without tabulate gets one line naming it (see main), not a traceback
    from tabulate import tabulate

    return str(tabulate(rows, headers=headers, tablefmt="simple", maxcolwidths=[None] + [70] * (len(headers) - 1)))


# --- argument types and the subcommand table ---------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {port}")
    return port


def _positive(kind: Callable[[str], float], what: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` when it is a finite number > 0, else an error saying ``what`` was expected."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _positive(int, "a positive integer")
_positive_float = _positive(float, "a positive number of seconds")

_Argument = tuple[tuple[str, ...], dict[str, Any]]
_Run = Callable[[argparse.Namespace], int]


def _arg(*flags: str, **options: Any) -> _Argument:
    """One argument of a subcommand: what ``ArgumentParser.add_argument`` takes."""
    return flags, options


@dataclass(frozen=True)
class _Command:
    """A subcommand: the function that runs it, its help line and description, its arguments."""

    run: _Run
    help: str
    description: str
    arguments: tuple[_Argument, ...]


_COMMANDS: dict[str, _Command] = {}  # the subcommands, in the order `flexlogger --help` lists them


def _command(name: str, help: str, description: str, *arguments: _Argument) -> Callable[[_Run], _Run]:
    """Make the decorated function the subcommand ``name``, with its help line, description and arguments."""
    def register(run: _Run) -> _Run:
        _COMMANDS[name] = _Command(run, help, description, arguments)
        return run
    return register


# the arguments several subcommands share
_LOG_DIR = _arg("--log-dir", type=Path, default=None, help="run records root (default: $FLEXLOGGER_LOG_DIR, else runs)")
_SERVER = _arg("--server", default=DEFAULT_SERVER,
               help="Visdom server address (default: $FLEXLOGGER_SERVER, else %(default)s)")
_PORT = _arg("--port", type=_port, default=DEFAULT_PORT,
             help="Visdom server port (default: $FLEXLOGGER_PORT, else %(default)s)")
_FOLLOW_POLL = _arg("--poll", type=_positive_float, default=0.5,
                    help="seconds between reads when following (default: %(default)s)")
_USERNAME = _arg("--username", default=None, help="the login of a Visdom server that demands one (default: "
                                                  "$VISDOM_USERNAME); the password comes from $VISDOM_PASSWORD")


# --- subcommands -------------------------------------------------------------------------------------------


@_command("serve", "start a Visdom server (installs its web assets from npm when missing)",
          "Start a Visdom server in the foreground; Ctrl-C stops it.",
          _arg("--port", type=_port, default=DEFAULT_PORT, help="port to listen on (default: %(default)s)"),
          _arg("--env-path", type=Path, default=None, help="folder where envs are saved (default: ~/.visdom)"),
          _arg("--public", action="store_true",
               help="listen on all interfaces, not only localhost; demands a login: the password from "
                    "VISDOM_PASSWORD or a prompt, the username from VISDOM_USERNAME or --username"),
          _arg("--username", default=None, help="the login's username (default: $VISDOM_USERNAME); "
                                                "the password is never an argument"),
          _arg("--login", action="store_true", help="demand a login on a localhost server too"),
          _arg("--no-login", action="store_true",
               help="with --public: serve without a login (anyone on the network can read and delete every env)"),
          _arg("--base-url", default="", metavar="/PREFIX",
               help="serve every page under this path, e.g. /visdom behind a reverse proxy"),
          _arg("--no-assets", action="store_true", help="do not install missing web assets from npm"),
          _arg("--ingest-port", type=_port, default=None, metavar="P",
               help="also take pastalog points on port P (see `flexlogger ingest`)"),
          _arg("--log-dir", type=Path, default=None,
               help="with --ingest-port: run records root (default: $FLEXLOGGER_LOG_DIR, else runs)"))
def _cmd_serve(args: argparse.Namespace) -> int:
    login = _serve_login(args)  # before anything starts: a refused login starts nothing
    # before installing assets: no npm download for a server that cannot start
    check_port(args.port, args.public, hint=f"expected a free port, e.g. --port {_other_port(args.port)}")
    if not args.no_assets:
        try:
            installed = ensure_assets()
            if installed:
                print(f"Installed {len(installed)} Visdom web assets from the npm registry.", flush=True)
        except AssetError as exc:
            print(f"{PROG} serve: warning: {exc} The server still accepts plots, but its page will be blank.",
                  file=sys.stderr, flush=True)
    with _sigterm_as_interrupt():
        with warnings.catch_warnings():  # --public --no-login: said below, in the CLI's words
            warnings.filterwarnings("ignore", r"start_server\(\): public=True without a login", RuntimeWarning)
            server = start_server(port=args.port, env_path=args.env_path, public=args.public,
                                  base_url=args.base_url, username=login[0] if login else None,
                                  password=login[1] if login else None)
        if args.public and login is None:
            print(_NO_LOGIN_WARNING.format(prog=f"{PROG} serve", port=server.port, env_path=server.env_path),
                  file=sys.stderr, flush=True)
        ingest = None
        try:
            ingest = _start_ingest(args, server.port, login)
            who = f", login as {server.username!r}" if server.login else ""
            print(f"Visdom server running at {server.address} (envs saved in {server.env_path}, log "
                  f"{server.log_path}{who}). Press Ctrl-C to stop it.", flush=True)
            while server.running():
                time.sleep(0.2)
            print(f"{PROG} serve: error: the Visdom server exited. Its log ends with:\n{server.log_tail()}",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("Stopping the Visdom server.", flush=True)
            return 0
        finally:
            if ingest is not None:
                ingest.stop()
            server.stop()


_NO_LOGIN_WARNING = ("{prog}: warning: --public --no-login: anyone who can reach port {port} of this machine can "
                     "read, change and delete every env of this server (envs saved in {env_path}).")


def _serve_login(args: argparse.Namespace) -> tuple[str, str] | None:
    """The login a served Visdom demands: ``--public`` needs one unless ``--no-login``; never read from argv."""
    username = args.username or os.environ.get(USERNAME_VAR) or None
    wanted = args.login or (args.public and not args.no_login) or args.username is not None
    if not wanted:
        return None
    if args.no_login:
        raise ConfigError("--no-login contradicts --login and --username; drop one of them.")
    how = (f"set {USERNAME_VAR} (or pass --username) and {PASSWORD_VAR}, or run it in a terminal to be asked for "
           "the password")
    password = (os.environ.get(PASSWORD_VAR) or None) if username else None
    if username and password is None and sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(f"Password for Visdom user {username!r}: ") or None
    if not username or password is None:
        raise ConfigError(f"serving {'on every interface (--public) ' if args.public else ''}needs a login, but no "
                          f"{'password' if username else 'username'} was given: {how}; --public --no-login serves "
                          "without a login.")
    return username, password


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop ``serve`` like Ctrl-C does, so the server child is always stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_ingest(args: argparse.Namespace, visdom_port: int, login: tuple[str, str] | None) -> Any:
    """``serve --ingest-port P``: the pastalog endpoint beside the Visdom server (None without the option)."""
    if args.ingest_port is None:
        return None
    ingest = IngestServer(args.ingest_port, public=args.public, visdom_port=visdom_port, log_dir=args.log_dir,
                          base_url=args.base_url, username=login[0] if login else None,
                          password=login[1] if login else None)
    ingest.start()
    print(f"Taking pastalog points at {ingest.url} (records under {args.log_dir}).", flush=True)
    return ingest


def _other_port(port: int) -> int:
    return port + 1 if port < 65535 else port - 1


@_command("presets", "list the logger presets", "List the presets and their source.")
def _cmd_presets(args: argparse.Namespace) -> int:
    print(_table(sorted([name, str(source)] for name, source in dict(preset_names()).items()), ["preset", "source"]))
    return 0


@_command("preset-info", "show a preset's plots and meters", "Show one preset.",
          _arg("name", help="a preset name, e.g. acc, or several joined by '+', e.g. loss+acc"))
def _cmd_preset_info(args: argparse.Namespace) -> int:
    infos = [dict(preset_info(name)) for name in split_names(args.name)]  # every name checked first
    print("\n\n".join("\n".join(_info_lines(info)) for info in infos))
    return 0


def _list_or_info(info: Callable[[str], Any], types: Callable[[], list[str]], name: str | None,
                  summary: Callable[[dict[str, Any]], list[Any]], headers: list[str]) -> int:
    """``flexlogger meters`` and ``plots``: the info of type ``name``, or a table of every type's ``summary``."""
    if name is not None:
        print("\n".join(_info_lines(dict(info(name)))))
        return 0
    rows = [[type_name, *summary(dict(info(type_name)))] for type_name in types()]
    print(_table(rows, headers))
    return 0


@_command("meters", "list the meter types, or describe one",
          "List the meter types, or describe NAME: what add() takes and what it plots.",
          _arg("name", nargs="?", help="a meter type, e.g. ClassErrorMeter"))
def _cmd_meters(args: argparse.Namespace) -> int:
    return _list_or_info(meter_info, meter_types, args.name, lambda i: [i.get("add", ""), i.get("plots", "")],
                         ["meter type", "add", "plots"])


@_command("plots", "list the plot types, or describe one",
          "List the plot types, or describe NAME: what it draws and which meters it takes.",
          _arg("name", nargs="?", help="a plot type, e.g. line"))
def _cmd_plots(args: argparse.Namespace) -> int:
    return _list_or_info(plot_info, plot_types, args.name,
                         lambda i: [_format(i.get("views", "")), i.get("description", "")],
                         ["plot type", "views", "description"])


@_command("replay", "send a recorded run to a Visdom server",
          "Replay a run record folder (written with log_dir=...) to a Visdom server.",
          _arg("run_dir", type=Path, help="the run record folder"),
          _arg("--env", default=None, help="env to replay into (default: the recorded env)"),
          _arg("--follow", action="store_true",
               help="keep drawing the lines appended to points.jsonl (by the run or any program) until the run "
                    "finishes or Ctrl-C"),
          _SERVER, _PORT, _FOLLOW_POLL, _USERNAME)
def _cmd_replay(args: argparse.Namespace) -> int:
    if args.follow:
        print(f"Following {args.run_dir}: drawing what is appended to it until the run finishes (Ctrl-C stops).",
              flush=True)
    with _stop_on_signals() if args.follow else nullcontext() as stop:  # without --follow, Ctrl-C interrupts
        result = replay(args.run_dir, server=args.server, port=args.port, env=args.env, follow=args.follow,
                        poll=args.poll, stop=stop, username=args.username)
    print(f"Replayed {args.run_dir} to {args.server}:{args.port}: {result}")
    return 0


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) and SIGTERM set, so that following stops cleanly (the last points drawn)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


@_command("compare", "draw several runs' plots in one env, and a table of their hparams",
          "Draw the chosen plots of several run records in one env, one trace per run and meter (<run>/<meter>), "
          "and a table of the runs' hparams and best/last values.",
          _arg("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run record folders"),
          _arg("--plots", default=None, help="comma-separated plots to draw (default: those every run has)"),
          _arg("--names", default=None, help="comma-separated run names, one per RUN_DIR (default: the uids)"),
          _arg("--meters", default=None, help="comma-separated meters of the table, names or patterns "
                                              "('*.Weights.std'); default: every one but the per-layer statistics "
                                              "of a TooledModelLogger"),
          _arg("--all", action="store_true", help="the table shows the per-layer statistics too"),
          _arg("--env", default=None, help="env to draw into (default: compare)"),
          _arg("--follow", action="store_true", help="keep drawing while the runs write, until they finish"),
          _arg("--table", action="store_true", help="print the hparams table (no server needed) and exit"),
          _arg("--sort", default=None, metavar="METER", help="sort the table by METER's best value"),
          _SERVER, _PORT, _FOLLOW_POLL, _USERNAME)
def _cmd_compare(args: argparse.Namespace) -> int:
    plots, names, meters = _names(args.plots), _names(args.names), _names(args.meters)
    if args.table:
        print(hparams_table(args.run_dirs, meters=meters, names=names, sort=args.sort, plots=plots,
                            all_meters=args.all).text())
        return 0
    if args.follow:
        print(f"Following {len(args.run_dirs)} run(s) until they finish (Ctrl-C stops).", flush=True)
    with _stop_on_signals() if args.follow else nullcontext() as stop:  # without --follow, Ctrl-C interrupts
        result = compare(args.run_dirs, plots=plots, names=names, env=args.env, server=args.server,
                         port=args.port, follow=args.follow, meters=meters, all_meters=args.all, sort=args.sort,
                         poll=args.poll, stop=stop, username=args.username)
    print(f"Compared {result} at {args.server}:{args.port}")
    return 0


@_command("ingest", "take pastalog points over HTTP (POST /data) as runs",
          "Listen for pastalog's POST /data points: each modelName becomes a run, each pointType a plot; localhost "
          "only unless --public.",
          _arg("--port", type=_port, default=8120, help="port to listen on (default: %(default)s)"),
          _arg("--visdom-port", type=_port, default=DEFAULT_PORT, help="the Visdom server's port (default: "
                                                                       "$FLEXLOGGER_PORT, else %(default)s)"),
          _SERVER, _LOG_DIR,
          _arg("--env", default="ingest", help="Visdom env of the runs (default: %(default)s)"),
          _arg("--public", action="store_true", help="listen on all interfaces, not only localhost"),
          _arg("--max-connections", type=_positive_int, default=MAX_CONNECTIONS, metavar="N",
               help="connections served at once; more are answered 503 (default: %(default)s)"),
          _arg("--max-models", type=_positive_int, default=MAX_MODELS, metavar="N",
               help="models open at once; a point of one more is answered 503 (default: %(default)s)"),
          _arg("--timeout", type=_positive_float, default=TIMEOUT, metavar="S",
               help="seconds a connection may stay silent before it is closed (default: %(default)s)"),
          _arg("--sync-timeout", type=_positive_float, default=SYNC_TIMEOUT, metavar="S",
               help="seconds a point may take to reach the disk before the answer is 503 (default: %(default)s)"),
          _arg("--idle-timeout", type=_positive_float, default=IDLE_TIMEOUT, metavar="S",
               help="seconds without a point after which a model's run is closed; its next point reopens it "
                    "(default: %(default)s)"))
def _cmd_ingest(args: argparse.Namespace) -> int:
    ingest = IngestServer(args.port, public=args.public, env=args.env, server=args.server,
                          visdom_port=args.visdom_port, log_dir=args.log_dir, max_connections=args.max_connections,
                          max_models=args.max_models, timeout=args.timeout, sync_timeout=args.sync_timeout,
                          idle_timeout=args.idle_timeout)
    with _stop_on_signals() as stop:
        ingest.start()
        try:
            print(f"Taking pastalog points at {ingest.url} (runs in env {args.env!r} of the Visdom server at "
                  f"{args.server}:{args.visdom_port}, records under {args.log_dir}). Ctrl-C stops.", flush=True)
            stop.wait()
        finally:
            ingest.stop()
    print(f"Stopped: {ingest.points} point(s) taken, {ingest.refused} request(s) refused.")
    return 0


@_command("demo", "train a small CNN on the digits data set, logging to a local server",
          "Run the demo: starts (or reuses) a local Visdom server, which keeps running.",
          _PORT,
          _arg("--epochs", type=_positive_int, default=None, help="number of epochs"),
          _arg("--env", default=None, help="Visdom env to log into"))
def _cmd_demo(args: argparse.Namespace) -> int:
    argv = ["--port", str(args.port)]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    if args.env is not None:
        argv += ["--env", args.env]
    # imported here: the demo needs its extra (scikit-learn), which every other command does without
    from flexlogger.tools import demo

    return int(demo.main(argv) or 0)


@_command("import", "turn TensorBoard event files, Lightning CSVLogger folders or CSV files into run records",
          "Import old runs as run records that replay and compare read: TensorBoard event folders (pip install "
          "'flexlogger[tensorboard]'), Lightning CSVLogger folders (metrics.csv, hparams.yaml), CSV files with a "
          "step column; a folder of several imports each.",
          _arg("paths", nargs="+", type=Path, metavar="PATH",
               help="event folders or files, Lightning folders, CSV files, or folders of them"),
          _LOG_DIR,
          _arg("--env", default="imported", help="env of the records and windows (default: %(default)s)"),
          _arg("--server", default=None, help="draw each run on this Visdom server as it is imported (default: "
                                              "$FLEXLOGGER_SERVER when set, else none: the records only)"),
          _PORT)
def _cmd_import(args: argparse.Namespace) -> int:
    from flexlogger.tools.importer import import_runs

    server = args.server if args.server is not None else (
        defaults.server() if os.environ.get(defaults.SERVER_VAR, "").strip() else None)
    results = import_runs(args.paths, log_dir=args.log_dir, env=args.env, server=server, port=args.port)
    for result in results:
        print(f"{result.source} ({result.kind}) -> {result.run_dir}: {result.points} point(s)"
              + (f" drawn on {server}:{args.port} in env {args.env}" if server else ""))
        for problem in result.problems:
            print(f"  problem: {problem}", file=sys.stderr)
    return 1 if any(r.problems for r in results) else 0


# --- the command -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``flexlogger`` argument parser (one subparser per subcommand)."""
    parser = _Parser(prog=PROG, description="Declarative torchnet meters and Visdom plots for PyTorch training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        for flags, options in command.arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(func=command.run)
    return parser


def _env_defaults(args: argparse.Namespace) -> None:
    """Options left at their defaults take $FLEXLOGGER_SERVER, $FLEXLOGGER_PORT and $FLEXLOGGER_LOG_DIR when set
    (read now, so a bad value is an error of the command that needs it, naming the variable)."""
    for option, attr in (("server", "server"), ("port", "port"), ("port", "visdom_port")):
        if hasattr(args, attr):
            setattr(args, attr, defaults.resolve(option, getattr(args, attr)))
    if hasattr(args, "log_dir") and args.log_dir is None:
        args.log_dir = Path(defaults.log_dir())


# module -> (pip name, flexlogger extra that installs it; None: a dependency of flexlogger itself)
_PACKAGES: dict[str, tuple[str, str | None]] = {
    "sklearn": ("scikit-learn", "demo"), "tqdm": ("tqdm", "demo"), "tensorboard": ("tensorboard", "tensorboard"),
    "ignite": ("pytorch-ignite", "bench"), "playwright": ("playwright", "test"), "torch": ("torch", None),
    "visdom": ("visdom", None), "torchnet": ("torchnet", None), "tabulate": ("tabulate", None),
    "yaml": ("pyyaml", None), "numpy": ("numpy", None), "tornado": ("tornado", None)}


def _missing_package(prog: str, exc: ModuleNotFoundError) -> str:
    """``flexlogger demo needs scikit-learn: pip install 'flexlogger[demo]'`` for the module ``exc`` names."""
    module = (exc.name or "").split(".")[0]
    name, extra = _PACKAGES.get(module, (module or "a missing package", None))
    if extra is not None:
        return f"{prog} needs {name}: pip install 'flexlogger[{extra}]'"
    return f"{prog} needs {name}, which flexlogger depends on ({exc}): reinstall it with `pip install flexlogger`"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flexlogger`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    prog = f"{PROG} {args.command}"
    try:
        _env_defaults(args)
        return int(args.func(args))
    except ModuleNotFoundError as exc:  # an optional package (or a broken install): one line, no traceback
        print(_missing_package(prog, exc), file=sys.stderr)
        return 1
    except BrokenPipeError:  # `flexlogger presets | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush from failing again
        return 0
    except (FlexLoggerError, RuntimeError, OSError) as exc:
        # our ValueError/KeyError kinds (unknown preset, meter or plot name, no run record) are argument errors
        bad_argument = isinstance(exc, FlexLoggerError) and isinstance(exc, (ValueError, KeyError))
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2 if bad_argument else 1
