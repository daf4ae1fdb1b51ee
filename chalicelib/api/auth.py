"""Who is calling the management API: the operator (admin key) or one account (``mk-`` key).

Keys are compared in constant time, and an unknown key, a wrong secret and a disabled account all
get the same 401, so the answer reveals nothing about which part was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.core import keys
from chalicelib.core.errors import Forbidden, InvalidRequest, Unauthenticated
from chalicelib.core.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import secrets


@dataclass(frozen=True)
class Caller:
    is_admin: bool
    account_id: str | None = None

    def account_for(self, requested: str | None) -> str:
        """The account a /tokens call acts on: the caller's own, or ``?account_id=`` for admins."""
        if not self.is_admin:
            assert self.account_id is not None
            return self.account_id
        if not requested:
            raise InvalidRequest("account_id is required with the admin key.", param="account_id")
        return requested


def authenticate(authorization: str | None) -> Caller:
    """Admin or management key; a ``sk-`` key here is the wrong kind (403)."""
    presented = keys.bearer_token(authorization)
    if presented is None:
        raise Unauthenticated(
            "Missing or malformed Authorization header. Send 'Authorization: Bearer <key>'."
        )
    admin_key = secrets.admin_key(get_settings())
    if admin_key and keys.secrets_match(presented, admin_key):
        return Caller(is_admin=True)
    parsed = keys.parse_key(presented)
    if parsed is None:
        raise Unauthenticated()
    if parsed.kind == "token":
        raise Forbidden("API keys (sk-) call /v1; use the management key (mk-) for this route.")
    account = account_store.get(parsed.owner_id)
    if account is None or not keys.hashes_match(presented, account.management_key_hash):
        raise Unauthenticated()
    if account.status != "enabled":
        raise Unauthenticated("The account is disabled.", code="account_disabled")
    return Caller(is_admin=False, account_id=account.id)


def require_admin(authorization: str | None) -> Caller:
    caller = authenticate(authorization)
    if not caller.is_admin:
        raise Forbidden("This route needs the admin key.")
    return caller
