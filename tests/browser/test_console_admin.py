"""The admin key in the console: the Accounts page (create, credit, disable/enable) and managing
one chosen account's tokens through ?account_id=."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def account_row(console: Any, name: str) -> Any:
    return console.page.locator("#account-rows tr").filter(
        has=console.page.locator(".account-name", has_text=name)
    )


def test_admin_creates_an_account_and_credits_it(console: Any, stack: Any) -> None:
    # GIVEN the admin on the Accounts page
    name = "ui-" + secrets.token_hex(3)
    console.sign_in(stack.admin_key)
    page = console.page
    expect(page.locator("#account-form")).to_be_visible()

    # WHEN an account with US$5 is created, then credited US$2.50
    page.fill("#acct-name", name)
    page.fill("#acct-quota_usd", "5")
    page.click("#acct-submit")
    management_key = page.locator("#new-key-0").input_value()
    assert re.fullmatch(r"mk-[A-Za-z0-9]{48}", management_key)
    assert page.locator("#new-key-1").input_value().startswith("sk-")
    page.click("#key-dialog-close")
    row = account_row(console, name)
    expect(row.locator(".balance")).to_have_text("$5.00 left of $5.00")
    row.get_by_role("button", name=f"Credit {name}").click()
    page.fill("#credit-amount", "2.50")
    expect(page.locator("#credit-units")).to_have_text("= 1,250,000 units")
    page.click("#credit-submit")

    # THEN the row shows the new balance, and the store holds it
    expect(row.locator(".balance")).to_have_text("$7.50 left of $7.50")
    console.screenshot("accounts")
    status, own = stack.call("GET", "/account", management_key)
    assert status == 200 and own["name"] == name
    assert (own["quota_units"], own["remaining_units"]) == (3_750_000, 3_750_000)


def test_admin_disables_an_account_after_confirming(console: Any, stack: Any, account: Any) -> None:
    # GIVEN the admin looking at an enabled account
    console.sign_in(stack.admin_key)
    row = account_row(console, account.name)
    expect(row.locator(".status")).to_have_text("enabled")

    # WHEN it is disabled (confirmed in the console's dialog)
    row.get_by_role("button", name=f"Disable account {account.name}").click()
    console.page.click("#confirm-ok")

    # THEN the row and the store say disabled, and its management key no longer signs in
    expect(row.locator(".status")).to_have_text("disabled")
    assert stack.call("GET", f"/admin/accounts/{account.id}", stack.admin_key)[1]["status"] == (
        "disabled"
    )
    assert stack.call("GET", "/account", account.management_key)[0] == 401


def test_admin_manages_the_tokens_of_the_chosen_account(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the admin on the Accounts page
    console.sign_in(stack.admin_key)
    page = console.page

    # WHEN they open one account's tokens and create a key there
    account_row(console, account.name).get_by_role(
        "link", name=f"Manage the tokens of {account.name}"
    ).click()
    expect(page.locator("#account-picker")).to_have_value(account.id)
    expect(console.token_row("default")).to_have_count(1)
    console.create_token(name="made-by-admin")
    page.click("#key-dialog-close")

    # THEN the key belongs to that account, and every call carried ?account_id=
    expect(console.token_row("made-by-admin")).to_have_count(1)
    status, listed = stack.call("GET", "/tokens", account.management_key)
    assert status == 200
    assert sorted(t["name"] for t in listed["data"]) == ["default", "made-by-admin"]
    token_calls = [u for u in console.request_urls if "/tokens" in u and "/console" not in u]
    assert token_calls and all(f"account_id={account.id}" in u for u in token_calls)
