"""Whole-page properties: phone-sized layout, a label on every control, and an API mounted under
an API Gateway stage prefix."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

# Controls a screen reader could not name: no <label>, no aria-label(ledby), or empty buttons.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.tagName === "BUTTON"
    ? !(el.textContent.trim() || el.getAttribute("aria-label"))
    : !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
      && !el.getAttribute("aria-labelledby"))
  .map((el) => el.id || el.name || el.outerHTML.slice(0, 80))"""


def test_phone_sized_screen_shows_tokens_as_cards_without_sideways_scrolling(
    open_console: Any, stack: Any, account: Any
) -> None:
    # GIVEN a phone-sized browser
    console = open_console(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)

    # WHEN the owner signs in and looks at tokens, then the create form
    console.sign_in(account.management_key)
    page = console.page
    expect(console.token_row("default")).to_have_count(1)
    console.screenshot("phone-tokens")
    widths = [page.evaluate("document.documentElement.scrollWidth")]
    label = page.evaluate(
        "getComputedStyle(document.querySelector('#token-rows td'), '::before').content"
    )
    console.open("/tokens/new")
    page.wait_for_selector("#token-form")
    console.screenshot("phone-create-form")
    widths.append(page.evaluate("document.documentElement.scrollWidth"))

    # THEN nothing is wider than the screen, and table cells carry their column name as cards
    assert max(widths) <= PHONE["width"]
    assert label == '"Name"'


def test_every_control_on_every_page_has_a_label(console: Any, stack: Any, account: Any) -> None:
    # GIVEN an owner and then the admin, visiting every page
    unlabelled: dict[str, list[str]] = {}
    console.sign_in(account.management_key)
    page = console.page
    for route, ready in [
        ("/tokens", "#token-rows tr"),
        ("/tokens/new", "#token-form"),
        (f"/tokens/{account.default_token['id']}/edit", "#token-form"),
        ("/logs", "#logs-filters"),
        ("/playground", "#playground"),
    ]:
        # WHEN each page has rendered
        console.open(route)
        page.wait_for_selector(ready)
        unlabelled[route] = page.evaluate(UNLABELLED)
    page.click("#sign-out")
    console.sign_in(stack.admin_key)
    page.wait_for_selector("#account-rows tr")
    unlabelled["/accounts"] = page.evaluate(UNLABELLED)

    # THEN none has a control without a label
    assert unlabelled == {route: [] for route in unlabelled}


def test_console_under_a_stage_prefix_calls_the_api_under_that_prefix(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the API mounted under /api, as API Gateway's stage "api" does
    # (the browser sees /api/...; the local server behind it has no prefix)
    page = console.page
    prefix = f"{stack.base_url}/api/"
    page.route(
        f"{prefix}**",
        lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace(prefix, f"{stack.base_url}/", 1))
        ),
    )
    console.url = f"{stack.base_url}/api/console"

    # WHEN the owner signs in there and lists tokens
    console.sign_in(account.management_key)

    # THEN the list loads, and every request the page made went under /api
    expect(console.token_row("default")).to_have_count(1)
    outside = [u for u in console.request_urls if not u.startswith(prefix)]
    assert outside == []
    assert any(u.startswith(f"{prefix}tokens") for u in console.request_urls)
