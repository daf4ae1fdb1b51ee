"""The operator key store (chalicelib.store.operator_keys) on moto and on DynamoDB Local alike."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.core import keys
from chalicelib.core.errors import Conflict, InvalidRequest, NotFound
from chalicelib.core.records import OperatorKeyRecord
from chalicelib.store import config as config_store
from chalicelib.store import operator_keys as store

NOW = 1_800_000_000


def new_record(**fields: Any) -> OperatorKeyRecord:
    key_id = keys.new_id()
    key = keys.new_key(keys.OPERATOR_PREFIX, key_id)
    record = OperatorKeyRecord(
        id=key_id,
        name="cron",
        scopes=("resets:run",),
        key_hash=keys.hash_key(key),
        key_preview=keys.preview(key),
        created_at=NOW,
    )
    return replace(record, **fields)


def test_a_created_key_reads_back_exactly(backend: Any) -> None:
    # GIVEN a key record  WHEN it is stored and read
    record = new_record(scopes=("resets:run", "logs:read"), expires_at=NOW + 60)
    store.create(record)

    # THEN it reads back as written, and the relay's config kinds do not see it
    assert store.get(record.id) == record
    assert config_store.load_channels() == []
    with pytest.raises(Conflict):
        store.create(record)


def test_an_unknown_or_implausible_id_is_none_or_404(backend: Any) -> None:
    assert store.get("Z" * 16) is None
    assert store.get("") is None
    with pytest.raises(NotFound):
        store.require("Z" * 16)
    with pytest.raises(NotFound):
        store.delete("x" * 3000)


def test_listing_pages_through_every_key_once(backend: Any) -> None:
    # GIVEN five keys
    ids = set()
    for _ in range(5):
        record = new_record()
        store.create(record)
        ids.add(record.id)

    # WHEN they are listed two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = store.list_page(2, cursor)
        seen += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break

    # THEN each key appears once, and a forged cursor is a 400
    assert sorted(seen) == sorted(ids)
    with pytest.raises(InvalidRequest):
        store.list_page(2, "bm90LWEtY3Vyc29y")


def test_an_edit_over_a_stale_revision_is_a_conflict(backend: Any) -> None:
    # GIVEN a key, edited once
    record = new_record()
    store.create(record)
    edited = store.update(record, NOW + 1, scopes=("resets:run", "sweeper:run"), name="both")

    # WHEN a second edit is made over the revision read before the first
    with pytest.raises(Conflict):
        store.update(record, NOW + 2, status="disabled")

    # THEN the first edit stands and the second changed nothing
    assert edited.revision == 2
    assert store.get(record.id) == replace(
        record, scopes=("resets:run", "sweeper:run"), name="both", revision=2
    )


def test_touch_records_use_once_a_minute_and_never_revives_a_deleted_key(backend: Any) -> None:
    # GIVEN a key, used at NOW
    record = new_record()
    store.create(record)
    store.touch(record, NOW)
    touched = store.require(record.id)

    # WHEN it is used again 30 s later, then after it was deleted
    store.touch(touched, NOW + 30)
    after_30s = store.require(record.id)
    store.delete(record.id)
    store.touch(touched, NOW + 120)

    # THEN the first use is kept, and the deleted key stays deleted
    assert touched.last_used_at == NOW
    assert after_30s.last_used_at == NOW
    assert store.get(record.id) is None
