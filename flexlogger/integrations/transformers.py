"""Hugging Face ``transformers``: :class:`FlexLoggerCallback`, a ``TrainerCallback``.

Example:
    >>> from flexlogger.integrations.transformers import FlexLoggerCallback
    >>> flex = FlexLoggerCallback(env='bert', tooled={'every': 10})
    >>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=val, callbacks=[flex])
    >>> trainer.train()
    >>> trainer.evaluate()     # the same run
    >>> flex.close()

Install with ``pip install 'flexlogger[transformers]'``. The callback acts on the main process only; each hook
says what it records. Metrics are renamed as the Trainer's own integrations name them (:func:`rewrite`) and routed
by :class:`~flexlogger.integrations.common.MetricRouter` at x = the global step (``train/loss`` and ``eval/loss``
share a window ``loss``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flexlogger.core.logger import FlexLogger
from flexlogger.errors import ConfigError, short_repr
from flexlogger.experiment.textdiff import markdown_table
from flexlogger.integrations.common import Guard, MetricRouter, Recipe, import_framework, plain_hparams, tooled_options
from flexlogger.model.logger import TooledModelLogger

transformers = import_framework(("transformers",), "transformers", "flexlogger.integrations.transformers")
_TrainerCallback: Any = transformers.TrainerCallback

__all__ = ["SINGLE_VALUES", "FlexLoggerCallback", "rewrite"]

DEFAULT_PHASES = ("train", "eval", "test")
# what the Trainer logs once, at the end of train(): the W&B integration's `single_value_scalars`
SINGLE_VALUES = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")
SUMMARY_PLOT = "train_summary"


def rewrite(logs: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer's metric names as its TensorBoard/W&B integrations write them: ``eval_x`` -> ``eval/x``,
    ``test_x`` -> ``test/x``, anything else ``x`` -> ``train/x``; ``epoch`` is left out."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        phase, sep, rest = key.partition("_")
        if phase in ("eval", "test") and sep:
            out[f"{phase}/{rest}"] = value
        elif key != "epoch":
            out["train/" + key] = value
    return out


class FlexLoggerCallback(_TrainerCallback):  # type: ignore[misc]
    """Draws a Hugging Face ``Trainer``'s metrics in flexlogger windows and keeps the run record.

    Args:
        config: a config file or dict (plots, meters, options), as :meth:`FlexLogger.from_config` reads it.
        presets: preset names (``'loss'``), made for ``phases`` (the Trainer's: ``train``, ``eval``, ``test``).
        tooled: TooledModelLogger options for per-layer statistics of the model (``{}`` for the defaults), or None.
        preset_args: preset parameters.
        **run_options: FlexLogger options (``env``, ``uid``, ``server``, ``port``, ``log_dir``, ...), or ``run=`` a
            :class:`~flexlogger.core.run.Run` shared with other loggers (left open).

    Attributes:
        logger: the :class:`~flexlogger.core.logger.FlexLogger` (None before training starts).
        tooled: the :class:`~flexlogger.model.logger.TooledModelLogger` while training, or None.

    Raises:
        InvalidConfigError: every problem of the config, presets and options, naming ``FlexLoggerCallback()``.
        ConfigError: a bad ``run``, ``config`` or ``tooled`` argument.
        UnknownNameError: a ``tooled`` option TooledModelLogger does not have.
    """

    def __init__(self, config: str | Mapping[str, Any] | None = None, presets: str | Sequence[str] | None = None,
                 tooled: Mapping[str, Any] | None = None, *, phases: Sequence[str] | str = DEFAULT_PHASES,
                 preset_args: Mapping[str, Mapping[str, Any]] | None = None, **run_options: Any) -> None:
        caller = "FlexLoggerCallback()"
        self._recipe = Recipe(caller, config, presets, phases, preset_args, run_options,
                              fixed={"distributed": "the main process logs the Trainer's gathered metrics"})
        if tooled is not None and not isinstance(tooled, Mapping):
            raise ConfigError(f"{caller}: expected `tooled` to be a dict of TooledModelLogger options (e.g. "
                              f"{{'every': 10}}, or {{}} for the defaults) or None, but got {type(tooled).__name__} "
                              f"{short_repr(tooled)}")
        self._tooled_options = None if tooled is None else tooled_options(caller, tooled)
        self._guard = Guard("FlexLoggerCallback")
        self.logger: FlexLogger | None = None
        self.tooled: TooledModelLogger | None = None
        self._router: MetricRouter | None = None
        self._logged: dict[str, int] = {}  # metric -> the global step on_log drew it at
        self._summary: dict[str, Any] = {}  # the end-of-training values of the run

    def _open(self) -> MetricRouter:
        """The router of the FlexLogger to write to, made on first use and again after the run was closed."""
        if self.logger is None or self.logger.closed or self._router is None:
            self.logger = self._recipe.build(distributed=False)
            self._router = MetricRouter(self.logger, self._guard)
            self._logged, self._summary = {}, {}
        return self._router

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """The ``TrainingArguments`` and the model's config (under ``model_config``, also shown as JSON in a window
        ``model_config``) become the run's hyperparameters, as the W&B, MLflow and TensorBoard integrations keep
        them; ``model/num_parameters`` goes to ``summary.json``. With ``tooled=``, the statistics start."""
        if not state.is_world_process_zero:
            return
        with self._guard.hook("on_train_begin"):
            run = self._open().logger.run
            hparams: dict[str, Any] = dict(args.to_sanitized_dict())
            config = getattr(model, "config", None)
            if config is not None:
                hparams["model_config"] = plain_hparams(config if isinstance(config, dict) else config.to_dict())
            run.log_hparams(hparams)
            if config is not None and not isinstance(config, dict):
                run.log_text("model_config", config.to_json_string())
            if callable(getattr(model, "num_parameters", None)):
                run.add_to_summary("model/num_parameters", int(model.num_parameters()))
        if self._tooled_options is not None and model is not None and self.tooled is None:
            with self._guard.hook("on_train_begin"):
                self.tooled = TooledModelLogger(model, logger=self.logger, **self._tooled_options)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        """The metrics; the end-of-training values (:data:`SINGLE_VALUES`), one number per run, go to
        ``summary.json`` and one table window ``train_summary``, as the W&B integration keeps them."""
        if not state.is_world_process_zero or not logs:
            return
        with self._guard.hook("on_log"):
            router = self._open()
            once = {k: v for k, v in logs.items() if k in SINGLE_VALUES}
            if once:
                self._summarise(router.logger, once)
            values = rewrite({k: v for k, v in logs.items() if k not in SINGLE_VALUES})
            router.route(values, state.global_step, "on_log")
            self._logged.update(dict.fromkeys(values, state.global_step))

    def _summarise(self, logger: FlexLogger, values: Mapping[str, Any]) -> None:
        """End-of-training values: into ``summary.json`` and the one ``train_summary`` table."""
        run = logger.run
        for key, value in values.items():
            run.add_to_summary(key, float(value) if isinstance(value, (int, float)) else value)
        self._summary.update(values)
        run.log_markdown(SUMMARY_PLOT, markdown_table(["value", ""], [[k, v] for k, v in self._summary.items()]))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        """The evaluation's metrics, unless ``on_log`` drew them at this step already (the Trainer hands them to
        both hooks)."""
        if not state.is_world_process_zero or not metrics:
            return
        with self._guard.hook("on_evaluate"):
            step = state.global_step
            fresh = {k: v for k, v in rewrite(metrics).items() if self._logged.get(k) != step}
            if fresh:
                self._open().route(fresh, step, "on_evaluate")
                self._logged.update(dict.fromkeys(fresh, step))

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> None:
        """``trainer.predict()``'s metrics (``test_loss`` -> ``test/loss``), at x = the global step."""
        if not state.is_world_process_zero or not metrics:
            return
        with self._guard.hook("on_predict"):
            self._open().route(rewrite(metrics), state.global_step, "on_predict")

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The per-layer statistics of the step, before the Trainer zeroes the gradients."""
        if self.tooled is not None:
            with self._guard.hook("on_optimizer_step"):
                self.tooled.step(log=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The statistics' hooks come off the model and the run is flushed; it stays open for ``evaluate()`` and
        ``predict()`` until :meth:`close` (or the end of the program)."""
        tooled, self.tooled = self.tooled, None
        if tooled is not None:
            with self._guard.hook("on_train_end"):
                tooled.close()
        logger = self.logger
        if logger is not None and not logger.closed:
            with self._guard.hook("on_train_end"):
                logger.run.flush()

    def close(self) -> None:
        """Close the run (finished) if the callback made it; a run given with ``run=`` stays open."""
        logger = self.logger
        if logger is not None and not logger.closed:
            with self._guard.hook("close"):
                logger.close()
