"""The token pages in a real browser: the walk-through of one-api-style consoles (sign in, create a
key with quota, reset and expiry, copy it once), plus the table's actions, the API's validation
messages next to their fields, and markup in names rendered as text.

Each story checks the page and what the API stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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


def test_owner_creates_a_key_with_quota_reset_and_expiry_and_copies_it(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN an account owner signed in, filling the create form
    console.sign_in(account.management_key)
    page = console.page
    page.click("#new-token")
    console.fill_token_form(name="ci-bot", quota_usd="2.50", reset="daily", expiry="30")
    expect(page.locator("#f-quota-units")).to_have_text("= 1,250,000 units")
    console.screenshot("create-form")

    # WHEN the form is submitted and the key copied from the dialog
    page.click("#f-submit")
    key_input = page.locator("#new-key-0")
    expect(key_input).to_have_value(KEY_PATTERN)
    key = key_input.input_value()
    console.screenshot("key-dialog")
    page.get_by_role("button", name='Copy Key "ci-bot"').click()

    # THEN the clipboard holds exactly the key, shown once: closing the dialog forgets it
    expect(page.get_by_role("button", name='Copy Key "ci-bot"')).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.click("#key-dialog-close")
    expect(page.locator("#key-list input")).to_have_count(0)
    assert key not in page.content()
    row = console.token_row("ci-bot")
    expect(row.locator(".status")).to_have_text("enabled")
    expect(row).to_contain_text("$0.00 of $2.50 used")
    expect(row).to_contain_text("daily")
    expect(row).to_contain_text(preview(key))
    console.screenshot("tokens")
    # AND the stored token is what the form said
    (token,) = [t for t in stored_tokens(stack, account) if t["name"] == "ci-bot"]
    assert token["quota_units"] == 1_250_000
    assert token["reset_period"] == "daily"
    assert token["key_preview"] == preview(key)
    expires = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)


def test_without_a_secure_context_the_key_is_shown_selected_for_manual_copy(
    open_console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the console on plain HTTP under a real host name, where the clipboard API is absent
    console = open_console(plain_http=True)
    console.sign_in(account.management_key)
    assert console.page.evaluate("window.isSecureContext") is False

    # WHEN a key is created
    key = console.create_token(name="plain-http")

    # THEN there is no Copy button; the key sits selected in a read-only box with a hint
    page = console.page
    expect(page.locator("#select-hint")).to_contain_text("select and copy")
    expect(page.locator("#key-list button.copy")).to_have_count(0)
    selection = page.evaluate(
        """() => {
            const box = document.getElementById("new-key-0");
            return [document.activeElement === box, box.readOnly,
                    box.selectionStart, box.selectionEnd, box.value.length];
        }"""
    )
    assert selection == [True, True, 0, len(key), len(key)]
    console.screenshot("key-dialog-plain-http")
    # AND that key is the one stored
    (token,) = [t for t in stored_tokens(stack, account) if t["name"] == "plain-http"]
    assert token["key_preview"] == preview(key)


def test_token_named_with_markup_is_shown_as_text_and_never_runs(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN a token whose name is an HTML payload
    status, created = stack.call("POST", "/tokens", account.management_key, {"name": MARKUP_NAME})
    assert status == 201, created

    # WHEN the owner lists tokens, opens its edit form and its delete confirmation
    console.sign_in(account.management_key)
    page = console.page
    row = console.token_row(MARKUP_NAME)
    expect(row.locator(".token-name")).to_have_text(MARKUP_NAME)
    console.screenshot("markup-name-as-text")
    row.get_by_role("button", name=f"Delete token {MARKUP_NAME}").click()
    expect(page.locator("#confirm-message")).to_contain_text(MARKUP_NAME)
    page.click("#confirm-cancel")
    row.get_by_role("link", name=f"Edit token {MARKUP_NAME}").click()

    # THEN the name is plain text everywhere: no element was created from it, nothing fired
    expect(page.locator("#f-name")).to_have_value(MARKUP_NAME)
    assert page.locator("main img, dialog img").count() == 0
    assert console.dialogs == []
    # AND the token is still stored (the cancelled delete did nothing)
    assert [t["name"] for t in stored_tokens(stack, account)].count(MARKUP_NAME) == 1


@pytest.mark.parametrize(
    ("control", "typed", "slot", "mentions"),
    [
        ("#f-count", "101", "#err-count", "count"),
        ("#f-allow_ips", "10.0.0.0/8\nnot-an-ip", "#err-allow_ips", "not-an-ip"),
        ("#f-quota_usd", "1.0000001", "#err-quota", "quota_usd"),
        ("#f-rpm_limit", "0", "#err-rpm_limit", "rpm_limit"),
    ],
    ids=["count-over-100", "bad-cidr", "quota-finer-than-a-unit", "zero-rpm"],
)
def test_api_validation_error_is_shown_next_to_its_field(
    console: Any, stack: Any, account: Any, control: str, typed: str, slot: str, mentions: str
) -> None:
    # GIVEN the create form with one value the API refuses
    console.allow_http_errors(400)
    console.sign_in(account.management_key)
    console.open("/tokens/new")
    console.fill_token_form(name="refused")
    console.page.fill(control, typed)

    # WHEN it is submitted
    console.page.click("#f-submit")

    # THEN the API's message sits next to that field, which is marked invalid, and only there
    page = console.page
    expect(page.locator(slot)).to_be_visible()
    expect(page.locator(slot)).to_contain_text(mentions)
    expect(page.locator(control)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error:visible, #err-form:visible")).to_have_count(1)
    console.screenshot(f"validation-{slot.removeprefix('#err-')}")
    # AND nothing was created
    assert [t["name"] for t in stored_tokens(stack, account)] == ["default"]


def test_disable_and_enable_in_the_table_change_the_stored_status(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the owner's default token, enabled
    console.sign_in(account.management_key)
    row = console.token_row("default")
    token_id = account.default_token["id"]

    # WHEN it is disabled from its row
    row.get_by_role("button", name="Disable token default").click()

    # THEN the row and the store say disabled
    expect(row.locator(".status")).to_have_text("disabled")
    assert stack.call("GET", f"/tokens/{token_id}", account.management_key)[1]["status"] == (
        "disabled"
    )
    # AND enabling it again is stored too
    row.get_by_role("button", name="Enable token default").click()
    expect(row.locator(".status")).to_have_text("enabled")
    assert stack.call("GET", f"/tokens/{token_id}", account.management_key)[1]["status"] == (
        "enabled"
    )


def test_status_filter_asks_the_server_for_that_status_only(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN one disabled token next to the enabled default one
    status, created = stack.call("POST", "/tokens", account.management_key, {"name": "off"})
    assert status == 201, created
    off_id = created["data"][0]["id"]
    stack.call("PATCH", f"/tokens/{off_id}", account.management_key, {"status": "disabled"})
    console.sign_in(account.management_key)
    expect(console.page.locator("#token-rows tr")).to_have_count(2)

    # WHEN the list is filtered to disabled tokens
    console.page.select_option("#status-filter", "disabled")

    # THEN the server was asked with ?status=disabled and only that token is listed
    expect(console.page.locator("#token-rows tr")).to_have_count(1)
    expect(console.token_row("off")).to_have_count(1)
    assert any("/tokens?" in u and "status=disabled" in u for u in console.request_urls)


def test_delete_asks_for_confirmation_then_removes_the_token(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the owner's token list
    console.sign_in(account.management_key)
    page = console.page
    token_id = account.default_token["id"]
    row = console.token_row("default")

    # WHEN delete is confirmed in the console's own dialog
    row.get_by_role("button", name="Delete token default").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-ok")

    # THEN the row is gone and so is the stored token
    expect(page.locator("#token-rows")).to_contain_text("No tokens.")
    assert stack.call("GET", f"/tokens/{token_id}", account.management_key)[0] == 404


def test_regenerate_shows_the_new_key_once_and_replaces_the_stored_one(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the default token with its original key
    old_key = account.default_token["key"]
    console.sign_in(account.management_key)
    page = console.page

    # WHEN its key is regenerated (after confirming)
    console.token_row("default").get_by_role(
        "button", name="Regenerate the key of token default"
    ).click()
    page.click("#confirm-ok")

    # THEN the dialog shows a new key for the same token, and the row its new preview
    expect(page.locator("#key-dialog-title")).to_have_text("Your regenerated key")
    new_key = page.locator("#new-key-0").input_value()
    assert KEY_PATTERN.match(new_key) and new_key != old_key
    assert new_key[3:19] == account.default_token["id"]
    page.click("#key-dialog-close")
    expect(console.token_row("default")).to_contain_text(preview(new_key))
    # AND the store knows only the new key
    stored = stack.call("GET", f"/tokens/{account.default_token['id']}", account.management_key)
    assert stored[1]["key_preview"] == preview(new_key)


def test_edit_form_changes_name_quota_and_reset_period(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the edit form of the unlimited default token
    console.sign_in(account.management_key)
    page = console.page
    console.token_row("default").get_by_role("link", name="Edit token default").click()
    expect(page.locator("#f-name")).to_have_value("default")
    expect(page.locator("#f-quota-unlimited")).to_be_checked()

    # WHEN name, quota and reset period are changed and saved
    console.fill_token_form(name="renamed", quota_usd="5", reset="weekly")
    page.click("#f-submit")

    # THEN the list shows the change and the store holds it; expiry was left alone
    row = console.token_row("renamed")
    expect(row).to_contain_text("$0.00 of $5.00 used")
    expect(row).to_contain_text("weekly")
    token = stack.call("GET", f"/tokens/{account.default_token['id']}", account.management_key)[1]
    assert (token["name"], token["quota_units"], token["reset_period"]) == (
        "renamed",
        2_500_000,
        "weekly",
    )
    assert token["expires_at"] is None


def test_edit_form_sets_and_clears_rate_limits(console: Any, stack: Any, account: Any) -> None:
    # GIVEN the default token with a requests-per-minute limit
    mk, token_id = account.management_key, account.default_token["id"]
    assert stack.call("PATCH", f"/tokens/{token_id}", mk, {"rpm_limit": 60})[0] == 200
    console.sign_in(mk)
    page = console.page
    console.token_row("default").get_by_role("link", name="Edit token default").click()
    expect(page.locator("#f-rpm_limit")).to_have_value("60")

    # WHEN the rpm limit is emptied, a concurrency limit typed, and the form saved
    page.fill("#f-rpm_limit", "")
    page.fill("#f-max_concurrency", "3")
    page.click("#f-submit")

    # THEN the store has no rpm limit and the concurrency limit; nothing else changed
    expect(console.token_row("default")).to_be_visible()
    token = stack.call("GET", f"/tokens/{token_id}", mk)[1]
    assert (token["rpm_limit"], token["tpm_limit"], token["max_concurrency"]) == (None, None, 3)
    assert token["quota_units"] is None and token["name"] == "default"


def test_paging_follows_next_cursor_both_ways(console: Any, stack: Any, account: Any) -> None:
    # GIVEN 26 tokens (the default one and 25 more), 20 to a page
    status, created = stack.call(
        "POST", "/tokens", account.management_key, {"name": "bulk", "count": 25}
    )
    assert status == 201, created
    console.sign_in(account.management_key)
    page = console.page
    expect(page.locator("#token-rows tr")).to_have_count(20)

    # WHEN the next page is opened
    page.click("#tokens-next")

    # THEN the remaining 6 are listed and there is no further page; back shows 20 again
    expect(page.locator("#token-rows tr")).to_have_count(6)
    expect(page.locator("#tokens-next")).to_be_disabled()
    page.click("#tokens-prev")
    expect(page.locator("#token-rows tr")).to_have_count(20)
    assert len(stored_tokens(stack, account)) == 26


def test_sign_out_forgets_the_key(console: Any, account: Any) -> None:
    # GIVEN a signed-in owner whose key is kept for this tab only
    console.sign_in(account.management_key)
    page = console.page
    assert page.evaluate("Object.keys(sessionStorage)") == ["sluice.console.key"]
    assert page.evaluate("localStorage.length") == 0

    # WHEN they sign out
    page.click("#sign-out")

    # THEN the key is gone from storage and a reload lands on the sign-in form
    expect(page.locator("#signin-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.locator("#signin-form")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    assert page.context.cookies() == []


def test_wrong_key_is_refused_with_the_api_message(console: Any) -> None:
    # GIVEN the sign-in form
    console.allow_http_errors(401)
    console.open("/signin")

    # WHEN a well-formed but unknown management key is used
    console.page.fill("#signin-key", "mk-" + "A" * 48)
    console.page.click("#signin-submit")

    # THEN the API's refusal is shown and nothing is kept
    expect(console.page.locator("#signin-error")).to_contain_text("Incorrect API key")
    assert console.page.evaluate("sessionStorage.length") == 0


def test_the_group_picker_offers_exactly_the_groups_the_operator_granted(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN an account the operator granted "default" and "vip"
    status, body = stack.call(
        "PATCH", f"/admin/accounts/{account.id}", stack.admin_key, {"groups": ["default", "vip"]}
    )
    assert status == 200, body
    # WHEN its owner opens the create form
    console.sign_in(account.management_key)
    console.open("/tokens/new")
    console.page.wait_for_selector("#token-form")
    # THEN the group is a choice of exactly those groups, and a key is created in the one picked
    options = console.page.locator("#f-group option")
    expect(options).to_have_text(["default", "vip"])
    console.fill_token_form(name="vip-bot", group="vip")
    console.page.click("#f-submit")
    expect(console.page.locator("#new-key-0")).to_have_value(KEY_PATTERN)
    [created] = [t for t in stored_tokens(stack, account) if t["name"] == "vip-bot"]
    assert created["group"] == "vip"
