"""Adapters that drop flexlogger into a training framework, each an optional extra: ``lightning``,
``transformers`` and ``ignite``; ``wandb`` and ``tensorboard`` give those APIs on a run (imported as
``flexlogger.wandb`` and ``flexlogger.tensorboard``; neither package is needed).

Importing this package imports no framework; importing an adapter without its framework raises
:class:`~flexlogger.integrations.common.MissingExtraError` (an ``ImportError``) naming the extra to install.
"""

from flexlogger.integrations.common import IntegrationWarning, MissingExtraError

__all__ = ["IntegrationWarning", "MissingExtraError"]
