"""transformers' own callback tests (``tests/trainer/test_trainer_callback.py``, huggingface/transformers), ported to
FlexLoggerCallback and run against the installed Trainer: registration by class and by instance, removal, and the
Trainer's event flow with our callback in it (every ``on_log`` reaching the run record). Our tiny BERT replaces the
test suite's RegressionPreTrainedModel. Left out: the tests of the Trainer's own callbacks (DefaultFlowCallback,
EarlyStoppingCallback, printer/progress, stateful checkpointed callbacks, TrainerControl): no logger in them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_transformers import make_trainer

from flexlogger.integrations.transformers import SINGLE_VALUES, FlexLoggerCallback, rewrite, transformers
from flexlogger.sinks.record import read_record

HOOKS = ("on_init_end", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_step_begin",
         "on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_evaluate", "on_predict", "on_save",
         "on_log", "on_prediction_step")


class EventRecorder(FlexLoggerCallback):
    """test_trainer_callback.py::EventRecorderCallback, on top of our callback (each hook still runs ours)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in HOOKS:
            events = super().__getattribute__("events")

            def hook(*args: Any, **kwargs: Any) -> Any:
                events.append(name)
                return attr(*args, **kwargs)

            return hook
        return attr


def expected_events(trainer: Any) -> list[str]:
    """test_trainer_callback.py::_get_expected_events (no eval at the end when the last step is an eval step)."""
    events = ["on_init_end", "on_train_begin"]
    step = 0
    evaluation = ["on_prediction_step"] * len(trainer.get_eval_dataloader()) + ["on_log", "on_evaluate"]
    args = trainer.args
    for _ in range(trainer.state.num_train_epochs):
        events.append("on_epoch_begin")
        for _ in range(len(trainer.get_train_dataloader())):
            if step == trainer.state.max_steps:
                break
            step += 1
            events += ["on_step_begin", "on_pre_optimizer_step", "on_optimizer_step", "on_step_end"]
            if step % args.logging_steps == 0:
                events.append("on_log")
            if args.eval_strategy == transformers.IntervalStrategy.STEPS and step % args.eval_steps == 0:
                events += evaluation
        events.append("on_epoch_end")
    return [*events, "on_log", "on_train_end"]


def test_callback_added_at_init_by_class_and_instance_removed_and_popped(tmp_path: Path) -> None:
    """test_custom_callback_added_at_init, test_add_callback_by_instance, test_remove_callback_by_class,
    test_pop_callback_returns_instance"""
    trainer = make_trainer(tmp_path, [FlexLoggerCallback])  # the Trainer makes it: every argument has a default
    assert sum(isinstance(cb, FlexLoggerCallback) for cb in trainer.callback_handler.callbacks) == 1
    trainer.remove_callback(FlexLoggerCallback)
    assert not any(isinstance(cb, FlexLoggerCallback) for cb in trainer.callback_handler.callbacks)
    mine = FlexLoggerCallback(server=None, log_dir=tmp_path)
    trainer.add_callback(mine)
    assert mine in trainer.callback_handler.callbacks
    assert trainer.pop_callback(FlexLoggerCallback) is mine


@pytest.mark.parametrize("options", [{}, {"logging_steps": 3}, {"eval_steps": 2}, {"eval_strategy": "no"}])
def test_event_flow(tmp_path: Path, env: str, options: dict[str, Any]) -> None:
    """test_trainer_callback.py::test_event_flow with our callback: the Trainer's events are unchanged, and every
    entry of its log_history is in our record (or, the end-of-training values, in summary.json)."""
    recorder = EventRecorder(env=env, server=None, log_dir=tmp_path / "runs")
    trainer = make_trainer(tmp_path, [recorder], **options)
    trainer.train()
    assert recorder.events == expected_events(trainer)
    recorder.close()
    stat = recorder.logger
    assert stat is not None and stat.run_dir is not None
    logged = {(u.step, k) for u in read_record(stat.run_dir).updates for k in u.data}
    for entry in trainer.state.log_history:
        for name in rewrite({k: v for k, v in entry.items() if k not in (*SINGLE_VALUES, "step")}):  # step: the x
            meter = name if (entry["step"], name) in logged else name.replace("/", "_")
            assert (entry["step"], meter) in logged, (entry, name)
    summary = json.loads((stat.run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["train_runtime"] > 0
