"""The reservation sweeper: refunds reservations whose request can no longer be alive.

A request holds a reservation for at most Lambda's timeout; ``reservation_max_age_seconds`` is
set above it. A record still ``pending`` past that age belongs to a process that died between
reserving and settling. The sweeper refunds both items (each refund is conditional on the
request's entry still being there, so it happens at most once per item, and is a no-op where
the reservation never landed) and then closes the record as ``refunded`` (conditional on it
still being pending, so two sweepers never both count it).

One residual case is refunded rather than settled: a process killed after its token settle
landed but before the account settle and the record update did. The account side is then
refunded in full, in the customer's favour, and the record says ``swept``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from chalicelib.core import observe
from chalicelib.store import ledger
from chalicelib.store import usage as usage_store

MAX_PER_RUN = 10_000


@dataclass(frozen=True)
class SweepRun:
    refunded: int
    skipped: int
    complete: bool


def sweep(now: int, remaining_seconds: Callable[[], float] | None = None) -> SweepRun:
    """Refund every stale pending reservation (paged Query) until done or out of time."""
    refunded = skipped = 0
    # Keep a margin to finish the refund in hand: 10 s, or a quarter of a short budget.
    margin = min(10.0, remaining_seconds() / 4) if remaining_seconds is not None else 0.0
    for request_id in usage_store.stale_pending(before=now, limit=MAX_PER_RUN):
        if remaining_seconds is not None and remaining_seconds() < margin:
            return SweepRun(refunded, skipped, complete=False)
        if refund_one(request_id):
            refunded += 1
        else:
            skipped += 1
    return SweepRun(refunded, skipped, complete=True)


def refund_one(request_id: str) -> bool:
    record = usage_store.get(request_id)
    if record is None or record.state != "pending":
        return False
    reservation = ledger.Reservation(
        request_id, record.token_id, record.account_id, record.reserved_units
    )
    ledger.release(reservation, 0)
    closed = usage_store.finish(
        replace(record, state="refunded", status="upstream_error", detail="swept")
    )
    if closed:
        observe.metric("SweeperRefunds")
        observe.log(
            "sweeper_refund",
            request_id=request_id,
            token_id=record.token_id,
            account_id=record.account_id,
            reserved_units=record.reserved_units,
        )
    return closed
