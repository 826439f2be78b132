"""``import flexlogger.wandb as wandb``: wandb's API for training scripts, on flexlogger (no wandb package needed).

See :mod:`flexlogger.integrations.wandb` for what maps to what. ``wandb.run``, ``wandb.config`` and
``wandb.summary`` are the current run's; any other name of wandb's API warns once and does nothing.
"""

from flexlogger.integrations.wandb import (
    Histogram,
    Html,
    Image,
    Table,
    WandbCompatWarning,
    WandbUsageError,
    define_metric,
    finish,
    init,
    log,
    login,
    unwatch,
    watch,
)
from flexlogger.integrations.wandb import module_getattr as __getattr__  # noqa: F401 - the module's own

__all__ = ["Histogram", "Html", "Image", "Table", "WandbCompatWarning", "WandbUsageError", "define_metric", "finish",
           "init", "log", "login", "unwatch", "watch"]
