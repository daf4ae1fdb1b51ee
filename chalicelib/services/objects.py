"""Calls on an object one provider keeps (a stored response, a conversation): to its channel.

``object_call("response", "resp_1", "GET", "", ...)`` checks the key (as stored now: enabled,
unexpired, from an allowed IP), finds who owns the object (``store.owned``), and sends the call
to the one channel that holds it. An id this key's account did not make is a 404 whether it
exists or not, and nothing reaches a provider. These calls are not billed (providers do not bill
them) and not metered.
"""

from __future__ import annotations

from urllib.parse import quote

from chalicelib import upstream
from chalicelib.core import errors
from chalicelib.core.records import TokenRecord
from chalicelib.services import gateway
from chalicelib.store import config_reads as config_store
from chalicelib.store import owned

# The paths of each kind of object at the provider, and how OpenAI names it in a 404.
PROVIDER_PATHS = {gateway.RESPONSE: "/responses", gateway.CONVERSATION: "/conversations"}
NAMES = {gateway.RESPONSE: "Response", gateway.CONVERSATION: "Conversation"}


def object_call(
    kind: str,
    object_id: str,
    method: str,
    suffix: str,
    authorization: str | None,
    source_ip: str,
    *,
    query: str = "",
    body: bytes | None = None,
    token: TokenRecord | None = None,
) -> gateway.CallResult:
    """``method`` on the object (``suffix``: "", "/cancel", "/items/msg_1"...), on its channel.

    ``suffix`` is sent as given: a caller that puts a client's id in it quotes it first.
    ``token``: the caller's key, when the caller already checked it (``gateway.usable_key``).
    """
    if token is None:
        token = gateway.usable_key(authorization, source_ip)
    missing = errors.NotFound(f"{NAMES[kind]} with id '{object_id}' not found.", param="id")
    found = owned.owned_by(kind, object_id, token.account_id)
    if found is None:
        raise missing
    channel = next(
        (c for c in config_store.channels() if c.id == found.channel_id and c.enabled), None
    )
    if channel is None:
        raise missing
    reply = upstream.call_object(
        channel,
        method,
        f"{PROVIDER_PATHS[kind]}/{quote(object_id, safe='')}{suffix}",
        query=query,
        body=body,
    )
    return gateway.CallResult(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers={},
    )
