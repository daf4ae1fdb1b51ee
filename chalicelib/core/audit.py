"""The audit trail's rules (pure): who is acting, and what one management action changed.

Every management action writes one ``AuditEntry`` in the same DynamoDB transaction as the change
itself (see ``chalicelib.store.audit``), so a change is never left unrecorded and a refused change
records nothing. The use cases in ``chalicelib.services`` build the entry, because only they know
the value a field had before and the one it has after.

Who is acting is set once per request by the edge, right after it authenticated the caller
(``act_as``): ``admin``, the account id of a management key (``mk-``), or ``ops:<key id>`` for
an operator key. The use cases read it with ``current()``, so no handler can forget to pass it
on. Outside a request (the ``sluice`` CLI, bootstrap scripts) the caller holds the stage's AWS
credentials, i.e. every power of the admin key, and acts as ``admin``; inside a request that
nobody authenticated, ``current()`` refuses, so such a write can never be recorded as the admin.

Secrets never enter an entry: not a key, not its hash, not a preview. A secret field that changed
is recorded by name, its values replaced by ``SECRET`` (or None where there is none).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.alerts import shown_url
from chalicelib.core.records import AccountRecord, OperatorKeyRecord, TokenRecord
from chalicelib.core.views import iso

SECRET = "[secret]"  # noqa: S105 (a placeholder that stands in for one)
ADMIN = "admin"

# ``<target_type>.<verb>``: the actions the trail knows.
ACTIONS = (
    "account.create",
    "account.update",
    "account.credit",
    "account.rotate_key",
    "token.create",
    "token.update",
    "token.delete",
    "token.regenerate",
    "channel.create",
    "channel.update",
    "channel.delete",
    "price.update",
    "price.delete",
    "group.update",
    "opkey.create",
    "opkey.update",
    "opkey.delete",
    "alerts.update",
    "alerts.rotate_secret",
    "alerts.delete",
)
TARGET_TYPES = tuple(sorted({action.split(".")[0] for action in ACTIONS}))


@dataclass(frozen=True)
class Actor:
    """Who acts (``admin``, an account id, ``ops:<key id>``), from which address, in which call."""

    actor: str
    source_ip: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """One management action: what it did to which target, field by field (old -> new)."""

    action: str
    target_id: str
    actor: Actor
    account_id: str | None = None  # the account the target belongs to, if any
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def target_type(self) -> str:
        return self.action.split(".", 1)[0]


IN_PROCESS = Actor(ADMIN)
_acting: ContextVar[Actor | None] = ContextVar("sluice_audit_actor", default=IN_PROCESS)


class Unattributed(RuntimeError):
    """A management write inside a request whose caller was never authenticated (a bug)."""


def act_as(actor: Actor) -> None:
    """Name the caller of the current request (the edge, once it has authenticated it)."""
    _acting.set(actor)


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """``actor`` acts for the length of the block (a CLI command, a script)."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


@contextmanager
def request_scope() -> Iterator[None]:
    """One request: nobody acts until ``act_as`` names the caller, and nobody after it ends."""
    token: Token[Actor | None] = _acting.set(None)
    try:
        yield
    finally:
        _acting.reset(token)


def current() -> Actor:
    """Who is acting now; a request id is made up for callers outside a request."""
    actor = _acting.get()
    if actor is None:
        raise Unattributed("A management write in a request whose caller is unknown.")
    if not actor.request_id:
        return Actor(actor.actor, actor.source_ip, f"local-{uuid.uuid4().hex}")
    return actor


def entry(
    action: str,
    target_id: str,
    changes: dict[str, dict[str, Any]] | None = None,
    *,
    account_id: str | None = None,
) -> AuditEntry:
    """The entry for ``action`` on ``target_id``, by whoever is acting now."""
    assert action in ACTIONS, action
    return AuditEntry(action, target_id, current(), account_id, changes or {})


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"old": ..., "new": ...}}`` for each field of ``new`` whose value differs."""
    return {
        name: {"old": old.get(name), "new": value}
        for name, value in new.items()
        if old.get(name) != value
    }


def created(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A new target: every field from None to its value."""
    return diff({}, {name: value for name, value in fields.items() if value is not None})


