"""The reservation sweeper: finishes the calls whose process died holding a reservation.

A call holds its reservation for at most its deadline (Lambda's hard limit is 900 s), and
``reservation_max_age_seconds`` is set above it, so an entry older than that belongs to a
process that is gone. The sweeper finds the items that may hold one through their sweep mark
(the sparse ``tokens_pending`` / ``accounts_pending`` indexes: a Query, never a Scan), reads each
such item strongly consistently and, for every stale entry, follows the call's record:

* the record says ``settled`` at cost c (the process died after deciding, before or between
  its settles): the entry is settled at c;
* any other record (refunded, rejected): the entry is refunded;
* no record (the process died before deciding): the record is written ``refunded`` first, then
  the entry is refunded. Keys are swept before accounts, so the record carries the key's name.

An entry held by an upstream job (a video, ``services/videos.py``) outlives its call on
purpose: with no record yet, the job's provider is asked first. A finished job is decided there
(its record written, both items settled or refunded); one still running keeps its entry, and
its item's mark is set to be looked at again in ``JOB_RECHECK_SECONDS``.

Every write is conditional (an entry is released at most once; a record is never overwritten),
so sweepers may overlap and be killed at any line. Then the item's mark is moved to its oldest
remaining entry's deadline, or cleared when none is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.core import observe, quota
from chalicelib.core.settings import get_settings
from chalicelib.services import videos
from chalicelib.store import ledger
from chalicelib.store import usage as usage_store
from chalicelib.store.ledger import ItemKind, PendingEntry, PendingItem

MAX_PER_RUN = 10_000
# Under the schedule's 5 minutes, so a running job is asked about again on the next run.
JOB_RECHECK_SECONDS = 240
KINDS: tuple[ItemKind, ...] = ("token", "account")


@dataclass(frozen=True)
class SweepRun:
    refunded: int
    skipped: int
    complete: bool
    settled: int = 0


def sweep(now: int, remaining_seconds: Callable[[], float] | None = None) -> SweepRun:
    """Finish every stale reservation (paged Query) until done or out of time."""
    refunded = settled = skipped = 0
    # Keep a margin to finish the item in hand: 10 s, or a quarter of a short budget.
    margin = min(10.0, remaining_seconds() / 4) if remaining_seconds is not None else 0.0
    for kind in KINDS:
        for item_id in ledger.marked_items(kind, before=now, limit=MAX_PER_RUN):
            if remaining_seconds is not None and remaining_seconds() < margin:
                return SweepRun(refunded, skipped, complete=False, settled=settled)
            done = sweep_item(kind, item_id, now)
            refunded += done.refunded
            settled += done.settled
            skipped += done.skipped
    return SweepRun(refunded, skipped, complete=True, settled=settled)


def sweep_item(kind: ItemKind, item_id: str, now: int) -> SweepRun:
    item = ledger.read_pending(kind, item_id)
    if item is None:
        return SweepRun(0, 1, complete=True)
    max_age = get_settings().reservation_max_age_seconds
    stale = [e for e in item.entries if e.reserved_at + max_age <= now]
    refunded = settled = 0
    running: list[PendingEntry] = []
    for entry in stale:
        charged = _decided_cost(item, entry, now)
        if charged is None:
            running.append(entry)
            continue
        if ledger.release_entry(kind, item_id, entry, charged):
            if charged:
                settled += 1
            else:
                refunded += 1
                observe.metric("SweeperRefunds")
            observe.log(
                "sweeper_finished",
                request_id=entry.request_id,
                item=kind,
                item_id=item_id,
                reserved_units=entry.units,
                cost_units=charged,
            )
    left = [e for e in item.entries if e not in stale]
    due = [e.reserved_at + max_age for e in left] + [now + JOB_RECHECK_SECONDS for _ in running]
    ledger.move_mark(kind, item_id, len(left) + len(running), min(due) if due else None)
    return SweepRun(refunded, 0, complete=True, settled=settled)


def _decided_cost(item: PendingItem, entry: PendingEntry, now: int) -> int | None:
    """What the call's record decided, writing "refunded" first if it decided nothing; None
    for a job still running upstream (its entry stays)."""
    record = usage_store.get(entry.request_id)
    if record is None and entry.job == videos.KIND:
        if videos.still_running(entry, now):
            return None
        record = usage_store.get(entry.request_id)  # decided just now, unless never recorded
    if record is None:
        written = usage_store.put(
            usage_store.Usage(
                request_id=entry.request_id,
                account_id=item.account_id,
                token_id=entry.token_id,
                token_name=item.name,
                created_ms=entry.reserved_at * 1000,
                model=entry.model,
                state="refunded",
                status="upstream_error",
                reserved_units=entry.units,
                detail="swept",
            ),
            get_settings().log_retention_days,
        )
        if written:
            return 0
        record = usage_store.get(entry.request_id)  # written by someone else meanwhile
    if record is not None and record.state == "settled":
        return quota.charge(entry.units, record.cost_units)
    return 0
