"""Browser suite fixtures: the local stack, one headless Chromium, and a watched page per test.

The stack is ``devtools.stack.start_stack()``: DynamoDB Local, the demo upstream, a bootstrapped
account and ``chalice local``. While app.py does not register the console yet, the suite also
serves the app plus the console blueprint itself (``serve_console.py``) on the same tables and
drives that server instead. Stories that call /v1 are skipped while the stack has no upstream
wired (the demo key lists no models).

Every page is watched: console errors, uncaught exceptions and native dialogs (``alert`` from an
injected script would be one) fail the test at teardown, and so does any request URL carrying a
key, since keys belong in headers only.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Not localhost, so Chromium treats it as an insecure origin; resolved to 127.0.0.1 in-browser.
PLAIN_HTTP_HOST = "sluice-console.test"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1",
]
SERVE_CONSOLE = Path(__file__).with_name("serve_console.py")
KEY_IN_TEXT = re.compile(r"(?:sk|mk)-[A-Za-z0-9]{48}")
START_TIMEOUT_S = 30.0
UI_TIMEOUT_MS = 10_000


@dataclass
class Stack:
    base_url: str
    admin_key: str
    management_key: str
    account_id: str
    demo_key: str
    has_relay: bool
    upstream_base_url: str | None = None
    upstream_api_key: str | None = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=15.0, trust_env=False)

    def call(
        self, method: str, path: str, key: str, body: Any = None, **params: Any
    ) -> tuple[int, Any]:
        """One JSON call from the test itself, to arrange state and to check what was stored."""
        with self.http() as client:
            response = client.request(
                method,
                path,
                headers={"Authorization": f"Bearer {key}"},
                json=body,
                params={k: v for k, v in params.items() if v is not None},
            )
        return response.status_code, (response.json() if response.content else None)


def _wait_for_health(base_url: str, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for _ in range(int(START_TIMEOUT_S / 0.1)):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"console server exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise RuntimeError(f"console server at {base_url} did not answer /health")


@contextlib.contextmanager
def _console_server(env: dict[str, str]) -> Iterator[str]:
    """The app plus the console blueprint on the stack's tables, for as long as app.py does not
    register the console itself. Yields its base URL."""
    from devtools.ddblocal import free_port

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # The server's access log goes to a file, shown only when the server fails to start.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVE_CONSOLE), "--port", str(port)],
            cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                _wait_for_health(base_url, process)
            except RuntimeError as exc:
                log.seek(0)
                output = log.read()[-4000:].decode(errors="replace")
                raise RuntimeError(f"{exc}\n{output}") from exc
            yield base_url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _console_registered() -> bool:
    from app import app

    return "/console" in app.routes


def _relay_answers(base_url: str, demo_key: str) -> bool:
    """True when the demo key lists at least one model, i.e. the stack has an upstream wired."""
    response = httpx.get(
        f"{base_url}/v1/models",
        headers={"Authorization": f"Bearer {demo_key}"},
        timeout=15.0,
        trust_env=False,
    )
    return response.status_code == 200 and bool(response.json().get("data"))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    from devtools.stack import start_stack

    # Channels made in the browser must reach the relay at once, not after its 10 s cache.
    saved_cache = os.environ.get("SLUICE_KEY_CACHE_SECONDS")
    os.environ["SLUICE_KEY_CACHE_SECONDS"] = "0"
    with start_stack() as running, contextlib.ExitStack() as extra:
        if saved_cache is None:
            os.environ.pop("SLUICE_KEY_CACHE_SECONDS", None)
        else:
            os.environ["SLUICE_KEY_CACHE_SECONDS"] = saved_cache
        base_url = running.base_url.rstrip("/")
        if not _console_registered():
            base_url = extra.enter_context(_console_server(running.env))
        assert running.management_key, "a fresh stack always has the demo management key"
        yield Stack(
            base_url=base_url,
            admin_key=running.admin_key,
            management_key=running.management_key,
            account_id=running.account_id,
            demo_key=running.demo_key,
            has_relay=_relay_answers(base_url, running.demo_key),
            upstream_base_url=running.upstream_base_url,
            upstream_api_key=running.upstream_api_key,
        )


@pytest.fixture
def relay_stack(stack: Stack) -> Stack:
    """The stack, for stories that call /v1 through a real upstream."""
    if not stack.has_relay:
        pytest.skip("the local stack has no upstream wired yet (devtools.stack.bootstrap_relay)")
    return stack


@dataclass
class Account:
    id: str
    name: str
    management_key: str
    default_token: dict[str, Any]


@pytest.fixture
def account(stack: Stack) -> Account:
    """A fresh account per test, so token lists never see another test's tokens."""
    return new_account(stack)


