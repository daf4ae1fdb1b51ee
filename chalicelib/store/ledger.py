"""The money writes of a relayed call: reserve, settle, refund (see the timeline in quota.py).

Each is a single-item conditional UpdateItem keyed by the request id, sent to the token item and
the account item in parallel (one round trip of latency). No transactions: on a hot key they
would be cancelled by TransactionConflict over and over; single-item writes with compensation
(undo the half that succeeded) are what DynamoDB serves well.

These calls use the low-level client because PynamoDB cannot ask for
``ReturnValuesOnConditionCheckFailure=ALL_OLD``, which turns a refused reservation into the
precise error (disabled vs expired vs exhausted) without a second read.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.core.records import DEFAULT_GROUP, AccountRecord, TokenRecord
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.common import Refused, conditional, connection, retrying, translated
from chalicelib.store.models import Account, Token

_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """A small pool per container for the writes that go out side by side."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddb")
    return _pool


def _client() -> Any:
    return connection().client


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


@dataclass(frozen=True)
class Outcome:
    """One item's answer to a reservation: ok, or refused with the item as it was (or None)."""

    ok: bool
    old_item: dict[str, Any] | None = None


def _update(**request: Any) -> Outcome:
    with translated():
        written = conditional(lambda: retrying(lambda: _client().update_item(**request)))
    if isinstance(written, Refused):
        return Outcome(ok=False, old_item=written.old_item)
    return Outcome(ok=True)


