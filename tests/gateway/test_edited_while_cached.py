"""A key edited while a container still holds its copy: the reservation notices (the revision
moved) and the call is decided again on the key as stored, and logged as what it became."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support import ADMIN_KEY

from chalicelib.store import tables
from chalicelib.store.common import send
from chalicelib.store.models import UsageRecord

pytestmark = pytest.mark.ddb_local

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _key(server: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "edited", "quota_usd": "5"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["default_token"])


def _chat(server: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/chat/completions",
        json=HELLO,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _edited_elsewhere(token_id: str, update: str, values: dict[str, Any]) -> None:
    """An edit this container never hears of (another container's, or the CLI's): as every
    edit of a key does, it moves the key's revision."""
    names = {"ExpressionAttributeNames": {"#name": "name"}} if "#name" in update else {}
    send(
        "UpdateItem",
        {
            "TableName": tables.name(tables.TOKENS),
            "Key": {"id": {"S": token_id}},
            "UpdateExpression": update + " ADD revision :one",
            "ExpressionAttributeValues": {**values, ":one": {"N": "1"}},
            **names,
        },
    )


def _records(token_id: str) -> list[tuple[str, str, str]]:
    """(state, status or the refusal's code, key name) of each of the key's log records."""
    return sorted(
        (record.state, record.detail or record.status, record.token_name)
        for record in UsageRecord.scan()
        if record.token_id == token_id
    )


def test_a_call_refused_on_the_key_as_edited_is_logged_as_rejected(server: str) -> None:
    # GIVEN a key in use (its copy cached), then limited to another model elsewhere
    token = _key(server)
    assert _chat(server, token["key"]).status_code == 200
    _edited_elsewhere(token["id"], "SET models = :models", {":models": {"L": [{"S": "gpt-4o"}]}})
    # WHEN it calls for the model it may no longer use, on the cached copy
    response = _chat(server, token["key"])
    # THEN it is refused for that model, and the refusal is in the key's log
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert [r for r in _records(token["id"]) if r[0] == "rejected"] == [
        ("rejected", "model_not_allowed", token["name"])
    ]


def test_a_call_decided_again_on_the_edited_key_is_logged_as_that_key(server: str) -> None:
    # GIVEN a key in use (its copy cached), then renamed elsewhere
    token = _key(server)
    assert _chat(server, token["key"]).status_code == 200
    _edited_elsewhere(token["id"], "SET #name = :name", {":name": {"S": "renamed"}})
    # WHEN it calls on the cached copy  THEN it is answered, and logged under its new name
    assert _chat(server, token["key"]).status_code == 200
    assert _records(token["id"]) == [
        ("settled", "ok", token["name"]),
        ("settled", "ok", "renamed"),
    ]
