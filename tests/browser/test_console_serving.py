"""How Chalice serves the console (no browser needed): only allow-listed files, the right types,
the security headers on every answer, errors in the OpenAI shape, and static files that keep to
the policy (no inline code, no HTML built from strings, keys only in sessionStorage)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api import console

STATIC = Path(console.__file__).with_name("static")
SHIPPED = sorted(p.name for p in STATIC.iterdir() if p.suffix in console.CONTENT_TYPES)
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


@pytest.fixture(scope="module")
def http() -> Iterator[Any]:
    from chalice import Chalice
    from chalice.test import Client

    # An app of its own: the real one is left exactly as app.py builds it.
    app = Chalice(app_name="console-under-test")
    app.register_blueprint(console.blueprint())
    with Client(app) as client:
        yield client.http


def assert_console_headers(headers: Any) -> None:
    assert headers["Content-Security-Policy"] == POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_console_root_serves_the_page_under_the_strict_policy(http: Any) -> None:
    # WHEN the console's address is opened
    response = http.get("/console")

    # THEN it is the HTML page, loading its code as a same-origin module, with every header
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_console_headers(response.headers)
    assert b'<script type="module" src="console/app.js"></script>' in response.body


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "index.html"])
def test_every_shipped_asset_is_served_with_its_type_and_headers(http: Any, name: str) -> None:
    # WHEN a shipped file is requested
    response = http.get(f"/console/{name}")

    # THEN it comes back byte for byte, typed by its extension, with the security headers
    assert response.status_code == 200
    assert response.headers["Content-Type"] == console.CONTENT_TYPES[Path(name).suffix]
    assert response.body == (STATIC / name).read_bytes()
    assert_console_headers(response.headers)


@pytest.mark.parametrize(
    "asset",
    ["nope.js", "index.html", "..", "%2e%2e", "..%2fapp.py", "app.JS", "__init__.py", ".x.js"],
)
def test_anything_else_under_console_is_an_openai_shaped_404(http: Any, asset: str) -> None:
    # WHEN a path that is not a shipped asset is requested (traversal attempts included)
    response = http.get(f"/console/{asset}")

    # THEN it is a 404 in the OpenAI error shape, still under the policy
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "not_found"
    assert_console_headers(response.headers)


def test_trailing_slash_redirects_to_the_page_relatively(http: Any) -> None:
    # WHEN "/console/" is opened (where relative asset URLs would resolve one level too deep)
    response = http.get("/console/")

    # THEN a relative redirect leads to "/console", whatever stage prefix is in front
    assert response.status_code == 308
    assert response.headers["Location"] == "../console"


def test_the_page_has_no_inline_code_or_styles() -> None:
    # GIVEN the page
    html = (STATIC / "index.html").read_text()

    # THEN every script is external and no element carries inline styles or handlers
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"<style\b|\sstyle=|\son[a-z]+=", html, flags=re.IGNORECASE) == []


# The only scripts that remember anything across tabs: the language and the theme chosen.
PREFERENCE_SCRIPTS = {"i18n.js", "theme.js"}


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.endswith(".js")])
def test_scripts_never_build_html_from_strings_or_store_keys_durably(name: str) -> None:
    # GIVEN one of the console's scripts
    code = (STATIC / name).read_text()

    # THEN nothing parses strings as HTML or code, sets inline styles, or uses localStorage
    # (except the two preference scripts, which never see a key)
    forbidden = re.findall(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*[\"']style|localStorage|window\.(?:alert|confirm|prompt)\(",
        code,
    )
    if name in PREFERENCE_SCRIPTS:
        forbidden = [word for word in forbidden if word != "localStorage"]
        assert "session" not in code and "api.js" not in code
    assert forbidden == []


def _dictionary(language: str) -> set[str]:
    text = (STATIC / "strings.js").read_text()
    english, chinese = text.split("const zh = {", 1)
    part = english if language == "en" else chinese
    return set(re.findall(r'^\s+"([^"]+)":', part, flags=re.MULTILINE))


def test_both_languages_have_every_string_the_scripts_and_page_use() -> None:
    # GIVEN the English and Chinese dictionaries, and every key the scripts and page name
    english, chinese = _dictionary("en"), _dictionary("zh-CN")
    used: set[str] = set()
    for path in STATIC.iterdir():
        if path.suffix in (".js", ".html"):
            code = path.read_text()
            used |= set(re.findall(r'\bt\("([^"]+)"', code))
            used |= set(re.findall(r'data-i18n(?:-label)?="([^"]+)"', code))
    # THEN both languages have the same keys, and none the console uses is missing
    assert english == chinese
    assert used - english == set()


def test_the_operator_keys_page_offers_exactly_the_apis_scopes() -> None:
    from chalicelib.core.scopes import SCOPES

    code = (STATIC / "operator_keys.js").read_text()
    listed = re.findall(r'^  "([a-z]+:[a-z]+)",$', code, flags=re.MULTILINE)
    assert sorted(listed) == sorted(SCOPES)
