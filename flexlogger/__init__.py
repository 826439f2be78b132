"""flexlogger: declarative torchnet meters and Visdom plots for PyTorch training loops.

    >>> import flexlogger
    >>> Stat = flexlogger.FlexLogger({'loss': {'type': 'line'}},
    ...                              {'train_loss': {'type': 'AverageValueMeter', 'target': 'loss'}})
    >>> Stat.add({'train_loss': 0.7}); Stat.log()
"""

from .errors import (
    ConfigError,
    DeliveryError,
    FlexLoggerError,
    MeterInputError,
    UnknownKeyError,
    UnknownNameError,
)
from .logger import FlexLogger
from .meters import Meter
from .registry import meter_info, meter_types, plot_info, plot_types
from .replay import replay
from .sinks.base import Update
from .specs import MeterSpec, PlotSpec

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DeliveryError",
    "FlexLogger",
    "FlexLoggerError",
    "Meter",
    "MeterInputError",
    "MeterSpec",
    "PlotSpec",
    "UnknownKeyError",
    "UnknownNameError",
    "Update",
    "meter_info",
    "meter_types",
    "plot_info",
    "plot_types",
    "replay",
]
