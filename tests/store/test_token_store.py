"""The token store (chalicelib.store.tokens) on moto and on DynamoDB Local alike."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.core import keys
from chalicelib.core.errors import Conflict, GatewayError, InvalidRequest, NotFound
from chalicelib.core.records import NEVER, TokenRecord
from chalicelib.store import tokens as store
from chalicelib.store.tokens import TokenChanges

NOW = 1_800_000_000
DAY = 86_400
ALICE = "A" * 16
BOB = "B" * 16


def new_record(account_id: str = ALICE, created_at: int = NOW, **fields: Any) -> TokenRecord:
    token_id = keys.new_id()
    key = keys.new_key(keys.TOKEN_PREFIX, token_id)
    quota = fields.pop("quota_units", None)
    record = TokenRecord(
        id=token_id,
        account_id=account_id,
        name="t",
        key_hash=keys.hash_key(key),
        key_preview=keys.preview(key),
        created_at=created_at,
        unlimited=quota is None,
        quota_units=quota or 0,
        remaining_units=quota or 0,
    )
    return replace(record, **fields)


def stored_ids() -> set[str]:
    from chalicelib.store.models import Token

    return {item.id for item in Token.scan()}


def raw_item(token_id: str) -> dict[str, Any]:
    from chalicelib.store.models import Token

    return Token.get(token_id, consistent_read=True).serialize()


def seed(token_id: str, **counters: int) -> None:
    """Write counters directly, as the relay's charges would."""
    from chalicelib.store.models import Token

    Token(token_id).update(actions=[getattr(Token, n).set(v) for n, v in counters.items()])


