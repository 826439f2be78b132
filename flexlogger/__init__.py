"""flexlogger: declarative torchnet meters and Visdom plots for PyTorch training loops.

    >>> import flexlogger
    >>> Stat = flexlogger.FlexLogger({'loss': {'type': 'line'}},
    ...                              {'train_loss': {'type': 'AverageValueMeter', 'target': 'loss'}})
    >>> Stat.add({'train_loss': 0.7}); Stat.log()
"""

from .compare import compare
from .config import Config, load_config
from .errors import (
    ConfigError,
    DeliveryError,
    FlexLoggerError,
    InvalidConfigError,
    MeterInputError,
    RunFolderError,
    UnknownKeyError,
    UnknownNameError,
)
from .experiment.common import RecordCallError, RecordCallTypeError
from .images import ImageInputError
from .logger import FlexLogger, get_preset_logger
from .meters import Meter
from .modellogger import TooledModelLogger
from .presets import preset_info, preset_names
from .recorder import AnomalyEvent, FlightRecorder
from .registry import meter_info, meter_types, plot_info, plot_types
from .replay import replay
from .run import Run
from .sinks.base import Update
from .specs import MeterSpec, PlotSpec
from .tooled import ModelAnomalyWarning, TooledModel

__version__ = "0.1.0"

__all__ = [
    "AnomalyEvent",
    "Config",
    "ConfigError",
    "DeliveryError",
    "FlexLogger",
    "FlexLoggerError",
    "FlightRecorder",
    "ImageInputError",
    "InvalidConfigError",
    "Meter",
    "MeterInputError",
    "MeterSpec",
    "ModelAnomalyWarning",
    "PlotSpec",
    "RecordCallError",
    "RecordCallTypeError",
    "Run",
    "RunFolderError",
    "TooledModel",
    "TooledModelLogger",
    "UnknownKeyError",
    "UnknownNameError",
    "Update",
    "compare",
    "get_preset_logger",
    "load_config",
    "meter_info",
    "meter_types",
    "plot_info",
    "plot_types",
    "preset_info",
    "preset_names",
    "replay",
]
