"""The token lifecycle through /tokens, end to end through chalice's test client on moto."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from support import TOKEN_CONTRACT_FIELDS, TOKEN_EXTRA_FIELDS

T0 = datetime(2027, 5, 4, 9, 30, tzinfo=UTC)  # a Tuesday
NOW = int(T0.timestamp())
DAY = 86_400


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def token_item(token_id: str) -> Any:
    from chalicelib.store.models import Token

    return Token.get(token_id, consistent_read=True)


def token_count() -> int:
    from chalicelib.store.models import Token

    return sum(1 for _ in Token.scan())


def seed_counters(token_id: str, **counters: int) -> None:
    """Write money counters straight into the item, as charges by the relay would."""
    from chalicelib.store.models import Token

    actions = [getattr(Token, name).set(value) for name, value in counters.items()]
    Token(token_id).update(actions=actions)


class Owner:
    """An account and its management key, with shortcuts for its /tokens calls."""

    def __init__(self, api: Any, name: str = "acme") -> None:
        created = api.new_account(name, quota_units=10_000_000, groups=["default", "vip"])
        self.api = api
        self.id: str = created["account"]["id"]
        self.key: str = created["management_key"]
        self.default_token: dict[str, Any] = created["default_token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.api.call(method, path, key=self.key, body=body)

    def create(self, **fields: Any) -> list[dict[str, Any]]:
        status, body = self.call("POST", "/tokens", fields)
        assert status == 201, body
        return body["data"]

    def create_one(self, **fields: Any) -> dict[str, Any]:
        [token] = self.create(**fields)
        return token

    def patch(self, token_id: str, **fields: Any) -> tuple[int, Any]:
        return self.call("PATCH", f"/tokens/{token_id}", fields)

    def walk(self, query: str = "", limit: int = 7, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every token of a paginated listing, following next_cursor (bounded)."""
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(max_pages):
            path = f"/tokens?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
            status, body = self.call("GET", path)
            assert status == 200, body
            assert len(body["data"]) <= limit
            seen += body["data"]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("pagination did not end")


@pytest.fixture
def owner(api: Any) -> Owner:
    return Owner(api)


# --- create -----------------------------------------------------------------------------------


def test_creating_a_token_returns_every_field_and_its_key_once(owner: Owner) -> None:
    # GIVEN an account, at T0
    with time_machine.travel(T0, tick=False):
        # WHEN it creates a token with no options
        status, body = owner.call("POST", "/tokens", {"name": "ci"})
    # THEN 201 {"data": [token]} with the contract's fields and the full key
    assert status == 201
    assert set(body) == {"data"}
    [token] = body["data"]
    assert set(token) == TOKEN_CONTRACT_FIELDS | TOKEN_EXTRA_FIELDS | {"key"}
    key = token["key"]
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", key)
    assert token["key_preview"] == f"{key[:7]}…{key[-4:]}"
    assert token["id"] == key[3:19]
    assert token["account_id"] == owner.id
    assert token["name"] == "ci"
    assert token["status"] == "enabled"
    assert token["created_at"] == iso(T0)
    assert token["expires_at"] is None
    assert token["quota_units"] is None
    assert token["quota_usd"] is None
    assert token["used_units"] == 0
    assert token["remaining_units"] is None
    assert token["total_used_units"] == 0
    assert token["reset_period"] == "never"
    assert token["next_reset_at"] is None
    assert token["group"] == "default"
    assert token["models"] == []
    assert token["allow_ips"] == []
    assert token["last_used_at"] is None
    # AND the store keeps its SHA-256 only: no attribute holds the key
    item = token_item(token["id"])
    assert item.key_hash == sha256(key)
    assert item.account_id == owner.id
    assert key not in json.dumps(item.serialize())
    # AND reading it back never shows the key again
    status, again = owner.call("GET", f"/tokens/{token['id']}")
    assert status == 200
    assert "key" not in again
    assert again == {k: v for k, v in token.items() if k != "key"}


def test_token_name_defaults_to_default(owner: Owner) -> None:
    assert owner.create_one()["name"] == "default"


