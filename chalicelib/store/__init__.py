"""The only package that talks to DynamoDB.

``configure_store(settings)`` points the models at the stage's tables once per container; the
modules (``accounts``, ``tokens``, ``quota``, ``usage``, ``config``) are used as namespaces.
"""

from __future__ import annotations

from chalicelib.core.settings import Settings, get_settings
from chalicelib.store import models

_configured_for: Settings | None = None


def configure_store(settings: Settings | None = None) -> None:
    """Idempotent: re-binds the models only when the settings changed (tests swap them)."""
    global _configured_for
    settings = settings or get_settings()
    if _configured_for != settings:
        models.configure(settings)
        _configured_for = settings