def removed(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A deleted target: the fields it had, each to None."""
    return {name: {"old": value, "new": None} for name, value in fields.items()}


def secret(old_present: bool, new_present: bool) -> dict[str, Any]:
    """A secret field that was written: whether one was there before and after, never its value."""
    return {"old": SECRET if old_present else None, "new": SECRET if new_present else None}


# Reading the trail ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditLine:
    """One stored record, as listed."""

    at_ms: int
    actor: str
    action: str
    target_type: str
    target_id: str
    account_id: str | None
    changes: dict[str, Any]
    source_ip: str
    request_id: str


def line_json(line: AuditLine) -> dict[str, Any]:
    """A record as ``GET /audit`` shows it (``at`` in UTC, to the millisecond)."""
    at = datetime.fromtimestamp(line.at_ms / 1000, UTC)
    return {
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{line.at_ms % 1000:03d}Z",
        "actor": line.actor,
        "action": line.action,
        "target_type": line.target_type,
        "target_id": line.target_id,
        "changes": line.changes,
        "source_ip": line.source_ip,
        "request_id": line.request_id,
    }


def month_of(at_ms: int) -> str:
    """The partition of a record made at ``at_ms``: its UTC month, ``YYYY-MM``."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m")


def months_back(newest_ms: int, oldest_ms: int) -> list[str]:
    """The months from ``newest_ms``'s back to ``oldest_ms``'s, newest first."""
    newest = datetime.fromtimestamp(newest_ms / 1000, UTC)
    oldest = datetime.fromtimestamp(oldest_ms / 1000, UTC)
    year, month = newest.year, newest.month
    found = []
    while (year, month) >= (oldest.year, oldest.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return found


# What a target looks like in ``changes`` (the fields an operator sets, never a secret) ---------
def account_fields(account: AccountRecord) -> dict[str, Any]:
    return {
        "name": account.name,
        "status": account.status,
        "unlimited": account.unlimited,
        "quota_units": None if account.unlimited else account.quota_units,
        "groups": list(account.groups),
        "rpm_limit": account.rpm_limit,
        "tpm_limit": account.tpm_limit,
        "max_concurrency": account.max_concurrency,
    }


def token_fields(token: TokenRecord) -> dict[str, Any]:
    return {
        "name": token.name,
        "status": token.status,
        "expires_at": iso(token.expires_at),
        "quota_units": None if token.unlimited else token.quota_units,
        "reset_period": token.reset_period,
        "group": token.group,
        "models": list(token.models),
        "allow_ips": list(token.allow_ips),
        "rpm_limit": token.rpm_limit,
        "tpm_limit": token.tpm_limit,
        "max_concurrency": token.max_concurrency,
    }


def alert_target(kind: str, item_id: str) -> str:
    """The target id of an account's or a key's alert settings: ``account:<id>``, ``token:<id>``."""
    return f"{kind}:{item_id}"


def alert_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, new_secret: bool
) -> dict[str, dict[str, Any]]:
    """Old -> new of alert settings (``None``: none), with the webhook URL never in full.

    The URL is recorded as ``shown_url`` gives it (scheme, host, port): its path and query may
    be the receiver's credential. A URL that changed only where it is not shown is still a
    change, recorded with both sides shown alike. The signing secret is recorded by name only,
    when one was made (``new_secret``) or dropped with the settings.
    """

    def shown(fields: Mapping[str, Any] | None) -> dict[str, Any]:
        if fields is None:
            return {}
        return {
            name: shown_url(value) if name == "webhook_url" and value else value
            for name, value in fields.items()
        }

    before, after = shown(old), shown(new)
    names = list(dict.fromkeys([*(old or {}), *(new or {})]))
    changes = {
        name: {"old": before.get(name), "new": after.get(name)}
        for name in names
        if (old or {}).get(name) != (new or {}).get(name)
    }
    if new_secret or (new is None and old is not None):
        changes["webhook_secret"] = secret(old is not None, new is not None)
    return changes


def operator_key_fields(key: OperatorKeyRecord) -> dict[str, Any]:
    return {
        "name": key.name,
        "scopes": list(key.scopes),
        "status": key.status,
        "expires_at": iso(key.expires_at),
    }
