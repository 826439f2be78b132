"""flexlogger: declarative torchnet meters and Visdom plots for PyTorch training loops.

    >>> import flexlogger
    >>> Stat = flexlogger.FlexLogger({'loss': {'type': 'line'}},
    ...                              {'train_loss': {'type': 'AverageValueMeter', 'target': 'loss'}})
    >>> Stat.add({'train_loss': 0.7}); Stat.log()
"""

from flexlogger.config.config import Config, load_config
from flexlogger.config.presets import preset_info, preset_names
from flexlogger.config.registry import meter_info, meter_types, plot_info, plot_types
from flexlogger.config.specs import MeterSpec, PlotSpec
from flexlogger.core.logger import FlexLogger, get_preset_logger
from flexlogger.core.run import Run
from flexlogger.errors import (
    ArgumentError,
    ArgumentTypeError,
    ConfigError,
    DeliveryError,
    FlexLoggerError,
    InvalidConfigError,
    LoggerClosedError,
    MeterInputError,
    ModelAnomalyWarning,
    RunFolderError,
    UnknownKeyError,
    UnknownNameError,
)
from flexlogger.experiment.checks import RecordCallError, RecordCallTypeError
from flexlogger.experiment.images import ImageInputError
from flexlogger.meters import Meter
from flexlogger.model.logger import TooledModelLogger
from flexlogger.model.recorder import AnomalyEvent, FlightRecorder
from flexlogger.model.tooled import TooledModel
from flexlogger.sinks.base import Update
from flexlogger.tools.compare import compare
from flexlogger.tools.replay import replay
from flexlogger.version import __version__ as __version__  # defined in a leaf: the run record notes it

__all__ = [
    "AnomalyEvent",
    "ArgumentError",
    "ArgumentTypeError",
    "Config",
    "ConfigError",
    "DeliveryError",
    "FlexLogger",
    "FlexLoggerError",
    "FlightRecorder",
    "ImageInputError",
    "InvalidConfigError",
    "LoggerClosedError",
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
