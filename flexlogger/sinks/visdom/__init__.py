"""The Visdom sink, split by job:

- :mod:`.render`: pure functions turning an update into a Visdom message, one renderer per plot kind
  (:data:`~.render.RENDERERS`).
- :mod:`.buffer`: the per-window state: merging of writes, downsampling, delivery accounting (no threads, no HTTP).
- :mod:`.transport`: the HTTP session, posting, backoff schedule and reconnect detection.
- :mod:`.sender`: the background thread and :class:`VisdomSink`, which tie them together.

Only :mod:`.render` imports visdom.
"""

from flexlogger.config.options import MIN_MAX_POINTS
from flexlogger.sinks.visdom.buffer import downsample, downsample_indices
from flexlogger.sinks.visdom.render import RENDERERS, check_opts
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.sinks.visdom.transport import BACKOFF_MAX, BACKOFF_START

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "MIN_MAX_POINTS", "RENDERERS", "VisdomSink", "check_opts", "downsample",
           "downsample_indices"]
