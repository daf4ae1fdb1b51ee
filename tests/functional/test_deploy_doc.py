"""What docs/deploy.md tells operators to send is what the code accepts."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import time_machine

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _documented_invoke_payload() -> dict[str, Any]:
    section = DEPLOY_DOC.read_text().split("### 7. AWS-native schedulers", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block is not None, "section 7 shows the payload in a ```json block"
    return dict(json.loads(block.group(1)))


def test_the_documented_payload_runs_the_reset_job(api: Any) -> None:
    # GIVEN a daily key past its reset boundary, and the payload docs/deploy.md gives schedulers
    created = api.new_account("acme")
    body = {"name": "daily", "quota_units": 1000, "reset_period": "daily"}
    status, _ = api.call("POST", "/tokens", key=created["management_key"], body=body)
    assert status == 201
    payload = _documented_invoke_payload()

    # WHEN the reset job's Lambda is invoked with it, as EventBridge Scheduler would
    with time_machine.travel(time.time() + 2 * 86_400, tick=False):
        response = api.client.lambda_.invoke("reset_quotas", payload)

    # THEN the job ran to the end and reset the key
    assert response.payload["complete"] is True
    assert response.payload["reset"] == 1


def test_the_documented_scheduler_input_is_the_same_payload() -> None:
    # GIVEN the EventBridge Scheduler command in the same section
    section = DEPLOY_DOC.read_text().split("### 7. AWS-native schedulers", 1)[1]
    target = re.search(r"--target '(\{.*?\})'", section, re.DOTALL)
    assert target is not None

    # WHEN its Input is read  THEN it is the documented payload
    assert json.loads(json.loads(target.group(1))["Input"]) == _documented_invoke_payload()
