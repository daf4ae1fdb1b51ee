"""Many polls of one finished video job at once, on DynamoDB Local: charged exactly once.

Every poll that sees the job ``completed`` tries to decide it; the usage record is written
once (a conditional put) and every loser follows it, and each item's settle is conditional on
the job's pending entry, so the key and the account are charged the job's price once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord

pytestmark = pytest.mark.ddb_local

JOB_UNITS = 200_000  # 4 s of sora-2 at US$0.10 a second


def test_concurrent_polls_of_a_completed_job_charge_it_once(server: str, relay_local: Any) -> None:
    # GIVEN a job that is completed by the time anyone asks
    created = httpx.post(
        server + "/admin/accounts",
        json={"name": "acme", "quota_usd": "10"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=60,
    ).json()
    token = created["default_token"]
    auth = {"Authorization": f"Bearer {token['key']}"}
    relay_local.video_polls = 1
    job = httpx.post(
        server + "/v1/videos",
        json={"model": "sora-2", "prompt": "a lighthouse", "seconds": "4"},
        headers=auth,
        timeout=60,
    )
    assert job.status_code == 200, job.text
    video_id = job.json()["id"]

    # WHEN 16 polls race on it
    gate = threading.Event()

    def poll(_: int) -> str:
        gate.wait(timeout=30)
        answer = httpx.get(f"{server}/v1/videos/{video_id}", headers=auth, timeout=60)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(poll, i) for i in range(16)]
        gate.set()
        statuses = [f.result(timeout=120) for f in futures]

    # THEN every poll saw it completed, and key and account were charged its price once
    assert set(statuses) == {"completed"}
    key = token_store.get(token["id"])
    account = account_store.get(created["account"]["id"])
    assert key is not None and account is not None
    assert (key.used_units, key.reserved_units) == (JOB_UNITS, 0)
    assert (account.used_units, account.reserved_units) == (JOB_UNITS, 0)
    [record] = list(UsageRecord.scan())
    assert (record.state, record.cost_units) == ("settled", JOB_UNITS)
