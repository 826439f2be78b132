"""The Visdom sink, split by job: :mod:`.rules` (Visdom's naming rules), :mod:`.auth` (the login), :mod:`.render`
(updates to messages, pure), :mod:`.legible` (touches that make a window readable), :mod:`.buffer` (per-window
state, no threads), :mod:`.transport` (HTTP) and :mod:`.sender` (the thread and :class:`~.sender.VisdomSink`).

This package module imports none of them, so that the option table can import the leaf modules :mod:`.rules` and
:mod:`.auth` without importing the sink (which imports the option table): import each name from its module, e.g.
``from flexlogger.sinks.visdom.sender import VisdomSink``.
"""
