"""Keys made in the console, used through the relay: the call shows in Logs and in the usage
chart, a key disabled in the console is refused at the next call, and the in-console tests (key
dialog, Playground) show answer, latency and cost. Needs the demo upstream (``relay_stack``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

COST_TEXT = re.compile(r"^\$\d+\.\d+ \(([\d,]+) units\)$")


def first_model(stack: Any, key: str) -> str:
    status, models = stack.call("GET", "/v1/models", key)
    assert status == 200 and models["data"], models
    return str(models["data"][0]["id"])


def chat(stack: Any, key: str, model: str, prompt: str) -> httpx.Response:
    with stack.http() as client:
        return client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        )


def token_logs(stack: Any, account: Any, token_id: str) -> list[dict[str, Any]]:
    status, page = stack.call("GET", "/logs", account.management_key, token_id=token_id)
    assert status == 200, page
    return list(page["data"])


def test_key_made_in_the_console_relays_and_its_call_shows_in_logs(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN a key created in the console with a US$1 daily quota
    stack = relay_stack
    console.sign_in(account.management_key)
    key = console.create_token(name="relay-ui", quota_usd="1", reset="daily")
    console.page.click("#key-dialog-close")
    token_id = key[3:19]

    # WHEN a program uses it through the relay
    response = chat(stack, key, first_model(stack, key), "Hello!")
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    # THEN Logs lists that call with its key, model, cost and status
    console.open("/logs")
    row = console.page.locator(f'#log-rows tr[data-request-id="{request_id}"]')
    expect(row).to_contain_text("relay-ui")
    expect(row.locator(".status")).to_have_text("ok")
    (entry,) = [e for e in token_logs(stack, account, token_id) if e["request_id"] == request_id]
    expect(row).to_contain_text(entry["model"])
    # AND today's bar of the usage chart carries the call's cost
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    bar = console.page.locator(f'#usage-chart rect[data-day="{today}"]')
    assert int(bar.get_attribute("data-cost-units") or "0") >= entry["cost_units"] > 0
    console.screenshot("logs")
    # AND the token's stored usage is that cost, which the token table shows
    token = stack.call("GET", f"/tokens/{token_id}", account.management_key)[1]
    assert token["used_units"] == entry["cost_units"]
    assert token["last_used_at"] is not None


def test_logs_filter_by_key_asks_the_server_for_that_key_only(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN one call on each of two keys
    stack = relay_stack
    status, created = stack.call(
        "POST", "/tokens", account.management_key, {"name": "second", "count": 1}
    )
    assert status == 201, created
    second = created["data"][0]
    for key in (account.default_token["key"], second["key"]):
        assert chat(stack, key, first_model(stack, key), "ping").status_code == 200
    console.sign_in(account.management_key)
    console.open("/logs")
    expect(console.page.locator("#log-rows tr")).to_have_count(2)

    # WHEN the logs are filtered to the second key
    console.page.select_option("#logs-token", second["id"])
    console.page.click("#logs-apply")

    # THEN one row remains, and the server was asked with ?token_id=
    expect(console.page.locator("#log-rows tr")).to_have_count(1)
    expect(console.page.locator("#log-rows tr")).to_contain_text("second")
    assert any(f"token_id={second['id']}" in u for u in console.request_urls)
    assert len(token_logs(stack, account, second["id"])) == 1


def test_key_disabled_in_the_console_is_refused_at_the_next_call(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN a working key, made in the console
    stack = relay_stack
    console.sign_in(account.management_key)
    key = console.create_token(name="soon-off")
    console.page.click("#key-dialog-close")
    model = first_model(stack, key)
    assert chat(stack, key, model, "before").status_code == 200

    # WHEN the owner disables it in the table
    row = console.token_row("soon-off")
    row.get_by_role("button", name="Disable token soon-off").click()
    expect(row.locator(".status")).to_have_text("disabled")

    # THEN the very next call is refused as disabled
    refused = chat(stack, key, model, "after")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_disabled"


def test_key_dialog_test_shows_answer_latency_and_cost(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN the dialog of a key just created
    stack = relay_stack
    console.sign_in(account.management_key)
    key = console.create_token(name="tested")
    page = console.page

    # WHEN its one-line test is sent
    page.click("#key-test-start")
    expect(page.locator("#kt-model option").first).to_have_attribute("value", re.compile(".+"))
    page.click("#kt-send")

    # THEN the answer, the latency and the cost are shown
    expect(page.locator("#kt-answer")).to_contain_text("Say hello in one short sentence.")
    expect(page.locator("#kt-latency")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#kt-cost")).to_have_text(COST_TEXT)
    console.screenshot("key-dialog-test")
    # AND the cost shown is the one logged for that call
    shown = COST_TEXT.match(page.locator("#kt-cost").inner_text())
    assert shown is not None
    (entry,) = token_logs(stack, account, key[3:19])
    assert int(shown.group(1).replace(",", "")) == entry["cost_units"]


def test_playground_answers_with_a_pasted_key(console: Any, relay_stack: Any, account: Any) -> None:
    # GIVEN the Playground with the account's default key pasted in
    stack = relay_stack
    console.sign_in(account.management_key)
    console.open("/playground")
    page = console.page
    page.fill("#pg-key", account.default_token["key"])
    page.locator("#pg-key").blur()
    expect(page.locator("#pg-model option").first).to_have_attribute("value", re.compile(".+"))

    # WHEN a prompt is sent
    page.fill("#pg-prompt", "Describe Paris in one sentence.")
    page.click("#pg-send")

    # THEN the answer, latency and cost appear, and the call is logged for that key
    expect(page.locator("#pg-answer")).to_contain_text("Describe Paris in one sentence.")
    expect(page.locator("#pg-latency")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    console.screenshot("playground")
    (entry,) = token_logs(stack, account, account.default_token["id"])
    assert entry["status"] == "ok"
    assert page.locator("#pg-model").input_value() == entry["model"]


def test_cost_is_read_from_the_logs_when_the_relay_sends_no_cost_header(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN a relay answer stripped of its x-sluice-cost-units header on the way to the page
    def without_cost_header(route: Any) -> None:
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k != "x-sluice-cost-units"}
        route.fulfill(response=response, headers=headers)

    console.page.route("**/v1/chat/completions", without_cost_header)
    console.sign_in(account.management_key)
    console.open("/playground")
    page = console.page
    page.fill("#pg-key", account.default_token["key"])
    page.locator("#pg-key").blur()
    expect(page.locator("#pg-model option").first).to_have_attribute("value", re.compile(".+"))

    # WHEN a prompt is sent
    page.click("#pg-send")

    # THEN the cost shown is the one the logs recorded for that call
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    shown = COST_TEXT.match(page.locator("#pg-cost").inner_text())
    assert shown is not None
    (entry,) = token_logs(relay_stack, account, account.default_token["id"])
    assert int(shown.group(1).replace(",", "")) == entry["cost_units"]
    assert any("/logs?" in u and "token_id=" in u for u in console.request_urls)


def test_the_playground_shows_words_as_they_stream_in(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN the Playground with a key, and the demo model that streams a word at a time
    console.sign_in(account.management_key)
    console.open("/playground")
    page = console.page
    page.fill("#pg-key", account.default_token["key"])
    page.locator("#pg-key").blur()
    expect(page.locator("#pg-model option[value='demo-slow']")).to_have_count(1)
    page.select_option("#pg-model", "demo-slow")

    # WHEN a prompt is sent
    page.fill("#pg-prompt", "Describe Paris in one sentence.")
    page.click("#pg-send")

    # THEN the first words show while the stream is still under way
    expect(page.locator("#pg-answer")).to_contain_text("Hello")
    text, sending = page.evaluate(
        "() => [document.querySelector('#pg-answer').textContent,"
        " document.querySelector('#pg-send').disabled]"
    )
    assert sending and not text.endswith("sentence.")
    # AND the whole answer and its cost once it ended
    expect(page.locator("#pg-answer")).to_contain_text("Describe Paris in one sentence.")
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    (entry,) = token_logs(relay_stack, account, account.default_token["id"])
    assert (entry["status"], entry["model"]) == ("ok", "demo-slow")
