"""The relay's cold path loads neither botocore nor PynamoDB: importing them is most of a cold
start (``make bench`` figure 8), and the relay's calls go over the store's lean client.

Each check runs in a fresh interpreter, as a Lambda container starts, with credentials in the
environment as Lambda puts them there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("botocore", "boto3", "pynamodb")

# Prints the heavy libraries loaded after the app is imported and, given a key, after one
# relayed chat call has been answered (its status first).
CHILD = """
import json, sys
from chalicelib.relay.app import app
heavy = lambda: sorted({m.split(".")[0] for m in sys.modules} & {"botocore", "boto3", "pynamodb"})
report = {"after_import": heavy()}
if len(sys.argv) > 1:
    from starlette.testclient import TestClient
    with TestClient(app) as client:
        answer = client.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer " + sys.argv[1]},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    import gc
    report["status"] = answer.status_code
    report["after_call"] = heavy()
    report["frozen"] = gc.get_freeze_count()
print(json.dumps(report))
"""


def _child(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_importing_the_relay_loads_no_aws_sdk() -> None:
    # WHEN a fresh interpreter imports the relay app THEN botocore and PynamoDB stay unloaded
    assert _child()["after_import"] == []


@pytest.mark.ddb_local
def test_a_relayed_call_on_dynamodb_local_loads_no_aws_sdk(server: str) -> None:
    # GIVEN a key on DynamoDB Local, made through the management API
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    account = httpx.post(
        f"{server}/admin/accounts", json={"name": "acme", "unlimited": True}, headers=headers
    )
    assert account.status_code == 201, account.text
    key = account.json()["default_token"]["key"]

    # WHEN a fresh relay answers a chat call with it
    report = _child(key)

    # THEN the call was answered, and neither botocore nor PynamoDB was ever loaded
    assert report["status"] == 200
    assert report["after_import"] == [] and report["after_call"] == []
    # AND what the process loaded to start is out of the collector's full passes (a pass over
    # it would pause a call under way)
    assert report["frozen"] > 10_000
