"""The operator's pages: accounts with names, balances, groups and credits with their notes; the
header naming the account being managed; operator keys created with scopes, shown once, listed
with their last use, disabled and deleted."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_admin_creates_credits_regroups_and_disables_an_account(console: Any, stack: Any) -> None:
    # GIVEN the admin on the Accounts page
    console.sign_in(stack.admin_key)
    page = console.page
    page.wait_for_selector("#account-form")

    # WHEN an account is created without a name, THEN the field says so and nothing is sent
    page.click("#acct-submit")
    expect(page.locator("#acct-err-name")).to_have_text("Required.")

    # WHEN it is created with a name and balance
    page.fill("#acct-name", "Acme Robotics")
    page.fill("#acct-quota_usd", "10")
    page.click("#acct-submit")
    expect(page.locator("#new-key-1")).to_have_value(re.compile(r"^sk-"))
    page.click("#copy-all")
    page.click("#key-dialog-close")
    row = page.locator("#account-rows tr", has_text="Acme Robotics")
    expect(row.locator(".balance")).to_have_text("$10.00 left of $10.00")
    account_id = row.get_attribute("data-account-id")

    # WHEN it is credited with a note ("2,5" is refused with a hint first)
    row.get_by_role("button", name="Credit Acme Robotics").click()
    expect(page.locator("#credit-amount")).to_be_focused()
    page.fill("#credit-amount", "2,5")
    page.click("#credit-submit")
    expect(page.locator("#credit-err-quota_usd")).to_contain_text("1.50")
    page.fill("#credit-amount", "2.5")
    page.fill("#credit-note", "invoice 2026-11")
    page.click("#credit-submit")

    # THEN the balance shows two decimals, and the credit is listed again with its note
    expect(row.locator(".balance")).to_have_text("$12.50 left of $12.50")
    row.get_by_role("button", name="Credits of Acme Robotics").click()
    expect(page.locator("#credit-rows")).to_contain_text("invoice 2026-11")
    expect(page.locator("#credit-rows")).to_contain_text("$2.50")
    page.click("#credits-dialog-cancel")
    # AND the focus went back to the button that opened the dialog
    expect(row.get_by_role("button", name="Credits of Acme Robotics")).to_be_focused()

    # WHEN its groups are edited
    row.get_by_role("button", name="Groups of Acme Robotics").click()
    page.fill("#groups-input", "default, vip")
    page.click("#groups-submit")
    expect(row).to_contain_text("default, vip")
    _, stored = stack.call("GET", f"/admin/accounts/{account_id}", stack.admin_key)
    assert stored["groups"] == ["default", "vip"]

    # WHEN its tokens are opened, THEN the header names the account being managed
    row.get_by_role("link", name="Manage the tokens of Acme Robotics").click()
    expect(page.locator("#whoami")).to_have_text("Admin · managing Acme Robotics")
    expect(page.locator("#token-rows .token-name")).to_have_text(["default"])

    # WHEN it is disabled after confirming
    console.open("/accounts")
    row.get_by_role("button", name="Disable account Acme Robotics").click()
    page.click("#confirm-ok")
    expect(row.locator(".status")).to_have_text("disabled")
    assert stack.call("GET", f"/admin/accounts/{account_id}", stack.admin_key)[1]["status"] == (
        "disabled"
    )


def test_admin_creates_an_operator_key_with_scopes_sees_its_use_disables_and_deletes_it(
    console: Any, stack: Any
) -> None:
    # GIVEN the Operator keys page
    console.sign_in(stack.admin_key)
    page = console.page
    console.open("/keys")
    page.wait_for_selector("#operator-key-form")

    # WHEN a key is asked for without scopes, THEN that is refused beside the scopes
    page.fill("#ok-name", "reporting")
    page.click("#ok-submit")
    expect(page.locator("#ok-err-scopes")).to_have_text("Choose at least one scope.")

    # WHEN it is created with two scopes, THEN it is shown once
    page.check("#ok-scope-accounts-read")
    page.check("#ok-scope-logs-read")
    page.click("#ok-submit")
    key = page.locator("#new-key-0").input_value()
    assert key.startswith("ops-")
    page.click("#key-dialog-close")
    page.click("#confirm-ok")  # closing without copying asks first
    row = page.locator("#operator-key-rows tr", has_text="reporting")
    expect(row).to_contain_text("accounts:read logs:read")
    expect(row).to_contain_text("not yet")

    # WHEN the key is used, THEN the list shows when
    assert stack.call("GET", "/admin/accounts", key, limit=1)[0] == 200
    page.reload()
    expect(row).to_contain_text(re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC \(this minute"))

    # WHEN it is disabled, THEN it is refused; WHEN deleted, THEN it is gone
    console.allow_http_errors(401)
    row.get_by_role("button", name="Disable operator key reporting").click()
    expect(row.locator(".status")).to_have_text("disabled")
    assert stack.call("GET", "/admin/accounts", key, limit=1)[0] == 401
    row.get_by_role("button", name="Delete operator key reporting").click()
    page.click("#confirm-ok")
    expect(row).to_have_count(0)
