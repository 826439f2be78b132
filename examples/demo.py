"""The flexlogger demo (``make demo``, ``flexlogger demo``): see ``flexlogger/demo.py``, which it runs.

It lives in the package so that ``flexlogger demo`` works from any install (``pip install 'flexlogger[demo]'``).
"""

from flexlogger.tools.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
