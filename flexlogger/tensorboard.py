"""``from flexlogger.tensorboard import SummaryWriter``: TensorBoard's writer on flexlogger (see
:mod:`flexlogger.integrations.tensorboard`); no tensorboard package needed."""

from flexlogger.integrations.tensorboard import SummaryWriter, TensorBoardCompatWarning

__all__ = ["SummaryWriter", "TensorBoardCompatWarning"]
