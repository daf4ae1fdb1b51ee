"""The money writes of a relayed call: reserve, settle, refund, and the sweeper's reads and
writes (the state timeline and the crash table are in ``chalicelib/core/quota.py``).

Each money write is a single-item conditional UpdateItem keyed by the request id, sent to the
token item and the account item in parallel (one round trip of latency). No transactions: on a
hot key they would be cancelled by TransactionConflict over and over; single-item writes with
compensation (undo the half that succeeded) are what DynamoDB serves well.

A reservation leaves an entry ``pending[rid] = [units, reserved_at, model, token_id]`` on each
item: what the sweeper needs to give the units back and to write the call's log record if the
process died. A reservation that outlives its call (a video job, pending until the provider
finishes it) adds a fifth element, the job's kind: the sweeper then asks the job's owner what
was decided instead of refunding it as a crashed call (``services/sweeper.py``).

A reservation also marks the item for the sweeper's sparse index (``sweep_bucket`` and
``sweep_at``, with ``if_not_exists`` so a busy item's mark is set once, not rewritten, and is
never later than its oldest entry's sweep deadline). Only the sweeper moves or clears the mark,
conditional on the number of entries it saw (``size(pending)``), so the mark can never end up
later than an entry that arrived meanwhile.

The writes go over the lean client (``store/wire.py``), which retries as botocore's legacy
mode would (or over the botocore client the store shares, when the settings say so): every write
here is keyed by its request id, so a retry after a lost answer can never apply it twice.

A key's rate limits (``core/limits.py``) are clauses of the same token reservation, added only
when the key has them: ``size(pending) < :max`` for calls in flight, and for requests and tokens
per minute a counter in the current minute's window (``requests_by_minute.#minute``, counted up
by the reservation; ``tokens_by_minute.#minute``, added to by the settle) compared with the
limit. The same write removes older windows, so the maps hold a minute or two. Limits are read
from the cached key, which is safe because the condition pins its revision and every edit of a
limit bumps it. A request the account then refuses is taken back out of the key's minute.

These calls are low-level requests because PynamoDB cannot ask for
``ReturnValuesOnConditionCheckFailure=ALL_OLD``, which turns a refused reservation into the
precise error (disabled vs expired vs exhausted vs rate limited) without a second read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.core import limits
from chalicelib.core.records import DEFAULT_GROUP, AccountRecord, TokenRecord
from chalicelib.core.settings import get_settings
from chalicelib.store import account_reads as account_store
from chalicelib.store import items, tables
from chalicelib.store import token_reads as token_store
from chalicelib.store.common import (
    Refused,
    conditional,
    get_item,
    query,
    raised,
    send,
    send_both,
    translated,
)
from chalicelib.store.rate_windows import Counted, counted, limit_clauses
from chalicelib.store.tables import SWEEP_BUCKET

ItemKind = Literal["token", "account"]


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _table(kind: ItemKind) -> str:
    return tables.name(tables.TOKENS if kind == "token" else tables.ACCOUNTS)


@dataclass(frozen=True)
class Outcome:
    """One item's answer to a write: ok, or refused with the item as it was (or None)."""

    ok: bool
    old_item: dict[str, Any] | None = None
    new_values: dict[str, Any] | None = None  # what ReturnValues=UPDATED_NEW sent back


def _update(**request: Any) -> Outcome:
    with translated():
        return _outcome(conditional(lambda: send("UpdateItem", request)))


def _updates(first: dict[str, Any], second: dict[str, Any]) -> tuple[Outcome, Outcome]:
    """Two conditional UpdateItems side by side (``send_both``), each one's outcome; any
    failure but a refused condition raises, once both were answered."""
    with translated():
        answers = send_both(("UpdateItem", first), ("UpdateItem", second))
        return (
            _outcome(conditional(lambda: raised(answers[0]))),
            _outcome(conditional(lambda: raised(answers[1]))),
        )


def _outcome(written: dict[str, Any] | Refused) -> Outcome:
    if isinstance(written, Refused):
        return Outcome(ok=False, old_item=written.old_item)
    return Outcome(ok=True, new_values=written.get("Attributes"))


@dataclass(frozen=True)
class Reservation:
    rid: str
    token_id: str
    account_id: str
    units: int
    model: str = ""
    # The key had a tokens-per-minute limit when the call was admitted: its settle adds the
    # call's tokens to the key's current minute.
    meters_tokens: bool = False
    # Set for a reservation held by an upstream job past its call ("video"); see the docstring.
    job: str = ""
    # The same for the account's own tokens-per-minute limit.
    account_meters_tokens: bool = False


