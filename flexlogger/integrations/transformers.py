"""Hugging Face ``transformers``: :class:`FlexLoggerCallback`, a ``TrainerCallback``.

Example:
    >>> from flexlogger.integrations.transformers import FlexLoggerCallback
    >>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
    ...                   callbacks=[FlexLoggerCallback(env='bert', tooled={'every': 10})])
    >>> trainer.train()

Install with ``pip install 'flexlogger[transformers]'``.

What goes where (on the main process only, ``state.is_world_process_zero``):
    - ``on_train_begin``: the run's hyperparameters are the ``TrainingArguments`` (``log_hparams``), and with
      ``tooled=`` a :class:`~flexlogger.model.logger.TooledModelLogger` starts watching the model.
    - ``on_log`` and ``on_evaluate``: the metrics, renamed as the Trainer's own TensorBoard and W&B integrations
      name them (``loss`` -> ``train/loss``, ``eval_loss`` -> ``eval/loss``, ``test_acc`` -> ``test/acc``), feed the
      meters of the config or presets (``train/loss`` feeds a ``train_loss`` meter) or get a line window shared by
      their phases (``train/loss`` and ``eval/loss`` share ``loss``), at x = the global step. The Trainer hands the
      evaluation's metrics to both hooks: they are drawn once. ``epoch`` is not drawn.
    - ``on_pre_optimizer_step``: the per-layer statistics of the step, after the Trainer clipped the gradients
      (the gradients the optimizer uses) and before the update, drawn at x = the global step.
    - ``on_train_end``: the statistics' hooks come off the model and the run is closed (finished). Metrics logged
      after that (``trainer.evaluate()`` after ``train()``) go to a new run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flexlogger.core.logger import FlexLogger
from flexlogger.errors import ConfigError, short_repr
from flexlogger.integrations.common import Guard, MetricRouter, Recipe, import_framework, tooled_options
from flexlogger.model.logger import TooledModelLogger

transformers = import_framework(("transformers",), "transformers", "flexlogger.integrations.transformers")
_TrainerCallback: Any = transformers.TrainerCallback

__all__ = ["FlexLoggerCallback", "rewrite"]

DEFAULT_PHASES = ("train", "eval", "test")
_PREFIXES = (("eval_", "eval/"), ("test_", "test/"))


def rewrite(logs: Mapping[str, Any]) -> dict[str, Any]:
    """The Trainer's metric names as its TensorBoard/W&B integrations write them: ``eval_x`` -> ``eval/x``,
    ``test_x`` -> ``test/x``, anything else ``x`` -> ``train/x``; ``epoch`` is left out."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if key == "epoch":
            continue
        for old, new in _PREFIXES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out["train/" + key] = value
    return out


class FlexLoggerCallback(_TrainerCallback):  # type: ignore[misc]
    """Draws a Hugging Face ``Trainer``'s metrics in flexlogger windows and keeps the run record.

    Args:
        config: a config file or dict (plots, meters, options), as :meth:`FlexLogger.from_config` reads it.
        presets: preset names (``'loss'``), made for ``phases``.
        tooled: per-layer statistics of the model: TooledModelLogger options (``{'every': 10, 'stats': ('norm',)}``;
            ``{}`` for the defaults), or None for none.
        phases: the phases presets are made for (the Trainer's: ``train``, ``eval``, ``test``).
        preset_args: preset parameters.
        **run_options: FlexLogger options (``env``, ``uid``, ``server``, ``port``, ``log_dir``, ...), or ``run=`` a
            :class:`~flexlogger.core.run.Run` shared with other loggers (left open at the end of training).

    Attributes:
        logger: the :class:`~flexlogger.core.logger.FlexLogger` (None before training starts).
        tooled: the :class:`~flexlogger.model.logger.TooledModelLogger` while training, or None.

    Raises:
        InvalidConfigError: every problem of the config, presets and options, naming ``FlexLoggerCallback()``.
        ConfigError: a bad ``run``, ``config`` or ``tooled`` argument (``update_ratio`` cannot be measured before
            the optimizer step).
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

    def _open(self) -> MetricRouter:
        """The router of the FlexLogger to write to, made on first use and again after the run was closed."""
        if self.logger is None or self.logger.closed or self._router is None:
            self.logger = self._recipe.build(distributed=False)
            self._router = MetricRouter(self.logger, self._guard)
            self._logged = {}
        return self._router

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        with self._guard.hook("on_train_begin"):
            self._open().logger.log_hparams(args.to_sanitized_dict())
        if self._tooled_options is not None and model is not None and self.tooled is None:
            with self._guard.hook("on_train_begin"):
                self.tooled = TooledModelLogger(model, logger=self.logger, **self._tooled_options)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        with self._guard.hook("on_log"):
            values = rewrite(logs)
            self._open().route(values, state.global_step, "on_log")
            self._logged.update(dict.fromkeys(values, state.global_step))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        with self._guard.hook("on_evaluate"):
            step = state.global_step
            fresh = {k: v for k, v in rewrite(metrics).items() if self._logged.get(k) != step}
            if fresh:
                self._open().route(fresh, step, "on_evaluate")
                self._logged.update(dict.fromkeys(fresh, step))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.tooled is not None:
            with self._guard.hook("on_pre_optimizer_step"):
                self.tooled.step(log=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        tooled, self.tooled = self.tooled, None
        if tooled is not None:
            with self._guard.hook("on_train_end"):
                tooled.close()
        self.close()

    def close(self) -> None:
        """Close the run (finished) if the callback made it; a run given with ``run=`` stays open."""
        logger = self.logger
        if logger is not None and not logger.closed:
            with self._guard.hook("close"):
                logger.close()
