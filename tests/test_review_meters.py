"""Review pass on the meters: hostile values in add() give a MeterInputError or an honest NaN, never a bare
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
