"""The file operations the run record depends on: writing a file whole and appending a line that never tears.

Every file flexlogger writes goes through one of the two:

- :func:`atomic_write`: a temporary file in the same folder, flushed to the disk (``fsync``), then ``os.replace``:
  a reader (or a crash, or a full disk) sees the old file or the new one, never half of one.
- :func:`append_line`: one ``write`` of whole lines to a file opened with ``O_APPEND`` (lines of two threads or
  processes do not interleave); a short write (the disk filled mid-line) is cut back off, so the file never ends
  in a torn line, and the caller gets an ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["append_line", "atomic_write"]


def atomic_write(path: str | os.PathLike[str], data: str | bytes | Callable[[BinaryIO], object], *,
                 make_parents: bool = False) -> Path:
    """Write ``path`` whole: a temporary file next to it, ``fsync``, then ``os.replace``.

    Args:
        path: the file to write (replaced only once the new content is complete).
        data: the content: a str (written as UTF-8), bytes, or a function that writes the content to the binary
            file it is given (``torch.save``, ``shutil.copyfileobj``).
        make_parents: make the missing parent folders first (False: a vanished folder is an error, as the run
            record wants it).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the disk refused the file (full, read-only, gone); ``path`` is left as it was and no temporary
            file remains. An exception raised by ``data(file)`` is raised as it is, with the same guarantee.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer thread
    try:
        with open(tmp, "wb") as file:
            if isinstance(data, str):
                file.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def append_line(target: int | str | os.PathLike[str], data: str | bytes, size: int | None = None) -> int:
    """Append ``data`` (one or more whole lines) to a file with one ``write``, never leaving a torn line.

    Args:
        target: an open file descriptor (opened with ``O_APPEND``), or a path (opened with ``O_APPEND``, made when
            missing, closed again).
        data: the lines, each ending in ``\\n`` (a str is written as UTF-8).
        size: the file's length before this line, when the caller keeps count (it saves an ``fstat`` per line);
            None: read from the file.

    Returns:
        The file's length after the line (pass it as ``size`` next time).

    Raises:
        OSError: the disk refused the line (``ENOSPC`` for a short write, which is cut back off first): the file
            holds exactly what it held before the call.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if isinstance(target, int):
        return _append(target, raw, size)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return _append(fd, raw, size)
    finally:
        os.close(fd)


def _append(fd: int, raw: bytes, size: int | None) -> int:
    before = os.fstat(fd).st_size if size is None else size
    written = os.write(fd, raw)
    if written != len(raw):  # the disk filled mid-line: cut the torn part off again
        with contextlib.suppress(OSError):  # the disk may refuse that too: the error below is what the caller needs
            os.ftruncate(fd, before)
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: a short write of {written} of {len(raw)} bytes, "
                                    "cut off again")
    return before + written
