"""Plain records the store hands to the rest of the code (pure: no pynamodb outside store/).

Times are UTC epoch seconds (``int``); ``expires_at == 0`` means never. Money is integer units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEVER = 0

DEFAULT_GROUP = "default"
TOKEN_STATUSES = ("enabled", "disabled")
EFFECTIVE_STATUSES = ("enabled", "disabled", "expired", "exhausted")


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    status: str
    unlimited: bool
    quota_units: int
    used_units: int
    reserved_units: int
    remaining_units: int
    created_at: int
    management_key_hash: str = field(repr=False)
    # The channel groups this account's keys may use; the operator grants them (price ratios and
    # dedicated channels are the operator's, not the tenant's, to choose).
    groups: tuple[str, ...] = (DEFAULT_GROUP,)
    # Limits capping all the account's keys together (None: none), as on a key (see
    # core/limits.py), and what the item held when read: calls in flight, minute windows.
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrency: int | None = None
    in_flight: int = 0
    requests_by_minute: dict[int, int] = field(default_factory=dict, compare=False)
    tokens_by_minute: dict[int, int] = field(default_factory=dict, compare=False)
    # Bumped by every edit of the account (status, groups, limits, name); the reservation's
    # condition pins the revision the call was admitted on, as a key's does. Items older than
    # the attribute are revision 0.
    revision: int = 0

    def is_exhausted(self) -> bool:
        return not self.unlimited and self.remaining_units <= 0


@dataclass(frozen=True)
class TokenRecord:
    id: str
    account_id: str
    name: str
    key_hash: str = field(repr=False)
    key_preview: str = ""
    status: str = "enabled"
    created_at: int = 0
    expires_at: int = NEVER
    unlimited: bool = True
    quota_units: int = 0
    used_units: int = 0
    reserved_units: int = 0
    remaining_units: int = 0
    total_used_units: int = 0
    reset_period: str = "never"
    next_reset_at: int | None = None
    last_reset_at: int | None = None
    group: str = DEFAULT_GROUP
    models: tuple[str, ...] = ()
    allow_ips: tuple[str, ...] = ()
    last_used_at: int | None = None
    # Bumped by every edit of the key; the reservation's condition pins the revision the
    # gateway checked permissions (group, models, allowed IPs) against, so a cached copy is never
    # trusted for them.
    revision: int = 0
    # Rate limits (None: none); enforced by the reservation's condition (see core/limits.py).
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrency: int | None = None
    # As last read: calls in flight (entries in ``pending``), and the per-minute counters
    # (UTC minute number -> requests reserved / tokens reported in that minute).
    in_flight: int = 0
    requests_by_minute: dict[int, int] = field(default_factory=dict, compare=False)
    tokens_by_minute: dict[int, int] = field(default_factory=dict, compare=False)

    def is_expired(self, now: int) -> bool:
        return self.expires_at != NEVER and self.expires_at <= now

    def is_exhausted(self) -> bool:
        return not self.unlimited and self.remaining_units <= 0

    def effective_status(self, now: int) -> str:
        """What a user sees: disabled beats expired beats exhausted beats enabled."""
        if self.status != "enabled":
            return "disabled"
        if self.is_expired(now):
            return "expired"
        if self.is_exhausted():
            return "exhausted"
        return "enabled"


@dataclass(frozen=True)
class Page:
    """One page of a list: items plus an opaque cursor for the next page (None at the end)."""

    items: list  # type: ignore[type-arg]
    next_cursor: str | None


OPERATOR_KEY_STATUSES = ("enabled", "disabled")


@dataclass(frozen=True)
class OperatorKeyRecord:
    """An operator key (``ops-``): a name, its scopes, and the SHA-256 of the key, never the key."""

    id: str
    name: str
    scopes: tuple[str, ...]
    key_hash: str = field(repr=False)
    key_preview: str = ""
    status: str = "enabled"
    created_at: int = 0
    expires_at: int = NEVER
    last_used_at: int | None = None
    # Bumped by every edit; an edit applies only over the revision it read.
    revision: int = 1

    def is_expired(self, now: int) -> bool:
        return self.expires_at != NEVER and self.expires_at <= now

    def effective_status(self, now: int) -> str:
        """Disabled beats expired beats enabled."""
        if self.status != "enabled":
            return "disabled"
        return "expired" if self.is_expired(now) else "enabled"
