"""The Visdom sink, split by job:

- :mod:`.rules`: Visdom's naming rules (env names, plot options), checked when a logger is built.
- :mod:`.auth`: the login (username and password from arguments or the environment, the digest posted).
- :mod:`.render`: pure functions turning an update into a Visdom message, one renderer per plot kind
  (:data:`~.render.RENDERERS`).
- :mod:`.buffer`: the per-window state: merging of writes, downsampling, delivery accounting (no threads, no HTTP).
- :mod:`.transport`: the HTTP session, posting, backoff schedule and reconnect detection.
- :mod:`.sender`: the background thread and :class:`~.sender.VisdomSink`, which tie them together.

Only :mod:`.rules` and :mod:`.render` import visdom. This package module imports none of them, so that the
option table can import the leaf modules :mod:`.rules` and :mod:`.auth` without importing the sink (which
imports the option table): import each name from the module that defines it, e.g.
``from flexlogger.sinks.visdom.sender import VisdomSink``.
"""
