"""The alert handlers' own role (.chalice/policy-<stage>-alerts.json) allows every call they
make, and nothing else: the stream handlers and the retry job run on moto as the prod stage,
each AWS call they make recorded (the same hook as test_policy_covers_calls.py), and compared
with the grants.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from infra_checks import CHALICE_DIR, as_list
from test_policy_covers_calls import Call, _allows, _grants
from test_policy_covers_calls import recorded as recorded  # the fixture

# Used by Lambda's event source mapping with the function's role, never by the code itself.
CALLED_BY_LAMBDA = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "kms:Decrypt",  # SSM decrypts SecureStrings with the caller's rights
}


def alerts_policy(stage: str) -> dict[str, Any]:
    return json.loads((CHALICE_DIR / f"policy-{stage}-alerts.json").read_text())


def _record(kind: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda hands it to the function."""
    table = f"sluice-prod-{kind}s"
    return {
        "eventID": "1",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/x",
        "dynamodb": {
            "ApproximateCreationDateTime": time.time(),
            "Keys": {"id": new["id"]},
            "OldImage": old,
            "NewImage": new,
            "SequenceNumber": "1",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def _used_up(item_id: str, account_id: str, quota: int) -> tuple[dict[str, Any], dict[str, Any]]:
    def image(used: int) -> dict[str, Any]:
        return {
            "id": {"S": item_id},
            "account_id": {"S": account_id},
            "unlimited": {"BOOL": False},
            "quota_units": {"N": str(quota)},
            "used_units": {"N": str(used)},
            "alert_thresholds": {"L": [{"N": "100"}]},
        }

    return image(0), image(quota)


def test_alert_handlers_role_allows_their_calls_and_nothing_more(
    prod_api: Any,
    recorded: list[Call],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN alerts on an account and on its key (secrets in SSM), a receiver that is down, and
    # no wait between attempts
    from dataclasses import replace

    from chalicelib.services import alerts
    from chalicelib.upstream import webhooks

    no_wait = replace(alerts.get_settings(), alert_backoff_seconds=0.0)
    monkeypatch.setattr(alerts, "get_settings", lambda: no_wait)
    monkeypatch.setattr(webhooks, "post", lambda *a: webhooks.Attempt(False, error="ConnectError"))
    status, created = prod_api.admin("POST", "/admin/accounts", {"name": "a", "quota_units": 10})
    assert status == 201
    account_id, token_id = created["account"]["id"], created["default_token"]["id"]
    body = {"webhook_url": "https://hooks.example.com/x", "thresholds": [100]}
    # the account's also go to the stack's topic and bus (made here as the stack makes them)
    import boto3

    topic = boto3.client("sns", region_name="us-east-1").create_topic(Name="sluice-prod-alerts")
    boto3.client("events", region_name="us-east-1").create_event_bus(Name="sluice-prod-alerts")
    to_stack = {**body, "sns_topic_arn": topic["TopicArn"], "event_bus": "sluice-prod-alerts"}
    assert prod_api.admin("PUT", f"/admin/accounts/{account_id}/alerts", to_stack)[0] == 200
    mk = created["management_key"]
    assert prod_api.call("PUT", f"/tokens/{token_id}/alerts", key=mk, body=body)[0] == 200
    # and a delivery whose handler died an hour ago, for the retry job
    from chalicelib.store import alert_outbox

    an_hour_ago = int(time.time() * 1000) - 3_600_000
    stranded = alert_outbox.Delivery("account", account_id, account_id, "9", 50, "{}", an_hour_ago)
    assert alert_outbox.claim(stranded)
    recorded.clear()

    # WHEN each stream handler gets a record of its item using up its quota
    client = prod_api.client
    runs = {
        name: client.lambda_.invoke(
            name, {"Records": [_record(kind, *_used_up(item_id, account_id, 10))]}
        ).payload
        for name, kind, item_id in (
            ("token_alerts", "token", token_id),
            ("account_alerts", "account", account_id),
        )
    }

    # AND the retry job runs
    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    runs["retry_alerts"] = client.lambda_.invoke("retry_alerts", scheduled).payload

    # THEN each claimed (or took), failed to deliver and kept a dead letter
    assert runs == {name: {"delivered": 0, "dead_lettered": 1, "duplicates": 0} for name in runs}
    # AND the role allows every call made, and grants only what was used or Lambda uses
    statements = [s for s in as_list(alerts_policy("prod")["Statement"]) if s["Effect"] == "Allow"]
    denied = sorted({f"{c.action} {c.resource}" for c in recorded if not _allows(statements, c)})
    assert denied == []

    def used(action: str, resource: str) -> bool:
        return any(_allows([{"Action": action, "Resource": resource}], c) for c in recorded)

    unused = sorted(
        f"{a} {r}" for a, r in _grants(statements) if a not in CALLED_BY_LAMBDA and not used(a, r)
    )
    assert unused == []


def test_dev_alerts_policy_is_the_prod_one_for_the_dev_stage() -> None:
    text = json.dumps(alerts_policy("prod")).replace("sluice-prod", "sluice-dev")
    assert json.loads(text.replace("/prod/", "/dev/")) == alerts_policy("dev")
