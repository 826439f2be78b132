"""PyTorch Lightning: :class:`FlexLightningLogger` (a Lightning ``Logger``) and :class:`FlexLightningCallback`.

Example:
    >>> from flexlogger.integrations.lightning import FlexLightningCallback, FlexLightningLogger
    >>> logger = FlexLightningLogger(presets='loss+acc', env='mnist')    # or config='experiment.yaml'
    >>> trainer = L.Trainer(logger=logger, callbacks=[FlexLightningCallback(every=10)])
    >>> trainer.fit(model, train_loader, val_loader)                      # self.log('train_loss', loss) in the model

Works with ``lightning.pytorch`` (preferred) or ``pytorch_lightning``, whichever imports: pass its ``Trainer`` the
classes of this module (``flexlogger.integrations.lightning.pl`` is the package they were built against).
Install with ``pip install 'flexlogger[lightning]'``.

What goes where:
    - ``self.log(name, value)`` reaches :meth:`FlexLightningLogger.log_metrics` (Lightning calls it every
      ``log_every_n_steps`` and at epoch ends, with values it already reduced): a metric that names a meter of the
      config or presets feeds it (``train/loss`` feeds ``train_loss``), any other number gets a line window shared
      by its phases (``train_loss_epoch`` and ``val_loss`` share ``loss``; see
      :class:`~flexlogger.integrations.common.MetricRouter`), drawn at x = the global step. Lightning's ``epoch``
      entry is not drawn.
    - ``save_hyperparameters()`` / ``log_hyperparams`` -> the run's hyperparameters (``log_hparams``).
    - Meters that need batches (``train_acc`` of the ``acc`` preset takes logits and targets): feed them with
      ``self.logger.experiment.add({...})`` (the :class:`~flexlogger.core.logger.FlexLogger`) and log them yourself,
      e.g. ``self.logger.experiment.log(self.global_step, keys='train_acc')`` in ``on_train_epoch_end``.
    - Distributed: only rank 0 draws and writes the run (Lightning calls ``log_metrics`` on rank 0 only), so
      ``log()`` is never a collective call that could stall training. Values are as exact across ranks as
      Lightning makes them: ``self.log(..., sync_dist=True)`` averages the ranks' values; a torchmetrics ``Metric``
      logged with ``self.log('val_acc', self.val_acc)`` is synced state by state (exact).
    - ``finalize`` (the end of ``fit``/``validate``/``test``) closes the run: finished, or crashed when Lightning
      reports a failure. Logging again afterwards (``trainer.test`` after ``fit``) starts a new run.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from flexlogger.core.logger import FlexLogger
from flexlogger.integrations.common import Guard, MetricRouter, Recipe, import_framework, tooled_options
from flexlogger.model.logger import TooledModelLogger

pl = import_framework(("lightning.pytorch", "pytorch_lightning"), "lightning", "flexlogger.integrations.lightning")
_Logger: Any = pl.loggers.Logger
_Callback: Any = pl.callbacks.Callback
_rank_zero_only: Any = pl.utilities.rank_zero_only

__all__ = ["FlexLightningCallback", "FlexLightningLogger", "pl"]

DEFAULT_PHASES = ("train", "val", "test")


def _rank() -> int:
    return int(getattr(_rank_zero_only, "rank", 0) or 0)


class FlexLightningLogger(_Logger):  # type: ignore[misc]
    """A Lightning ``Logger`` that draws ``self.log(...)`` metrics in flexlogger windows and keeps the run record.

    Args:
        config: a config file or dict (plots, meters, options), as :meth:`FlexLogger.from_config` reads it.
        presets: preset names (``'loss+acc'``), made for ``phases``.
        phases: the phases presets are made for (Lightning's names: ``train``, ``val``, ``test``).
        preset_args: preset parameters, ``{'confusion': {'k': 10}}``.
        **run_options: FlexLogger options (``env``, ``uid``, ``server``, ``port``, ``log_dir``, ``strict``, ...),
            or ``run=`` a :class:`~flexlogger.core.run.Run` shared with other loggers (left open at ``finalize``).
            ``distributed`` is not an option: only rank 0 logs.

    The FlexLogger (:attr:`experiment`) is made when Lightning first asks for it (after it started its worker
    processes); everything is checked here, before training.

    Raises:
        InvalidConfigError: every problem of the config, presets and options, naming ``FlexLightningLogger()``.
        ConfigError: a bad ``run`` or ``config`` argument.
    """

    def __init__(self, config: str | Mapping[str, Any] | None = None, presets: str | Sequence[str] | None = None, *,
                 phases: Sequence[str] | str = DEFAULT_PHASES,
                 preset_args: Mapping[str, Mapping[str, Any]] | None = None, **run_options: Any) -> None:
        super().__init__()
        self._recipe = Recipe("FlexLightningLogger()", config, presets, phases, preset_args, run_options,
                              fixed={"distributed": "only rank 0 logs, with Lightning's reduced values"})
        self._guard = Guard("FlexLightningLogger")
        self._logger: FlexLogger | None = None
        self._router: MetricRouter | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to worker processes (``ddp_spawn``) without the FlexLogger: each process makes its own."""
        state = dict(self.__dict__)
        state["_logger"] = state["_router"] = None
        return state

    @property
    def experiment(self) -> FlexLogger:
        """The :class:`~flexlogger.FlexLogger` (made on first use, and again after ``finalize`` closed it; on
        ranks other than 0 its run writes nothing, so ``experiment.add()`` works in ``training_step`` on every
        rank)."""
        if self._logger is None or self._logger.closed:
            forced: dict[str, Any] = {"distributed": False}
            if _rank() > 0:
                forced["disabled"] = True
            self._logger = self._recipe.build(**forced)
        return self._logger

    def _routed(self) -> MetricRouter:
        """The router of the FlexLogger to write to (opening it if needed)."""
        logger = self.experiment
        if self._router is None or self._router.logger is not logger:
            self._router = MetricRouter(logger, self._guard)
        return self._router

    def _current(self) -> FlexLogger:
        """The FlexLogger last made (closed after ``finalize``), without opening a new run: for the properties."""
        return self._logger if self._logger is not None else self.experiment

    @property
    def name(self) -> str:
        """The Visdom env (as the run's folder spells it, so that ``save_dir/name/version`` is the run folder)."""
        run = self._current().run
        return run.dir.parent.name if run.dir is not None else run.env

    @property
    def version(self) -> str:
        """The run's folder name (its uid, or ``<uid>-2``... when a fixed uid was used before), or the uid."""
        run = self._current().run
        return run.dir.name if run.dir is not None else run.uid

    @property
    def save_dir(self) -> str | None:
        """The record's root folder (``log_dir``): Lightning's checkpoints go to ``<log_dir>/<env>/<version>``."""
        log_dir = self._current().run.log_dir
        return None if log_dir is None else str(log_dir)

    @property
    def root_dir(self) -> str | None:
        run = self._current().run
        return None if run.dir is None else str(run.dir.parent)

    @property
    def log_dir(self) -> str | None:
        """The run record's folder ``<log_dir>/<env>/<uid>``, or None without a record."""
        run_dir = self._current().run.dir
        return None if run_dir is None else str(run_dir)

    @_rank_zero_only  # type: ignore[untyped-decorator,misc]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Feed the metrics into their meters (or auto windows) and draw them at x = ``step``."""
        with self._guard.hook("log_metrics"):
            self._routed().route({k: v for k, v in metrics.items() if k != "epoch"}, step, "log_metrics")

    @_rank_zero_only  # type: ignore[untyped-decorator,misc]
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record the hyperparameters (``save_hyperparameters()``) with the run (``log_hparams``)."""
        with self._guard.hook("log_hyperparams"):
            self.experiment.log_hparams(params if isinstance(params, Namespace) else dict(params or {}))

    def save(self) -> None:
        """Nothing to do: every point is in the run record as soon as it is logged (Lightning calls this after
        every ``log_metrics``, so it must not wait on the network)."""

    def finalize(self, status: str) -> None:
        """Close the run: ``success`` -> finished, anything else (``failed``) -> crashed. A run given with ``run=``
        stays open (its owner closes it)."""
        logger = self._logger
        if logger is None or logger.closed:
            return
        with self._guard.hook("finalize"):
            if self._recipe.run is None and status != "success" and not logger.run.closed:
                logger.run.close("crashed" if status == "failed" else "interrupted")
            logger.close()

    def close(self) -> None:
        """Close the run now (as ``finalize('success')``)."""
        self.finalize("success")


class FlexLightningCallback(_Callback):  # type: ignore[misc]
    """Per-layer statistics of the LightningModule (a :class:`~flexlogger.model.logger.TooledModelLogger`),
    recorded after backward and before the optimizer step (Lightning's ``on_before_optimizer_step``: the gradients
    of the step, before Lightning's gradient clipping; the weights before the update), drawn at x = the global step
    in the windows of the trainer's :class:`FlexLightningLogger` (one run), on rank 0 only.

    Args:
        **options: TooledModelLogger options: ``mode``, ``stats`` (not ``update_ratio``), ``groups``,
            ``params``, ``layers``, ``every``, ``histograms``, ``bins``, ``anomaly``.

    Without a FlexLightningLogger in the trainer, the statistics go to a FlexLogger of their own (default options).

    Raises:
        UnknownNameError: an unknown option (with the closest valid names).
        ConfigError: ``update_ratio`` among ``stats``.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = tooled_options("FlexLightningCallback()", options)
        self.tooled: TooledModelLogger | None = None
        self._guard = Guard("FlexLightningCallback")

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0 or self.tooled is not None:
            return
        with self._guard.hook("on_fit_start"):
            flex = next((lg for lg in trainer.loggers if isinstance(lg, FlexLightningLogger)), None)
            shared = flex.experiment if flex is not None else None
            self.tooled = TooledModelLogger(pl_module, logger=shared, **self.options)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.tooled is not None:
            with self._guard.hook("on_before_optimizer_step"):
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
