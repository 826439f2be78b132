"""A disk that fills: filling a small tmpfs to the last byte (the fixture ``small_disk`` is in conftest.py)."""

from __future__ import annotations

import errno
from pathlib import Path


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with a filler file; return the filler (delete it to free the disk)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:
        chunk = b"x" * 4096
        while True:
            try:
                if file.write(chunk) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler
