"""PynamoDB models: the tables, their GSIs and TTL.

``infra/tables.yaml`` must declare exactly these keys, indexes and TTL attributes; a test compares
them. Table names come from ``Settings`` through ``configure()``, which every entry point calls
before the first request (through ``chalicelib.store.configure_store()``).

Money counters on tokens and accounts keep one invariant that every write preserves::

    remaining_units == (quota_units or 0) - used_units - reserved_units

so that a reservation can be a single conditional ``remaining_units >= :cost`` (DynamoDB conditions
cannot do arithmetic). ``unlimited`` items skip that comparison but keep the counters, so a quota
can be set later by adding it to ``remaining_units``.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.constants import STREAM_NEW_AND_OLD_IMAGE
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.core.records import NEVER
from chalicelib.core.settings import Settings
from chalicelib.store import tables
from chalicelib.store.tables import ACCOUNT_KIND as ACCOUNT_KIND
from chalicelib.store.tables import RESET_BUCKET as RESET_BUCKET
from chalicelib.store.tables import SWEEP_BUCKET as SWEEP_BUCKET

# The one retry layer of every DynamoDB call: botocore's, in legacy mode. Standard mode keeps a
# client-wide retry quota that a burst of throttling on one hot key drains in seconds, after
# which every write fails at once; legacy mode retries each call up to its own limit, with
# jittered exponential backoff (DynamoDB's: 50 ms doubling), so a retried call waits at most
# about 0.75 s on top of its attempts. Every money write is keyed by its request id, so a retry
# after a lost answer can never apply it twice. (PynamoDB reads this from its settings only;
# set on the shared connection before its client is created.)
RETRIES: Any = {"mode": "legacy", "total_max_attempts": tables.MAX_ATTEMPTS}


class _Meta:
    region = "us-east-1"
    host: str | None = None
    max_pool_connections = 128
    connect_timeout_seconds = tables.CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds = tables.READ_TIMEOUT_SECONDS
    max_retry_attempts = tables.MAX_ATTEMPTS - 1


# Accounts --------------------------------------------------------------------------------------
class AccountsByCreated(GlobalSecondaryIndex["Account"]):
    """Lists accounts newest first without a Scan (one partition: accounts are few)."""

    class Meta:
        index_name = "accounts_by_created"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class AccountsPending(GlobalSecondaryIndex["Account"]):
    """Sparse: accounts that may hold a reservation carry ``sweep_bucket`` (see core/quota.py)."""

    class Meta:
        index_name = "accounts_pending"
        projection = KeysOnlyProjection()

    sweep_bucket = UnicodeAttribute(hash_key=True)
    sweep_at = NumberAttribute(range_key=True)


class Account(Model):
    class Meta(_Meta):
        table_name = "sluice-dev-accounts"
        # Budget alerts read the table's stream (old vs new image); see services/alerts.py.
        stream_view_type = STREAM_NEW_AND_OLD_IMAGE

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default=ACCOUNT_KIND)
    name = UnicodeAttribute()
    status = UnicodeAttribute(default="enabled")
    unlimited = BooleanAttribute(default=False)
    quota_units = NumberAttribute(default=0)  # total ever granted
    used_units = NumberAttribute(default=0)
    reserved_units = NumberAttribute(default=0)
    remaining_units = NumberAttribute(default=0)
    created_at = NumberAttribute()
    management_key_hash = UnicodeAttribute()
    # The groups the account's keys may use; absent on items older than the attribute, which
    # then hold only "default" (see store.ledger's reservation condition).
    groups = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    # request id -> [reserved units, epoch seconds]; see the timeline in chalicelib/core/quota.py
    pending = MapAttribute[str, Any](default=dict)
    # Limits on all the account's keys together (absent: none) and their minute windows, as on
    # a token; the reservation compares the windows with these stored attributes.
    rpm_limit = NumberAttribute(null=True)
    tpm_limit = NumberAttribute(null=True)
    max_concurrency = NumberAttribute(null=True)
    requests_by_minute = MapAttribute[str, Any](null=True)
    tokens_by_minute = MapAttribute[str, Any](null=True)
    # Budget alerts (absent: none): the thresholds, and the highest one delivered in which
    # epoch (see chalicelib/core/alerts.py). Where deliveries go is a ConfigItem ("alert").
    alert_thresholds = ListAttribute[int](of=NumberAttribute, null=True)  # type: ignore[arg-type]
    alert_epoch = UnicodeAttribute(null=True)
    alert_level = NumberAttribute(null=True)
    # Bumped by every edit (store/accounts.update); see AccountRecord.revision.
    revision = NumberAttribute(null=True)

    # No later than the sweep deadline of its oldest pending entry (see core/quota.py).
    sweep_bucket = UnicodeAttribute(null=True)
    sweep_at = NumberAttribute(null=True)

    by_created = AccountsByCreated()
    pending_index = AccountsPending()


# Tokens ----------------------------------------------------------------------------------------
class TokensByAccount(GlobalSecondaryIndex["Token"]):
    class Meta:
        index_name = "tokens_by_account"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class TokensDueForReset(GlobalSecondaryIndex["Token"]):
    """Sparse: only tokens with a reset period carry ``reset_bucket``."""

    class Meta:
        index_name = "tokens_due_for_reset"
        projection = KeysOnlyProjection()

    reset_bucket = UnicodeAttribute(hash_key=True)
    next_reset_at = NumberAttribute(range_key=True)


class TokensPending(GlobalSecondaryIndex["Token"]):
    """Sparse: keys that may hold a reservation carry ``sweep_bucket`` (see core/quota.py)."""

    class Meta:
        index_name = "tokens_pending"
        projection = KeysOnlyProjection()

    sweep_bucket = UnicodeAttribute(hash_key=True)
    sweep_at = NumberAttribute(range_key=True)


class Token(Model):
    class Meta(_Meta):
        table_name = "sluice-dev-tokens"
        # Budget alerts read the table's stream (old vs new image); see services/alerts.py.
        stream_view_type = STREAM_NEW_AND_OLD_IMAGE

    id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    name = UnicodeAttribute()
    key_hash = UnicodeAttribute()
    key_preview = UnicodeAttribute()
    status = UnicodeAttribute(default="enabled")
    created_at = NumberAttribute()
    expires_at = NumberAttribute(default=NEVER)
    unlimited = BooleanAttribute(default=True)
    quota_units = NumberAttribute(default=0)
    used_units = NumberAttribute(default=0)
    reserved_units = NumberAttribute(default=0)
    remaining_units = NumberAttribute(default=0)
    total_used_units = NumberAttribute(default=0)
    reset_period = UnicodeAttribute(default="never")
    # Absent when the key has no reset period; ``reset_bucket`` is set exactly when it is present.
    next_reset_at = NumberAttribute(null=True)
    reset_bucket = UnicodeAttribute(null=True)
    last_reset_at = NumberAttribute(null=True)
    group = UnicodeAttribute(default="default")
    models = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    allow_ips = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    last_used_at = NumberAttribute(null=True)
    pending = MapAttribute[str, Any](default=dict)
    # Bumped by every edit; absent (0) on items older than the attribute.
    revision = NumberAttribute(null=True)
    # Rate limits (absent: none) and their fixed UTC minute windows: minute number (as a string)
    # -> requests reserved / tokens reported in it (see core/limits.py). The maps exist on every
    # item that can have a limit (a SET on ``map.#minute`` needs its map): new items get them
    # empty, and setting a limit on an older item creates them.
    rpm_limit = NumberAttribute(null=True)
    tpm_limit = NumberAttribute(null=True)
    max_concurrency = NumberAttribute(null=True)
    requests_by_minute = MapAttribute[str, Any](null=True)
    tokens_by_minute = MapAttribute[str, Any](null=True)
    # Budget alerts (absent: none): the thresholds, and the highest one delivered in which
    # epoch (see chalicelib/core/alerts.py). Where deliveries go is a ConfigItem ("alert").
    alert_thresholds = ListAttribute[int](of=NumberAttribute, null=True)  # type: ignore[arg-type]
    alert_epoch = UnicodeAttribute(null=True)
    alert_level = NumberAttribute(null=True)

    sweep_bucket = UnicodeAttribute(null=True)
    sweep_at = NumberAttribute(null=True)

    by_account = TokensByAccount()
    due_for_reset = TokensDueForReset()
    pending_index = TokensPending()


# Usage log / reservation ledger ----------------------------------------------------------------
class UsageByAccount(GlobalSecondaryIndex["UsageRecord"]):
    class Meta:
        index_name = "usage_by_account"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_ms = NumberAttribute(range_key=True)


class UsageRecord(Model):
    """One relayed call: its reservation (pending -> settled | refunded) and its log line."""

    class Meta(_Meta):
        table_name = "sluice-dev-usage"

    request_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    token_id = UnicodeAttribute()
    token_name = UnicodeAttribute(default="")
    created_ms = NumberAttribute()
    model = UnicodeAttribute(default="")
    channel = UnicodeAttribute(default="")
    state = UnicodeAttribute(default="pending")
    status = UnicodeAttribute(default="pending")
    reserved_units = NumberAttribute(default=0)
    cost_units = NumberAttribute(default=0)
    prompt_tokens = NumberAttribute(default=0)
    completion_tokens = NumberAttribute(default=0)
    latency_ms = NumberAttribute(default=0)
    stream = BooleanAttribute(default=False)
    usage_estimated = BooleanAttribute(default=False)
    detail = UnicodeAttribute(null=True)
    content = UnicodeAttribute(null=True)
    group = UnicodeAttribute(null=True)
    expire_at = TTLAttribute(null=True)

    by_account = UsageByAccount()


class OwnedRecord(Model):
    """Which account and channel own an object a provider keeps (a stored response, a video
    job), so later calls on its id reach that channel and nobody else's key sees it.

    Kept in the usage table (``configure`` points it there): one small item per object, written
    once per call like a usage record and expired by the same TTL. Its key, ``<kind>#<object
    id>``, never collides with a request id (``req_...``), and it carries no ``account_id``, so
    the ``usage_by_account`` index (and every report built on it) never sees it.
    """

    class Meta(_Meta):
        table_name = "sluice-dev-usage"

    key = UnicodeAttribute(hash_key=True, attr_name="request_id")
    owner_account = UnicodeAttribute()
    owner_channel = UnicodeAttribute()
    created_at = NumberAttribute()
    tokens = NumberAttribute(default=0)
    expire_at = TTLAttribute(null=True)


# Configuration: channels, model prices, group ratios -------------------------------------------
class ConfigItem(Model):
    """Small, rarely written configuration, read with one Query per kind.

    kind = "channel" | "price" | "group" | "auto_order" (cached per container, see
    store/config_reads.py, with "stamp" counting their writes),
    "opkey" (operator keys, never cached, see store/operator_keys.py) or "alert" (where a key's
    or account's budget alerts go, see store/alerts.py); name = channel id, model name, group
    name, operator key id, or "account#<id>" / "token#<id>".
    """

    class Meta(_Meta):
        table_name = "sluice-dev-config"

    kind = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)
    body = MapAttribute[str, Any](default=dict)
    updated_at = NumberAttribute(default=0)
    # Only on the stamp item ("stamp", "relay"): how many writes the relay's kinds have had.
    revision = NumberAttribute(null=True)


# History: credits, resets and other events worth keeping per account or token ------------------
class Event(Model):
    class Meta(_Meta):
        table_name = "sluice-dev-events"

    subject = UnicodeAttribute(hash_key=True)  # "account#<id>" or "token#<id>"
    at_id = UnicodeAttribute(range_key=True)  # "<epoch ms, zero padded>#<random>"
    kind = UnicodeAttribute()
    body = MapAttribute[str, Any](default=dict)
    expire_at = TTLAttribute(null=True)


# Ownership: which account and channel an upstream object (a video job...) belongs to ------------
class VideoJobsByAccount(GlobalSecondaryIndex["VideoJobItem"]):
    """One account's objects of one kind, newest first: ``GET /v1/videos`` without a Scan."""

    class Meta:
        index_name = "video_jobs_by_account"
        projection = AllProjection()

    listed_under = UnicodeAttribute(hash_key=True)  # "<account id>#<kind>"
    created_ms = NumberAttribute(range_key=True)


class VideoJobItem(Model):
    """``id`` = "<kind>#<object id>": read with a strongly consistent GetItem on every call."""

    class Meta(_Meta):
        table_name = "sluice-dev-videos"

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    object_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    channel_id = UnicodeAttribute()
    created_ms = NumberAttribute()
    # Unset on items that only the sweeper reads (they stay out of the account's listing).
    listed_under = UnicodeAttribute(null=True)
    attributes = MapAttribute[str, Any](default=dict)
    expire_at = TTLAttribute(null=True)

    by_account = VideoJobsByAccount()


# Audit trail: one item per management action, written in the change's own transaction -------
class AuditByAccount(GlobalSecondaryIndex["AuditRecord"]):
    """Sparse: one account's records (its keys and itself), newest first."""

    class Meta:
        index_name = "audit_by_account"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)