def test_every_option_is_stored_and_shown(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token = owner.create_one(
            name="eu",
            expires_in_days=30,
            quota_usd="2.5",
            reset_period="weekly",
            group="vip",
            models=["gpt-4o", "o3"],
            allow_ips=["10.1.2.3/8", "192.168.1.7"],
        )
    assert token["expires_at"] == iso(T0 + timedelta(days=30))
    assert token["quota_units"] == 1_250_000
    assert token["quota_usd"] == "2.500000"
    assert token["remaining_units"] == 1_250_000
    assert token["remaining_usd"] == "2.500000"
    assert token["reset_period"] == "weekly"
    assert token["next_reset_at"] == "2027-05-10T00:00:00Z"  # the next Monday
    assert token["group"] == "vip"
    assert token["models"] == ["gpt-4o", "o3"]
    assert token["allow_ips"] == ["10.0.0.0/8", "192.168.1.7/32"]
    item = token_item(token["id"])
    assert item.expires_at == NOW + 30 * DAY
    assert (item.unlimited, item.quota_units, item.remaining_units) == (False, 1_250_000, 1_250_000)
    assert item.next_reset_at == int(datetime(2027, 5, 10, tzinfo=UTC).timestamp())
    assert item.reset_bucket == "due"
    assert item.models == ["gpt-4o", "o3"]
    assert item.allow_ips == ["10.0.0.0/8", "192.168.1.7/32"]


def test_expires_at_is_stored_as_the_given_utc_instant(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token = owner.create_one(expires_at="2027-06-01T12:00:00+02:00")
    assert token["expires_at"] == "2027-06-01T10:00:00Z"
    assert token_item(token["id"]).expires_at == int(
        datetime(2027, 6, 1, 10, tzinfo=UTC).timestamp()
    )


def test_quota_zero_makes_an_exhausted_token(owner: Owner) -> None:
    token = owner.create_one(quota_units=0)
    assert token["quota_units"] == 0
    assert token["remaining_units"] == 0
    assert token["status"] == "exhausted"


def test_a_batch_creates_that_many_distinct_tokens(owner: Owner) -> None:
    before = token_count()
    tokens = owner.create(name="batch", count=5, quota_units=100)
    assert len(tokens) == 5
    assert len({t["id"] for t in tokens}) == 5
    assert len({t["key"] for t in tokens}) == 5
    assert token_count() == before + 5
    for token in tokens:
        item = token_item(token["id"])
        assert item.key_hash == sha256(token["key"])
        assert item.quota_units == 100


def test_a_batch_names_its_keys_apart_and_a_single_key_keeps_its_name(owner: Owner) -> None:
    # GIVEN a batch of three named "ci" and one key named "solo"
    batch = owner.create(name="ci", count=3)
    (solo,) = owner.create(name="solo")
    long = owner.create(name="x" * 64, count=10)
    # THEN the batch's names are distinct, numbered in order; the single key is as named
    assert [t["name"] for t in batch] == ["ci-1", "ci-2", "ci-3"]
    assert [token_item(t["id"]).name for t in batch] == ["ci-1", "ci-2", "ci-3"]
    assert solo["name"] == "solo"
    # AND a name at the length limit is shortened so its number fits
    assert long[9]["name"] == "x" * 61 + "-10" and all(len(t["name"]) <= 64 for t in long)


def test_a_batch_of_100_is_accepted(owner: Owner) -> None:
    tokens = owner.create(count=100)
    assert len({t["id"] for t in tokens}) == 100
    assert token_count() == 101  # with the default token


def test_admin_creates_tokens_for_any_account(api: Any, owner: Owner) -> None:
    status, body = api.admin("POST", f"/tokens?account_id={owner.id}", {"name": "ops"})
    assert status == 201
    assert body["data"][0]["account_id"] == owner.id
    assert token_item(body["data"][0]["id"]).account_id == owner.id


def test_admin_uses_every_token_route_with_account_id(api: Any, owner: Owner) -> None:
    token_id = owner.create_one(name="x")["id"]
    query = f"?account_id={owner.id}"
    status, body = api.admin("GET", f"/tokens/{token_id}{query}")
    assert (status, body["id"]) == (200, token_id)
    status, body = api.admin("PATCH", f"/tokens/{token_id}{query}", {"name": "by-admin"})
    assert (status, body["name"]) == (200, "by-admin")
    assert token_item(token_id).name == "by-admin"
    status, body = api.admin("POST", f"/tokens/{token_id}/regenerate{query}")
    assert status == 200
    assert token_item(token_id).key_hash == sha256(body["key"])
    status, _ = api.admin("DELETE", f"/tokens/{token_id}{query}")
    assert status == 204
    assert token_count() == 1


def test_admin_naming_the_wrong_account_gets_404(api: Any, owner: Owner) -> None:
    other = Owner(api, "other")
    token_id = owner.create_one()["id"]
    before = token_item(token_id).serialize()
    for method, path in (
        ("GET", f"/tokens/{token_id}"),
        ("PATCH", f"/tokens/{token_id}"),
        ("DELETE", f"/tokens/{token_id}"),
        ("POST", f"/tokens/{token_id}/regenerate"),
    ):
        status, _ = api.admin(
            method, f"{path}?account_id={other.id}", {} if method == "PATCH" else None
        )
        assert status == 404, (method, path)
    assert token_item(token_id).serialize() == before


def test_admin_creating_tokens_for_an_unknown_account_is_404(api: Any) -> None:
    status, _ = api.admin("POST", "/tokens?account_id=AAAAAAAAAAAAAAAA", {"name": "x"})
    assert status == 404
    assert token_count() == 0


# --- list -------------------------------------------------------------------------------------


def test_pages_walk_every_token_exactly_once_newest_first(owner: Owner) -> None:
    # GIVEN 23 tokens created a minute apart (plus the default one, the oldest)
    ids = [owner.default_token["id"]]
    for i in range(23):
        with time_machine.travel(T0 + timedelta(minutes=i), tick=False):
            ids.append(owner.create_one(name=f"t{i}")["id"])
    # WHEN listed 7 at a time
    seen = [token["id"] for token in owner.walk(limit=7)]
    # THEN each appears once, newest first
    assert seen == list(reversed(ids))


def test_pages_walk_a_batch_created_in_the_same_second_exactly_once(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        ids = {t["id"] for t in owner.create(count=30)}
    seen = [token["id"] for token in owner.walk(limit=4)]
    assert len(seen) == len(set(seen)) == 31
    assert set(seen) == ids | {owner.default_token["id"]}


def test_list_defaults_to_20_and_accepts_1_to_100(owner: Owner) -> None:
    owner.create(count=25)
    status, body = owner.call("GET", "/tokens")
    assert (status, len(body["data"])) == (200, 20)
    assert body["next_cursor"] is not None
    status, body = owner.call("GET", "/tokens?limit=1")
    assert (status, len(body["data"])) == (200, 1)
    status, body = owner.call("GET", "/tokens?limit=100")
    assert (status, len(body["data"]), body["next_cursor"]) == (200, 26, None)


def test_list_shows_no_keys(owner: Owner) -> None:
    tokens = owner.create(count=3)
    status, body = owner.call("GET", "/tokens?limit=100")
    assert status == 200
    text = json.dumps(body)
    assert all("key" not in token for token in body["data"])
    for token in tokens:
        assert token["key"] not in text
        assert sha256(token["key"]) not in text
    previews = {t["key_preview"] for t in body["data"]}
    assert {t["key_preview"] for t in tokens} <= previews


def test_admin_lists_an_accounts_tokens(api: Any, owner: Owner) -> None:
    owner.create(count=2)
    status, body = api.admin("GET", f"/tokens?account_id={owner.id}&limit=100")
    assert status == 200
    assert len(body["data"]) == 3
    assert {t["account_id"] for t in body["data"]} == {owner.id}


# --- effective status -------------------------------------------------------------------------


def test_status_filters_return_exactly_the_matching_tokens(owner: Owner) -> None:
    # GIVEN tokens in every effective state (and the default one, enabled)
    with time_machine.travel(T0, tick=False):
        enabled = {owner.default_token["id"], owner.create_one(name="ok")["id"]}
        enabled.add(owner.create_one(name="limited", quota_units=10)["id"])
        disabled = owner.create_one(name="off", expires_in_days=1, quota_units=0)["id"]
        expired = owner.create_one(name="old", expires_in_days=1)["id"]
        expired_and_empty = owner.create_one(name="old-empty", expires_in_days=1, quota_units=0)
        exhausted = {owner.create_one(name="empty", quota_units=0)["id"]}
        drained = owner.create_one(name="drained", quota_units=50)["id"]
        seed_counters(drained, used_units=50, remaining_units=0)
        exhausted.add(drained)
        assert owner.patch(disabled, status="disabled")[0] == 200
    # WHEN two days later each filter is listed
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        by_filter = {
            status: {t["id"]: t["status"] for t in owner.walk(f"&status={status}", limit=2)}
            for status in ("enabled", "disabled", "expired", "exhausted")
        }
        everything = {t["id"]: t["status"] for t in owner.walk(limit=100)}
    # THEN each returns exactly its subset, disabled > expired > exhausted > enabled
    assert set(by_filter["enabled"]) == enabled
    assert set(by_filter["disabled"]) == {disabled}
    assert set(by_filter["expired"]) == {expired, expired_and_empty["id"]}
    assert set(by_filter["exhausted"]) == exhausted
    for status, found in by_filter.items():
        assert set(found.values()) == {status}
    assert sum(len(found) for found in by_filter.values()) == len(everything) == 8


def test_disabling_and_enabling_through_patch(owner: Owner) -> None:
    token_id = owner.create_one()["id"]
    status, body = owner.patch(token_id, status="disabled")
    assert (status, body["status"]) == (200, "disabled")
    assert token_item(token_id).status == "disabled"
    status, body = owner.patch(token_id, status="enabled")
    assert (status, body["status"]) == (200, "enabled")
    assert token_item(token_id).status == "enabled"


def test_a_token_is_expired_from_its_expiry_instant_on(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token_id = owner.create_one(expires_in_days=1)["id"]
    with time_machine.travel(T0 + timedelta(days=1, seconds=-1), tick=False):
        assert owner.call("GET", f"/tokens/{token_id}")[1]["status"] == "enabled"
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        assert owner.call("GET", f"/tokens/{token_id}")[1]["status"] == "expired"
    # the stored status is untouched: expiry is computed, not written
    assert token_item(token_id).status == "enabled"


def test_quota_zero_via_patch_makes_the_token_exhausted(owner: Owner) -> None:
    token_id = owner.create_one()["id"]
    status, body = owner.patch(token_id, quota_units=0)
    assert status == 200
    assert body["status"] == "exhausted"
    assert body["remaining_units"] == 0
    item = token_item(token_id)
    assert (item.unlimited, item.quota_units, item.remaining_units) == (False, 0, 0)


def test_a_token_whose_remaining_reaches_zero_is_exhausted(owner: Owner) -> None:
    token_id = owner.create_one(quota_units=500)["id"]
    seed_counters(token_id, used_units=500, remaining_units=0)
    status, body = owner.call("GET", f"/tokens/{token_id}")
    assert status == 200
    assert body["status"] == "exhausted"
    assert (body["used_units"], body["remaining_units"]) == (500, 0)


# --- patch ------------------------------------------------------------------------------------


def test_quota_edits_keep_remaining_equal_to_quota_minus_used_minus_reserved(
    owner: Owner,
) -> None:
    # GIVEN an unlimited token that has already used 300 units and has 50 reserved; for an
    # unlimited token the relay still keeps remaining = 0 - used - reserved
    token_id = owner.create_one()["id"]
    seed_counters(token_id, used_units=300, reserved_units=50, remaining_units=-350)

    def remaining() -> int:
        return int(token_item(token_id).remaining_units)

    # WHEN it gets a quota of 1000: remaining = 1000 - 300 - 50
    status, body = owner.patch(token_id, quota_units=1000)
    assert status == 200
    assert (body["quota_units"], body["remaining_units"], remaining()) == (1000, 650, 650)
    # WHEN the quota changes to US$0.01 (5000 units): remaining = 5000 - 350
    status, body = owner.patch(token_id, quota_usd="0.01")
    assert (body["quota_units"], body["quota_usd"], remaining()) == (5000, "0.010000", 4650)
    assert body["remaining_units"] == 4650
    # WHEN it is lowered under what was used: remaining goes negative, shown as 0, exhausted
    status, body = owner.patch(token_id, quota_units=100)
    assert (body["remaining_units"], body["status"], remaining()) == (0, "exhausted", -250)
    # WHEN it becomes unlimited again: back to 0 - used - reserved
    status, body = owner.patch(token_id, quota_units=None)
    assert status == 200
    assert (body["quota_units"], body["remaining_units"], body["status"]) == (None, None, "enabled")
    assert remaining() == -350
    item = token_item(token_id)
    assert (item.unlimited, item.quota_units, item.used_units, item.reserved_units) == (
        True,
        0,
        300,
        50,
    )


def test_changing_the_reset_period_recomputes_next_reset_at(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token_id = owner.create_one(quota_units=100, reset_period="daily")["id"]
        assert token_item(token_id).next_reset_at == int(
            datetime(2027, 5, 5, tzinfo=UTC).timestamp()
        )
        status, body = owner.patch(token_id, reset_period="monthly")
    assert status == 200
    assert body["reset_period"] == "monthly"
    assert body["next_reset_at"] == "2027-06-01T00:00:00Z"
    item = token_item(token_id)
    assert item.next_reset_at == int(datetime(2027, 6, 1, tzinfo=UTC).timestamp())
    assert item.reset_bucket == "due"


def test_reset_period_never_removes_the_schedule_and_the_sparse_index_attribute(
    owner: Owner,
) -> None:
    with time_machine.travel(T0, tick=False):
        token_id = owner.create_one(quota_units=100, reset_period="weekly")["id"]
        assert token_item(token_id).reset_bucket == "due"
        status, body = owner.patch(token_id, reset_period="never")
    assert status == 200
    assert (body["reset_period"], body["next_reset_at"]) == ("never", None)
    raw = token_item(token_id).serialize()
    assert "next_reset_at" not in raw
    assert "reset_bucket" not in raw
    assert raw["reset_period"] == {"S": "never"}


def test_a_never_token_gets_a_schedule_when_given_a_period(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token_id = owner.create_one()["id"]
        assert "reset_bucket" not in token_item(token_id).serialize()
        _, body = owner.patch(token_id, reset_period="daily")
    assert body["next_reset_at"] == "2027-05-05T00:00:00Z"
    assert token_item(token_id).reset_bucket == "due"


def test_patch_changes_name_group_models_and_ips(owner: Owner) -> None:
    token_id = owner.create_one(models=["a"], allow_ips=["10.0.0.1"])["id"]
    status, body = owner.patch(
        token_id, name="renamed", group="vip", models=["gpt-4o"], allow_ips=["2001:db8::/32"]
    )
    assert status == 200
    assert (body["name"], body["group"], body["models"], body["allow_ips"]) == (
        "renamed",
        "vip",
        ["gpt-4o"],
        ["2001:db8::/32"],
    )
    item = token_item(token_id)
    assert (item.name, item.group, item.models, item.allow_ips) == (
        "renamed",
        "vip",
        ["gpt-4o"],
        ["2001:db8::/32"],
    )
    # empty lists mean all models / any IP
    _, body = owner.patch(token_id, models=[], allow_ips=[])
    assert (body["models"], body["allow_ips"]) == ([], [])
    assert (token_item(token_id).models, token_item(token_id).allow_ips) == ([], [])


def test_expiry_can_be_set_moved_and_removed(owner: Owner) -> None:
    token_id = owner.create_one()["id"]
    with time_machine.travel(T0, tick=False):
        _, body = owner.patch(token_id, expires_in_days=2)
        assert body["expires_at"] == iso(T0 + timedelta(days=2))
        assert token_item(token_id).expires_at == NOW + 2 * DAY
        _, body = owner.patch(token_id, expires_at="2027-12-31T23:59:59Z")
        assert body["expires_at"] == "2027-12-31T23:59:59Z"
        status, body = owner.patch(token_id, expires_at=None)
    assert status == 200
    assert body["expires_at"] is None
    assert token_item(token_id).expires_at == 0  # never


def test_an_expired_token_comes_back_when_its_expiry_is_removed(owner: Owner) -> None:
    with time_machine.travel(T0, tick=False):
        token_id = owner.create_one(expires_in_days=1)["id"]
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        assert owner.call("GET", f"/tokens/{token_id}")[1]["status"] == "expired"
        _, body = owner.patch(token_id, expires_at=None)
    assert body["status"] == "enabled"


@pytest.mark.parametrize(
    "field", ["name", "status", "reset_period", "group", "models", "allow_ips"]
)
def test_null_is_refused_for_fields_that_have_no_null_meaning(owner: Owner, field: str) -> None:
    token_id = owner.create_one(name="keep")["id"]
    before = token_item(token_id).serialize()
    status, body = owner.patch(token_id, **{field: None})
    assert status == 400
    assert body["error"]["param"] == field
    assert token_item(token_id).serialize() == before


def test_an_empty_patch_changes_nothing(owner: Owner) -> None:
    token = owner.create_one(name="same")
    before = token_item(token["id"]).serialize()
    status, body = owner.patch(token["id"])
    assert status == 200
    assert body == {k: v for k, v in token.items() if k != "key"}
    assert token_item(token["id"]).serialize() == before


# --- delete and regenerate --------------------------------------------------------------------


def test_delete_removes_the_token(owner: Owner) -> None:
    token_id = owner.create_one()["id"]
    status, body = owner.call("DELETE", f"/tokens/{token_id}")
    assert (status, body) == (204, None)
    assert token_count() == 1  # only the default token is left
    assert owner.call("GET", f"/tokens/{token_id}")[0] == 404
    assert owner.call("DELETE", f"/tokens/{token_id}")[0] == 404


def test_regenerate_issues_a_new_key_and_the_old_one_stops_matching(owner: Owner) -> None:
    # GIVEN a token with some settings
    old = owner.create_one(name="ci", quota_units=700, models=["m"])
    # WHEN it is regenerated
    status, new = owner.call("POST", f"/tokens/{old['id']}/regenerate")
    # THEN the response carries a new key with the same id and settings
    assert status == 200
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", new["key"])
    assert new["key"] != old["key"]
    assert new["key"][3:19] == old["id"] == new["id"]
    assert new["key_preview"] == f"{new['key'][:7]}…{new['key'][-4:]}"
    for field in ("name", "quota_units", "models", "created_at", "status", "account_id"):
        assert new[field] == old[field]
    # AND the stored hash is the new key's: the old key no longer matches
    item = token_item(old["id"])
    assert item.key_hash == sha256(new["key"])
    assert item.key_hash != sha256(old["key"])
    assert item.key_preview == new["key_preview"]
    text = json.dumps(item.serialize())
    assert new["key"] not in text
    assert old["key"] not in text
    # AND the key is not shown again
    assert "key" not in owner.call("GET", f"/tokens/{old['id']}")[1]


def test_regenerate_keeps_money_counters(owner: Owner) -> None:
    token_id = owner.create_one(quota_units=1000)["id"]
    seed_counters(token_id, used_units=100, reserved_units=5, remaining_units=895)
    _, body = owner.call("POST", f"/tokens/{token_id}/regenerate")
    assert (body["used_units"], body["remaining_units"]) == (100, 895)
    item = token_item(token_id)
    assert (item.used_units, item.reserved_units, item.remaining_units) == (100, 5, 895)


def test_the_default_token_can_be_regenerated_and_deleted_like_any_other(owner: Owner) -> None:
    token_id = owner.default_token["id"]
    status, body = owner.call("POST", f"/tokens/{token_id}/regenerate")
    assert status == 200
    assert token_item(token_id).key_hash == sha256(body["key"])
    assert owner.call("DELETE", f"/tokens/{token_id}")[0] == 204
    assert token_count() == 0
