"""Meter inputs: hostile values in add() give a MeterInputError or an honest NaN, never a bare
Python error or a made-up value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flexlogger import FlexLogger
from flexlogger.errors import MeterInputError


def logger(kind: str, plot: str = "line") -> FlexLogger:
    return FlexLogger({"p": {"type": plot}}, {"m": {"type": kind, "target": "p"}}, server=None, log_dir=None)


@pytest.mark.parametrize("kind", ["AverageValueMeter", "MovingAverageValueMeter", "ValueMeter"])
def test_an_int_beyond_a_float_is_a_meter_input_error_with_a_short_message(kind: str) -> None:
    with logger(kind) as stat:
        with pytest.raises(MeterInputError, match=rf"meter 'm' \({kind}\) expects a number within a float's range or "
                                                  r"a one-element tensor, got int 1000") as caught:
            stat.add({"m": 10**400})
        assert len(str(caught.value)) < 300  # the value is quoted short
        stat.add({"m": 2**60})  # a big int within range still counts
        assert stat.value()["m"] is not None


def scores_with_nan() -> torch.Tensor:
    scores = torch.rand(6, 3)
    scores[2, 1] = math.nan
    return scores


def test_ap_of_a_class_with_a_nan_score_is_nan_not_a_made_up_value() -> None:
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
    with logger("APMeter", "bar") as stat:
        stat.add({"m": [scores_with_nan(), targets]})
        ap = stat.value()["m"]
    assert not math.isnan(ap[0]) and math.isnan(ap[1]) and not math.isnan(ap[2])
    with logger("mAPMeter") as stat:
        stat.add({"m": [scores_with_nan(), targets]})
        assert math.isnan(stat.value()["m"])  # not the mean of the other classes
    with logger("APMeter", "bar") as stat:  # all NaN: torchnet-style ranking gave [1, 0.5, 1]
        stat.add({"m": [torch.full((2, 3), math.nan), torch.tensor([[1, 0, 1], [0, 1, 0]])]})
        assert np.isnan(stat.value()["m"]).all()


def test_auc_with_a_nan_score_is_nan() -> None:
    with logger("AUCMeter") as stat:
        stat.add({"m": [torch.tensor([0.1, math.nan, 0.8, 0.3]), torch.tensor([0, 1, 1, 0])]})
        assert math.isnan(stat.value()["m"])


def test_image_meter_takes_bfloat16_batches() -> None:
    batch = torch.rand(2, 3, 4, 4).to(torch.bfloat16)
    with logger("ImageMeter", "image") as stat:
        stat.add({"m": batch})
        grid = stat.value()["m"]  # was a TypeError from numpy here (and in log(), in the training loop)
        stat.log(0)
    assert grid.dtype == np.float32 and np.allclose(grid[:, 2:6, 2:6], batch[0].float().numpy())  # after the padding


@pytest.mark.parametrize(("batch", "message"), [
    (torch.full((1, 3, 2, 2), math.nan), r"expects batch: images with finite values \(floats in \[0, 1\]\), not NaN or "
                                         r"Inf, got tensor of shape \(1, 3, 2, 2\)"),
    (torch.full((1, 3, 2, 2), 300.0), r"expects batch: float images in \[0, 1\] \(or 0-255\), not values from 300 "
                                      r"to 300"),
    (torch.full((1, 3, 2, 2), -0.5), r"expects batch: float images in \[0, 1\] \(or 0-255\), not values from -0.5"),
    (torch.full((1, 1, 2, 2), 300), r"expects batch: integer images in \[0, 255\], not values from 300 to 300"),
    (np.full((1, 1, 2, 2), -3, dtype=np.int8), r"expects batch: integer images in \[0, 255\], not values from -3"),
])
def test_image_meter_refuses_values_it_cannot_draw(batch: object, message: str) -> None:
    with logger("ImageMeter", "image") as stat:
        with pytest.raises(MeterInputError, match=r"^meter 'm' \(ImageMeter\) " + message):
            stat.add({"m": batch})
        assert stat.value()["m"] is None  # nothing kept


def test_bfloat16_tensors_feed_every_array_meter() -> None:
    bf16 = torch.bfloat16
    plots = {"h": {"type": "heatmap"}, "ap": {"type": "bar"}, "auc": {"type": "line"}, "mse": {"type": "line"}}
    stat = FlexLogger(plots,
                      {"v": {"type": "ValueMeter", "target": "h"}, "a": {"type": "APMeter", "target": "ap"},
                       "u": {"type": "AUCMeter", "target": "auc"}, "m": {"type": "MSEMeter", "target": "mse"}},
                      server=None, log_dir=None)
    with stat:
        scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.4]], dtype=bf16)
        stat.add({"v": torch.eye(3, dtype=bf16), "a": [scores, torch.tensor([[1, 0], [0, 1], [1, 0]])],
                  "u": [scores[:, 0], torch.tensor([1, 0, 1])], "m": [scores, torch.zeros(3, 2, dtype=bf16)]})
        values = stat.value()
        stat.log(0)
    np.testing.assert_array_equal(values["v"], np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(values["a"], [1.0, 1.0])
    assert values["u"] == 1.0 and values["m"] == pytest.approx(float((scores.float() ** 2).mean()), rel=1e-2)
