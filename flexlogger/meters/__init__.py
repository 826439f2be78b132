"""Meters: one adapter per torchnet meter (and a few of our own), behind ``add`` / ``value`` / ``reset`` and views.

A plot asks a meter for the view it draws:

===========  =================================================  ======================
view         what the meter returns                              drawn by
===========  =================================================  ======================
``scalar``   ``{trace name: float}`` (one trace per number)      line, scatter, bar
``vector``   a 1-d array                                         bar, histogram
``matrix``   a 2-d array (or ``C x H x W`` for images)           heatmap, image
``curve``    ``(x, y)`` arrays                                   curve
``text``     a string                                            text
===========  =================================================  ======================

Each meter type declares its state (:class:`~flexlogger.meters.base.State`): ``reset``, the cross-rank ``merge``
and the host copy are written once, in :class:`~flexlogger.meters.base.Meter`.

Where torchnet is wrong or noisy the adapter fixes it and says so in its ``note`` (shown by ``meter_info``):
AverageValueMeter defers torchnet's square root to ``value()``; APMeter, mAPMeter and AUCMeter compute the
standard (tie-aware) definitions; MSEMeter detaches its inputs and checks their shapes. Any torchmetrics ``Metric``
is a meter type named ``torchmetrics.<ClassName>`` (:mod:`flexlogger.meters.torchmetric`).
"""

from __future__ import annotations

from flexlogger.meters.base import REDUCTIONS, VIEWS, MeanStdMeter, Meter, State
from flexlogger.meters.classification import ClassErrorMeter, ConfusionMeter
from flexlogger.meters.image import ImageMeter, make_grid
from flexlogger.meters.ranking import APMeter, AUCMeter, average_precision, mAPMeter, roc_curve
from flexlogger.meters.regression import MAEMeter, MSEMeter
from flexlogger.meters.scalar import AverageValueMeter, BestValueMeter, MovingAverageValueMeter, TimeMeter, ValueMeter

METER_CLASSES: tuple[type[Meter], ...] = (
    AverageValueMeter, MovingAverageValueMeter, BestValueMeter, ValueMeter, MSEMeter, MAEMeter, ClassErrorMeter,
    ConfusionMeter, APMeter, mAPMeter, AUCMeter, TimeMeter, ImageMeter,
)

__all__ = [
    "METER_CLASSES", "REDUCTIONS", "VIEWS", "APMeter", "AUCMeter", "AverageValueMeter", "BestValueMeter",
    "ClassErrorMeter", "ConfusionMeter", "ImageMeter", "MAEMeter", "MSEMeter", "MeanStdMeter", "Meter",
    "MovingAverageValueMeter", "State", "TimeMeter", "ValueMeter", "average_precision", "mAPMeter", "make_grid",
    "roc_curve",
]