def walk(account_id: str, limit: int, status: str | None = None, now: int = NOW) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = store.list_for_account(account_id, limit, cursor, status=status, now=now)
        assert len(page.items) <= limit
        seen += [record.id for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


# --- create_many ------------------------------------------------------------------------------


def test_create_many_stores_every_token_with_its_hash(backend: Any) -> None:
    records = [new_record(quota_units=50, reset_period="daily", next_reset_at=NOW + 10)]
    records += [new_record() for _ in range(4)]
    store.create_many(records)
    assert stored_ids() == {r.id for r in records}
    limited = raw_item(records[0].id)
    assert limited["key_hash"] == {"S": records[0].key_hash}
    assert limited["remaining_units"] == {"N": "50"}
    assert limited["reset_bucket"] == {"S": "due"}
    assert limited["pending"] == {"M": {}}
    unlimited = raw_item(records[1].id)
    assert unlimited["unlimited"] == {"BOOL": True}
    assert unlimited["remaining_units"] == {"N": "0"}
    assert "reset_bucket" not in unlimited
    assert "next_reset_at" not in unlimited


def test_create_many_accepts_a_batch_of_100(backend: Any) -> None:
    records = [new_record() for _ in range(100)]
    store.create_many(records)
    assert len(stored_ids()) == 100


def test_create_many_of_nothing_writes_nothing(backend: Any) -> None:
    store.create_many([])
    assert stored_ids() == set()


def test_a_duplicate_id_in_the_batch_makes_none_appear(backend: Any) -> None:
    # GIVEN a batch where two records share an id
    first = new_record()
    batch = [new_record(), first, new_record(), replace(first, name="twin")]
    # WHEN it is written
    with pytest.raises(GatewayError):
        store.create_many(batch)
    # THEN nothing at all was stored
    assert stored_ids() == set()


def test_an_id_that_already_exists_makes_the_whole_batch_fail_and_keeps_the_old_token(
    backend: Any,
) -> None:
    existing = new_record(name="original")
    store.create_many([existing])
    batch = [new_record(), replace(existing, name="impostor", key_hash="0" * 64), new_record()]
    with pytest.raises(Conflict):
        store.create_many(batch)
    assert stored_ids() == {existing.id}
    assert raw_item(existing.id)["name"] == {"S": "original"}
    assert raw_item(existing.id)["key_hash"] == {"S": existing.key_hash}


# --- get / get_owned --------------------------------------------------------------------------


def test_get_reads_back_what_was_created(backend: Any) -> None:
    record = new_record(
        quota_units=10,
        expires_at=NOW + DAY,
        group="vip",
        models=("m1", "m2"),
        allow_ips=("10.0.0.0/8",),
    )
    store.create_many([record])
    assert store.get(record.id) == record
    assert store.get("Z" * 16) is None


def test_get_owned_refuses_another_account_exactly_like_a_missing_token(backend: Any) -> None:
    record = new_record(account_id=ALICE)
    store.create_many([record])
    assert store.get_owned(record.id, ALICE) == record
    with pytest.raises(NotFound) as theirs:
        store.get_owned(record.id, BOB)
    with pytest.raises(NotFound) as missing:
        store.get_owned("Z" * 16, BOB)
    assert theirs.value.body() == missing.value.body()


@pytest.mark.parametrize("token_id", ["x" * 3000, "é" * 1100, ""])
def test_an_id_dynamodb_cannot_hold_is_simply_not_found(backend: Any, token_id: str) -> None:
    # DynamoDB refuses keys over 2048 bytes with a ValidationException; that is no outage
    assert store.get(token_id) is None
    with pytest.raises(NotFound):
        store.get_owned(token_id, ALICE)
    with pytest.raises(NotFound):
        store.delete(token_id, ALICE)


# --- list_for_account -------------------------------------------------------------------------


def test_pages_walk_every_token_once_newest_first_and_only_the_accounts(backend: Any) -> None:
    mine = [new_record(created_at=NOW + i) for i in range(17)]
    theirs = [new_record(account_id=BOB, created_at=NOW + i) for i in range(5)]
    store.create_many(mine + theirs)
    assert walk(ALICE, limit=4) == [r.id for r in reversed(mine)]
    assert walk(BOB, limit=100) == [r.id for r in reversed(theirs)]
    assert walk("C" * 16, limit=5) == []


def test_pages_walk_tokens_created_in_the_same_second_exactly_once(backend: Any) -> None:
    batch = [new_record(created_at=NOW) for _ in range(23)]
    store.create_many(batch)
    for limit in (1, 5, 23, 100):
        seen = walk(ALICE, limit=limit)
        assert sorted(seen) == sorted(r.id for r in batch), limit


def test_a_full_last_page_ends_with_an_empty_page(backend: Any) -> None:
    store.create_many([new_record(created_at=NOW + i) for i in range(4)])
    first = store.list_for_account(ALICE, 4, None)
    assert len(first.items) == 4
    if first.next_cursor is not None:
        rest = store.list_for_account(ALICE, 4, first.next_cursor)
        assert (rest.items, rest.next_cursor) == ([], None)


def test_status_filters_return_each_effective_status_once(backend: Any) -> None:
    # GIVEN 60 tokens cycling through every effective status, oldest first
    kinds = {
        "enabled": {},
        "disabled": {"status": "disabled", "quota_units": 0, "expires_at": NOW - 1},
        "expired": {"expires_at": NOW},
        "exhausted": {"quota_units": 0},
        "expired-and-exhausted": {"expires_at": NOW - DAY, "quota_units": 0},
        "enabled-limited": {"quota_units": 5, "expires_at": NOW + 1},
    }
    expected: dict[str, list[str]] = {s: [] for s in store.STATUS_FILTERS}
    records = []
    for i in range(60):
        kind = list(kinds)[i % len(kinds)]
        record = new_record(created_at=NOW - 1000 + i, **kinds[kind])
        records.append(record)
        effective = record.effective_status(NOW)
        expected[effective].insert(0, record.id)  # newest first
    store.create_many(records)
    # WHEN each filter is walked with pages smaller than the gaps between matches
    for status, ids in expected.items():
        # THEN it yields exactly its tokens, newest first, each once
        assert walk(ALICE, limit=3, status=status) == ids, status
    assert sum(len(ids) for ids in expected.values()) == 60
    assert len(expected["expired"]) == 20


def test_a_token_drained_by_charges_is_listed_as_exhausted(backend: Any) -> None:
    record = new_record(quota_units=100)
    store.create_many([record])
    seed(record.id, used_units=60, reserved_units=40, remaining_units=0)
    assert walk(ALICE, 10, status="exhausted") == [record.id]
    assert walk(ALICE, 10, status="enabled") == []


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90LWpzb24",
        # {"account_id":{"S":"BBBBBBBBBBBBBBBB"},"created_at":{"N":"1"},"id":{"S":"x"}}
        "eyJhY2NvdW50X2lkIjp7IlMiOiJCQkJCQkJCQkJCQkJCQkJCIn0sImNyZWF0ZWRfYXQiOnsiTiI6IjEifSwiaWQiOnsiUyI6IngifX0",
        # {"account_id":{"S":"AAAAAAAAAAAAAAAA"}}
        "eyJhY2NvdW50X2lkIjp7IlMiOiJBQUFBQUFBQUFBQUFBQUFBIn19",
    ],
)
def test_a_cursor_not_made_for_this_listing_is_a_400(backend: Any, cursor: str) -> None:
    store.create_many([new_record()])
    with pytest.raises(InvalidRequest) as caught:
        store.list_for_account(ALICE, 5, cursor)
    assert caught.value.param == "cursor"


