"""The token pages in a real browser, as a one-api / new-api user drives them: the create form
(group dropdown, required marks, every field's error at once), the show-once dialog (distinct
batch names, Copy all, CSV, base URL and a curl that works, asking before closing unsaved), the
table (Group / Created / Remaining, search, sort, bulk disable and delete), the keyboard alone,
and markup in names rendered as text; and the budget alerts page (thresholds, a loopback
webhook, the signing secret shown once, rotated).

Each story checks the page and what the API stored. The stories are few and long on purpose:
a browser test costs seconds.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

KEY_PATTERN = re.compile(r"^sk-[A-Za-z0-9]{48}$")
MARKUP_NAME = "<img src=x onerror=alert(1)>"


def preview(key: str) -> str:
    return f"{key[:7]}…{key[-4:]}"


def stored_tokens(stack: Any, account: Any) -> list[dict[str, Any]]:
    status, page = stack.call("GET", "/tokens", account.management_key, limit=100)
    assert status == 200, page
    return list(page["data"])


def test_owner_creates_a_batch_sees_the_base_url_and_the_curl_works(
    console: Any, stack: Any, make_account: Any
) -> None:
    # GIVEN an en-US owner whose account may use the groups default and vip
    account = make_account(groups=["default", "vip"])
    console.sign_in(account.management_key)
    page = console.page
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.click("#new-token")
    page.wait_for_selector("#token-form")

    # THEN the group dropdown offers exactly the account's groups, with their model counts
    options = page.locator("#f-group option")
    assert options.evaluate_all("(os) => os.map((o) => o.value)") == ["default", "vip"]
    expect(options.nth(1)).to_have_text("vip · 0 models")
    expect(options.nth(0)).to_have_text(re.compile(r"^default · [1-9]\d* models$"))
    # AND fields that do not apply are hidden, the required one is marked
    expect(page.locator("#f-expires_at")).to_be_hidden()
    expect(page.locator("#f-quota_usd")).to_be_hidden()
    expect(page.locator("label[for=f-name] .required")).to_have_text("*")

    # WHEN it is submitted with five mistakes
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.fill("#f-name", "")
    page.check("#f-quota-limited")
    page.fill("#f-quota_usd", "1,50")
    page.fill("#f-count", "101")
    page.fill("#f-allow_ips", "10.0.0.0/8\nnot-an-ip")
    page.fill("#f-rpm_limit", "0")
    page.click("#f-submit")

    # THEN every error shows beside its field at once, in the console's words, and nothing is sent
    expect(page.locator("#err-name")).to_have_text("Required.")
    expect(page.locator("#err-quota")).to_have_text("Use a point for decimals: 1.50, not 1,50.")
    expect(page.locator("#err-count")).to_have_text("A whole number from 1 to 100.")
    expect(page.locator("#err-allow_ips")).to_contain_text("not-an-ip")
    expect(page.locator("#err-rpm_limit")).to_contain_text("from 1 to")
    expect(page.locator("#f-name")).to_be_focused()
    assert posts == []
    console.screenshot("create-form-errors")

    # WHEN the mistakes are fixed and a batch of three is created
    console.fill_token_form(
        name="ci",
        quota_usd="2.50",
        reset="daily",
        expiry="30",
        count="3",
        allow_ips="",
        rpm_limit="",
    )
    expect(page.locator("#f-quota-units")).to_have_text("= 1,250,000 units")
    page.click("#f-submit")

    # THEN the dialog lists three keys with distinct names, the base URL and a filled-in curl
    expect(page.locator("#key-list .key-value")).to_have_count(3)
    labels = page.locator("#key-list .key-row label").all_inner_texts()
    assert labels == ['Key "ci-1"', 'Key "ci-2"', 'Key "ci-3"']
    keys = [page.locator(f"#new-key-{i}").input_value() for i in range(3)]
    assert all(KEY_PATTERN.match(key) for key in keys) and len(set(keys)) == 3
    expect(page.locator("#base-url")).to_have_value(f"{stack.base_url}/v1")
    curl = page.locator("#snippet").inner_text()
    assert keys[0] in curl and f"{stack.base_url}/v1/chat/completions" in curl
    page.click("#snippet-python")
    assert f'base_url="{stack.base_url}/v1"' in page.locator("#snippet").inner_text()
    console.screenshot("key-dialog-batch")

    # WHEN Escape is pressed before anything was copied, the console asks; cancelling keeps it
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-message")).to_contain_text("cannot be shown again")
    page.click("#confirm-cancel")
    expect(page.locator("#key-dialog")).to_be_visible()

    # WHEN "Copy all" is used, THEN the clipboard holds every key, and closing needs no question
    with page.expect_download() as download:
        page.click("#download-keys")
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    assert csv_text.splitlines()[0] == "name,key,token_id" and keys[2] in csv_text
    page.click("#copy-all")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.splitlines() == [f"ci-{n}\t{key}" for n, key in enumerate(keys, start=1)]
    page.click("#key-dialog-close")
    expect(page.locator("#key-dialog")).to_be_hidden()
    assert keys[0] not in page.content()

    # AND the curl from the dialog works against the stack
    if stack.has_relay:
        model = stack.call("GET", "/v1/models", keys[0])[1]["data"][0]["id"]
        command = curl.replace("gpt-4o-mini", model).replace(" \\\n", " ")
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert '"chat.completion"' in ran.stdout, ran.stdout + ran.stderr

    # AND the table shows each key with its group, what is left and when it was made
    row = console.token_row("ci-1")
    expect(row.locator(".group-name")).to_have_text("default")
    expect(row.locator(".remaining")).to_have_text(re.compile(r"^\$2\.(50|49)$"))
    expect(row.locator("td[data-label=Created]")).to_contain_text(" UTC")
    expect(row.locator("td[data-label=Expires]")).to_contain_text(re.compile(r"in (29|30) days"))
    expect(row).to_contain_text("resets daily")
    # AND at 1280 px the table fits: nothing scrolls sideways, no row wraps to a second line
    fits = page.evaluate(
        "() => { const w = document.querySelector('#tokens-table').parentElement;"
        " return w.scrollWidth <= w.clientWidth; }"
    )
    assert fits, "the token table is wider than the page at 1280 px"
    console.screenshot("tokens")
    # AND the stored tokens are what the form said
    stored = {t["name"]: t for t in stored_tokens(stack, account)}
    assert {"ci-1", "ci-2", "ci-3"} <= set(stored)
    token = stored["ci-2"]
    assert (token["quota_units"], token["reset_period"]) == (1_250_000, "daily")
    expires = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)


def test_table_search_sort_and_bulk_disable_and_delete_with_markup_names_as_text(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN four tokens, one named with an HTML payload
    for name in ("beta", "alpha", "gamma", MARKUP_NAME):
        status, created = stack.call("POST", "/tokens", account.management_key, {"name": name})
        assert status == 201, created
    console.sign_in(account.management_key)
    page = console.page
    expect(console.token_row(MARKUP_NAME).locator(".token-name")).to_have_text(MARKUP_NAME)
    assert page.locator("main img, dialog img").count() == 0

    # WHEN the list is sorted by name and searched
    page.click("button.sort[data-sort=name]")
    names = page.locator("#token-rows .token-name").all_inner_texts()
    assert names == sorted(names, key=str.lower)
    page.fill("#token-search", "zzz")
    expect(page.locator("#token-rows td.empty")).to_have_text("No token matches the search.")
    page.fill("#token-search", "alp")
    expect(page.locator("#token-rows .token-name")).to_have_text(["alpha"])
    page.fill("#token-search", "")

    # WHEN two are selected and disabled in bulk (after confirming)
    console.token_row("alpha").locator(".row-select").check()
    console.token_row("beta").locator(".row-select").check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.click("#bulk-disable")
    page.click("#confirm-ok")

    # THEN both are stored disabled and their keys are refused at the next call
    expect(console.token_row("alpha").locator(".status")).to_have_text("disabled")
    statuses = {t["name"]: t["status"] for t in stored_tokens(stack, account)}
    assert statuses["alpha"] == statuses["beta"] == "disabled" and statuses["gamma"] == "enabled"

    # WHEN the delete of the markup-named one is cancelled, then two are deleted in bulk
    console.token_row(MARKUP_NAME).get_by_role("button", name=f"Delete token {MARKUP_NAME}").click()
    expect(page.locator("#confirm-message")).to_contain_text(MARKUP_NAME)
    page.click("#confirm-cancel")
    console.token_row("alpha").locator(".row-select").check()
    console.token_row("gamma").locator(".row-select").check()
    page.click("#bulk-delete")
    page.click("#confirm-ok")

    # THEN they are gone, the rest stays; nothing ran from the name
    expect(console.token_row("gamma")).to_have_count(0)
    names_left = sorted(t["name"] for t in stored_tokens(stack, account))
    assert names_left == sorted(["beta", "default", MARKUP_NAME])
    assert console.dialogs == []


def test_keyboard_alone_creates_copies_and_closes_with_focus_kept_in_the_dialog(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the create form, reached and filled with the keyboard only
    console.sign_in(account.management_key)
    page = console.page
    page.focus("#new-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#token-form")
    expect(page.locator("#f-name")).to_be_focused()
    page.keyboard.type("kb")

    # WHEN Enter submits it
    page.keyboard.press("Enter")

    # THEN the dialog has the focus on the key, and Tab stays inside the dialog
    expect(page.locator("#new-key-0")).to_be_focused()
    key = page.locator("#new-key-0").input_value()
    for _ in range(40):
        page.keyboard.press("Tab")
        inside = page.evaluate("() => Boolean(document.activeElement.closest('#key-dialog'))")
        assert inside, "the focus left the open dialog"
    # AND Copy then Close are reached and pressed with the keyboard
    page.focus("#new-key-0")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name='Copy Key "kb"')).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.focus("#key-dialog-close")
    page.keyboard.press("Enter")
    expect(page.locator("#key-dialog")).to_be_hidden()
    # AND the focus came back to the page, not lost on <body>
    assert page.evaluate("() => document.activeElement !== document.body")
    (token,) = [t for t in stored_tokens(stack, account) if t["name"] == "kb"]
    assert token["key_preview"] == preview(key)


def test_edit_hides_what_does_not_apply_and_saves_name_quota_limits_and_regenerates(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN a limited token with a rate limit
    body = {"name": "old", "quota_usd": "1", "reset_period": "weekly", "rpm_limit": 5}
    status, created = stack.call("POST", "/tokens", account.management_key, body)
    assert status == 201, created
    token_id = created["data"][0]["id"]
    console.sign_in(account.management_key)
    page = console.page
    console.token_row("old").get_by_role("link", name="Edit token old").click()
    page.wait_for_selector("#token-form")
    expect(page.locator("#f-quota_usd")).to_have_value("1.00")
    expect(page.locator("#f-reset_period")).to_have_value("weekly")

    # WHEN "Unlimited" is chosen, the amount and reset fields go away; choosing a custom expiry
    # shows its field, and an impossible date is refused beside it
    page.check("#f-quota-unlimited")
    expect(page.locator("#f-quota_usd")).to_be_hidden()
    page.check("#f-quota-limited")
    page.check("#f-expiry-custom")
    page.fill("#f-expires_at", "2027-02-31 10:00")
    page.click("#f-submit")
    expect(page.locator("#err-expiry")).to_have_text("Enter a UTC date such as 2027-01-15 10:00.")

    # WHEN it is saved with a new name, amount, period, expiry and no rate limit
    console.fill_token_form(
        name="new", quota_usd="3.25", reset="monthly", expires_at="2030-01-15 10:00", rpm_limit=""
    )
    page.click("#f-submit")
    expect(console.token_row("new")).to_have_count(1)

    # THEN the stored token changed exactly so
    (stored,) = [t for t in stored_tokens(stack, account) if t["id"] == token_id]
    assert (stored["name"], stored["quota_units"], stored["reset_period"]) == (
        "new",
        1_625_000,
        "monthly",
    )
    assert stored["expires_at"] == "2030-01-15T10:00:00Z" and stored["rpm_limit"] is None
    expect(console.token_row("new").locator("td[data-label=Expires]")).to_contain_text(
        "2030-01-15 10:00 UTC"
    )

    # WHEN its key is regenerated after confirming
    console.token_row("new").get_by_role("button", name="Regenerate the key of token new").click()
    page.click("#confirm-ok")
    key = page.locator("#new-key-0").input_value()
    page.click("#copy-base-url")
    page.click("#key-dialog-close")

    # THEN the new key is the stored one
    (after,) = [t for t in stored_tokens(stack, account) if t["id"] == token_id]
    assert after["key_preview"] == preview(key) != stored["key_preview"]


def test_sign_out_forgets_the_key_and_a_wrong_key_is_refused_in_the_consoles_words(
    console: Any, account: Any
) -> None:
    console.allow_http_errors(401)
    console.sign_in(account.management_key)
    page = console.page
    page.click("#sign-out")
    expect(page.locator("#signin-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#signin-key", "mk-" + "x" * 48)
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("This key is not valid.")


def test_alerts_page_sets_thresholds_and_a_loopback_webhook_shows_the_secret_once_and_rotates(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN an account owner on the Alerts page, with no alerts yet
    console.sign_in(account.management_key)
    console.open("/alerts")
    page = console.page
    page.wait_for_selector("#alerts-form")
    hook = "http://127.0.0.1:9/hooks/sluice?token=kept-out-of-the-audit"

    # WHEN a threshold out of range is saved, THEN the field says so and nothing is sent
    page.fill("#al-thresholds", "50, 120")
    page.fill("#al-webhook_url", hook)
    page.click("#al-submit")
    expect(page.locator("#al-err-thresholds")).not_to_be_empty()
    assert stack.call("GET", "/account/alerts", account.management_key)[1]["enabled"] is False

    # WHEN thresholds and a loopback webhook are saved
    page.fill("#al-thresholds", "50, 90")
    page.click("#al-submit")

    # THEN the signing secret is shown, once, and the settings are stored
    secret_box = page.locator("#new-key-0")
    expect(secret_box).to_have_value(re.compile(r"^whsec_"))
    first_secret = secret_box.input_value()
    page.locator("#key-list button.copy").click()
    page.click("#key-dialog-close")
    _, stored = stack.call("GET", "/account/alerts", account.management_key)
    assert (stored["thresholds"], stored["webhook_url"]) == ([50, 90], hook)
    assert "webhook_secret" not in stored

    # WHEN they are saved again with other thresholds, THEN no secret is shown this time
    page.fill("#al-thresholds", "80")
    put = "PUT"
    with page.expect_response(lambda r: r.request.method == put and "/account/alerts" in r.url):
        page.click("#al-submit")
    expect(page.locator("#toast")).to_contain_text("Saved")
    expect(page.locator("#key-dialog")).not_to_be_visible()
    assert stack.call("GET", "/account/alerts", account.management_key)[1]["thresholds"] == [80]

    # WHEN the secret is rotated, THEN a new one is shown once
    page.click("#al-rotate")
    expect(secret_box).to_have_value(re.compile(r"^whsec_"))
    rotated = secret_box.input_value()
    assert rotated != first_secret
    page.locator("#key-list button.copy").click()
    page.click("#key-dialog-close")
    # AND the audit log has the three changes by the account, with neither secret nor the query
    status, trail = stack.call("GET", "/audit", account.management_key, target_type="alerts")
    assert status == 200, trail
    assert [r["action"] for r in trail["data"]] == [
        "alerts.rotate_secret",
        "alerts.update",
        "alerts.update",
    ]
    text = str(trail)
    assert first_secret not in text and rotated not in text and "kept-out" not in text
