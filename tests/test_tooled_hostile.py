"""TooledModel on models it must not break: a complex-dtype layer is skipped with a warning naming it, never an error
raised into the training loop; a ``torch.compile``d model keeps its names and its graphs."""

from __future__ import annotations

import warnings

import pytest
import torch

from flexlogger import TooledModel
from flexlogger.model.recorder import FlightRecorder


def test_a_complex_layer_is_skipped_with_one_warning_per_group_and_the_real_ones_are_kept() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, dtype=torch.complex64), torch.nn.Linear(4, 4))
    tooled = TooledModel(model, stats=("mean", "std", "norm", "nonfinite", "update_ratio", "snr"))
    x = torch.randn(2, 4, dtype=torch.complex64)
    with pytest.warns(RuntimeWarning) as caught:
        model[1](model[0](x).abs()).sum().backward()
        tooled.step()
    messages = sorted(str(w.message) for w in caught)
    assert messages == [f"layer '0': its {group} is complex64; its statistics are skipped (they are computed for real "
                        "floating-point tensors only; activations and gradients of that dtype are skipped too)"
                        for group in ("Weight_grad", "Weights")]
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told once
        for _ in range(2):
            model[1](model[0](x).abs()).sum().backward()
            tooled.step()
    stats = tooled.get_dict()
    assert stats["0"] == {} and set(stats["1"]) >= {"Weights", "Weight_grad", "Inputs", "Outputs"}
    assert stats["1"]["Weights"]["norm"] > 0
    tooled.remove()


@pytest.mark.parametrize("compile_first", [True, False], ids=["compiled-then-tooled", "tooled-then-compiled"])
def test_a_compiled_model_keeps_its_layer_names_and_its_graphs(compile_first: bool) -> None:
    """A ``torch.compile``d model: layers are named as in the model it wraps (not ``_orig_mod.0``), the hooks are
    left out of dynamo's trace (one graph per stretch between watched layers, no recompiling as hooks come and go
    with ``every``), and the statistics equal those of the same model run eagerly."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    results = []
    for compiled in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        recorder = FlightRecorder(window=8, warn=False)
        if compiled and compile_first:
            run = torch.compile(model, backend="eager")
            tooled = TooledModel(run, stats=("mean", "std", "max"), every=2, recorder=recorder)
        else:
            tooled = TooledModel(model, stats=("mean", "std", "max"), every=2, recorder=recorder)
            run = torch.compile(model, backend="eager") if compiled else model
        assert tooled.layers == ["0", "1", "2"]
        gen = torch.Generator().manual_seed(1)
        graphs = []
        for _ in range(8):
            x = torch.randn(16, 12, generator=gen)
            torch.nn.functional.mse_loss(run(x), torch.zeros(16, 4)).backward()
            model.zero_grad()
            tooled.step()
            graphs.append(counters["stats"]["unique_graphs"])
        results.append(tooled.get_dict())
        tooled.remove()
        if compiled:
            assert graphs[2:] == [graphs[2]] * 6, graphs  # compiled in the first two steps, then never again
            assert 1 <= graphs[-1] <= 3 and sum(counters["graph_break"].values()) <= 2, dict(counters["graph_break"])
    compiled_stats, eager_stats = results
    assert set(compiled_stats) == {"0", "1", "2"}
    for layer, groups in eager_stats.items():
        for group, stats in groups.items():
            assert compiled_stats[layer][group] == pytest.approx(stats, rel=1e-6), (layer, group)
