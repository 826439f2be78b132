"""Meter values over ``torch.distributed``: every rank feeds its own meters, rank 0 draws the pooled values.

With ``FlexLogger(..., distributed=True)`` (the default when a process group with more than one rank is
initialised), ``log()`` and ``value()`` are *collective*: every rank must call them, in the same order, with the same
``keys``. Each call gathers the chosen meters from every rank (one ``all_gather_object``), folds them together with
each meter type's ``merge`` (``meter_info(type)['merges']`` says how: averages are pooled exactly, error counts
and confusion matrices summed, AP/AUC samples concatenated, ValueMeter/TimeMeter take rank 0's value), and only
rank 0 sends points to Visdom and the run record. The local meters are left as they are (``log()`` then resets
them as usual).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.distributed as dist

from .meters import Meter


def active() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def pooled(meters: Mapping[str, Meter]) -> dict[str, Meter]:
    """``{name: meter}`` holding every rank's state of each meter, folded together (a collective call)."""
    local = {name: meter.portable() for name, meter in meters.items()}
    gathered: list[dict[str, Meter] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    out: dict[str, Meter] = {}
    for name in meters:
        merged = gathered[0][name] if gathered[0] is not None else local[name]
        for other in gathered[1:]:
            if other is not None:
                merged.merge(other[name])
        out[name] = merged
    return out
