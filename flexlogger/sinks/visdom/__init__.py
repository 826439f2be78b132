"""The Visdom sink, split by job:

- :mod:`.render`: pure functions turning an update into a Visdom message, one renderer per plot kind
  (:data:`~.render.RENDERERS`).
- :mod:`.buffer`: the per-window state: merging of writes, downsampling, delivery accounting (no threads, no HTTP).
- :mod:`.transport`: the HTTP session, posting, backoff schedule and reconnect detection.
- :mod:`.sender`: the background thread and :class:`VisdomSink`, which tie them together.

Only :mod:`.render` imports visdom.
"""

from .buffer import MIN_MAX_POINTS, downsample, downsample_indices
from .render import RENDERERS, check_opts
from .sender import VisdomSink
from .transport import BACKOFF_MAX, BACKOFF_START

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "MIN_MAX_POINTS", "RENDERERS", "VisdomSink", "check_opts", "downsample",
           "downsample_indices"]
