"""ignite's own logger-handler tests (``tests/ignite/handlers/test_tensorboard_logger.py``, pytorch/ignite), ported
to :func:`attach` and :func:`attach_optimizer_params` on real Engines (ignite's use mocked engines and writers):
each asserts the names, values and x that ignite's ``OutputHandler`` and ``OptimizerParamsHandler`` write, read
back from our run record. Left out: the ``wrong_setup``/``wrong_logger_type`` tests (type checks of ignite's
handler classes; ours are ``test_ignite.py``'s error tests), ``test_getattr_method`` (the SummaryWriter), and the
weights/gradient scalar and histogram handlers (their statistics and x are checked against a real optimizer step in
``test_ignite.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ignite.handlers import global_step_from_engine

import flexlogger
from flexlogger.integrations import IntegrationWarning
from flexlogger.integrations.ignite import Engine, Events, attach, attach_optimizer_params
from flexlogger.sinks.record import read_record


def points(Stat: flexlogger.FlexLogger) -> list[tuple[float, str, Any]]:  # noqa: N803
    """``(x, name, value)`` of every point of the run record, in order."""
    assert Stat.flush(10) == 0 and Stat.run_dir is not None
    return [(u.step, k, v) for u in read_record(Stat.run_dir).updates for k, v in sorted(u.data.items())]


def engine_with(output: Any = None, metrics: dict[str, Any] | None = None, event: Any = Events.ITERATION_STARTED,
                ) -> Any:
    """A real Engine whose output is ``output`` and whose ``state.metrics`` are ``metrics`` when ``event`` fires."""
    engine = Engine(lambda e, batch: output)

    @engine.on(event)
    def set_metrics(e: Any) -> None:
        e.state.metrics = dict(metrics or {})

    return engine


@pytest.fixture
def Stat(tmp_path: Path, env: str) -> Any:
    with flexlogger.FlexLogger(env=env, server=None, log_dir=tmp_path) as logger:
        yield logger


def test_optimizer_params(Stat: Any) -> None:  # noqa: N803
    optimizer = torch.optim.SGD([torch.tensor(0.0, requires_grad=True)], lr=0.01)
    engine = engine_with()
    attach_optimizer_params(Stat, engine, optimizer, param_name="lr")
    attach_optimizer_params(Stat, engine, optimizer, param_name="lr", tag="generator")
    engine.run([0] * 3, max_epochs=1)
    assert points(Stat) == [(i, name, 0.01) for i in (1, 2, 3) for name in ("lr/group_0", "generator/lr/group_0")]


def test_output_handler_output_transform(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(output=12345)
    attach(Stat, engine, Events.ITERATION_COMPLETED, output_transform=lambda x: x, tag="tag")  # not a dict: `output`
    attach(Stat, engine, Events.ITERATION_COMPLETED, output_transform=lambda x: {"loss": x}, tag="another_tag")
    engine.run([0], max_epochs=1)
    assert points(Stat) == [(1, "tag/output", 12345), (1, "another_tag/loss", 12345)]


def test_output_handler_metric_names(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(metrics={"a": 12.23, "b": 23.45})
    attach(Stat, engine, Events.ITERATION_STARTED, metric_names=["a", "b"], tag="tag")
    engine.run([0], max_epochs=1)
    assert sorted(points(Stat)) == [(1, "tag/a", 12.23), (1, "tag/b", 23.45)]


def test_output_handler_vector_metric(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(metrics={"a": torch.tensor([0.0, 1.0, 2.0, 3.0])})
    attach(Stat, engine, Events.ITERATION_STARTED, metric_names=["a"], tag="tag")
    engine.run([0], max_epochs=1)
    assert sorted(points(Stat)) == [(1, f"tag/a/{i}", float(i)) for i in range(4)]


def test_output_handler_text_metric_warns_and_the_rest_is_logged(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(metrics={"a": 55.56, "c": "Some text"})
    attach(Stat, engine, Events.ITERATION_STARTED, metric_names=["a", "c"], tag="tag")
    with pytest.warns(IntegrationWarning, match="metric 'tag/c' is str 'Some text', not a number"):
        engine.run([0] * 7, max_epochs=1, epoch_length=7)
    assert points(Stat)[-1] == (7, "tag/a", 55.56) and len(points(Stat)) == 7


@pytest.mark.parametrize("metrics", [{"a": 12.23, "b": 23.45}, {"a": torch.tensor(12.23), "b": torch.tensor(23.45)}])
def test_output_handler_all_metrics(Stat: Any, metrics: dict[str, Any]) -> None:  # noqa: N803
    engine = engine_with(metrics=metrics)
    attach(Stat, engine, Events.ITERATION_STARTED, metric_names="all", tag="tag")
    engine.run([0], max_epochs=1)
    assert sorted(points(Stat)) == [(1, "tag/a", pytest.approx(12.23)), (1, "tag/b", pytest.approx(23.45))]


def test_output_handler_both(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(output=12345, metrics={"a": 12.23, "b": 23.45}, event=Events.EPOCH_COMPLETED)
    attach(Stat, engine, Events.EPOCH_COMPLETED, metric_names=["a", "b"], output_transform=lambda x: {"loss": x},
           tag="tag")
    engine.run([0], max_epochs=5)
    assert sorted(points(Stat))[-3:] == [(5, "tag/a", 12.23), (5, "tag/b", 23.45), (5, "tag/loss", 12345)]


def test_output_handler_with_wrong_global_step_transform_output(Stat: Any) -> None:  # noqa: N803
    """ignite raises ``TypeError: global_step must be int``; a handler of ours never stops the engine: it warns and
    logs nothing."""
    engine = engine_with(output=12345)
    attach(Stat, engine, Events.EPOCH_COMPLETED, output_transform=lambda x: {"loss": x},
           global_step_transform=lambda *args: "a")
    with pytest.warns(IntegrationWarning, match="'a'"):
        engine.run([0], max_epochs=1)
    assert points(Stat) == []


def test_output_handler_with_global_step_from_engine(Stat: Any) -> None:  # noqa: N803
    another = engine_with(output=0.0)
    another.run([0], max_epochs=10)  # another.state.epoch == 10
    engine = engine_with(output=0.123)
    attach(Stat, engine, Events.EPOCH_COMPLETED, output_transform=lambda x: {"loss": x},
           global_step_transform=global_step_from_engine(another))
    engine.run([0], max_epochs=1)
    assert points(Stat) == [(10, "loss", 0.123)]


def test_output_handler_with_global_step_transform(Stat: Any) -> None:  # noqa: N803
    engine = engine_with(output=12345)
    attach(Stat, engine, Events.EPOCH_COMPLETED, output_transform=lambda x: {"loss": x},
           global_step_transform=lambda *args: 10, tag="tag")
    engine.run([0], max_epochs=1)
    assert points(Stat) == [(10, "tag/loss", 12345)]