@dataclass(frozen=True)
class KeyCheck:
    """What the reservation's condition pins of the key: it is still the key that was checked,
    within the rate limits it had then (None: no such limit)."""

    token_id: str
    key_hash: str
    revision: int
    group: str
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrency: int | None = None
    # Minute windows the checked copy of the key held (removed when older than this minute).
    known_minutes: tuple[int, ...] = ()


@dataclass(frozen=True)
class AccountLimits:
    """Which limit clauses the account's reservation carries, from the cached account: the
    condition compares with the limits the item stores, not with these values."""

    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrency: int | None = None
    known_minutes: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.rpm_limit, self.tpm_limit, self.max_concurrency))


def _reserving(r: Reservation, now: int) -> dict[str, Any]:
    """The parts of a reservation write both items share: the entry and the sweeper's mark."""
    entry = [_n(r.units), _n(now), {"S": r.model}, {"S": r.token_id}]
    if r.job:
        entry.append({"S": r.job})
    return {
        "update": (
            "ADD remaining_units :neg, reserved_units :r"
            " SET pending.#rid = :entry, sweep_bucket = :bucket,"
            " sweep_at = if_not_exists(sweep_at, :sweep_at)"
        ),
        "values": {
            ":neg": _n(-r.units),
            ":r": _n(r.units),
            ":entry": {"L": entry},
            ":bucket": {"S": SWEEP_BUCKET},
            ":sweep_at": _n(now + get_settings().reservation_max_age_seconds),
        },
    }


def _token_reservation(key: KeyCheck, r: Reservation, now: int) -> dict[str, Any]:
    # The rule, in one condition: the key is this key (not regenerated or deleted), unchanged
    # since its permissions were checked (same revision), enabled, not expired, not due for a
    # reset, can afford the worst case, and this request has not reserved yet (a retried write
    # must not reserve twice). Items older than the revision attribute are revision 0. A key
    # with rate limits also has fewer calls in flight than allowed, and this minute's requests
    # and tokens below its limits.
    revision = (
        "#revision = :rev"
        if key.revision
        else "(attribute_not_exists(#revision) OR #revision = :rev)"
    )
    shared = _reserving(r, now)
    sets, removes, limited, names, values = limit_clauses(key, now)
    request: dict[str, Any] = {"ReturnValues": "UPDATED_NEW"} if sets else {}
    return dict(
        TableName=tables.name(tables.TOKENS),
        Key={"id": {"S": key.token_id}},
        UpdateExpression=shared["update"] + ", last_used_at = :now" + sets + removes,
        ConditionExpression=(
            f"key_hash = :h AND {revision} AND #status = :enabled"
            " AND (expires_at = :never OR expires_at > :now)"
            " AND (attribute_not_exists(next_reset_at) OR next_reset_at > :now)"
            " AND (unlimited = :true OR remaining_units >= :r)"
            " AND attribute_not_exists(pending.#rid)" + limited
        ),
        ExpressionAttributeNames={
            "#status": "status",
            "#rid": r.rid,
            "#revision": "revision",
            **names,
        },
        ExpressionAttributeValues={
            **shared["values"],
            ":now": _n(now),
            ":h": {"S": key.key_hash},
            ":rev": _n(key.revision),
            ":enabled": {"S": "enabled"},
            ":never": _n(0),
            ":true": {"BOOL": True},
            **values,
        },
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
        **request,
    )


