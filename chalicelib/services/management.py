"""Account and token use cases: validated input in, JSON-ready dicts out.

Every function checks everything it can before the first write, so a rejected request writes
nothing. Ownership is enforced by the store's conditions (``account_id`` must match), and a token
of another account is reported exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.core import audit, keys, views
from chalicelib.core import calendar as resets
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.groups import AUTO_GROUP, may_use_auto
from chalicelib.core.pricing import MoneyError, units_to_usd, usd_to_units
from chalicelib.core.quota import group_refusal
from chalicelib.core.records import DEFAULT_GROUP, NEVER, AccountRecord, Page, TokenRecord
from chalicelib.services import resets as jobs
from chalicelib.services import schemas
from chalicelib.store import accounts as account_store
from chalicelib.store import config as config_store
from chalicelib.store import tokens as token_store

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
MAX_EXPIRY_DAYS = 3650


def _units(units: int | None, usd: str | None, param: str = "quota_usd") -> int | None:
    if usd is not None:
        try:
            return usd_to_units(usd)
        except MoneyError as exc:
            raise InvalidRequest(f"{param} {exc}.", param=param) from exc
    return units


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIST_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}.", param="limit")
    return int(raw)


def page_json(page: Page, render: Any) -> dict[str, Any]:
    return {"data": [render(item) for item in page.items], "next_cursor": page.next_cursor}


# Accounts -------------------------------------------------------------------------------------
def create_account(body: schemas.CreateAccount, now: int) -> dict[str, Any]:
    quota = _units(body.quota_units, body.quota_usd) or 0
    account_id = keys.new_id()
    management_key = keys.new_key(keys.MANAGEMENT_PREFIX, account_id)
    account = AccountRecord(
        id=account_id,
        name=body.name,
        status="enabled",
        unlimited=body.unlimited,
        quota_units=0 if body.unlimited else quota,
        used_units=0,
        reserved_units=0,
        remaining_units=0 if body.unlimited else quota,
        created_at=now,
        management_key_hash=keys.hash_key(management_key),
        groups=tuple(body.groups or (DEFAULT_GROUP,)),
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
        max_concurrency=body.max_concurrency,
    )
    # The default key uses the first granted group, so it works from the start.
    token, key = _new_token(account_id, now, name="default", group=account.groups[0])
    changes = audit.created({**audit.account_fields(account), "default_token_id": token.id})
    entry = audit.entry("account.create", account_id, changes, account_id=account_id)
    account_store.create(account, token, audit=entry)
    return {
        "account": views.account_json(account),
        "management_key": management_key,
        "default_token": views.token_json(token, now, key=key),
    }


def list_accounts(limit: int, cursor: str | None) -> dict[str, Any]:
    return page_json(account_store.list_page(limit, cursor), views.account_json)


def get_account(account_id: str) -> dict[str, Any]:
    """The account, with how many models each of its groups serves (the console's group picker)."""
    from chalicelib.core.channels import models_for_group
    from chalicelib.store import config as config_store

    account = account_store.require(account_id)
    channels = config_store.channels()
    served = {group: len(models_for_group(channels, group)) for group in account.groups}
    order = config_store.load_auto_order()
    if may_use_auto(account.groups, order):
        # `auto` serves every model of the ordered groups the account is granted.
        reachable = [group for group in order if group in account.groups]
        served[AUTO_GROUP] = len(
            set().union(*(models_for_group(channels, group) for group in reachable))
        )
    return {**views.account_json(account), "group_models": served}


def credits(account_id: str) -> dict[str, Any]:
    """The account's credits, newest first, with the note the operator wrote for each."""
    account_store.require(account_id)
    return {
        "data": [
            {
                "at": views.iso(event["at"]),
                "units": int(event["units"]),
                "usd": units_to_usd(int(event["units"])),
                "note": event.get("note", ""),
            }
            for event in account_store.events(account_id)
            if event["kind"] == "credit"
        ]
    }


def _refuse_nulls(body: schemas.Body, *names: str) -> None:
    """A field sent as null would otherwise read as "not sent" and silently change nothing."""
    for name in names:
        if name in body.model_fields_set and getattr(body, name) is None:
            raise InvalidRequest(f"{name} cannot be null.", param=name)


def patch_account(account_id: str, body: schemas.PatchAccount) -> dict[str, Any]:
    _refuse_nulls(body, "name", "status", "groups")
    groups = tuple(body.groups) if body.groups is not None else None
    account_limits = {
        name: getattr(body, name) for name in token_store.LIMITS if name in body.model_fields_set
    }
    current = account_store.require(account_id)
    after = replace(
        current,
        name=current.name if body.name is None else body.name,
        status=current.status if body.status is None else body.status,
        groups=current.groups if groups is None else groups,
        **account_limits,
    )
    changes = audit.diff(audit.account_fields(current), audit.account_fields(after))
    entry = audit.entry("account.update", account_id, changes, account_id=account_id)
    updated = account_store.update(
        account_id,
        name=body.name,
        status=body.status,
        groups=groups,
        limits=account_limits,
        audit=entry,
    )
    return views.account_json(updated)


def regenerate_management_key(account_id: str) -> dict[str, Any]:
    """A new ``mk-`` key for the account, shown once; the old one stops working at once."""
    account_store.require(account_id)
    management_key = keys.new_key(keys.MANAGEMENT_PREFIX, account_id)
    changes = {"management_key": audit.secret(True, True)}
    entry = audit.entry("account.rotate_key", account_id, changes, account_id=account_id)
    account = account_store.set_management_key_hash(
        account_id, keys.hash_key(management_key), audit=entry
    )
    return {"account": views.account_json(account), "management_key": management_key}


def credit_account(account_id: str, body: schemas.CreditAccount, now: int) -> dict[str, Any]:
    units = _units(body.quota_units, body.quota_usd)
    if not units:
        param = "quota_usd" if body.quota_usd is not None else "quota_units"
        raise InvalidRequest("The credit must be at least one unit.", param=param)
    account_store.require(account_id)
    changes = audit.created({"credited_units": units, "note": body.note or None})
    entry = audit.entry("account.credit", account_id, changes, account_id=account_id)
    return views.account_json(account_store.credit(account_id, units, body.note, now, audit=entry))


# Tokens ---------------------------------------------------------------------------------------
def _new_token(
    account_id: str,
    now: int,
    *,
    name: str,
    expires_at: int = NEVER,
    quota_units: int | None = None,
    reset_period: str = "never",
    group: str = "default",
    models: tuple[str, ...] = (),
    allow_ips: tuple[str, ...] = (),
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_concurrency: int | None = None,
) -> tuple[TokenRecord, str]:
    token_id = keys.new_id()
    key = keys.new_key(keys.TOKEN_PREFIX, token_id)
    record = TokenRecord(
        id=token_id,
        account_id=account_id,
        name=name,
        key_hash=keys.hash_key(key),
        key_preview=keys.preview(key),
        status="enabled",
        created_at=now,
        expires_at=expires_at,
        unlimited=quota_units is None,
        quota_units=quota_units or 0,
        remaining_units=quota_units or 0,
        reset_period=reset_period,
        next_reset_at=resets.next_boundary(reset_period, now),
        group=group,
        models=models,
        allow_ips=allow_ips,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_concurrency=max_concurrency,
    )
    return record, key


def _expiry(body: schemas.TokenFields, now: int) -> int | None:
    """The new expires_at (NEVER for never), or None when the body does not touch expiry."""
    fields = body.model_fields_set
    if "expires_in_days" in fields and body.expires_in_days is not None:
        return now + body.expires_in_days * 86_400
    if "expires_at" in fields:
        return NEVER if body.expires_at is None else checked_expiry(body.expires_at, now)
    return None


def checked_expiry(expires_at: datetime, now: int) -> int:
    """An expiry date as epoch seconds: in the future, at most 10 years away (400 otherwise)."""
    at = int(expires_at.timestamp())
    if at <= now:
        raise InvalidRequest("expires_at must be in the future.", param="expires_at")
    if at > now + MAX_EXPIRY_DAYS * 86_400:
        raise InvalidRequest("expires_at is more than 10 years away.", param="expires_at")
    return at


def _granted_group(account: AccountRecord, group: str) -> str:
    """``group`` if the operator granted it to the account; 403 otherwise (nothing written).

    ``auto`` counts as granted when the account is granted ``auto`` or any group of the auto
    order (``core.groups``): each call then only ever picks among the account's own groups.
    """
    if group == AUTO_GROUP and may_use_auto(account.groups, config_store.load_auto_order()):
        return group
    if group not in account.groups:
        raise group_refusal(group)
    return group


def _batch_names(name: str, count: int) -> list[str]:
    """A batch's keys are told apart by name: "ci-1", "ci-2", ...; a single key keeps its name.

    The base is shortened when needed so every name stays within the 64 characters a name may have.
    """
    if count == 1:
        return [name]
    return [f"{name[: 63 - len(str(n))]}-{n}" for n in range(1, count + 1)]


def create_tokens(account_id: str, body: schemas.CreateTokens, now: int) -> dict[str, Any]:
    account = account_store.require(account_id)
    expires_at = _expiry(body, now)
    group = _granted_group(account, body.group or account.groups[0])
    quota = _units(body.quota_units, body.quota_usd)
    names = _batch_names(body.name, body.count)
    created = [
        _new_token(
            account_id,
            now,
            name=name,
            expires_at=expires_at or NEVER,
            quota_units=quota,
            reset_period=body.reset_period or "never",
            group=group,
            models=tuple(body.models or ()),
            allow_ips=tuple(body.allow_ips or ()),
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
            max_concurrency=body.max_concurrency,
        )
        for name in names
    ]
    records = [record for record, _ in created]
    entries = [
        audit.entry(
            "token.create",
            record.id,
            audit.created(audit.token_fields(record)),
            account_id=account_id,
        )
        for record in records
    ]
    token_store.create_many(records, audits=entries)
    return {"data": [views.token_json(record, now, key=key) for record, key in created]}


def list_tokens(
    account_id: str, limit: int, cursor: str | None, status: str | None, now: int
) -> dict[str, Any]:
    if status is not None and status not in token_store.STATUS_FILTERS:
        raise InvalidRequest(
            "status must be one of enabled, disabled, expired, exhausted.", param="status"
        )
    account_store.require(account_id)  # an admin's unknown ?account_id= is a 404, as elsewhere
    page = token_store.list_for_account(account_id, limit, cursor, status=status, now=now)
    return page_json(page, lambda token: views.token_json(token, now))


def get_token(account_id: str, token_id: str, now: int) -> dict[str, Any]:
    return views.token_json(token_store.get_owned(token_id, account_id), now)


def patch_token(
    account_id: str, token_id: str, body: schemas.PatchToken, now: int
) -> dict[str, Any]:
    fields = body.model_fields_set
    _refuse_nulls(
        body, "name", "status", "reset_period", "group", "models", "allow_ips", "expires_in_days"
    )
    expires_at = _expiry(body, now)
    current = token_store.get_owned(token_id, account_id)
    if "group" in fields and body.group != current.group:
        _granted_group(account_store.require(account_id), body.group or DEFAULT_GROUP)
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("name", "status", "group", *token_store.LIMITS)
        if name in fields
    }
    for name in ("models", "allow_ips"):
        if name in fields:
            changes[name] = tuple(getattr(body, name))
    if expires_at is not None:
        changes["expires_at"] = expires_at
    if "quota_units" in fields or "quota_usd" in fields:
        changes["quota_units"] = _units(body.quota_units, body.quota_usd)
    if "reset_period" in fields and body.reset_period != current.reset_period:
        # A key already past its boundary closes its period first, so the old period's usage
        # does not carry into the new one.
        current = jobs.reset_if_due(current, now) or current
        changes["reset_period"] = body.reset_period
        changes["next_reset_at"] = resets.next_boundary(body.reset_period or "never", now)
    entry = audit.entry(
        "token.update", current.id, _token_diff(current, changes), account_id=account_id
    )
    updated = token_store.update(current, token_store.TokenChanges(**changes), audit=entry)
    return views.token_json(updated, now)


def _token_diff(current: TokenRecord, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The audit's old -> new for a PATCH's ``changes`` (a quota of None: unlimited)."""
    fields = {k: v for k, v in changes.items() if k in TokenRecord.__dataclass_fields__}
    if "quota_units" in changes:
        fields["unlimited"] = changes["quota_units"] is None
        fields["quota_units"] = changes["quota_units"] or 0
    after = replace(current, **fields)
    return audit.diff(audit.token_fields(current), audit.token_fields(after))


def delete_token(account_id: str, token_id: str) -> None:
    current = token_store.get_owned(token_id, account_id)
    changes = audit.removed(audit.token_fields(current))
    entry = audit.entry("token.delete", token_id, changes, account_id=account_id)
    token_store.delete(token_id, account_id, audit=entry)


def regenerate_token(account_id: str, token_id: str, now: int) -> dict[str, Any]:
    current = token_store.get_owned(token_id, account_id)
    key = keys.new_key(keys.TOKEN_PREFIX, current.id)
    changes = {"key": audit.secret(True, True)}
    entry = audit.entry("token.regenerate", current.id, changes, account_id=account_id)
    updated = token_store.regenerate(current, keys.hash_key(key), keys.preview(key), audit=entry)
    return views.token_json(updated, now, key=key)
