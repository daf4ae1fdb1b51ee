"""The only package that talks to DynamoDB.

``configure_store(settings)`` points the models at the stage's tables once per container; the
modules are used as namespaces: ``accounts``, ``tokens``, ``usage``, ``ledger`` (the money writes
of a relayed call), ``resets``, ``config`` (channels, prices, group ratios), ``secrets`` (SSM),
``models`` (the PynamoDB tables) and ``common`` (what they share).
"""

from __future__ import annotations

from chalicelib.core.settings import Settings, get_settings
from chalicelib.store import common, models

_configured_for: Settings | None = None


def configure_store(settings: Settings | None = None) -> None:
    """Idempotent: re-binds the models only when the settings changed (tests swap them)."""
    global _configured_for
    settings = settings or get_settings()
    if _configured_for != settings:
        models.configure(settings)
        common.configure_wire(settings)
        _configured_for = settings