def _account_reservation(
    group: str,
    r: Reservation,
    now: int,
    capped: AccountLimits | None = None,
    revision: int | None = None,
) -> dict[str, Any]:
    # The account is enabled, still grants the key's group (an operator's revocation stops the
    # very next call), can afford the worst case, and this request has not reserved yet. Items
    # older than the groups attribute grant only the default group. An account with limits on
    # all its keys together also has fewer calls in flight, and this minute's requests and
    # tokens below them (compared with its stored limits). With ``revision``, the account is
    # also unchanged since the copy the call was admitted on (which decided the limits' clauses
    # and the group): items older than the attribute are revision 0.
    granted = "contains(#groups, :group)"
    if group == DEFAULT_GROUP:
        granted = f"(attribute_not_exists(#groups) OR {granted})"
    pinned, pinned_names, pinned_values = "", {}, {}
    if revision is not None:
        pinned = (
            " AND #arev = :arev"
            if revision
            else " AND (attribute_not_exists(#arev) OR #arev = :arev)"
        )
        pinned_names, pinned_values = {"#arev": "revision"}, {":arev": _n(revision)}
    shared = _reserving(r, now)
    sets, removes, limited, names, values = (
        limit_clauses(capped, now, stored=True)
        if capped is not None and capped.any
        else ("", "", "", {}, {})
    )
    return dict(
        TableName=tables.name(tables.ACCOUNTS),
        Key={"id": {"S": r.account_id}},
        UpdateExpression=shared["update"] + sets + removes,
        ConditionExpression=(
            f"#status = :enabled AND {granted} AND (unlimited = :true OR remaining_units >= :r)"
            " AND attribute_not_exists(pending.#rid)" + limited + pinned
        ),
        ExpressionAttributeNames={
            "#status": "status",
            "#rid": r.rid,
            "#groups": "groups",
            **names,
            **pinned_names,
        },
        ExpressionAttributeValues={
            **shared["values"],
            ":enabled": {"S": "enabled"},
            ":true": {"BOOL": True},
            ":group": {"S": group},
            **values,
            **pinned_values,
        },
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def _released(request: dict[str, Any]) -> bool:
    """Send one item's settle or refund (``_release_request``); False if it was done already."""
    return _update(**request).ok


def _release_request(
    kind: ItemKind,
    item_id: str,
    rid: str,
    reserved: int,
    charged: int,
    counter: tuple[str, int, int] | None = None,
) -> dict[str, Any]:
    """The write that settles (charged > 0) or refunds (charged == 0) one item's entry.

    ``counter`` is (window map, minute, change): the call's tokens added to the key's minute,
    or its request taken back out, in the same write (so, like the charge, exactly once). A
    minute removed meanwhile is not taken below zero.
    """
    adds = "remaining_units :back, reserved_units :unreserve, used_units :c"
    if kind == "token":
        adds += ", total_used_units :c"
    names = {"#rid": rid}
    values = {":back": _n(reserved - charged), ":unreserve": _n(-reserved), ":c": _n(charged)}
    window = ""
    if counter is not None:
        attribute, minute, change = counter
        window = f" SET {attribute}.#minute = if_not_exists({attribute}.#minute, :base) + :change"
        names["#minute"] = str(minute)
        values.update({":base": _n(max(-change, 0)), ":change": _n(change)})
    return dict(
        TableName=_table(kind),
        Key={"id": {"S": item_id}},
        UpdateExpression=f"ADD {adds}{window} REMOVE pending.#rid",
        # Only while this request's reservation is still there: a retry is a no-op.
        ConditionExpression="attribute_exists(pending.#rid)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


@dataclass(frozen=True)
class Refusal:
    """A reservation refused by the token or the account, with what each looked like."""

    token_refused: bool
    account_refused: bool
    token: TokenRecord | None
    account: AccountRecord | None


def reserve(
    reservation: Reservation, key: KeyCheck, now: int, capped: AccountLimits | None = None
) -> Refusal | None:
    """Reserve on token and account at once; None on success, else why it was refused.

    If one side refuses, the other side's reservation is undone before returning.
    """
    outcome = reserve_counted(reservation, key, now, capped)
    return outcome if isinstance(outcome, Refusal) else None


def reserve_counted(
    reservation: Reservation,
    key: KeyCheck,
    now: int,
    capped: AccountLimits | None = None,
    account_revision: int | None = None,
) -> Refusal | Counted:
    """``reserve``, telling on success where the key's current minute stands (for headers);
    with ``account_revision``, refused too if the account was edited since that revision."""
    r = reservation
    token_outcome, account_outcome = _updates(
        _token_reservation(key, r, now),
        _account_reservation(key.group, r, now, capped, account_revision),
    )
    token_ok = token_outcome.ok or _is_ours(token_outcome.old_item, r.rid)
    account_ok = account_outcome.ok or _is_ours(account_outcome.old_item, r.rid)
    if token_ok and account_ok:
        return counted(token_outcome.new_values or token_outcome.old_item or {}, key, now)
    # Compensate the half that succeeded, so a refused request holds nothing (and, on a key
    # with a requests-per-minute limit, does not count in its minute).
    if token_ok:
        uncount = ("requests_by_minute", limits.minute(now), -1) if key.rpm_limit else None
        _released(_release_request("token", r.token_id, r.rid, r.units, 0, uncount))
    if account_ok:
        counted_in = capped is not None and capped.rpm_limit is not None
        uncount = ("requests_by_minute", limits.minute(now), -1) if counted_in else None
        _released(_release_request("account", r.account_id, r.rid, r.units, 0, uncount))
    token_item, account_item = token_outcome.old_item, account_outcome.old_item
    return Refusal(
        token_refused=not token_ok,
        account_refused=not account_ok,
        token=token_store.record(token_item) if token_item else None,
        account=account_store.record(account_item) if account_item else None,
    )


def _is_ours(old_item: dict[str, Any] | None, rid: str) -> bool:
    """A refused reservation whose entry is already there: our own retried write landed."""
    pending = (old_item or {}).get("pending", {}).get("M", {})
    return rid in pending


def release(
    reservation: Reservation, charged: int, *, tokens: int = 0, now: int | None = None
) -> tuple[bool, bool]:
    """Settle both items at ``charged`` (0 = refund), in parallel; idempotent.

    A key that meters tokens gets the call's ``tokens`` in its window of the minute ``now``
    falls in (the minute they are reported in, see core/limits.py).
    """
    r = reservation
    metered = None
    if r.meters_tokens and tokens > 0 and now is not None:
        metered = ("tokens_by_minute", limits.minute(now), tokens)
    account_metered = None
    if r.account_meters_tokens and tokens > 0 and now is not None:
        account_metered = ("tokens_by_minute", limits.minute(now), tokens)
    token_outcome, account_outcome = _updates(
        _release_request("token", r.token_id, r.rid, r.units, charged, metered),
        _release_request("account", r.account_id, r.rid, r.units, charged, account_metered),
    )
    return token_outcome.ok, account_outcome.ok


# The sweeper's side ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingEntry:
    request_id: str
    units: int
    reserved_at: int
    model: str
    token_id: str
    job: str = ""  # the kind of job that holds it past its call ("" for a plain call)


@dataclass(frozen=True)
class PendingItem:
    """An item's pending entries, read strongly consistently, and who it belongs to."""

    kind: ItemKind
    id: str
    account_id: str
    name: str  # a key's name ("" for an account): the log record shows it
    entries: tuple[PendingEntry, ...]


def marked_items(kind: ItemKind, before: int, limit: int) -> Iterator[str]:
    """Ids of items whose sweep mark is at or before ``before``, oldest mark first (lazy)."""
    request = {
        "TableName": _table(kind),
        "IndexName": "tokens_pending" if kind == "token" else "accounts_pending",
        "KeyConditionExpression": "sweep_bucket = :bucket AND sweep_at <= :before",
        "ExpressionAttributeValues": {":bucket": {"S": SWEEP_BUCKET}, ":before": _n(before)},
        "Limit": 100,
    }
    with translated():
        for item in query(request, limit=limit):
            yield item["id"]["S"]


def _entry(rid: str, raw: Any, item_id: str, kind: ItemKind) -> PendingEntry:
    values = [*list(raw), None, None, None]
    return PendingEntry(
        request_id=rid,
        units=int(values[0]),
        reserved_at=int(values[1]),
        model=str(values[2] or ""),
        token_id=str(values[3] or (item_id if kind == "token" else "")),
        job=str(values[4] or ""),
    )


def read_pending(kind: ItemKind, item_id: str) -> PendingItem | None:
    with translated():
        found = get_item(_table(kind), {"id": {"S": item_id}})
    if found is None:
        return None
    item = items.plain(found)
    entries = item.get("pending") or {}
    return PendingItem(
        kind=kind,
        id=item_id,
        account_id=item["account_id"] if kind == "token" else item_id,
        name=item["name"] if kind == "token" else "",
        entries=tuple(_entry(rid, raw, item_id, kind) for rid, raw in sorted(entries.items())),
    )


def release_entry(kind: ItemKind, item_id: str, entry: PendingEntry, charged: int) -> bool:
    """Settle or refund one stale entry (idempotent, like the live settle)."""
    return _released(_release_request(kind, item_id, entry.request_id, entry.units, charged))


def move_mark(kind: ItemKind, item_id: str, entries_left: int, next_sweep_at: int | None) -> bool:
    """Clear the sweep mark of an item with no entries left, or move it to ``next_sweep_at``.

    Conditional on the item still holding ``entries_left`` entries: one that gained an entry
    meanwhile keeps its mark (it is no later than the new entry's deadline) until the next run.
    """
    if next_sweep_at is None:
        update, values = "REMOVE sweep_bucket, sweep_at", {":n": _n(entries_left)}
    else:
        update = "SET sweep_at = :next"
        values = {":n": _n(entries_left), ":next": _n(next_sweep_at)}
    return _update(
        TableName=_table(kind),
        Key={"id": {"S": item_id}},
        UpdateExpression=update,
        ConditionExpression="size(pending) = :n",
        ExpressionAttributeValues=values,
    ).ok
