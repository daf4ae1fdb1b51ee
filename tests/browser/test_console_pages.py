"""Every page of the console as a whole: the browser's language picks English or Chinese (and the
header switches and remembers it), dark mode follows the system and the toggle, no page scrolls
sideways at 390 px, every control has a label, and the console works under a stage prefix.

The screenshot loop writes every page in both languages, light and dark, desktop and phone, to
tests/artifacts/: one load per page, then language, theme and viewport are switched in place.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CJK = re.compile(r"[\u4e00-\u9fff]")
# Controls without a label element, aria-label or aria-labelledby.
UNLABELLED = """() => [...document.querySelectorAll(
    'main input, main select, main textarea, header select')]
  .filter((c) => c.type !== 'hidden' && !c.closest('[hidden]'))
  .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')
                 && !c.getAttribute('aria-labelledby'))
  .map((c) => c.id || c.name || c.outerHTML.slice(0, 60))"""
SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


def test_a_chinese_browser_sees_chinese_an_english_one_english_and_the_choice_is_kept(
    open_console: Any, account: Any
) -> None:
    # GIVEN a browser preferring zh-CN in dark mode, and one preferring en-US in light mode
    chinese = open_console(locale="zh-CN", color_scheme="dark")
    english = open_console(locale="en-US", color_scheme="light")

    # WHEN both sign in
    chinese.sign_in(account.management_key)
    english.sign_in(account.management_key)

    # THEN each reads its own language, <html lang> says which, and the theme follows the system
    zh, en = chinese.page, english.page
    expect(zh.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(zh.locator("h1")).to_have_text("令牌")
    expect(zh.locator("#nav a[data-page=logs]")).to_have_text("日志")
    expect(en.locator("h1")).to_have_text("Tokens")
    assert not CJK.search(en.locator("main").inner_text())
    assert zh.evaluate(BACKGROUND) != en.evaluate(BACKGROUND)
    # AND the dates keep one format in both languages, with the hint in the reader's language
    expect(zh.locator("td[data-label='创建时间']").first).to_contain_text(" UTC")

    # WHEN the English reader switches to 简体中文 and reloads
    english.set_language("zh-CN")
    expect(en.locator("h1")).to_have_text("令牌")
    en.reload()
    # THEN the choice was kept
    expect(en.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(en.locator("#sign-out")).to_have_text("退出登录")

    # WHEN the Chinese reader picks the light theme, THEN the page turns light, and stays so
    chinese.set_theme("light")
    assert zh.evaluate(BACKGROUND) == en.evaluate(BACKGROUND)
    zh.reload()
    zh.wait_for_selector("#token-rows tr")
    assert zh.evaluate(BACKGROUND) == en.evaluate(BACKGROUND)
    chinese.set_theme("dark")
    assert zh.evaluate(BACKGROUND) != en.evaluate(BACKGROUND)


def _pages(account_id: str) -> list[tuple[str, str]]:
    """(route, a selector present once the page has rendered), every page of the console."""
    scoped = f"?account_id={account_id}"
    return [
        (f"/tokens{scoped}", "#token-rows tr"),
        ("/tokens/new", "#token-form"),
        ("/logs", "#log-rows tr"),
        ("/usage", "#by-model-rows tr"),
        ("/playground", "#pg-key"),
        ("/accounts", "#account-rows tr"),
        ("/channels", "#channel-rows tr"),
        ("/prices", "#price-rows tr"),
        ("/groups", "#group-rows tr"),
        ("/keys", "#operator-key-rows tr"),
        ("/audit", "#audit-rows tr"),
    ]


def _shoot(console: Any, name: str, ready: str) -> dict[str, int]:
    """Screenshots of the page shown, in every language x theme x viewport; returns how far
    each phone-sized variant scrolls sideways (0 is right)."""
    page = console.page
    sideways = {}
    for language in ("en", "zh-CN"):
        console.set_language(language)
        page.wait_for_selector(ready)
        for theme in ("light", "dark"):
            console.set_theme(theme)
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                page.set_viewport_size(viewport)
                if label == "phone":
                    sideways[f"{name} {language} {theme}"] = page.evaluate(SIDEWAYS)
                console.screenshot(f"{name}-{language}-{theme}-{label}", full_page=False, jpeg=True)
            page.set_viewport_size(DESKTOP)
    return sideways


def test_every_page_in_both_languages_and_themes_fits_a_phone_and_labels_its_controls(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the sign-in page, then every page of the console signed in as the admin
    console.page.set_viewport_size(DESKTOP)
    console.open("/signin")
    sideways = _shoot(console, "signin", "#signin-form")
    console.sign_in(stack.admin_key)
    unlabelled: dict[str, list[str]] = {}
    light_background = None
    for route, ready in _pages(account.id):
        # WHEN each page is shown once, then switched through languages, themes and sizes
        console.open(route)
        console.page.wait_for_selector(ready)
        name = route.split("?")[0].strip("/").replace("/", "-")
        unlabelled[name] = console.page.evaluate(UNLABELLED)
        sideways.update(_shoot(console, name, ready))
        console.set_theme("light")
        light_background = light_background or console.page.evaluate(BACKGROUND)

    # THEN no page scrolls sideways on a phone, and every control has a label
    assert {name: px for name, px in sideways.items() if px > 0} == {}
    assert unlabelled == {name: [] for name in unlabelled}
    # AND dark mode changed the background (checked on the last page)
    console.set_theme("dark")
    assert console.page.evaluate(BACKGROUND) != light_background
    # AND the header names the account being managed, not only its id
    expect(console.page.locator("#whoami")).to_contain_text(account.name)


def test_console_under_a_stage_prefix_calls_the_api_under_that_prefix(
    console: Any, stack: Any, account: Any
) -> None:
    # GIVEN the API mounted under /api, as API Gateway's stage "api" does
    page = console.page
    prefix = f"{stack.base_url}/api/"

    def forward(route: Any) -> None:
        unprefixed = route.request.url.replace(prefix, f"{stack.base_url}/", 1)
        # A request still on its way when the page closes has nobody left to answer: its
        # response is gone, and the error would surface in a later test's teardown.
        with contextlib.suppress(PlaywrightError):
            route.fulfill(response=route.fetch(url=unprefixed))

    page.route(f"{prefix}**", forward)
    console.url = f"{stack.base_url}/api/console"

    # WHEN the owner signs in there and lists tokens
    console.sign_in(account.management_key)

    # THEN the list loads, and every request the page made went under /api
    expect(console.token_row("default")).to_have_count(1)
    outside = [u for u in console.request_urls if not u.startswith(prefix)]
    assert outside == []
    assert any(u.startswith(f"{prefix}tokens") for u in console.request_urls)
