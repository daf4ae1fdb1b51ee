"""The demo upstream's Conversations API (``/v1/conversations``), kept per server.

Like stored responses, a conversation lives on the server that created it
(``MockUpstream.conversations``: id -> {"conversation": ..., "items": [...]}), so a call that
reaches another server gets 404 as it would at another provider. A response created with
``conversation`` (``mock_surface.responses_post``) reads its items as input, counted by the
mock's token rule (``conversation_tokens``) and reported as cached, and appends its input and
output to it, as OpenAI does.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from devtools.mock_upstream import TOKENS_PER_MESSAGE, count_tokens

if TYPE_CHECKING:
    from devtools.mock_upstream import _Handler

PATH = "/v1/conversations"
MAX_ITEMS = 20


def handles(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


def _bad(handler: _Handler, message: str, param: str | None, status: int = 400) -> None:
    from devtools.mock_surface import _bad as bad

    bad(handler, message, param, status)


def _with_id(item: dict[str, Any]) -> dict[str, Any]:
    kept = dict(item)
    kept.setdefault("id", f"msg_{uuid.uuid4().hex[:24]}")
    kept.setdefault("type", "message")
    return kept


def _items(handler: _Handler, body: dict[str, Any], required: bool) -> list[Any] | None:
    items = body.get("items")
    if items is None and not required:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        _bad(handler, "'items' must be an array of objects.", "items")
        return None
    if len(items) > MAX_ITEMS or (required and not items):
        _bad(handler, f"'items' must hold 1 to {MAX_ITEMS} items.", "items")
        return None
    return [_with_id(item) for item in items]


def _page(data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def conversation_tokens(items: list[dict[str, Any]]) -> int:
    from devtools.mock_surface import _item_text

    return sum(TOKENS_PER_MESSAGE + count_tokens(_item_text(item)) for item in items)


def serve(handler: _Handler, method: str, body: dict[str, Any] | None) -> None:
    """One call on ``/v1/conversations[/{id}[/items[/{item_id}]]]``."""
    path, _, query = handler.path.partition("?")
    parts = path.rstrip("/")[len(PATH) :].strip("/").split("/") if path.rstrip("/") != PATH else []
    kept = handler.owner.conversations
    if not parts:
        if method != "POST":
            _bad(handler, f"Use POST on {PATH}.", None, 405)
            return
        items = _items(handler, body or {}, required=False)
        if items is None:
            return
        conversation_id = f"conv_{uuid.uuid4().hex}"
        conversation = {
            "id": conversation_id,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": (body or {}).get("metadata") or {},
        }
        kept[conversation_id] = {"conversation": conversation, "items": items}
        handler._send_json(200, conversation)
        return
    found = kept.get(parts[0])
    if found is None or len(parts) > 3 or (len(parts) > 1 and parts[1] != "items"):
        _bad(handler, f"Conversation with id '{parts[0]}' not found.", None, 404)
        return
    conversation, items = found["conversation"], found["items"]
    if len(parts) == 1:
        if method == "GET":
            handler._send_json(200, conversation)
        elif method == "POST":
            metadata = (body or {}).get("metadata")
            if not isinstance(metadata, dict):
                _bad(handler, "'metadata' must be an object.", "metadata")
                return
            conversation["metadata"] = metadata
            handler._send_json(200, conversation)
        else:
            del kept[parts[0]]
            handler._send_json(
                200, {"id": parts[0], "object": "conversation.deleted", "deleted": True}
            )
    elif len(parts) == 2:
        if method == "POST":
            added = _items(handler, body or {}, required=True)
            if added is not None:
                items.extend(added)
                handler._send_json(200, _page(added))
        else:
            _list(handler, items, parse_qs(query))
    else:
        item = next((i for i in items if i["id"] == parts[2]), None)
        if item is None:
            _bad(handler, f"Item with id '{parts[2]}' not found.", None, 404)
        elif method == "GET":
            handler._send_json(200, item)
        else:
            items.remove(item)
            handler._send_json(200, conversation)


def _list(handler: _Handler, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
    order = query.get("order", ["desc"])[0]
    ordered = list(reversed(items)) if order == "desc" else list(items)
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    limit = int(query.get("limit", ["20"])[0])
    handler._send_json(200, _page(ordered[:limit], has_more=len(ordered) > limit))


def continued(handler: _Handler, conversation_id: str) -> list[dict[str, Any]] | None:
    """The items of the conversation a response continues (None: unknown here, answered 404)."""
    found = handler.owner.conversations.get(conversation_id)
    if found is None:
        _bad(handler, f"Conversation with id '{conversation_id}' not found.", "conversation", 404)
        return None
    items: list[dict[str, Any]] = found["items"]
    return items
