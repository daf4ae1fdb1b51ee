"""Real streaming through the relay over HTTP (DynamoDB Local): events go out as they arrive.

The upstream here is paced by the test (``held_upstream``): it sends the first events and then
waits on an event the test sets, so "the client got event 1 while upstream still held the rest"
is a fact the test observes, not a timing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from held_upstream import USAGE, WORDS, HeldUpstream
from support import ADMIN_KEY

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord

pytestmark = pytest.mark.ddb_local

MODEL = "held-model"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "Stream, please."}], "stream": True}


@pytest.fixture(autouse=True)
def _settings_forgotten_after() -> Iterator[None]:
    """Tests here change settings through the environment: forget them afterwards."""
    yield
    from chalicelib.core.settings import reset_settings

    reset_settings()


@pytest.fixture
def held(server: str) -> Iterator[Callable[..., HeldUpstream]]:
    """Start paced upstreams serving MODEL (first started = highest priority)."""
    from chalicelib.core.channels import Channel
    from chalicelib.services import gateway
    from chalicelib.store import config as config_store
    from devtools.demo_seed import DEMO_PRICES

    started: list[HeldUpstream] = []

    def start(mode: str = "hold") -> HeldUpstream:
        upstream = HeldUpstream(mode).start()
        started.append(upstream)
        channel = Channel(
            id=f"held{len(started)}",
            name=f"held{len(started)}",
            base_url=upstream.base_url,
            models=(MODEL,),
            priority=100 - len(started),
        )
        config_store.put_channel(channel, None, int(time.time()))
        config_store.set_price(MODEL, DEMO_PRICES["gpt-4o-mini"], int(time.time()))
        config_store.invalidate()
        gateway.cache().entries.clear()
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


def _key(server: str) -> tuple[str, dict[str, Any]]:
    response = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "streams", "quota_usd": "5"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return created["default_token"]["key"], created


def _stream(server: str, key: str, body: Any = ASK) -> Any:
    return httpx.stream(
        "POST",
        f"{server}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _events(lines: Iterator[str]) -> Iterator[str]:
    """The data of each event, as it arrives."""
    for line in lines:
        if line.startswith("data: "):
            yield line[6:]


def _eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Wait (bounded) until ``check()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finished_records() -> list[Any]:
    return [record for record in UsageRecord.scan() if record.state != "pending"]


def _reserved(created: dict[str, Any]) -> tuple[int, int]:
    token = token_store.get(created["default_token"]["id"])
    account = account_store.get(created["account"]["id"])
    assert token is not None and account is not None
    return token.reserved_units, account.reserved_units


def _text(data: list[str]) -> str:
    chunks = [json.loads(item) for item in data if item != "[DONE]"]
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def test_the_first_event_reaches_the_client_while_upstream_holds_the_rest(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    # GIVEN an upstream that sends two events and then waits for the test
    upstream = held("hold")
    key, created = _key(server)

    # WHEN the client streams a chat
    with _stream(server, key) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())
        first = json.loads(next(events))
        # THEN the first event is here although upstream has not sent the rest yet
        assert not upstream.release.is_set()
        assert first["choices"][0]["delta"]["role"] == "assistant"
        upstream.release.set()
        rest, at_the_end = [], None
        for item in events:
            rest.append(item)
            if item == "[DONE]":  # what a caller that calls again at once would find
                at_the_end = (_reserved(created), _finished_records())

    # AND the rest follows, [DONE] last, usage charged from the provider's final chunk
    assert rest[-1] == "[DONE]"
    assert _text(rest) == "".join(WORDS)
    assert all(json.loads(item)["choices"] for item in rest[:-1])  # usage chunk stripped
    # AND the call was settled before [DONE] went out: nothing reserved, the record written
    assert at_the_end is not None
    reserved, [record] = at_the_end
    assert reserved == (0, 0)
    assert (record.state, record.status, record.stream) == ("settled", "ok", True)
    assert (record.prompt_tokens, record.completion_tokens) == (9, 6)
    assert not record.usage_estimated


def test_a_client_hanging_up_mid_stream_is_charged_what_it_got_and_released_at_once(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    # GIVEN a stream whose upstream holds after its first events
    upstream = held("hold")
    key, created = _key(server)

    # WHEN the client reads the first event and hangs up
    with _stream(server, key) as response:
        first = next(_events(response.iter_lines()))
        assert json.loads(first)["object"] == "chat.completion.chunk"

    # THEN the relay settles the call itself, as client_closed, with nothing left reserved
    records = _eventually(_finished_records, "the call to be settled")
    [record] = records
    assert (record.state, record.status) == ("settled", "client_closed")
    assert record.cost_units > 0 and record.usage_estimated
    # The settle lands right after the last bytes (the record first, then the two items).
    _eventually(lambda: _reserved(created) == (0, 0), "nothing left reserved")
    # AND it hung up on upstream, so the provider stops generating
    assert upstream.hung_up.wait(15)
    token = token_store.get(created["default_token"]["id"])
    assert token is not None and token.used_units == record.cost_units


def test_an_upstream_cut_after_the_first_event_ends_with_an_error_event(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    # GIVEN an upstream that sends two events and then drops the connection
    held("cut")
    key, created = _key(server)

    # WHEN the client streams
    with _stream(server, key) as response:
        status = response.status_code
        data = list(_events(response.iter_lines()))

    # THEN the stream started normally and ends with an OpenAI-shaped error, then [DONE]
    assert status == 200
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["type"] == "upstream_error" and set(error) == {"message", "type", "param", "code"}
    assert _text(data[:-2]) == WORDS[0]
    # AND the call is charged for what was delivered, estimated and flagged
    [record] = _eventually(_finished_records, "the call's record")
    assert (record.state, record.status) == ("settled", "upstream_error")
    assert record.cost_units > 0 and record.usage_estimated
    # The settle lands right after the last bytes (the record first, then the two items).
    _eventually(lambda: _reserved(created) == (0, 0), "nothing left reserved")


@pytest.mark.parametrize("first_mode", ["fail", "cut_early"])
def test_failover_happens_before_the_first_byte(
    server: str, held: Callable[..., HeldUpstream], first_mode: str
) -> None:
    # GIVEN a first channel that fails before any event and a second one that streams
    broken = held(first_mode)
    working = held("hold")
    working.release.set()
    key, _created = _key(server)

    # WHEN the client streams
    with _stream(server, key, {**ASK, "stream_options": {"include_usage": True}}) as response:
        data = list(_events(response.iter_lines()))

    # THEN it gets the second channel's whole answer, with the usage it asked for
    assert broken.requests == 1 and working.requests == 1
    assert _text(data) == "".join(WORDS)
    assert json.loads(data[-2])["usage"] == USAGE and data[-1] == "[DONE]"
    [record] = _eventually(_finished_records, "the call's record")
    assert (record.status, record.channel) == ("ok", "held2")


def test_every_channel_failing_before_the_first_byte_is_an_http_error(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    held("fail")
    key, created = _key(server)
    response = httpx.post(
        f"{server}/v1/chat/completions",
        json=ASK,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    [record] = _eventually(_finished_records, "the call's record")
    assert (record.state, record.cost_units) == ("refunded", 0)
    # The settle lands right after the last bytes (the record first, then the two items).
    _eventually(lambda: _reserved(created) == (0, 0), "nothing left reserved")


def test_a_silent_provider_gets_keepalives_before_its_first_token(
    server: str, held: Callable[..., HeldUpstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN keepalives after 0.2 s of silence, and an upstream silent until the test says
    from chalicelib.core.settings import reset_settings

    monkeypatch.setenv("SLUICE_STREAM_KEEPALIVE_SECONDS", "0.2")
    reset_settings()
    upstream = held("silent")
    key, _created = _key(server)

    # WHEN the client streams
    with _stream(server, key) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        # THEN it gets an SSE comment while the provider thinks
        assert first == ": keepalive"
        upstream.release.set()
        data = list(_events(lines))

    # AND then the answer, as usual
    assert _text(data) == "".join(WORDS) and data[-1] == "[DONE]"
    [record] = _eventually(_finished_records, "the call's record")
    assert record.status == "ok"


def test_the_openai_sdk_sees_the_chunks_one_by_one(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    # GIVEN a paced upstream
    upstream = held("hold")
    key, _created = _key(server)
    sdk = openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)

    # WHEN the SDK streams
    stream = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = iter(stream)
    # THEN its first chunks come while upstream holds the rest
    first, second = next(chunks), next(chunks)
    assert not upstream.release.is_set()
    assert first.choices[0].delta.role == "assistant"
    assert second.choices[0].delta.content == WORDS[0]
    upstream.release.set()
    rest = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert WORDS[0] + "".join(rest) == "".join(WORDS)


def test_langchain_chat_openai_sees_the_words_one_by_one(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    from langchain_openai import ChatOpenAI

    # GIVEN a paced upstream, and LangChain's OpenAI chat model pointed at the relay
    upstream = held("hold")
    key, _created = _key(server)
    chat = ChatOpenAI(model=MODEL, base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)

    # WHEN it streams
    chunks = iter(chat.stream("hi"))
    # THEN the first word comes while upstream holds the rest
    first_words = ""
    while not first_words:
        first_words = str(next(chunks).content)
    assert first_words == WORDS[0]
    assert not upstream.release.is_set()
    upstream.release.set()
    # AND the other words follow, one chunk each
    rest = [str(chunk.content) for chunk in chunks if chunk.content]
    assert rest == WORDS[1:]


def test_the_openai_sdk_raises_when_a_started_stream_breaks(
    server: str, held: Callable[..., HeldUpstream]
) -> None:
    # GIVEN an upstream that cuts its stream after the first events
    held("cut")
    key, _created = _key(server)
    sdk = openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)

    # WHEN the SDK streams  THEN it gets the delivered chunks, then raises the error event
    received: list[str] = []
    with pytest.raises(openai.APIError, match="broke off the stream"):
        for chunk in sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == WORDS[0]