def _reserve_token(key: KeyCheck, rid: str, units: int, now: int) -> Outcome:
    # The rule, in one condition: the key is this key (not regenerated or deleted), unchanged
    # since its permissions were checked (same revision), enabled, not expired, not due for a
    # reset, can afford the worst case, and this request has not reserved yet (a retried write
    # must not reserve twice). Items older than the revision attribute are revision 0.
    revision = (
        "#revision = :rev"
        if key.revision
        else "(attribute_not_exists(#revision) OR #revision = :rev)"
    )
    return _update(
        TableName=Token.Meta.table_name,
        Key={"id": {"S": key.token_id}},
        UpdateExpression=(
            "ADD remaining_units :neg, reserved_units :r"
            " SET pending.#rid = :entry, last_used_at = :now"
        ),
        ConditionExpression=(
            f"key_hash = :h AND {revision} AND #status = :enabled"
            " AND (expires_at = :never OR expires_at > :now)"
            " AND (attribute_not_exists(next_reset_at) OR next_reset_at > :now)"
            " AND (unlimited = :true OR remaining_units >= :r)"
            " AND attribute_not_exists(pending.#rid)"
        ),
        ExpressionAttributeNames={"#status": "status", "#rid": rid, "#revision": "revision"},
        ExpressionAttributeValues={
            ":neg": _n(-units),
            ":r": _n(units),
            ":entry": {"L": [_n(units), _n(now)]},
            ":now": _n(now),
            ":h": {"S": key.key_hash},
            ":rev": _n(key.revision),
            ":enabled": {"S": "enabled"},
            ":never": _n(0),
            ":true": {"BOOL": True},
        },
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def _reserve_account(account_id: str, group: str, rid: str, units: int, now: int) -> Outcome:
    # The account is enabled, still grants the key's group (an operator's revocation stops the
    # very next call), can afford the worst case, and this request has not reserved yet. Items
    # older than the groups attribute grant only the default group.
    granted = "contains(#groups, :group)"
    if group == DEFAULT_GROUP:
        granted = f"(attribute_not_exists(#groups) OR {granted})"
    return _update(
        TableName=Account.Meta.table_name,
        Key={"id": {"S": account_id}},
        UpdateExpression="ADD remaining_units :neg, reserved_units :r SET pending.#rid = :entry",
        ConditionExpression=(
            f"#status = :enabled AND {granted} AND (unlimited = :true OR remaining_units >= :r)"
            " AND attribute_not_exists(pending.#rid)"
        ),
        ExpressionAttributeNames={"#status": "status", "#rid": rid, "#groups": "groups"},
        ExpressionAttributeValues={
            ":neg": _n(-units),
            ":r": _n(units),
            ":entry": {"L": [_n(units), _n(now)]},
            ":enabled": {"S": "enabled"},
            ":true": {"BOOL": True},
            ":group": {"S": group},
        },
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def _release(
    table: str, item_id: str, rid: str, reserved: int, charged: int, count_total: bool
) -> bool:
    """Settle (charged > 0) or refund (charged == 0) one item; False if already done."""
    adds = "remaining_units :back, reserved_units :unreserve, used_units :c"
    if count_total:
        adds += ", total_used_units :c"
    outcome = _update(
        TableName=table,
        Key={"id": {"S": item_id}},
        UpdateExpression=f"ADD {adds} REMOVE pending.#rid",
        # Only while this request's reservation is still there: a retry is a no-op.
        ConditionExpression="attribute_exists(pending.#rid)",
        ExpressionAttributeNames={"#rid": rid},
        ExpressionAttributeValues={
            ":back": _n(reserved - charged),
            ":unreserve": _n(-reserved),
            ":c": _n(charged),
        },
    )
    return outcome.ok


@dataclass(frozen=True)
class Reservation:
    rid: str
    token_id: str
    account_id: str
    units: int


@dataclass(frozen=True)
class KeyCheck:
    """What the reservation's condition pins of the key: it is still the key that was checked."""

    token_id: str
    key_hash: str
    revision: int
    group: str


@dataclass(frozen=True)
class Refusal:
    """A reservation refused by the token or the account, with what each looked like."""

    token_refused: bool
    account_refused: bool
    token: TokenRecord | None
    account: AccountRecord | None


def reserve(
    reservation: Reservation, key: KeyCheck, now: int, side_write: Any = None
) -> Refusal | None:
    """Reserve on token and account at once; None on success, else why it was refused.

    ``side_write`` (a callable) goes out in the same round trip: the pending usage record. If
    one side refuses, the other side's reservation is undone before returning.
    """
    r = reservation
    executor = pool()
    token_future: Future[Outcome] = executor.submit(_reserve_token, key, r.rid, r.units, now)
    side_future = executor.submit(side_write) if side_write is not None else None
    account_outcome = _reserve_account(r.account_id, key.group, r.rid, r.units, now)
    token_outcome = token_future.result()
    if side_future is not None:
        side_future.result()
    token_ok = token_outcome.ok or _is_ours(token_outcome.old_item, r.rid)
    account_ok = account_outcome.ok or _is_ours(account_outcome.old_item, r.rid)
    if token_ok and account_ok:
        return None
    # Compensate the half that succeeded, so a refused request holds nothing.
    if token_ok:
        _release(Token.Meta.table_name, r.token_id, r.rid, r.units, 0, True)
    if account_ok:
        _release(Account.Meta.table_name, r.account_id, r.rid, r.units, 0, False)
    token_item, account_item = token_outcome.old_item, account_outcome.old_item
    return Refusal(
        token_refused=not token_ok,
        account_refused=not account_ok,
        token=token_store.record_from_raw(token_item) if token_item else None,
        account=account_store.record_from_raw(account_item) if account_item else None,
    )


def _is_ours(old_item: dict[str, Any] | None, rid: str) -> bool:
    """A refused reservation whose entry is already there: our own retried write landed."""
    pending = (old_item or {}).get("pending", {}).get("M", {})
    return rid in pending


def release(reservation: Reservation, charged: int) -> tuple[bool, bool]:
    """Settle both items at ``charged`` (0 = refund), in parallel; idempotent."""
    r = reservation
    token_future = pool().submit(
        _release, Token.Meta.table_name, r.token_id, r.rid, r.units, charged, True
    )
    account_done = _release(Account.Meta.table_name, r.account_id, r.rid, r.units, charged, False)
    return token_future.result(), account_done
