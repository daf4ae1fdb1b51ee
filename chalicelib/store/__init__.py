"""The only package that talks to DynamoDB.

``configure_store(settings)`` points the store at the stage's tables once per container; the
modules are used as namespaces: ``accounts``, ``tokens``, ``usage``, ``ledger`` (the money writes
of a relayed call), ``resets``, ``config`` (channels, prices, group ratios), ``secrets`` (SSM),
``models`` (the PynamoDB tables), ``tables`` and ``items`` (raw items, for the modules the relay
uses without PynamoDB) and ``common`` (what they share).
"""

from __future__ import annotations

import sys

from chalicelib.core.settings import Settings, get_settings
from chalicelib.store import common, tables

_configured_for: Settings | None = None


def configure_store(settings: Settings | None = None) -> None:
    """Idempotent: re-binds the tables only when the settings changed (tests swap them).

    The PynamoDB models are configured here only if something imported them already; the relay
    never does, and ``models`` configures itself when it is imported later.
    """
    global _configured_for
    settings = settings or get_settings()
    if _configured_for != settings:
        tables.configure(settings)
        models = sys.modules.get("chalicelib.store.models")
        if models is not None:
            models.configure(settings)
        common.configure_wire(settings)
        _configured_for = settings