@pytest.fixture
def make_account(stack: Stack) -> Any:
    """Factory: a fresh account with the given fields (groups, quota_usd...)."""
    return lambda **fields: new_account(stack, **fields)


def new_account(stack: Stack, **fields: Any) -> Account:
    name = "acct-" + secrets.token_hex(3)
    body = {"name": name, "quota_usd": "50", **fields}
    status, created = stack.call("POST", "/admin/accounts", stack.admin_key, body)
    assert status == 201, created
    return Account(
        created["account"]["id"], name, created["management_key"], created["default_token"]
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (user data dir) and deletes it after.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Console:
    """A page on the console, with everything it reported collected for the final checks."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.url}#{route}" if route else self.url)

    def sign_in(self, key: str) -> None:
        self.open("/signin")
        self.page.fill("#signin-key", key)
        self.page.click("#signin-submit")
        self.page.wait_for_selector("#nav:not([hidden])")

    def token_row(self, name: str) -> Any:
        return self.page.locator("#token-rows tr").filter(
            has=self.page.locator(".token-name", has_text=name)
        )

    def fill_token_form(self, **fields: str) -> None:
        """Fill the create/edit form; ``expiry`` and ``reset`` pick a choice, the rest is typed.

        A quota amount picks "Limited" first, as a user must for the amount field to show."""
        page = self.page
        page.wait_for_selector("#token-form")
        if "expiry" in fields:
            page.check(f"#f-expiry-{fields.pop('expiry')}")
        if "quota_usd" in fields:
            page.check("#f-quota-limited")
        if "reset" in fields:
            page.select_option("#f-reset_period", fields.pop("reset"))
        if "group" in fields:
            page.select_option("#f-group", fields.pop("group"))
        for name, value in fields.items():
            page.fill(f"#f-{name}", value)

    def create_token(self, **fields: str) -> str:
        """Create through the form; returns the key shown in the dialog (left open)."""
        self.open("/tokens/new")
        self.fill_token_form(**fields)
        self.page.click("#f-submit")
        key_input = self.page.locator("#new-key-0")
        key_input.wait_for()
        return str(key_input.input_value())

    def screenshot(self, name: str, full_page: bool = True, jpeg: bool = False) -> None:
        """A PNG of the page; ``jpeg`` for the loops that take many (a fraction of the time)."""
        if jpeg:
            path = ARTIFACTS / f"console-{name}.jpg"
            self.page.screenshot(path=str(path), full_page=full_page, type="jpeg", quality=70)
        else:
            self.page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=full_page)

    def set_theme(self, theme: str) -> None:
        self.page.select_option("#theme-switch", theme)

    def set_language(self, code: str) -> None:
        self.page.select_option("#lang-switch", code)
        self.page.wait_for_function("(code) => document.documentElement.lang === code", arg=code)

    def allow_http_errors(self, *statuses: int) -> None:
        """Chromium logs every 4xx fetch as a console error; a story that expects one says so."""
        self.allowed_statuses.update(statuses)

    def unexpected_errors(self) -> list[str]:
        allowed = re.compile(
            r"Failed to load resource: the server responded with a status of "
            rf"({'|'.join(str(s) for s in self.allowed_statuses) or 'none'})\b"
        )
        return [text for text in self.errors if not allowed.search(text)]


@pytest.fixture
def open_console(browser: Any, stack: Stack) -> Iterator[Any]:
    """Factory: a new browser context (options as for ``new_context``) with a watched page."""
    opened: list[tuple[Any, Console]] = []

    def factory(plain_http: bool = False, **context_options: Any) -> Console:
        context_options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(**context_options)
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        port = stack.base_url.rsplit(":", 1)[1]
        base = f"http://{PLAIN_HTTP_HOST}:{port}" if plain_http else stack.base_url
        console = Console(page, f"{base}/console")

        def on_console(message: Any) -> None:
            if message.type == "error":
                console.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))

        def on_dialog(dialog: Any) -> None:
            console.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("request", lambda r: console.request_urls.append(r.url))
        opened.append((context, console))
        return console

    yield factory
    for context, _console in opened:
        context.close()
    for _context, console in opened:
        assert console.dialogs == [], f"a native dialog opened: {console.dialogs}"
        assert console.unexpected_errors() == [], f"console errors: {console.errors}"
        leaked = [u for u in console.request_urls if KEY_IN_TEXT.search(u) or stack.admin_key in u]
        assert leaked == [], "a key appeared in a request URL"


@pytest.fixture
def console(open_console: Any) -> Console:
    """A desktop-sized page with clipboard access, as a user on HTTPS or localhost has."""
    return open_console(permissions=["clipboard-read", "clipboard-write"])
