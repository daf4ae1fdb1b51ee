"""The stage's table names, and what raw items and the PynamoDB models share.

The relay reads and writes raw items (DynamoDB's JSON, ``items.py``) over ``common.send`` and
never imports PynamoDB or botocore: their import alone is most of a cold start. So what both
sides need lives here, free of them; ``models.py`` builds its tables on it.
"""

from __future__ import annotations

from chalicelib.core.settings import Settings, get_settings
from chalicelib.store import wire

ACCOUNT_KIND = "account"
RESET_BUCKET = "due"  # the one partition of the sparse reset index
SWEEP_BUCKET = "pending"  # the one partition of the sparse sweeper indexes

# Every client's limits, the lean one's and botocore's alike (``models.py`` sets the latter).
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = wire.MAX_ATTEMPTS  # botocore's legacy mode for DynamoDB

ACCOUNTS, TOKENS, USAGE, CONFIG, EVENTS, VIDEOS, AUDIT = (
    "accounts",
    "tokens",
    "usage",
    "config",
    "events",
    "videos",
    "audit",
)

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def configured() -> Settings | None:
    """The settings the store was configured with (None before ``configure_store``)."""
    return _settings


def name(suffix: str) -> str:
    """The table's name on this stage (``SLUICE_TABLE_PREFIX``, else ``sluice-<stage>``)."""
    return (_settings or get_settings()).table_name(suffix)