# --- update -----------------------------------------------------------------------------------


def test_quota_edits_add_the_difference_to_remaining(backend: Any) -> None:
    # GIVEN an unlimited token that has used 300 and reserved 50 (remaining = 0 - 350)
    record = new_record()
    store.create_many([record])
    seed(record.id, used_units=300, reserved_units=50, remaining_units=-350)
    current = store.get(record.id)
    assert current is not None
    # WHEN it is limited to 1000, then 400, then made unlimited again
    limited = store.update(current, TokenChanges(quota_units=1000))
    assert (limited.unlimited, limited.quota_units, limited.remaining_units) == (False, 1000, 650)
    lowered = store.update(limited, TokenChanges(quota_units=400))
    assert lowered.remaining_units == 50
    freed = store.update(lowered, TokenChanges(quota_units=None))
    # THEN remaining tracked quota - used - reserved at every step
    assert (freed.unlimited, freed.quota_units, freed.remaining_units) == (True, 0, -350)
    assert (freed.used_units, freed.reserved_units) == (300, 50)
    assert store.get(record.id) == freed


def test_a_quota_edit_keeps_a_charge_that_landed_after_the_read(backend: Any) -> None:
    # GIVEN a token read with quota 1000 and nothing used
    record = new_record(quota_units=1000)
    store.create_many([record])
    current = store.get(record.id)
    assert current is not None
    # AND a charge of 70 lands after that read (the relay's own conditional ADD)
    seed(record.id, used_units=70, remaining_units=930)
    # WHEN the stale read is used to raise the quota to 1500
    updated = store.update(current, TokenChanges(quota_units=1500))
    # THEN the charge is kept: remaining = 1500 - 70
    assert updated.remaining_units == 1430
    assert updated.used_units == 70


def test_a_concurrent_quota_change_makes_the_edit_a_conflict_and_writes_nothing(
    backend: Any,
) -> None:
    record = new_record(quota_units=1000)
    store.create_many([record])
    stale = store.get(record.id)
    assert stale is not None
    # someone else changes the quota in between
    store.update(stale, TokenChanges(quota_units=2000))
    before = raw_item(record.id)
    with pytest.raises(Conflict):
        store.update(stale, TokenChanges(quota_units=500, name="mine"))
    assert raw_item(record.id) == before


def test_an_unlimited_to_limited_race_is_a_conflict_too(backend: Any) -> None:
    record = new_record()
    store.create_many([record])
    stale = store.get(record.id)
    assert stale is not None
    store.update(stale, TokenChanges(quota_units=0))  # limited at quota 0: same quota number
    with pytest.raises(Conflict):
        store.update(stale, TokenChanges(quota_units=100))


def test_update_of_a_deleted_token_does_not_recreate_it(backend: Any) -> None:
    record = new_record()
    store.create_many([record])
    store.delete(record.id, ALICE)
    with pytest.raises(GatewayError):
        store.update(record, TokenChanges(name="ghost"))
    assert stored_ids() == set()


