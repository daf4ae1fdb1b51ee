"""Account items: create (with the default token, atomically), read, list, rename, credit."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.core.audit import AuditEntry
from chalicelib.core.errors import Conflict, InvalidRequest, NotFound
from chalicelib.core.records import AccountRecord, Page, TokenRecord
from chalicelib.store import account_reads, tokens
from chalicelib.store import audit as audit_store
from chalicelib.store.common import decode_cursor, take_page, translated
from chalicelib.store.models import ACCOUNT_KIND, Account, Event


def to_record(item: Account) -> AccountRecord:
    return account_reads.record(item.serialize(null_check=False))


def create(
    account: AccountRecord, default_token: TokenRecord, *, audit: AuditEntry | None = None
) -> None:
    """The account, its default token and the audit record appear together or not at all."""
    item = Account(
        account.id,
        kind=ACCOUNT_KIND,
        name=account.name,
        status=account.status,
        unlimited=account.unlimited,
        quota_units=account.quota_units,
        used_units=0,
        reserved_units=0,
        remaining_units=account.quota_units,
        created_at=account.created_at,
        management_key_hash=account.management_key_hash,
        groups=list(account.groups),
        pending={},
        rpm_limit=account.rpm_limit,
        tpm_limit=account.tpm_limit,
        max_concurrency=account.max_concurrency,
        requests_by_minute={},
        tokens_by_minute={},
    )

    def build(transaction: TransactWrite) -> None:
        transaction.save(item, condition=Account.id.does_not_exist())
        transaction.save(tokens.new_item(default_token), condition=tokens.Token.id.does_not_exist())

    audit_store.write(build, audit, Conflict("An account or token id collided; retry."))


get = account_reads.get


def require(account_id: str) -> AccountRecord:
    record = get(account_id)
    if record is None:
        raise NotFound("No account with this id.", param="id")
    return record


def list_page(
    limit: int, cursor: str | None, convert: Callable[[Account], Any] = to_record
) -> Page:
    """Accounts newest first; ``convert`` turns each item into what the caller needs."""
    start = decode_cursor(cursor, expected={"kind": ACCOUNT_KIND})
    if start is not None and not tokens.is_listing_position(
        start, strings=("id", "kind"), numbers=("created_at",)
    ):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    with translated():
        results = Account.by_created.query(
            ACCOUNT_KIND, scan_index_forward=False, last_evaluated_key=start, page_size=limit
        )
        return take_page(results, limit, convert, _position)


def _position(item: Account) -> dict[str, Any]:
    return {
        "id": {"S": item.id},
        "kind": {"S": ACCOUNT_KIND},
        "created_at": {"N": str(int(item.created_at))},
    }


def update(
    account_id: str,
    *,
    name: str | None = None,
    status: str | None = None,
    groups: tuple[str, ...] | None = None,
    audit: AuditEntry | None = None,
    limits: dict[str, int | None] | None = None,
) -> AccountRecord:
    """``limits``: the rate limits to set (an int) or remove (None), by name."""
    actions: list[Action] = []
    if name is not None:
        actions.append(Account.name.set(name))
    if status is not None:
        actions.append(Account.status.set(status))
    if groups is not None:
        actions.append(Account.groups.set(list(groups)))
    for name, value in (limits or {}).items():
        attribute = getattr(Account, name)
        actions.append(attribute.remove() if value is None else attribute.set(value))
    if any(value is not None for value in (limits or {}).values()):
        # Items older than the limits have no window maps yet; the reservation needs them.
        actions += [
            Account.requests_by_minute.set(Account.requests_by_minute | {}),
            Account.tokens_by_minute.set(Account.tokens_by_minute | {}),
        ]
    if not actions or not tokens.plausible_id(account_id):
        return require(account_id)
    # A relay that admits a call on an older copy of the account is refused at its
    # reservation, and decides again on the account as edited (store/ledger.py).
    actions.append(Account.revision.add(1))
    _update(account_id, actions, audit)
    return require(account_id)


def _update(account_id: str, actions: list[Action], audit: AuditEntry | None) -> None:
    """One update of an existing account, with its audit record (404 if there is no account)."""

    def build(transaction: TransactWrite) -> None:
        transaction.update(Account(account_id), actions=actions, condition=Account.id.exists())

    audit_store.write(build, audit, NotFound("No account with this id.", param="id"))


def set_management_key_hash(
    account_id: str, key_hash: str, *, audit: AuditEntry | None = None
) -> AccountRecord:
    if not tokens.plausible_id(account_id):
        raise NotFound("No account with this id.", param="id")
    _update(account_id, [Account.management_key_hash.set(key_hash)], audit)
    return require(account_id)


def credit(
    account_id: str, units: int, note: str, now: int, *, audit: AuditEntry | None = None
) -> AccountRecord:
    """Grant ``units`` more balance, with an audit event, in one transaction.

    ``ADD`` keeps concurrent charges intact: no read-modify-write of the counters.
    """
    if not tokens.plausible_id(account_id):
        raise NotFound("No account with this id.", param="id")
    # ``now`` is whole seconds, taken when the request arrived; the clock's milliseconds order
    # two credits of the same second, so that "newest first" holds for an operator crediting
    # twice in a row. A write that lands after that second ended takes the clock's time: its
    # milliseconds alone would sort it before an earlier credit of the same second.
    clock_ms = time.time_ns() // 1_000_000
    at_ms = clock_ms if clock_ms // 1000 > now else int(now) * 1000 + clock_ms % 1000
    event = Event(
        f"account#{account_id}",
        f"{at_ms:013d}#{secrets.token_hex(4)}",
        kind="credit",
        body={"units": units, "note": note},
    )

    def build(transaction: TransactWrite) -> None:
        transaction.update(
            Account(account_id),
            actions=[Account.quota_units.add(units), Account.remaining_units.add(units)],
            condition=Account.id.exists(),
        )
        transaction.save(event)

    # One client request token for all attempts: a credit retried after a lost answer is
    # applied once, never twice.
    audit_store.write(build, audit, NotFound("No account with this id.", param="id"))
    return require(account_id)


def events(account_id: str, limit: int = 50) -> list[dict[str, Any]]:
    with translated():
        return [
            {"at": int(e.at_id.split("#")[0]) // 1000, "kind": e.kind, **e.body.as_dict()}
            for e in Event.query(f"account#{account_id}", scan_index_forward=False, limit=limit)
        ]
