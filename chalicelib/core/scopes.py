"""What an operator key may do: one scope per kind of admin work (pure).

The admin key holds every scope. An operator key (``ops-``) holds the scopes it was given, and a
key holding ``keys:admin`` can create or edit operator keys only within its own scopes, so no key
can ever mint one more powerful than itself. Which route needs which scope is declared once, in
``chalicelib.api.scopes``.
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.core.errors import InsufficientScope

SCOPES: dict[str, str] = {
    "resets:run": "Run the quota reset job on demand",
    "sweeper:run": "Run the reservation sweeper on demand",
    "ledger:verify": "Run the ledger verifier on demand",
    "accounts:read": "Read accounts",
    "accounts:write": "Create, edit and credit accounts; rotate management keys; edit their keys",
    "config:read": "Read channels, model prices and group ratios",
    "config:write": "Create, edit and delete channels, model prices and group ratios",
    "logs:read": "Read any account's logs, usage and API keys (?account_id=)",
    "audit:read": "Read the audit trail of every management action (GET /audit)",
    "keys:admin": "Manage operator keys, within the caller's own scopes",
}
ALL_SCOPES: frozenset[str] = frozenset(SCOPES)


def require(held: frozenset[str], needed: str, who: str = "This key") -> None:
    """403 ``insufficient_scope`` naming ``needed`` unless ``held`` includes it."""
    if needed not in held:
        raise InsufficientScope(
            f"{who} lacks the scope '{needed}' this route needs.", needed=needed
        )


def require_grantable(held: frozenset[str], granted: Iterable[str]) -> None:
    """403 unless every scope in ``granted`` is one the granting key holds itself."""
    beyond = sorted(set(granted) - held)
    if beyond:
        raise InsufficientScope(
            f"An operator key cannot grant the scope '{beyond[0]}', which it does not hold.",
            needed=beyond[0],
            param="scopes",
        )
