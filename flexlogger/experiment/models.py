"""Saving models and objects: unwrapping wrappers, writing whole files with ``torch.save``."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import torch

from flexlogger.errors import short_repr
from flexlogger.experiment.checks import RecordCallError
from flexlogger.io import atomic_write


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile`` wrappers (any
    nesting), whose ``state_dict()`` keys load into the model as defined (no ``module.`` or ``_orig_mod.``)."""
    wrappers: tuple[type, ...] = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while True:
        inner = model.module if isinstance(model, wrappers) else getattr(model, "_orig_mod", None)  # torch.compile
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


class _Writer:
    """A file as ``torch.save`` writes it, remembering the ``OSError`` of a failed write: torch turns it into a
    ``RuntimeError`` (``unexpected pos ...``), and a full disk must be told from an object that cannot be saved."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            written: int = self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        return written

    def flush(self) -> None:
        self.file.flush()


def save_torch(call: str, arg: str, obj: Any, path: Path) -> Path:
    """``torch.save(obj)`` to ``path`` whole (a temporary file, then ``os.replace``); nothing is left on failure.

    Raises:
        RecordCallError: ``obj`` cannot be pickled (a lambda, an open file, a lock, ...).
        OSError: the disk refused the file (full, gone, read-only).
    """

    def save(file: BinaryIO) -> None:
        writer = _Writer(file)
        try:
            torch.save(obj, writer)  # type: ignore[arg-type]  # torch needs only write() and flush()
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise

    try:
        return atomic_write(path, save, make_parents=True)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        raise RecordCallError(f"{call}: expected `{arg}` to be an object torch.save can pickle (tensors, numbers, "
                              f"lists, dicts, classes defined at module level), but got {type(obj).__name__} "
                              f"{short_repr(obj, 80)}: {exc}") from exc
