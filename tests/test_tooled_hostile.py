"""TooledModel on layers it cannot reduce: a complex-dtype layer is skipped with a warning naming it, never an error
raised into the training loop."""

from __future__ import annotations

import warnings

import pytest
import torch

from flexlogger import TooledModel


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