def test_update_sets_plain_fields(backend: Any) -> None:
    record = new_record()
    store.create_many([record])
    updated = store.update(
        record,
        TokenChanges(
            name="n",
            status="disabled",
            expires_at=NOW + 5,
            group="g",
            models=("a",),
            allow_ips=("1.2.3.4/32",),
        ),
    )
    assert (updated.name, updated.status, updated.expires_at, updated.group) == (
        "n",
        "disabled",
        NOW + 5,
        "g",
    )
    assert (updated.models, updated.allow_ips) == (("a",), ("1.2.3.4/32",))
    assert store.get(record.id) == updated
    cleared = store.update(updated, TokenChanges(models=(), allow_ips=(), expires_at=NEVER))
    assert (cleared.models, cleared.allow_ips, cleared.expires_at) == ((), (), NEVER)


def test_reset_period_changes_move_the_token_in_and_out_of_the_sparse_index(
    backend: Any,
) -> None:
    record = new_record(quota_units=10)
    store.create_many([record])
    scheduled = store.update(record, TokenChanges(reset_period="daily", next_reset_at=NOW + 99))
    assert (scheduled.reset_period, scheduled.next_reset_at) == ("daily", NOW + 99)
    assert raw_item(record.id)["reset_bucket"] == {"S": "due"}
    unscheduled = store.update(scheduled, TokenChanges(reset_period="never", next_reset_at=None))
    assert (unscheduled.reset_period, unscheduled.next_reset_at) == ("never", None)
    raw = raw_item(record.id)
    assert "reset_bucket" not in raw
    assert "next_reset_at" not in raw


def test_an_empty_change_writes_nothing(backend: Any) -> None:
    record = new_record()
    store.create_many([record])
    before = raw_item(record.id)
    assert store.update(record, TokenChanges()) == record
    assert raw_item(record.id) == before


# --- regenerate / delete ----------------------------------------------------------------------


def test_regenerate_swaps_hash_and_preview_and_bumps_the_revision(backend: Any) -> None:
    record = new_record(quota_units=100)
    store.create_many([record])
    seed(record.id, used_units=10, remaining_units=90)
    new_key = keys.new_key(keys.TOKEN_PREFIX, record.id)
    before = raw_item(record.id)
    updated = store.regenerate(record, keys.hash_key(new_key), keys.preview(new_key))
    after = raw_item(record.id)
    assert after["key_hash"] == {"S": keys.hash_key(new_key)}
    assert after["key_preview"] == {"S": keys.preview(new_key)}
    assert after["revision"] == {"N": str(int(before["revision"]["N"]) + 1)}
    changed = {"key_hash", "key_preview", "revision"}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    assert updated.remaining_units == 90
    assert not keys.hashes_match(keys.new_key(keys.TOKEN_PREFIX, record.id), updated.key_hash)


def test_regenerate_refuses_another_accounts_token(backend: Any) -> None:
    record = new_record(account_id=ALICE)
    store.create_many([record])
    before = raw_item(record.id)
    with pytest.raises(NotFound):
        store.regenerate(replace(record, account_id=BOB), "0" * 64, "sk-xxxx…xxxx")
    assert raw_item(record.id) == before


def test_regenerate_of_a_missing_token_creates_nothing(backend: Any) -> None:
    with pytest.raises(NotFound):
        store.regenerate(new_record(), "0" * 64, "sk-xxxx…xxxx")
    assert stored_ids() == set()


def test_delete_only_removes_the_owners_token(backend: Any) -> None:
    record = new_record(account_id=ALICE)
    store.create_many([record])
    with pytest.raises(NotFound):
        store.delete(record.id, BOB)
    assert stored_ids() == {record.id}
    with pytest.raises(NotFound):
        store.delete("Z" * 16, ALICE)
    store.delete(record.id, ALICE)
    assert stored_ids() == set()
    with pytest.raises(NotFound):
        store.delete(record.id, ALICE)
