"""Representative flows through the app, one function per area: the single list to extend.

Tests that watch what the code does as a whole (today: which AWS calls it makes, checked against
the IAM policy in test_policy_covers_calls.py) run every flow in ``FLOWS``. Each flow drives the
app's public entry points only (routes through chalice's test client, schedules through their
Lambda handlers) and asserts every step succeeded, so a call that failed early can never pass
for a permission that is not needed.

To cover a new area (a route, a schedule, a new kind of write): add a function taking a
``Driver`` and append it to ``FLOWS``. The policy test then tells you which grants it now
exercises, to remove from its ``NOT_YET_EXERCISED`` list, and which routes it now drives.

Each call is made *as* the function that serves it in the stack (``serving()``): ``/v1/*`` is
the relay's (its role in infra/relay.yaml), every other route and every schedule Chalice's
(.chalice/policy-<stage>.json); so each function's grants are checked against its own calls.
What a flow does outside the app to set the scene (seeding a channel as ``make run`` does,
leaving a reservation behind as a crashed call would) is ``SETUP``, and counts for neither.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from support import is_relay_path, quiet_spell

UPSTREAM_KEY = "flow-upstream-" + "u" * 24
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}

CHALICE, RELAY, SETUP = "chalice", "relay", "setup"
FUNCTIONS = (CHALICE, RELAY)
_serving = [SETUP]


def serving() -> str:
    """The function the AWS calls made right now are made by."""
    return _serving[-1]


@contextlib.contextmanager
def as_function(function: str) -> Iterator[None]:
    _serving.append(function)
    try:
        yield
    finally:
        _serving.pop()


def function_for(path: str) -> str:
    return RELAY if is_relay_path(path) else CHALICE


class Driver:
    """The shared ``api`` helper (tests/conftest.py), remembering every route it reached."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.routes: set[tuple[str, str]] = set()  # (method, path as called, no query)
        self.schedules: set[str] = set()

    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None, expect: int = 200
    ) -> Any:
        with as_function(function_for(path)):
            status, data = self.api.call(method, path, key=key, body=body)
        assert status == expect, f"{method} {path}: {status} {data}"
        self.routes.add((method, path.split("?", 1)[0]))
        return data

    def admin(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        with as_function(function_for(path)):
            status, data = self.api.admin(method, path, body)
        assert status == expect, f"{method} {path}: {status} {data}"
        self.routes.add((method, path.split("?", 1)[0]))
        return data

    def run_schedule(self, name: str) -> Any:
        """Invoke a scheduled Lambda as EventBridge would, through chalice's test client."""
        client = self.api.client
        event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
        with as_function(CHALICE):  # the schedules are Chalice's functions, with its policy
            response = client.lambda_.invoke(name, event)
        self.schedules.add(name)
        return response.payload

    def reached(self, method: str, route_path: str) -> bool:
        """Whether some call matched a chalice route like ``/tokens/{token_id}``."""
        pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", route_path) + "$")
        return any(m == method and pattern.match(path) for m, path in self.routes)


def health_and_docs(driver: Driver) -> None:
    assert driver.call("GET", "/health") == {"status": "ok"}
    assert "paths" in driver.call("GET", "/openapi.json")
    # The console is static files: no AWS call of its own, but it is an entry point all the same.
    assert "<html" in driver.call("GET", "/console").lower()
    assert "function" in driver.call("GET", "/console/app.js")
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        driver.call(method, "/no-such-route", expect=404)


def management(driver: Driver) -> None:
    """Every account and token route, as the operator and as the account itself."""
    created = driver.admin("POST", "/admin/accounts", {"name": "flow", "quota_units": 50_000}, 201)
    account_id, mk = created["account"]["id"], created["management_key"]
    driver.admin("POST", "/admin/accounts", {"name": "flow-two", "unlimited": True}, 201)
    page = driver.admin("GET", "/admin/accounts?limit=1")
    driver.admin("GET", f"/admin/accounts?limit=1&cursor={page['next_cursor']}")
    driver.admin("GET", f"/admin/accounts/{account_id}")
    driver.admin("PATCH", f"/admin/accounts/{account_id}", {"name": "flow-renamed"})
    driver.admin("POST", f"/admin/accounts/{account_id}/credit", {"quota_units": 1000, "note": "x"})
    driver.admin("GET", f"/admin/accounts/{account_id}/credits")
    driver.call("GET", "/account", key=mk)

    body = {"name": "ci", "count": 2, "quota_units": 5000, "reset_period": "daily"}
    tokens = driver.call("POST", "/tokens", key=mk, body=body, expect=201)["data"]
    token_id = tokens[0]["id"]
    driver.call("GET", "/tokens?limit=1", key=mk)
    driver.call("GET", "/tokens?status=enabled", key=mk)
    driver.admin("GET", f"/tokens?account_id={account_id}")
    driver.call("GET", f"/tokens/{token_id}", key=mk)
    driver.call("PATCH", f"/tokens/{token_id}", key=mk, body={"quota_units": 6000})
    driver.call("POST", f"/tokens/{token_id}/regenerate", key=mk)
    driver.call("DELETE", f"/tokens/{token_id}", key=mk, expect=204)
    fresh = driver.admin("POST", f"/admin/accounts/{account_id}/management-key")
    driver.call("GET", "/account", key=fresh["management_key"])


def relay(driver: Driver) -> None:
    """Calls with an sk- key through a demo upstream on 127.0.0.1, then the key's own reports."""
    from chalicelib.services import gateway
    from chalicelib.store import config as config_store
    from devtools.demo_seed import register_demo
    from devtools.mock_upstream import MockUpstream

    with MockUpstream(api_key=UPSTREAM_KEY).start() as upstream:
        # The `make run` bootstrap stands in for the admin channel API until app.py has it: the
        # same store call, which keeps the provider key in SSM on a deployed stage.
        register_demo(upstream.base_url, UPSTREAM_KEY)
        # A fresh container: nothing cached from earlier tests' channels or keys.
        config_store.invalidate()
        gateway.cache().entries.clear()
        created = driver.admin("POST", "/admin/accounts", {"name": "relay", "quota_usd": "5"}, 201)
        key, mk = created["default_token"]["key"], created["management_key"]

        driver.call("POST", "/v1/chat/completions", key=key, body=HELLO)
        # After a quiet spell the container checks its copy of the configuration is current.
        quiet_spell()
        driver.call("POST", "/v1/chat/completions", key=key, body={**HELLO, "stream": True})
        embed = {"model": "text-embedding-3-small", "input": "hello"}
        driver.call("POST", "/v1/embeddings", key=key, body=embed)
        answer = driver.call(
            "POST", "/v1/responses", key=key, body={"model": "gpt-4.1-mini", "input": "hello"}
        )
        driver.call("GET", f"/v1/responses/{answer['id']}", key=key)
        conversation = driver.call("POST", "/v1/conversations", key=key, body={"metadata": {}})
        on = f"/v1/conversations/{conversation['id']}"
        in_it = {"model": "gpt-4.1-mini", "input": "hello", "conversation": conversation["id"]}
        driver.call("POST", "/v1/responses", key=key, body=in_it)
        driver.call("GET", on, key=key)
        driver.call("POST", on, key=key, body={"metadata": {"topic": "flow"}})
        message = {"type": "message", "role": "user", "content": "more"}
        added = driver.call("POST", f"{on}/items", key=key, body={"items": [message]})
        driver.call("GET", f"{on}/items?limit=5", key=key)
        driver.call("GET", f"{on}/items/{added['data'][0]['id']}", key=key)
        driver.call("DELETE", f"{on}/items/{added['data'][0]['id']}", key=key)
        driver.call("DELETE", on, key=key)
        legacy = {"model": "gpt-3.5-turbo-instruct", "prompt": "hello"}
        driver.call("POST", "/v1/completions", key=key, body=legacy)
        moderation = {"model": "omni-moderation-latest", "input": "hello"}
        driver.call("POST", "/v1/moderations", key=key, body=moderation)
        video = {"model": "sora-2", "prompt": "a lighthouse at dusk", "seconds": "4"}
        job = driver.call("POST", "/v1/videos", key=key, body=video)
        driver.call("GET", f"/v1/videos/{job['id']}", key=key)
        driver.call("GET", "/v1/videos", key=key)
        driver.call("DELETE", f"/v1/videos/{job['id']}", key=key)
    driver.call("GET", "/v1/models", key=key)
    driver.call("GET", "/v1/key", key=key)
    driver.call("GET", "/v1/dashboard/billing/subscription", key=key)
    driver.call("GET", "/v1/dashboard/billing/usage", key=key)
    driver.call("GET", "/logs", key=mk)
    driver.call("GET", "/usage", key=mk)


def configuration(driver: Driver) -> None:
    """The operator's relay configuration: a channel (its key kept in SSM), prices, groups."""
    channel = {
        "id": "flow",
        "name": "flow",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "flow-provider-" + "k" * 24,
        "models": ["flow-model"],
    }
    driver.admin("POST", "/admin/channels", channel, 201)
    driver.admin("GET", "/admin/channels")
    driver.admin("GET", "/admin/channels/flow")
    driver.admin("PATCH", "/admin/channels/flow", {"api_key": "flow-rotated-" + "k" * 24})
    driver.admin("DELETE", "/admin/channels/flow", expect=204)
    driver.admin("PUT", "/admin/models/flow-model", {"usd_per_request": "0.001"})
    driver.admin("GET", "/admin/models")
    driver.admin("DELETE", "/admin/models/flow-model", expect=204)
    driver.admin("PUT", "/admin/groups/flow", {"ratio": "1.5"})
    driver.admin("GET", "/admin/groups")


def resets(driver: Driver) -> None:
    """A daily key past its boundary, reset by the admin route; then the hourly schedule."""
    import time_machine

    created = driver.admin("POST", "/admin/accounts", {"name": "resets"}, 201)
    body = {"name": "daily", "quota_units": 1000, "reset_period": "daily"}
    driver.call("POST", "/tokens", key=created["management_key"], body=body, expect=201)
    with time_machine.travel(time.time() + 2 * 86_400, tick=False):
        assert driver.admin("POST", "/admin/resets/run")["reset"] >= 1
        driver.run_schedule("reset_quotas")


def sweeper(driver: Driver) -> None:
    """A reservation left pending by a process that died, refunded by the schedule."""
    import time_machine

    from chalicelib.core import keys
    from chalicelib.store import ledger

    created = driver.admin("POST", "/admin/accounts", {"name": "crashed", "quota_usd": "1"}, 201)
    token = created["default_token"]
    now = int(time.time())
    reservation = ledger.Reservation("req_flow_crashed", token["id"], token["account_id"], 100)
    assert (
        ledger.reserve(
            reservation,
            ledger.KeyCheck(reservation.token_id, keys.hash_key(token["key"]), 0, "default"),
            now,
        )
        is None
    )
    with time_machine.travel(now + 3600, tick=False):
        result = driver.run_schedule("sweep_reservations")
    assert result["complete"] is True and result["refunded"] >= 1, result


def ledger_verifier(driver: Driver) -> None:
    """The verifier on demand (admin route) and as the daily schedule: reads only."""
    created = driver.admin("POST", "/admin/accounts", {"name": "verified", "quota_usd": "1"}, 201)
    driver.call("GET", "/v1/key", key=created["default_token"]["key"])
    assert driver.admin("POST", "/admin/ledger/verify")["ok"] is True
    assert driver.run_schedule("verify_ledger")["ok"] is True


def operator_keys(driver: Driver) -> None:
    """A scoped operator key: created, used for the on-demand sweeper, edited, listed, deleted."""
    body = {"name": "cron", "scopes": ["sweeper:run"], "expires_in_days": 30}
    created = driver.admin("POST", "/admin/keys", body, 201)
    key, key_id = created["key"], created["id"]
    assert driver.call("POST", "/admin/sweeper/run", key=key)["complete"] is True
    driver.admin("PATCH", f"/admin/keys/{key_id}", {"name": "nightly cron"})
    page = driver.admin("GET", "/admin/keys?limit=1")
    assert page["data"][0]["last_used_at"] is not None
    driver.admin("GET", f"/admin/keys/{key_id}")
    driver.admin("DELETE", f"/admin/keys/{key_id}", expect=204)
    driver.call("POST", "/admin/sweeper/run", key=key, expect=401)


def audit_trail(driver: Driver) -> None:
    """The audit trail: everyone's (months walked), one account's (mk-), one target's."""
    created = driver.admin("POST", "/admin/accounts", {"name": "audited"}, 201)
    mk, token_id = created["management_key"], created["default_token"]["id"]
    driver.call("PATCH", f"/tokens/{token_id}", key=mk, body={"status": "disabled"})
    everyone = driver.admin("GET", "/audit?limit=1")
    assert everyone["data"] and everyone["next_cursor"], everyone
    driver.admin("GET", f"/audit?limit=1&cursor={everyone['next_cursor']}")
    own = driver.call("GET", "/audit", key=mk)
    assert [r["action"] for r in own["data"]] == ["token.update", "account.create"], own
    target = driver.admin("GET", f"/audit?target_type=token&target_id={token_id}")
    assert [r["action"] for r in target["data"]] == ["token.update"], target


def alerts(driver: Driver) -> None:
    """Budget alerts set, read, rotated and turned off, per account and per key (the secrets in
    SSM); the operator's equivalents and its dead letters."""
    created = driver.admin("POST", "/admin/accounts", {"name": "alerts", "quota_units": 100}, 201)
    account_id, mk = created["account"]["id"], created["management_key"]
    token_id = created["default_token"]["id"]
    body = {"webhook_url": "https://hooks.example.com/sluice", "thresholds": [50, 100]}
    assert "webhook_secret" in driver.call("PUT", "/account/alerts", key=mk, body=body)
    driver.call("GET", "/account/alerts", key=mk)
    driver.call("POST", "/account/alerts/rotate-secret", key=mk)
    driver.call("DELETE", "/account/alerts", key=mk, expect=204)
    driver.call("PUT", f"/tokens/{token_id}/alerts", key=mk, body=body)
    driver.call("GET", f"/tokens/{token_id}/alerts", key=mk)
    driver.call("POST", f"/tokens/{token_id}/alerts/rotate-secret", key=mk)
    driver.call("DELETE", f"/tokens/{token_id}/alerts", key=mk, expect=204)
    admin_path = f"/admin/accounts/{account_id}/alerts"
    driver.admin("PUT", admin_path, body)
    driver.admin("GET", admin_path)
    driver.admin("POST", f"{admin_path}/rotate-secret")
    driver.admin("DELETE", admin_path, expect=204)
    driver.admin("GET", "/admin/alerts/dead-letters")


FLOWS: list[Callable[[Driver], None]] = [
    health_and_docs,
    management,
    configuration,
    relay,
    resets,
    sweeper,
    ledger_verifier,
    operator_keys,
    audit_trail,
    alerts,
]
