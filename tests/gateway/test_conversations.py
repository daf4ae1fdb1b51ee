"""OpenAI's Conversations API through the relay (moto, demo upstream), and responses in one.

Prices (devtools/demo_seed.py): gpt-4.1-mini US$0.40 / 0.10 cached / 1.60 per Mtok; one unit is
US$0.000002. The demo provider reports a conversation's items as cached input.
"""

from __future__ import annotations

from typing import Any

from support import fresh_key, spent

from chalicelib.core.channels import Channel
from chalicelib.store import config as config_store
from chalicelib.store import owned
from chalicelib.store.models import OwnedRecord, UsageRecord
from devtools.mock_upstream import MockUpstream

CONVERSATIONS = "/v1/conversations"
RESPONSES = "/v1/responses"
ASK = {"model": "gpt-4.1-mini", "input": "Hello there!"}
FIRST_ITEMS = [
    {"type": "message", "role": "user", "content": "My name is Ada."},
    {"type": "message", "role": "assistant", "content": "Nice to meet you, Ada."},
]


def _units(input_tokens: int, cached: int, output: int) -> int:
    hundredths = (input_tokens - cached) * 40 + cached * 10 + output * 160
    return -(-hundredths // 200)


def _owner_records() -> list[OwnedRecord]:
    return [r for r in OwnedRecord.scan() if r.key.startswith("conversation#")]


def test_a_conversation_lives_on_its_channel_and_responses_in_it_go_there(
    relay_api: Any, upstream: MockUpstream
) -> None:
    # GIVEN a conversation created with two items and metadata
    key, token_id, account_id = fresh_key(relay_api)
    body = {"items": FIRST_ITEMS, "metadata": {"topic": "names"}}
    status, made = relay_api.call("POST", CONVERSATIONS, key=key, body=body)
    assert status == 200, made
    assert made["object"] == "conversation" and made["metadata"] == {"topic": "names"}
    path = f"{CONVERSATIONS}/{made['id']}"
    # AND then a second channel serving the model, preferred for new calls
    with MockUpstream().start() as other:
        config_store.put_channel(
            Channel(id="preferred", name="preferred", base_url=other.base_url,
                    models=("gpt-4.1-mini",), priority=10),
            None,
            1_700_000_000,
        )  # fmt: skip

        # WHEN a response is made in the conversation (by id, then as an object), and a fresh one
        follow = {**ASK, "input": "What is my name?", "conversation": made["id"]}
        status, first = relay_api.call("POST", RESPONSES, key=key, body=follow)
        again = {**follow, "conversation": {"id": made["id"]}, "stream": True}
        streamed, text = relay_api.call("POST", RESPONSES, key=key, body=again)
        relay_api.call("POST", RESPONSES, key=key, body=ASK)

    # THEN both responses reached the conversation's channel, the fresh one the preferred one
    assert status == 200, first
    assert first["conversation"] == {"id": made["id"]}
    assert streamed == 200 and "response.completed" in text
    assert other.requests == 1
    # AND the first is charged exactly, the conversation's items as the cached input they are
    usage = first["usage"]
    cached = usage["input_tokens_details"]["cached_tokens"]
    assert cached > 0
    response_records = sorted(
        (r for r in UsageRecord.scan() if r.request_id.startswith("req_")),
        key=lambda r: r.created_ms,
    )
    assert response_records[0].cost_units == _units(
        usage["input_tokens"], cached, usage["output_tokens"]
    )
    assert spent(token_id, account_id)[1::2] == (0, 0)
    # AND the conversation holds the items, the question and both answers, listed as asked
    status, page = relay_api.call("GET", path + "/items?limit=2&order=asc", key=key)
    assert status == 200, page
    assert [item["content"] for item in page["data"]] == [i["content"] for i in FIRST_ITEMS]
    assert page["has_more"] is True
    query = f"after={page['last_id']}&order=asc&include[]=message.output_text.logprobs"
    status, rest = relay_api.call("GET", f"{path}/items?{query}", key=key)
    assert status == 200 and len(rest["data"]) == 4, rest

    # WHEN items are added, one read and deleted, the metadata changed, the conversation deleted
    added = {"items": [{"type": "message", "role": "user", "content": "x" * 400}]}
    status, new_items = relay_api.call("POST", path + "/items", key=key, body=added)
    assert status == 200, new_items
    [record] = _owner_records()
    item_path = f"{path}/items/{new_items['data'][0]['id']}"
    assert relay_api.call("GET", item_path, key=key)[1]["content"] == "x" * 400
    assert relay_api.call("DELETE", item_path, key=key)[1]["id"] == made["id"]
    assert relay_api.call("GET", item_path, key=key)[0] == 404
    status, updated = relay_api.call("POST", path, key=key, body={"metadata": {"topic": "x"}})
    assert (status, updated["metadata"]) == (200, {"topic": "x"})
    assert relay_api.call("GET", path, key=key)[1]["metadata"] == {"topic": "x"}
    status, deleted = relay_api.call("DELETE", path, key=key)

    # THEN each reached the provider; the added item's bound is carried by the next response
    assert (status, deleted["deleted"]) == (200, True)
    assert record.tokens >= usage["total_tokens"] + 100
    assert relay_api.call("GET", path, key=key)[0] == 404


def test_another_account_gets_404_on_every_conversation_route_and_nothing_is_sent(
    relay_api: Any, upstream: MockUpstream
) -> None:
    # GIVEN a conversation of account A with one item, and account B
    key_a, _, _ = fresh_key(relay_api, "a")
    key_b, token_b, account_b = fresh_key(relay_api, "b")
    _, made = relay_api.call("POST", CONVERSATIONS, key=key_a, body={"items": FIRST_ITEMS[:1]})
    _, page = relay_api.call("GET", f"{CONVERSATIONS}/{made['id']}/items", key=key_a)
    path, item = f"{CONVERSATIONS}/{made['id']}", page["data"][0]["id"]
    sent = upstream.requests

    # WHEN B calls every route on it, and makes a response in it
    calls = [
        ("GET", path, None),
        ("POST", path, {"metadata": {"a": "b"}}),
        ("DELETE", path, None),
        ("POST", path + "/items", {"items": FIRST_ITEMS}),
        ("GET", path + "/items", None),
        ("GET", f"{path}/items/{item}", None),
        ("DELETE", f"{path}/items/{item}", None),
    ]
    answers = [relay_api.call(method, p, key=key_b, body=body) for method, p, body in calls]
    in_it = {**ASK, "conversation": made["id"]}
    responded = relay_api.call("POST", RESPONSES, key=key_b, body=in_it)

    # THEN every one is the 404 an unknown id gets, and nothing reached the provider
    unknown = relay_api.call("GET", f"{CONVERSATIONS}/conv_unknown", key=key_b)
    assert unknown[0] == 404 and unknown[1]["error"]["param"] == "id"
    for (method, p, _), (status, body) in zip(calls, answers, strict=True):
        assert status == 404 and body["error"]["param"] == "id", (method, p, body)
        assert body["error"]["message"].startswith("Conversation with id"), body
    assert responded[0] == 404 and responded[1]["error"]["param"] == "conversation"
    assert upstream.requests == sent
    # AND B was charged nothing, A's conversation is intact
    assert spent(token_b, account_b) == (0, 0, 0, 0)
    assert relay_api.call("GET", path, key=key_a)[0] == 200
    # AND a disabled key reaches no conversation, not even its own, and cannot make one
    created = relay_api.new_account("c", quota_usd="1")
    key_c, token_c = created["default_token"]["key"], created["default_token"]["id"]
    _, own = relay_api.call("POST", CONVERSATIONS, key=key_c, body={})
    disable = {"status": "disabled"}
    assert relay_api.call("PATCH", f"/tokens/{token_c}", key=created["management_key"],
                          body=disable)[0] == 200  # fmt: skip
    for method, p in (("POST", CONVERSATIONS), ("GET", f"{CONVERSATIONS}/{own['id']}")):
        status, body = relay_api.call(method, p, key=key_c, body={})
        assert status == 401 and body["error"]["code"] == "key_disabled", body


BAD_INPUT = [
    ("POST", "", "{not json", None),
    ("POST", "", [1], None),
    ("POST", "", {"items": "hello"}, "items"),
    ("POST", "", {"items": ["hello"]}, "items.0"),
    ("POST", "", {"items": [{"type": "message"}] * 21}, "items"),
    ("POST", "", {"metadata": ["a"]}, "metadata"),
    ("POST", "", {"metadata": {"a": 1}}, "metadata.a"),
    ("POST", "", {"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ("POST", "/{id}", {}, "metadata"),
    ("POST", "/{id}", {"metadata": "x"}, "metadata"),
    ("POST", "/{id}/items", {}, "items"),
    ("POST", "/{id}/items", {"items": []}, "items"),
    ("POST", "/{id}/items", {"items": {"a": 1}}, "items"),
    ("GET", "/{id}/items?limit=0", None, "limit"),
    ("GET", "/{id}/items?limit=abc", None, "limit"),
    ("GET", "/{id}/items?order=up", None, "order"),
    ("GET", "/{id}/items?cursor=x", None, "cursor"),
    ("GET", "/{id}?include=x", None, "include"),
]


def test_bad_input_is_an_openai_shaped_400_naming_the_param_and_nothing_is_written_or_sent(
    relay_api: Any, upstream: MockUpstream
) -> None:
    # GIVEN a conversation, and the provider's request count after it was made
    key, token_id, account_id = fresh_key(relay_api)
    _, made = relay_api.call("POST", CONVERSATIONS, key=key, body={})
    [before] = _owner_records()
    sent = upstream.requests

    # WHEN each bad request is sent  THEN a 400 naming the parameter
    for method, suffix, body, param in BAD_INPUT:
        path = CONVERSATIONS + suffix.replace("{id}", made["id"])
        raw = body if isinstance(body, str) else None
        status, answer = relay_api.call(method, path, key=key, body=None if raw else body, raw=raw)
        assert status == 400, (method, path, answer)
        assert answer["error"]["param"] == param and answer["error"]["message"], (path, answer)
    # AND nothing reached the provider, no conversation was recorded, nothing was charged
    assert upstream.requests == sent
    [after] = _owner_records()
    assert (after.key, after.tokens) == (before.key, before.tokens)
    assert owned.owner("conversation", made["id"]) is not None
    assert spent(token_id, account_id) == (0, 0, 0, 0)


def test_a_disabled_accounts_key_reaches_none_of_its_stored_objects(
    relay_api: Any, upstream: MockUpstream
) -> None:
    # GIVEN an account's conversation and stored response, then the operator disables the account
    key, _, account_id = fresh_key(relay_api, "d")
    _, conversation = relay_api.call("POST", CONVERSATIONS, key=key, body={})
    _, response = relay_api.call("POST", RESPONSES, key=key, body=ASK)
    disabled = relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "disabled"})
    assert disabled[0] == 200, disabled
    sent = upstream.requests

    # WHEN its (still enabled) key reads them, or makes a conversation
    answers = [
        relay_api.call("GET", f"{CONVERSATIONS}/{conversation['id']}", key=key),
        relay_api.call("GET", f"{RESPONSES}/{response['id']}", key=key),
        relay_api.call("POST", CONVERSATIONS, key=key, body={}),
    ]

    # THEN each is refused as the account's calls are, and nothing reached the provider
    for status, body in answers:
        assert status == 401 and body["error"]["code"] == "account_disabled", body
    assert upstream.requests == sent
