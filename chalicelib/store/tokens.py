"""Token items: create (batch, all-or-nothing), read, list, edit, regenerate, delete.

Money counters are never read and written back here: quota edits ``ADD`` the difference to
``remaining_units`` under a condition that the quota is still the one that was read, so a
concurrent charge is never lost (see the invariant in ``models.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.core import observe
from chalicelib.core.audit import Actor, AuditEntry, removed, token_fields
from chalicelib.core.errors import Conflict, InvalidRequest, NotFound
from chalicelib.core.records import NEVER, Page, TokenRecord
from chalicelib.store import audit as audit_store
from chalicelib.store import token_reads
from chalicelib.store.common import (
    cancelled_by_condition,
    decode_cursor,
    is_listing_position,
    take_page,
    transact,
    translated,
)
from chalicelib.store.models import RESET_BUCKET, AuditRecord, Token

_UNSET: Any = object()


def to_record(item: Token) -> TokenRecord:
    return token_reads.record(item.serialize(null_check=False))


def new_item(record: TokenRecord) -> Token:
    item = Token(
        record.id,
        account_id=record.account_id,
        name=record.name,
        key_hash=record.key_hash,
        key_preview=record.key_preview,
        status=record.status,
        created_at=record.created_at,
        expires_at=record.expires_at,
        unlimited=record.unlimited,
        quota_units=record.quota_units,
        used_units=0,
        reserved_units=0,
        # The invariant: remaining = quota - used - reserved, also for unlimited tokens (quota 0).
        remaining_units=0 if record.unlimited else record.quota_units,
        total_used_units=0,
        reset_period=record.reset_period,
        group=record.group,
        models=list(record.models),
        allow_ips=list(record.allow_ips),
        pending={},
        revision=0,
        rpm_limit=record.rpm_limit,
        tpm_limit=record.tpm_limit,
        max_concurrency=record.max_concurrency,
        requests_by_minute={},
        tokens_by_minute={},
    )
    if record.next_reset_at is not None:
        item.next_reset_at = record.next_reset_at
        item.reset_bucket = RESET_BUCKET
    return item


# A TransactWriteItems holds at most 100 items: a key and its audit record are two.
KEYS_PER_TRANSACTION = 50


def create_many(records: list[TokenRecord], *, audits: list[AuditEntry] | None = None) -> None:
    """Create up to 100 tokens, each with its audit record when ``audits`` are given.

    A TransactWriteItems holds 100 items and a key with its record is two, so keys go 50 to a
    transaction. Each transaction is all or nothing; if a later one fails, the keys of those
    that landed are deleted again (each deletion recorded too), so the batch as a whole is still
    all or nothing: no key is left whose secret nobody was ever shown. Without records, up to 100
    keys go in one transaction.

    An id that already exists (a collision of random ids) cancels its transaction with 409, so
    a retry draws new ids; an existing token is never overwritten.
    """
    if not records:
        return
    if audits is not None and len(audits) != len(records):
        raise ValueError("one audit entry per token")
    size = KEYS_PER_TRANSACTION if audits else len(records)
    landed: list[TokenRecord] = []
    try:
        for first in range(0, len(records), size):
            chunk = records[first : first + size]
            _create_chunk(chunk, (audits or [])[first : first + size])
            landed += chunk
    except Exception:
        if landed and audits:
            _take_back(landed, audits[0].actor)
        raise


def _take_back(records: list[TokenRecord], actor: Actor) -> None:
    """Delete the keys of a batch that failed part way, recording each deletion."""
    try:
        for first in range(0, len(records), KEYS_PER_TRANSACTION):
            chunk = records[first : first + KEYS_PER_TRANSACTION]
            items = [
                audit_store.new_item(
                    AuditEntry(
                        "token.delete",
                        record.id,
                        actor,
                        record.account_id,
                        removed(token_fields(record)),
                    )
                )
                for record in chunk
            ]

            def build(
                transaction: TransactWrite,
                chunk: list[TokenRecord] = chunk,
                items: list[AuditRecord] = items,
            ) -> None:
                for record in chunk:
                    transaction.delete(Token(record.id), condition=Token.id.exists())
                for item in items:
                    audit_store.put(transaction, item)

            with translated():
                transact(build)
    except Exception as exc:  # the batch's own error is the one to report
        observe.log("token_batch_not_taken_back", level="ERROR", error=exc, tokens=len(records))


def _create_chunk(records: list[TokenRecord], audits: list[AuditEntry]) -> None:
    items = [audit_store.new_item(entry) for entry in audits]  # once: retries resend the same

    def build(transaction: TransactWrite) -> None:
        for record in records:
            transaction.save(new_item(record), condition=Token.id.does_not_exist())
        for item in items:
            audit_store.put(transaction, item)

    with translated():
        try:
            transact(build)
        except TransactWriteError as exc:
            if cancelled_by_condition(exc):
                raise Conflict("A token id collided with an existing one; retry.") from exc
            raise


plausible_id = token_reads.plausible_id
get = token_reads.get


def get_owned(token_id: str, account_id: str) -> TokenRecord:
    """The token if it belongs to ``account_id``; 404 otherwise (never says which)."""
    record = get(token_id)
    if record is None or record.account_id != account_id:
        raise NotFound("No token with this id.", param="id")
    return record


STATUS_FILTERS = ("enabled", "disabled", "expired", "exhausted")


def _status_condition(status: str | None, now: int) -> Any:
    """The effective status as a filter: disabled beats expired beats exhausted beats enabled."""
    if status is None:
        return None
    enabled = Token.status == "enabled"
    expired = (Token.expires_at != NEVER) & (Token.expires_at <= now)
    exhausted = (Token.unlimited == False) & (Token.remaining_units <= 0)  # noqa: E712
    if status == "disabled":
        return Token.status != "enabled"
    if status == "expired":
        return enabled & expired
    if status == "exhausted":
        return enabled & ~expired & exhausted
    return enabled & ~expired & ~exhausted


def list_for_account(
    account_id: str, limit: int, cursor: str | None, *, status: str | None = None, now: int = 0
) -> Page:
    """Newest first through the account's GSI; ``limit`` items per page at most.

    With a filter, DynamoDB may return short pages; we keep reading (bounded) until the page is
    full, and the cursor points after the last item *returned*, so nothing is skipped.
    """
    start = decode_cursor(cursor, expected={"account_id": account_id})
    if start is not None and not is_listing_position(
        start, strings=("id", "account_id"), numbers=("created_at",)
    ):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    with translated():
        results = Token.by_account.query(
            account_id,
            scan_index_forward=False,
            filter_condition=_status_condition(status, now),
            last_evaluated_key=start,
            page_size=max(limit, 25),
        )
        return take_page(results, limit, to_record, _position)


def _position(item: Token) -> dict[str, Any]:
    return {
        "id": {"S": item.id},
        "account_id": {"S": item.account_id},
        "created_at": {"N": str(int(item.created_at))},
    }


@dataclass(frozen=True)
class TokenChanges:
    """What a PATCH may change; ``_UNSET`` fields are left alone."""

    name: Any = _UNSET
    status: Any = _UNSET
    expires_at: Any = _UNSET
    quota_units: Any = _UNSET  # int, or None for unlimited
    reset_period: Any = _UNSET
    next_reset_at: Any = _UNSET  # computed by the caller with the calendar
    group: Any = _UNSET
    models: Any = _UNSET
    allow_ips: Any = _UNSET
    rpm_limit: Any = _UNSET  # int, or None for no limit
    tpm_limit: Any = _UNSET
    max_concurrency: Any = _UNSET


LIMITS = ("rpm_limit", "tpm_limit", "max_concurrency")


def update(
    current: TokenRecord, changes: TokenChanges, *, audit: AuditEntry | None = None
) -> TokenRecord:
    """Apply ``changes`` to a token read as ``current``.

    The condition pins the owner and the quota that was read: if a concurrent edit changed the
    quota in between, the ADD to ``remaining_units`` would be computed from a stale base, so we
    refuse with 409 instead. Charges running concurrently are fine: they never touch ``quota``.
    """
    actions: list[Action] = []
    for name in ("name", "status", "expires_at", "group"):
        value = getattr(changes, name)
        if value is not _UNSET:
            actions.append(getattr(Token, name).set(value))
    for name in ("models", "allow_ips"):
        value = getattr(changes, name)
        if value is not _UNSET:
            actions.append(getattr(Token, name).set(list(value)))
    if changes.reset_period is not _UNSET:
        actions.append(Token.reset_period.set(changes.reset_period))
        if changes.next_reset_at is None:
            actions += [Token.next_reset_at.remove(), Token.reset_bucket.remove()]
        else:
            actions += [
                Token.next_reset_at.set(changes.next_reset_at),
                Token.reset_bucket.set(RESET_BUCKET),
            ]
    if changes.quota_units is not _UNSET:
        actions += _quota_actions(current, changes.quota_units)
    actions += _limit_actions(changes)
    if not actions:
        return current
    actions.append(Token.revision.add(1))
    condition = (
        (Token.account_id == current.account_id)
        & (Token.unlimited == current.unlimited)
        & (Token.quota_units == current.quota_units)
    )
    _update(
        current,
        actions,
        condition,
        audit,
        Conflict("The token changed while it was being edited; retry."),
    )
    return _reread(current.id)


def _update(
    current: TokenRecord,
    actions: list[Action],
    condition: Any,
    audit: AuditEntry | None,
    refused: Exception,
) -> None:
    def build(transaction: TransactWrite) -> None:
        transaction.update(Token(current.id), actions=actions, condition=condition)

    audit_store.write(build, audit, refused)


def _reread(token_id: str) -> TokenRecord:
    """The token just written (a transaction returns no item), read strongly consistent."""
    record = get(token_id)
    if record is None:  # deleted in the instant since: as if it had been before
        raise NotFound("No token with this id.", param="id")
    return record


def _limit_actions(changes: TokenChanges) -> list[Action]:
    actions: list[Action] = []
    for name in LIMITS:
        value = getattr(changes, name)
        if value is None:
            actions.append(getattr(Token, name).remove())
        elif value is not _UNSET:
            actions.append(getattr(Token, name).set(value))
    if any(getattr(changes, name) not in (None, _UNSET) for name in LIMITS):
        # Items older than the limits have no window maps yet; the reservation needs them.
        actions += [
            Token.requests_by_minute.set(Token.requests_by_minute | {}),
            Token.tokens_by_minute.set(Token.tokens_by_minute | {}),
        ]
    return actions


def _quota_actions(current: TokenRecord, quota: int | None) -> list[Action]:
    old_base = 0 if current.unlimited else current.quota_units
    if quota is None:
        return [
            Token.unlimited.set(True),
            Token.quota_units.set(0),
            Token.remaining_units.add(-old_base),
        ]
    return [
        Token.unlimited.set(False),
        Token.quota_units.set(quota),
        Token.remaining_units.add(quota - old_base),
    ]


def regenerate(
    current: TokenRecord, key_hash: str, key_preview: str, *, audit: AuditEntry | None = None
) -> TokenRecord:
    """Swap the stored hash: the old key fails the very next request's hash check."""
    actions: list[Action] = [
        Token.key_hash.set(key_hash),
        Token.key_preview.set(key_preview),
        Token.revision.add(1),
    ]
    missing = NotFound("No token with this id.", param="id")
    _update(current, actions, Token.account_id == current.account_id, audit, missing)
    return _reread(current.id)


def delete(token_id: str, account_id: str, *, audit: AuditEntry | None = None) -> None:
    if not plausible_id(token_id):
        raise NotFound("No token with this id.", param="id")

    def build(transaction: TransactWrite) -> None:
        transaction.delete(Token(token_id), condition=Token.account_id == account_id)

    audit_store.write(build, audit, NotFound("No token with this id.", param="id"))
