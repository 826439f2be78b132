"""``python -m flexlogger``: the ``flexlogger`` command."""

from flexlogger.tools.cli import main

raise SystemExit(main())
