"""PyTorch Lightning: :class:`FlexLightningLogger` (a Lightning ``Logger``) and :class:`FlexLightningCallback`.

Example:
    >>> from flexlogger.integrations.lightning import FlexLightningCallback, FlexLightningLogger
    >>> logger = FlexLightningLogger(presets='loss+acc', env='mnist')    # or config='experiment.yaml'
    >>> trainer = L.Trainer(logger=logger, callbacks=[FlexLightningCallback(every=10)])
    >>> trainer.fit(model, train_loader, val_loader)                      # self.log('train_loss', loss) in the model

Works with ``lightning.pytorch`` or ``pytorch_lightning``, whichever imports (``pl`` here is the one used).
Install with ``pip install 'flexlogger[lightning]'``.

Metrics are routed by :class:`~flexlogger.integrations.common.MetricRouter` (``train_loss_epoch`` and ``val_loss``
share a window ``loss``). Meters that need batches (``train_acc`` takes logits and targets) are fed with
``self.logger.experiment.add({...})`` and logged where you choose. Only rank 0 draws and writes: Lightning hands it
values already reduced across ranks (``sync_dist=True``, a torchmetrics ``Metric``), so ``log()`` is never a
collective call that could stall training.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flexlogger.core.logger import FlexLogger
from flexlogger.core.run import Run, default_uid
from flexlogger.defaults import DEFAULT_LOG_DIR
from flexlogger.errors import ConfigError, short_repr
from flexlogger.integrations.common import Guard, MetricRouter, Recipe, import_framework, plain_hparams, tooled_options
from flexlogger.model.logger import TooledModelLogger
from flexlogger.sinks.record import POINTS, _folder_name

pl = import_framework(("lightning.pytorch", "pytorch_lightning"), "lightning", "flexlogger.integrations.lightning")
_Logger: Any = pl.loggers.Logger
_Callback: Any = pl.callbacks.Callback
_rank_zero_only: Any = pl.utilities.rank_zero_only
_rank_zero_experiment: Any = pl.loggers.logger.rank_zero_experiment

__all__ = ["DEFAULT_NAME", "FlexLightningCallback", "FlexLightningLogger", "pl"]

DEFAULT_PHASES = ("train", "val", "test")
DEFAULT_NAME = "lightning_logs"  # Lightning's own loggers' default `name` (CSVLogger, TensorBoardLogger, MLFlowLogger)
PREFIX_JOIN = "-"  # Lightning's LOGGER_JOIN_CHAR: prefix="tmp" logs `loss` as `tmp-loss`


def _rank() -> int:
    return int(getattr(_rank_zero_only, "rank", 0) or 0)


def _free_folder(parent: Path, uid: str) -> str:
    """The folder name the run record will take under ``parent`` (``<uid>``, else ``<uid>-2``, ...: the first that
    does not exist or is empty), found without creating anything."""
    name = _folder_name(uid)
    for n in range(1, 10_000):
        candidate = parent / (name if n == 1 else f"{name}-{n}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate.name
    return name


def _lightning_options(caller: str, options: dict[str, Any], save_dir: str | Path | None, name: str | None,
                       version: int | str | None, prefix: str) -> dict[str, Any]:
    """Lightning's ``save_dir``/``name``/``version`` as the run options ``log_dir``/``env``/``uid``."""
    if not isinstance(prefix, str):
        raise ConfigError(f"{caller}: expected `prefix` to be a string (put before each metric name with "
                          f"'{PREFIX_JOIN}'), but got {type(prefix).__name__} {short_repr(prefix)}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, (int, str))):
        raise ConfigError(f"{caller}: expected `version` to be an int (version_<n>), a string or None, but got "
                          f"{type(version).__name__} {short_repr(version)}")
    given = {"save_dir": save_dir, "name": name, "version": version}
    if options.get("run") is not None:
        named = [k for k, v in given.items() if v is not None]
        if named:
            raise ConfigError(f"{caller}: {', '.join(named)}: options of the run, but a run was given (run=); "
                              "expected them on the Run (log_dir, env, uid), or no run=")
        return options
    for ours, theirs in (("log_dir", "save_dir"), ("env", "name"), ("uid", "version")):
        value = given[theirs]
        if value is None:
            continue
        if theirs == "version" and isinstance(value, int):
            value = f"version_{value}"
        if ours in options and options[ours] != value:
            raise ConfigError(f"{caller}: `{theirs}` is Lightning's name for `{ours}`, but both were given "
                              f"({theirs}={short_repr(given[theirs])}, {ours}={short_repr(options[ours])}); "
                              "expected one of them")
        options[ours] = value
    return options


class FlexLightningLogger(_Logger):  # type: ignore[misc]
    """A Lightning ``Logger`` that draws ``self.log(...)`` metrics in flexlogger windows and keeps the run record.

    Args:
        config: a config file or dict (plots, meters, options), as :meth:`FlexLogger.from_config` reads it.
        presets: preset names (``'loss+acc'``), made for ``phases``.
        phases: the phases presets are made for (Lightning's: ``train``, ``val``, ``test``).
        preset_args: preset parameters, ``{'confusion': {'k': 10}}``.
        save_dir: Lightning's name for ``log_dir``: the run is ``<save_dir>/<name>/<version>``.
        name: Lightning's name for ``env`` (default :data:`DEFAULT_NAME`, as Lightning's own loggers).
        version: Lightning's name for ``uid``: an int ``n`` is ``version_<n>``, a string is used as it is.
            Default: a new unique id.
        prefix: put in front of every metric name with ``-``, as Lightning's own loggers do.
        **run_options: FlexLogger options (``server``, ``port``, ``strict``, ...), or ``run=`` a
            :class:`~flexlogger.core.run.Run` shared with other loggers (left open at ``finalize``).
            ``distributed`` is not an option: only rank 0 logs.

    Reading :attr:`name`, :attr:`version`, :attr:`save_dir`, :attr:`root_dir` or :attr:`log_dir` starts nothing:
    the run starts at Lightning's ``log_graph`` call (the start of training), its first log, or at
    :attr:`experiment`. Hyperparameters logged before wait in the logger; under ``ddp_spawn`` they travel to the
    workers with it, and the workers' run is the folder :attr:`log_dir` names in the main process.

    Raises:
        InvalidConfigError: every problem of the config, presets and options, naming ``FlexLightningLogger()``.
        ConfigError: a bad ``run``, ``config``, ``name``, ``version``, ``save_dir`` or ``prefix`` argument.
    """

    def __init__(self, config: str | Mapping[str, Any] | None = None, presets: str | Sequence[str] | None = None, *,
                 phases: Sequence[str] | str = DEFAULT_PHASES,
                 preset_args: Mapping[str, Mapping[str, Any]] | None = None, save_dir: str | Path | None = None,
                 name: str | None = None, version: int | str | None = None, prefix: str = "",
                 **run_options: Any) -> None:
        super().__init__()
        caller = "FlexLightningLogger()"
        options = _lightning_options(caller, dict(run_options), save_dir, name, version, prefix)
        self._recipe = Recipe(caller, config, presets, phases, preset_args, options,
                              fixed={"distributed": "only rank 0 logs, with Lightning's reduced values"})
        self._prefix = prefix
        self._uid_fixed = "uid" in self._recipe.options
        self._uid: str = self._recipe.options.get("uid") or default_uid()
        root = self._root()
        self._folder = None if root is None else _free_folder(root, self._uid)
        self._pending: dict[str, Any] = {}  # hyperparameters logged before the run started
        self._guard = Guard("FlexLightningLogger")
        self._logger: FlexLogger | None = None
        self._router: MetricRouter | None = None

    def _root(self) -> Path | None:
        """``<log_dir>/<env>`` of the logger's own run, or None without a record."""
        log_dir = self._recipe.options.get("log_dir", DEFAULT_LOG_DIR)
        return None if log_dir is None else Path(log_dir) / _folder_name(self._env)

    @property
    def _env(self) -> str:
        return str(self._recipe.options.get("env", DEFAULT_NAME))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to worker processes (``ddp_spawn``) without the FlexLogger: each process makes its own, of the
        same run id."""
        return {**self.__dict__, "_logger": None, "_router": None}

    def _flex(self) -> FlexLogger:
        """The FlexLogger to write to: made on first use, and again after ``finalize`` closed it (a new run: a new
        id unless ``version``/``uid`` was given), with the hyperparameters logged before."""
        if self._logger is not None and not self._logger.closed:
            return self._logger
        forced: dict[str, Any] = {"distributed": False}
        if self._recipe.run is None:
            if self._logger is not None and not self._uid_fixed:
                self._uid = default_uid()
            forced.update(env=self._env, uid=self._uid)
        self._logger = logger = self._recipe.build(**forced)
        if logger.run.dir is not None:
            self._folder = logger.run.dir.name
        pending, self._pending = self._pending, {}
        if pending:
            self._write_hparams(logger, pending)
        return logger

    @property  # type: ignore[untyped-decorator,misc]
    @_rank_zero_experiment
    def experiment(self) -> FlexLogger:
        """The :class:`~flexlogger.FlexLogger` (made on first use). On other ranks than 0, Lightning's dummy
        experiment, whose every call does nothing."""
        return self._flex()

    def _run(self) -> Run | None:
        """The run of the logger, without starting one (None before start)."""
        return self._logger.run if self._logger is not None else self._recipe.run

    @property
    def name(self) -> str:
        """The Visdom env, as the run's folder spells it."""
        run = self._run()
        if run is None:
            return _folder_name(self._env)
        return run.dir.parent.name if run.dir is not None else run.env

    @property
    def version(self) -> str:
        """The run's folder name (its uid, or ``<uid>-2``... when the uid's folder is taken), or the uid."""
        run = self._run()
        if run is None:
            return self._folder or self._uid
        return run.dir.name if run.dir is not None else run.uid

    @property
    def save_dir(self) -> str | None:
        """The record's root folder (``log_dir``; also ``trainer.log_dir``), or None without a record. Lightning's
        checkpoints go to ``<save_dir>/<name>/<version>/checkpoints``: inside the run folder."""
        run = self._run()
        log_dir = self._recipe.options.get("log_dir", DEFAULT_LOG_DIR) if run is None else run.log_dir
        return None if log_dir is None else str(log_dir)

    @property
    def root_dir(self) -> str | None:
        """``<save_dir>/<name>``, or None without a record."""
        return None if self.save_dir is None else str(Path(self.save_dir, self.name))

    @property
    def log_dir(self) -> str | None:
        """The run record's folder ``<save_dir>/<name>/<version>``, or None without a record."""
        run = self._run()
        if run is not None:
            return None if run.dir is None else str(run.dir)
        return None if self.root_dir is None else str(Path(self.root_dir, self.version))

    def _routed(self) -> MetricRouter:
        logger = self._flex()
        if self._router is None or self._router.logger is not logger:
            self._router = MetricRouter(logger, self._guard)
        return self._router

    @_rank_zero_only  # type: ignore[untyped-decorator,misc]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Feed the metrics into their meters (or auto windows) and draw them at x = ``step``; with a ``prefix``,
        each name is ``<prefix>-<name>``."""
        with self._guard.hook("log_metrics"):
            values = {k: v for k, v in metrics.items() if k != "epoch"}
            if self._prefix:
                values = {f"{self._prefix}{PREFIX_JOIN}{k}": v for k, v in values.items()}
            self._routed().route(values, step, "log_metrics")

    @_rank_zero_only  # type: ignore[untyped-decorator,misc]
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace | None = None,
                        metrics: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        """Record the hyperparameters with the run (a key the record refuses is skipped with a warning); before
        the run started, they wait for it. ``metrics`` are logged at step 0, as Lightning's TensorBoard logger
        does."""
        with self._guard.hook("log_hyperparams"):
            given = plain_hparams(params if params is not None else {})
            if not isinstance(given, dict):
                raise ConfigError(f"expected `params` to be a dict or a Namespace, but got {type(params).__name__} "
                                  f"{short_repr(params)}")
            if self._logger is not None and not self._logger.closed:
                self._write_hparams(self._logger, given)
            else:
                self._pending.update(given)
        if metrics:
            self.log_metrics(dict(metrics), 0)

    def _write_hparams(self, logger: FlexLogger, params: dict[str, Any]) -> None:
        try:
            logger.run.log_hparams(params)
        except Exception:
            for key, value in params.items():  # keep every key the record takes
                with self._guard.hook(f"log_hyperparams[{key!r}]"):
                    logger.run.log_hparams({key: value})

    @_rank_zero_only  # type: ignore[untyped-decorator,misc]
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Start the run (Lightning calls this as training starts), so that the run folder is the record's before
        ``ModelCheckpoint`` writes into it. The graph itself is not drawn."""
        with self._guard.hook("log_graph"):
            self._flex()

    def save(self) -> None:
        """Nothing to do: every point is in the record as soon as it is logged (Lightning calls this after every
        ``log_metrics``, so it must not wait on the network)."""

    def finalize(self, status: str) -> None:
        """Close the run: ``success`` -> finished; ``failed`` -> ``interrupted`` on a ``KeyboardInterrupt``, else
        ``crashed`` with the exception. A run given with ``run=`` stays open. Hyperparameters still waiting go to a
        new run, unless ``ddp_spawn``'s workers (which got them with the pickled logger) made the run."""
        logger = self._logger
        if logger is None and self._pending and _rank() == 0:
            root = self._root()
            if self._recipe.run is None and root is not None and (root / self.version / POINTS).exists():
                self._pending = {}  # written by the workers
            else:
                with self._guard.hook("finalize"):
                    logger = self._flex()
        if logger is None or logger.closed:
            return
        with self._guard.hook("finalize"):
            if self._recipe.run is None and status != "success" and not logger.run.closed:
                error = sys.exc_info()[1]
                state = "interrupted" if isinstance(error, KeyboardInterrupt) else "crashed"
                logger.run.close(state, error)
            logger.close()

    def close(self) -> None:
        """Close the run now (as ``finalize('success')``)."""
        self.finalize("success")


class FlexLightningCallback(_Callback):  # type: ignore[misc]
    """Per-layer statistics of the LightningModule (a :class:`~flexlogger.model.logger.TooledModelLogger`),
    recorded after the optimizer step of each batch that stepped: the gradients the optimizer used (after
    Lightning's clipping), the weights after the update, and ``update_ratio``. Drawn at x = the step count, on rank 0
    only, in the run of the trainer's :class:`FlexLightningLogger` (without one, in a FlexLogger of their own).

    Args:
        **options: TooledModelLogger options (``mode``, ``stats``, ``groups``, ``every``, ...).

    Raises:
        UnknownNameError: an unknown option (with the closest valid names).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = tooled_options("FlexLightningCallback()", options)
        self.tooled: TooledModelLogger | None = None
        self._stepped = False  # the optimizer stepped in this batch (a batch that accumulates gradients does not)
        self._guard = Guard("FlexLightningCallback")

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0 or self.tooled is not None:
            return
        with self._guard.hook("on_fit_start"):
            flex = next((lg for lg in trainer.loggers if isinstance(lg, FlexLightningLogger)), None)
            shared = flex._flex() if flex is not None else None
            self.tooled = TooledModelLogger(pl_module, logger=shared, **self.options)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self._stepped = True

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the optimizer step, while the gradients are still in place (Lightning zeroes them in the next
        batch's closure)."""
        stepped, self._stepped = self._stepped, False
        if self.tooled is not None and stepped:
            with self._guard.hook("on_train_batch_end"):
                self.tooled.step(log=True)

    def _close(self) -> None:
        tooled, self.tooled = self.tooled, None
        if tooled is not None:
            with self._guard.hook("teardown"):
                tooled.close()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()