class AuditByTarget(GlobalSecondaryIndex["AuditRecord"]):
    """One target's records (``<target_type>#<target_id>``), newest first."""

    class Meta:
        index_name = "audit_by_target"
        projection = AllProjection()

    target = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)


class AuditRecord(Model):
    """Partitioned by UTC month (``bucket`` = "2026-12"), so "every record, newest first" is a
    Query per month walked backwards, never a Scan; see chalicelib/store/audit.py."""

    class Meta(_Meta):
        table_name = "sluice-dev-audit"

    bucket = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)  # "<epoch ms, 13 digits>#<random>"
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    target_type = UnicodeAttribute()
    target_id = UnicodeAttribute()
    target = UnicodeAttribute()
    account_id = UnicodeAttribute(null=True)
    changes = UnicodeAttribute(default="{}")  # JSON: {field: {"old": ..., "new": ...}}
    source_ip = UnicodeAttribute(default="")
    request_id = UnicodeAttribute(default="")
    expire_at = TTLAttribute(null=True)

    by_account = AuditByAccount()
    by_target = AuditByTarget()


TABLES: dict[str, type[Model]] = {
    tables.ACCOUNTS: Account,
    tables.TOKENS: Token,
    tables.USAGE: UsageRecord,
    tables.CONFIG: ConfigItem,
    tables.EVENTS: Event,
    tables.VIDEOS: VideoJobItem,
    tables.AUDIT: AuditRecord,
}


