"""``python -m flexlogger``: the ``flexlogger`` command."""

from .cli import main

raise SystemExit(main())
