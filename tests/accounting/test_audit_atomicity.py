"""On DynamoDB Local: a change and its audit record land together or not at all.

The record is a Put in the change's own TransactWriteItems. Here the record's Put is made to fail
(its key is forced onto an existing record's), and the change must not have happened; and a
change refused by its own condition must leave no record.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.core.errors import Conflict
from chalicelib.services import management, schemas
from chalicelib.store import audit as audit_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import AuditRecord

pytestmark = pytest.mark.ddb_local


def records() -> list[tuple[str, str]]:
    return sorted((item.action, item.target_id) for item in AuditRecord.scan(consistent_read=True))


def test_a_change_whose_record_cannot_be_written_does_not_happen(
    ddb_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an account, its creation recorded under a key every later record will also get
    monkeypatch.setattr(audit_store, "_now_ms", lambda: 1_800_000_000_000)
    monkeypatch.setattr(audit_store.secrets, "token_hex", lambda _: "00000000")
    now = int(time.time())
    created = management.create_account(schemas.CreateAccount(name="a"), now)
    account_id, token_id = created["account"]["id"], created["default_token"]["id"]
    assert records() == [("account.create", account_id)]

    # WHEN the key is disabled, and the transaction fails on the record's Put
    with pytest.raises(Conflict):
        management.patch_token(account_id, token_id, schemas.PatchToken(status="disabled"), now)

    # THEN the key is still enabled, and the trail holds only the creation
    token = token_store.get(token_id)
    assert token is not None and token.status == "enabled" and token.revision == 0
    assert records() == [("account.create", account_id)]


def test_a_change_refused_by_its_condition_writes_no_record(ddb_local: Any) -> None:
    # GIVEN a key read before someone else changed its quota
    now = int(time.time())
    created = management.create_account(schemas.CreateAccount(name="a"), now)
    stale = token_store.get(created["default_token"]["id"])
    assert stale is not None
    token_store.update(stale, token_store.TokenChanges(quota_units=10))
    before = records()

    # WHEN an edit over the stale read reaches the store with its record
    from chalicelib.core import audit

    entry = audit.entry("token.update", stale.id, {"name": {"old": "default", "new": "x"}})
    with pytest.raises(Conflict):
        token_store.update(stale, token_store.TokenChanges(name="x"), audit=entry)

    # THEN neither the edit nor its record exists
    token = token_store.get(stale.id)
    assert token is not None and token.name == "default"
    assert records() == before
