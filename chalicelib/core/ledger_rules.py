"""What the ledger's counters must satisfy, checked from the outside (pure).

Every money write keeps these invariants on each key and account item (see ``core.quota``), so a
verifier that finds one broken has found a bug or a lost write, never a normal state:

* counters: ``remaining == base - used - reserved``, where ``base`` is the quota (the total ever
  granted for an account; 0 for an unlimited key or account, whose counters still move);
* reserved: ``reserved == sum of the pending entries' units`` (each call in flight holds one
  entry, keyed by its request id, carrying the units it reserved);
* stale: no pending entry older than the sweep age (a live call never lives that long, so an
  older entry is a reservation the sweeper has not given back yet);
* logged: what the usage records say was charged equals what the item says was used, for items
  younger than the log's retention (older ones have lost records to TTL): ``used_units`` for an
  account (it is never reset) and ``total_used_units`` for a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ItemKind = Literal["token", "account"]


@dataclass(frozen=True)
class PendingEntry:
    request_id: str
    units: int
    reserved_at: int  # epoch seconds
    # Held by an upstream job past its call (a video): stale only after the job's own deadline.
    job: bool = False


@dataclass(frozen=True)
class LedgerItem:
    """The money state of one key or account item, as the verifier reads it."""

    kind: ItemKind
    id: str
    account_id: str
    unlimited: bool
    quota_units: int
    used_units: int
    reserved_units: int
    remaining_units: int
    lifetime_used_units: int  # an account's used_units, a key's total_used_units
    created_at: int
    pending: tuple[PendingEntry, ...] = ()


@dataclass(frozen=True)
class Drift:
    """One broken invariant: on which item, what was expected and what was found."""

    kind: str  # "counters" | "reserved" | "stale_pending" | "logged"
    item: ItemKind
    id: str
    expected: int
    found: int
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "item": self.item,
            "id": self.id,
            "expected": self.expected,
            "found": self.found,
        }
        if self.request_id is not None:
            body["request_id"] = self.request_id
        return body


def item_drift(
    item: LedgerItem, now: int, max_age_seconds: int, job_max_age_seconds: int | None = None
) -> list[Drift]:
    """The invariants one item's own attributes must satisfy.

    A job's entry (``PendingEntry.job``) is legitimately pending while the job runs, up to
    ``job_max_age_seconds`` (default: as long as any other entry).
    """
    found: list[Drift] = []
    base = 0 if item.unlimited else item.quota_units
    expected_remaining = base - item.used_units - item.reserved_units
    if item.remaining_units != expected_remaining:
        found.append(
            Drift("counters", item.kind, item.id, expected_remaining, item.remaining_units)
        )
    pending_units = sum(entry.units for entry in item.pending)
    if item.reserved_units != pending_units:
        found.append(Drift("reserved", item.kind, item.id, pending_units, item.reserved_units))
    for entry in item.pending:
        age = job_max_age_seconds if entry.job and job_max_age_seconds else max_age_seconds
        if entry.reserved_at + age <= now:
            found.append(
                Drift("stale_pending", item.kind, item.id, 0, entry.units, entry.request_id)
            )
    return found


def logged_drift(item: LedgerItem, logged_units: int) -> Drift | None:
    """The usage records' total against the item's lifetime use (items inside retention only)."""
    if item.lifetime_used_units == logged_units:
        return None
    return Drift("logged", item.kind, item.id, logged_units, item.lifetime_used_units)


def within_retention(item: LedgerItem, now: int, retention_days: int) -> bool:
    """True when every usage record of the item is still stored (none has reached its TTL)."""
    return item.created_at > now - retention_days * 86_400
