"""Meter values over ``torch.distributed``: every rank feeds its own meters, rank 0 draws the pooled values.

With ``FlexLogger(..., distributed=True)`` (the default when a process group with more than one rank is
initialised), ``log()`` and ``value()`` are *collective*: every rank must call them, in the same order, with the same
``keys``. Each call gathers the chosen meters from every rank (one ``all_gather_object``), folds them together with
each meter type's ``merge`` (``meter_info(type)['merges']`` says how: averages are pooled exactly, error counts
and confusion matrices summed, AP/AUC samples concatenated, ValueMeter/TimeMeter take rank 0's value; the rule is
each meter type's ``state`` declaration), and only rank 0 sends points to Visdom and the run record. A meter that
``syncs_itself`` (a ``torchmetrics.<ClassName>`` meter) is pooled instead by its own collective ``synced()``
(torchmetrics' sync), called on every rank in the same order. The local meters are left as they are (``log()``
then resets them as usual).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.distributed as dist

from flexlogger.meters import Meter


def active() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def pooled(meters: Mapping[str, Meter]) -> dict[str, Meter]:
    """``{name: meter}`` holding every rank's state of each meter, folded together (a collective call)."""
    local = {name: meter.portable() for name, meter in meters.items() if not meter.syncs_itself}
    counts = {name: meter.count for name, meter in meters.items()}
    gathered: list[tuple[dict[str, Meter], dict[str, int]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (local, counts))
    ranks = [g for g in gathered if g is not None]
    out: dict[str, Meter] = {}
    for name, meter in meters.items():  # the same order on every rank: synced() is a collective call
        if meter.syncs_itself:
            out[name] = meter.synced(sum(rank_counts[name] for _, rank_counts in ranks))
            continue
        merged = ranks[0][0][name] if ranks else local[name]
        for other, _ in ranks[1:]:
            merged.merge(other[name])
        out[name] = merged
    return out
