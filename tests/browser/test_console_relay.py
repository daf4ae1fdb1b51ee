"""The console with the relay behind it: the admin creates a channel and a price in the browser and
a key then relays through them; the Logs chart and table follow every filter; the Usage page and
the in-console tests (key dialog, Playground streaming, images and speech) show answer, latency
and cost. Needs the demo upstream (``relay_stack``)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

COST_TEXT = re.compile(r"^\$\d+\.\d{2,6} \(([\d,]+) units\)$")


def chat(stack: Any, key: str, model: str, prompt: str = "Hello!") -> httpx.Response:
    with stack.http() as client:
        return client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        )


def test_admin_makes_a_channel_and_a_price_in_the_browser_and_a_key_relays_through_them(
    console: Any, relay_stack: Any, make_account: Any
) -> None:
    # GIVEN the admin on the Channels page, and a group no channel serves yet
    stack = relay_stack
    group = "gold" + secrets.token_hex(2)
    model = f"{group}-chat"
    console.sign_in(stack.admin_key)
    page = console.page
    console.open("/channels")
    page.click("#new-channel")

    # WHEN a channel is created in the dialog (with the provider key)
    page.fill("#ch-name", f"{group} upstream")
    page.fill("#ch-base_url", stack.upstream_base_url)
    page.fill("#ch-api_key", stack.upstream_api_key or "unused")
    page.fill("#ch-models", model)
    page.fill("#ch-group", group)
    page.click("#ch-submit")

    # THEN it is listed with its key hidden, and the key is nowhere in the page
    row = page.locator("#channel-rows tr", has_text=f"{group} upstream")
    expect(row).to_contain_text("set (hidden)")
    if stack.upstream_api_key:
        assert stack.upstream_api_key not in page.content()

    # WHEN a per-token price (and a longest audio) is set for its model on the Prices page
    console.open("/prices")
    page.click("#new-price")
    page.fill("#pr-model", model)
    page.fill("#pr-input_usd_per_mtok", "1,5")
    page.fill("#pr-output_usd_per_mtok", "2")
    page.fill("#pr-max_audio_seconds", "0")
    page.click("#pr-submit")
    expect(page.locator("#pr-err-input_usd_per_mtok")).to_contain_text("1.50")
    expect(page.locator("#pr-err-max_audio_seconds")).to_contain_text("1 to 86400")
    page.fill("#pr-input_usd_per_mtok", "1.5")
    page.fill("#pr-max_audio_seconds", "600")
    page.click("#pr-submit")
    price_row = page.locator(f"#price-rows tr[data-model='{model}']")
    expect(price_row).to_contain_text("$1.50")
    expect(price_row).to_contain_text("audio up to 600 s")

    prices = stack.call("GET", "/admin/models", stack.admin_key)[1]["data"]
    assert [p["max_audio_seconds"] for p in prices if p["model"] == model] == [600]

    # AND an account granted that group, whose key is in it
    account = make_account(groups=[group])
    status, created = stack.call("POST", "/tokens", account.management_key, {"name": "g"})
    assert status == 201, created
    key = created["data"][0]["key"]

    # THEN the key relays through the new channel, charged at the new price
    answer = chat(stack, key, model)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    units = -(-(usage["prompt_tokens"] * 15 + usage["completion_tokens"] * 20) // 20)
    status, logs = stack.call("GET", "/logs", account.management_key)
    assert [(e["model"], e["status"], e["cost_units"]) for e in logs["data"]] == [
        (model, "ok", units)
    ]

    # AND the Groups page shows the group with its channel and the account granted it
    console.open("/groups")
    group_row = page.locator(f"#group-rows tr[data-group='{group}']")
    expect(group_row).to_contain_text(f"{group} upstream")
    expect(group_row).to_contain_text(account.name)

    # WHEN the admin sets the order of the automatic group, THEN it is stored as typed
    page.fill("#ao-order", f"{group}, auto")
    page.click("#ao-submit")
    expect(page.locator("#ao-err-order")).to_be_visible()
    page.fill("#ao-order", f"{group}, default")
    page.click("#ao-submit")
    expect(page.locator("#ao-err-order")).to_be_hidden()
    page.reload()
    expect(page.locator("#ao-order")).to_have_value(f"{group}, default")
    assert stack.call("GET", "/admin/groups", stack.admin_key)[1]["auto"]["order"] == [
        group,
        "default",
    ]

    # WHEN the channel is disabled in the browser, THEN the relay no longer serves the model
    console.open("/channels")
    row.get_by_role("button", name=f"Disable channel {group} upstream").click()
    expect(row.locator(".status")).to_have_text("disabled")
    assert chat(stack, key, model).status_code in (404, 503)


def test_logs_chart_and_table_follow_every_filter_and_export(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN calls with two models, and calls refused by a key's rate limit (1 per minute)
    stack = relay_stack
    key = account.default_token["key"]
    for model in ("gpt-4o-mini", "gpt-4o"):
        assert chat(stack, key, model).status_code == 200
    body = {"name": "limited", "rpm_limit": 1}
    limited = stack.call("POST", "/tokens", account.management_key, body)[1]["data"][0]["key"]
    refused = [chat(stack, limited, "gpt-4o-mini").status_code for _ in range(3)].count(429)
    assert refused >= 1
    _, logs = stack.call("GET", "/logs", account.management_key, limit=100)
    cost_of: dict[str, int] = {}
    for entry in logs["data"]:
        cost_of[entry["model"]] = cost_of.get(entry["model"], 0) + entry["cost_units"]
    console.sign_in(account.management_key)
    page = console.page
    console.open("/logs")
    total = page.locator("#usage-chart-total")
    expect(total).to_have_attribute("data-cost-units", str(sum(cost_of.values())))
    expect(page.locator("#log-rows tr")).to_have_count(len(logs["data"]))

    # WHEN the model filter is applied, THEN chart and table both follow it
    page.fill("#logs-model", "gpt-4o")
    page.click("#logs-apply")
    expect(total).to_have_attribute("data-cost-units", str(cost_of["gpt-4o"]))
    expect(page.locator("#log-rows tr")).to_have_count(1)

    # WHEN a model with no calls is asked, THEN the chart says zero next to "No calls found"
    page.fill("#logs-model", "no-such-model")
    page.click("#logs-apply")
    expect(page.locator("#log-rows td.empty")).to_have_text("No calls found.")
    expect(total).to_have_attribute("data-cost-units", "0")

    # WHEN the status filter asks for refused calls only
    page.fill("#logs-model", "")
    page.select_option("#logs-status", "rejected")
    page.click("#logs-apply")
    expect(page.locator("#log-rows tr")).to_have_count(refused)
    expect(total).to_have_attribute("data-requests", str(refused))

    # WHEN one request id is searched, THEN only that call shows, with its details
    page.select_option("#logs-status", "")
    wanted = logs["data"][-1]["request_id"]
    page.fill("#logs-request-id", wanted)
    page.click("#logs-apply")
    expect(page.locator("#log-rows tr")).to_have_count(1)
    page.get_by_role("button", name=f"Details of request {wanted}").click()
    expect(page.locator("#log-detail")).to_contain_text(wanted)
    page.click("#log-dialog-cancel")

    # AND the export is a CSV of the filtered lines
    with page.expect_download() as download:
        page.click("#logs-export")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("created_at,request_id") and len(lines) == 2 and wanted in lines[1]

    # AND the Usage page adds up this month, by model and by key
    console.open("/usage")
    month = page.locator("#usage-month .figure").first
    expect(month).to_have_attribute("data-cost-units", str(sum(cost_of.values())))
    expect(page.locator("#by-model-rows tr")).to_have_count(len(cost_of))
    expect(page.locator("#by-key-rows")).to_contain_text("default")
    with page.expect_download() as download:
        page.click("#usage-export")
    assert "gpt-4o-mini" in Path(download.value.path()).read_text(encoding="utf-8")


def test_key_dialog_and_playground_show_the_streamed_answer_images_audio_and_cost(
    console: Any, relay_stack: Any, account: Any
) -> None:
    # GIVEN a key just created, tested from the dialog
    console.sign_in(account.management_key)
    page = console.page
    console.create_token(name="tested")
    page.click("#key-test-start")
    expect(page.locator("#kt-model option").first).to_be_attached()
    page.click("#kt-send")
    expect(page.locator("#kt-cost")).to_have_text(COST_TEXT)
    expect(page.locator("#kt-latency")).to_have_text(re.compile(r"^\d+ ms$"))
    page.click("#copy-base-url")
    page.click("#key-dialog-close")

    # WHEN the Playground streams the slow demo model with the default key
    console.open("/playground")
    page.fill("#pg-key", account.default_token["key"])
    page.locator("#pg-key").blur()
    expect(page.locator("#pg-model option[value='demo-slow']")).to_have_count(1)
    page.select_option("#pg-model", "demo-slow")
    page.fill("#pg-prompt", "Describe Paris in one sentence.")
    page.click("#pg-send")

    # THEN the first words show while the stream is still under way, then the cost
    expect(page.locator("#pg-answer")).to_contain_text("Hello")
    text, sending = page.evaluate(
        "() => [document.querySelector('#pg-answer').textContent,"
        " document.querySelector('#pg-send').disabled]"
    )
    assert sending and not text.endswith("sentence.")
    expect(page.locator("#pg-answer")).to_contain_text("Describe Paris in one sentence.")
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    shown = COST_TEXT.match(page.locator("#pg-cost").inner_text())
    assert shown is not None
    shown_cost = {"demo-slow": int(shown.group(1).replace(",", ""))}

    # WHEN an image model is chosen, THEN the form asks for a size and a count instead
    page.select_option("#pg-model", "dall-e-3")
    expect(page.locator("#pg-size")).to_be_visible()
    expect(page.locator("#pg-voice")).to_be_hidden()
    page.fill("#pg-n", "2")
    page.click("#pg-send")

    # AND the two images it makes show (decoded under the console's CSP), with their cost
    images = page.locator("#pg-media img")
    expect(images).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#pg-media img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    shown = COST_TEXT.match(page.locator("#pg-cost").inner_text())
    assert shown is not None
    shown_cost["dall-e-3"] = int(shown.group(1).replace(",", ""))
    console.screenshot("playground-image")

    # WHEN a speech model is chosen, THEN it asks for a voice and plays back what it said
    page.select_option("#pg-model", "tts-1")
    expect(page.locator("#pg-voice")).to_be_visible()
    expect(page.locator("#pg-size")).to_be_hidden()
    expect(page.locator("#pg-media img")).to_have_count(0)
    page.select_option("#pg-voice", "nova")
    page.click("#pg-send")
    expect(page.locator("#pg-media audio[controls]")).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#pg-audio').duration > 0")
    expect(page.locator("#pg-cost")).to_have_text(COST_TEXT)
    shown = COST_TEXT.match(page.locator("#pg-cost").inner_text())
    assert shown is not None
    shown_cost["tts-1"] = int(shown.group(1).replace(",", ""))
    console.screenshot("playground-speech")

    # AND every cost shown is the one the logs charged for that call
    _, logs = relay_stack.call(
        "GET", "/logs", account.management_key, token_id=account.default_token["id"]
    )
    assert {entry["model"]: entry["cost_units"] for entry in logs["data"]} == shown_cost
    assert shown_cost["dall-e-3"] == 2 * 20_000  # two images at US$0.04
