"""Defaults every entry point shares, defined once: the Visdom server and port, the run folder's root.

``Run``, ``FlexLogger``, the Visdom sink, the CLI, ``replay``, ``compare``, ``ingest`` and the demo all take their
defaults from here, so changing one (a team's server, say) changes them everywhere.
"""

from __future__ import annotations

DEFAULT_SERVER = "http://localhost"
"""The Visdom server's address (scheme and host, without the port)."""

DEFAULT_PORT = 8097
"""Visdom's own default port."""

DEFAULT_LOG_DIR = "runs"
"""The root of run folders: a run writes ``<log_dir>/<env>/<uid>``."""

DEFAULT_ENV = "main"
"""Visdom's default env."""
