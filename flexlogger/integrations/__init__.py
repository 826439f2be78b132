"""Adapters that drop flexlogger into a training framework, each an optional extra.

- ``flexlogger.integrations.lightning``: :class:`FlexLightningLogger` (a Lightning ``Logger``) and
  :class:`FlexLightningCallback` (per-layer statistics); ``pip install 'flexlogger[lightning]'``.
- ``flexlogger.integrations.transformers``: :class:`FlexLoggerCallback` (a Hugging Face ``TrainerCallback``);
  ``pip install 'flexlogger[transformers]'``.
- ``flexlogger.integrations.ignite``: :func:`attach` and :func:`attach_tooled` (pytorch-ignite handlers);
  ``pip install 'flexlogger[ignite]'``.
- ``flexlogger.integrations.wandb`` and ``flexlogger.integrations.tensorboard``: wandb's API and TensorBoard's
  ``SummaryWriter`` on a run (no extra: neither package is needed), imported as ``flexlogger.wandb`` and
  ``flexlogger.tensorboard``; ``windows`` draws their keys.

Importing this package imports no framework; importing an adapter without its framework raises
:class:`~flexlogger.integrations.common.MissingExtraError` (an ``ImportError``) naming the extra to install.
"""

from flexlogger.integrations.common import IntegrationWarning, MissingExtraError

__all__ = ["IntegrationWarning", "MissingExtraError"]
