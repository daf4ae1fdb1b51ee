"""OpenAI's Conversations API (``/v1/conversations``): made on one channel, used only there.

A conversation is kept by the provider that created it, like a stored response, so it is owned
the same way (``store.owned``, kind "conversation")::

    POST /v1/conversations ─► key checked ─► body checked ─► the key's conversation channel
        ─► provider creates conv_... ─► remember conv_... -> account, channel, token bound of
           its items ─► answer
    every later call on conv_... (read, update, delete, items), and POST /v1/responses with
    "conversation": conv_... ─► its channel only; another account's id or an unknown one: 404,
    nothing sent

Conversations are not billed (only the responses that use them are), so no reservation is held
and, as for ``GET /v1/responses/{id}``, no usage record is written; the key must still be usable
(``gateway.usable_key``). What the conversation holds is billed as input of each response in
it, so the owner record carries an upper bound of its tokens: the items given at create, plus
those added later, and after each response the provider's own count (``gateway.remember_objects``).
A response's reservation adds it to its input bound.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from chalicelib import upstream
from chalicelib.core import conversations as rules
from chalicelib.core import errors, payloads
from chalicelib.core.channels import Channel, conversation_channel
from chalicelib.core.records import TokenRecord
from chalicelib.services import gateway, objects
from chalicelib.store import config_reads as config_store
from chalicelib.store import owned

KIND = gateway.CONVERSATION


def _channel_for(token: TokenRecord) -> Channel:
    """Where this key's new conversation goes (``core.channels.conversation_channel``)."""
    channel = conversation_channel(
        config_store.channels(),
        gateway.granted_groups(token),
        lambda model: not token.models or model in token.models,
    )
    if channel is None:
        raise errors.NotFound(
            "No channel serves a Responses model for this key, so it cannot hold a conversation."
        )
    return channel


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(reply: upstream.UpstreamReply) -> gateway.CallResult:
    return gateway.CallResult(reply.status, reply.body, reply.content_type, {})


def create(raw_body: bytes, authorization: str | None, source_ip: str) -> gateway.CallResult:
    """``POST /v1/conversations`` (optional ``items`` and ``metadata``)."""
    token = gateway.usable_key(authorization, source_ip)
    payload = rules.json_object(raw_body)
    items = rules.check_items(payload, required=False)
    rules.check_metadata(payload, required=False)
    channel = _channel_for(token)
    reply = upstream.call_object(channel, "POST", "/conversations", body=_body(payload))
    if reply.status < 400:
        try:
            made = json.loads(reply.body)
            conversation_id = payloads.check_id(made["id"], "id", creates=True)
        except (ValueError, KeyError, TypeError, errors.InvalidRequest) as exc:
            raise errors.UpstreamError(
                "The upstream provider answered with an unexpected body."
            ) from exc
        # Nothing was charged, so a failure here only leaves a conversation nobody can reach
        # at the provider; the client is told (its error) rather than handed an unusable id.
        owned.remember(KIND, conversation_id, token.account_id, channel.id,
                       owned.CONVERSATION_TTL_SECONDS,
                       tokens=rules.items_token_bound(items))  # fmt: skip
    return _answer(reply)


def call(
    conversation_id: str,
    method: str,
    item_id: str | None,
    items_path: bool,
    query: list[tuple[str, str]],
    raw_body: bytes | None,
    authorization: str | None,
    source_ip: str,
) -> gateway.CallResult:
    """Every call on ``/v1/conversations/{id}`` and its ``/items`` sub-paths (checked here,
    routed by ``objects.object_call``)."""
    token = gateway.usable_key(authorization, source_ip)
    allowed: tuple[str, ...] = ()
    body: bytes | None = None
    added = 0
    if items_path and item_id is None:
        if method == "POST":
            payload = rules.json_object(raw_body or b"")
            added = rules.items_token_bound(rules.check_items(payload, required=True))
            body, allowed = _body(payload), rules.INCLUDE_QUERY
        else:
            allowed = rules.LIST_QUERY
        suffix = "/items"
    elif item_id is not None:
        allowed = rules.INCLUDE_QUERY if method == "GET" else ()
        suffix = "/items/" + quote(item_id, safe="")
    else:
        if method == "POST":
            payload = rules.json_object(raw_body or b"")
            rules.check_metadata(payload, required=True)
            body = _body(payload)
        suffix = ""
    sent_query = rules.query_string(query, allowed)
    result = objects.object_call(
        KIND, conversation_id, method, suffix, authorization, source_ip,
        query=sent_query, body=body, token=token,
    )  # fmt: skip
    if added and result.status < 400:
        owned.add_tokens(KIND, conversation_id, added)
    return result