def configure(settings: Settings) -> None:
    """Point every model at the stage's tables and endpoint, sharing one botocore client.

    PynamoDB gives each model its own client; one shared client halves the cold start's client
    set-up and keeps one connection pool, which the ledger's parallel writes draw from.
    """
    tables.configure(settings)
    shared = None
    for suffix, model in TABLES.items():
        model.Meta.table_name = settings.table_name(suffix)
        model.Meta.region = settings.region
        model.Meta.host = settings.dynamodb_endpoint
        model._connection = None
        table_connection = model._get_connection()
        if shared is None:
            shared = table_connection.connection
            shared._retry_configuration = RETRIES
        else:
            table_name = model.Meta.table_name
            if table_name not in shared._tables:
                shared.add_meta_table(table_connection.connection.get_meta_table(table_name))
            table_connection.connection = shared
    # Not a table of its own: it lives in the usage table (see its docstring).
    OwnedRecord.Meta.table_name = UsageRecord.Meta.table_name
    OwnedRecord.Meta.region = settings.region
    OwnedRecord.Meta.host = settings.dynamodb_endpoint
    OwnedRecord._connection = None
    if shared is not None:
        OwnedRecord._get_connection().connection = shared


def create_tables(wait: bool = True) -> list[str]:
    """Create any missing table (local runs and tests; AWS stacks get them from infra/).

    PynamoDB turns TTL on for models with a ``TTLAttribute`` as it creates them.
    """
    created = []
    for model in TABLES.values():
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=wait)
            created.append(model.Meta.table_name)
    return created


def delete_tables() -> None:
    for model in TABLES.values():
        if model.exists():
            model.delete_table()


# Imported after the store was configured (the relay's path loads the models only when botocore
# must carry its calls), the models take the stage's tables at once.
_configured = tables.configured()
if _configured is not None:
    configure(_configured)
