"""Budget alerts to the stack's own SNS topic and EventBridge bus (moto): only those two may be
named, a crossing reaches each, and a target that fails is a dead letter naming it."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

NAME = "sluice-test-alerts"  # what the stack's topic and bus are called (infra/alerts.yaml)
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:{NAME}"


@pytest.fixture
def stack(tables: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The stack's topic and bus, each feeding a queue the test reads."""
    from chalicelib.core.settings import get_settings, reset_settings

    monkeypatch.setenv("SLUICE_ALERT_TARGETS_NAME", NAME)
    reset_settings()
    # read now: inside a test client call the environment is the stage's (.chalice/config.json)
    assert get_settings().alert_targets_name == NAME
    sqs = boto3.client("sqs", region_name=REGION)
    queues = {}
    for target in ("sns", "events"):
        url = sqs.create_queue(QueueName=f"{target}-copy")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        queues[target] = (url, arn["QueueArn"])
    sns = boto3.client("sns", region_name=REGION)
    assert sns.create_topic(Name=NAME)["TopicArn"] == TOPIC
    sns.subscribe(
        TopicArn=TOPIC,
        Protocol="sqs",
        Endpoint=queues["sns"][1],
        Attributes={"RawMessageDelivery": "true"},
    )
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name=NAME)
    events.put_rule(Name="all", EventBusName=NAME, EventPattern=json.dumps({"source": ["sluice"]}))
    events.put_targets(
        Rule="all", EventBusName=NAME, Targets=[{"Id": "q", "Arn": queues["events"][1]}]
    )
    return {"sqs": sqs, "sns": sns, "queues": queues}


def _received(stack: dict[str, Any], target: str) -> list[dict[str, Any]]:
    url = stack["queues"][target][0]
    messages = stack["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def _account(api: Any, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    created = api.new_account("acme", quota_units=1000)
    status, answer = api.call("PUT", "/account/alerts", key=created["management_key"], body=body)
    assert status == 200, answer
    return created["account"]["id"], answer


def _use_up(account_id: str) -> Any:
    """The stream handler, given the record of the account reaching its quota."""
    from chalicelib.services import alerts
    from chalicelib.store.common import client_of
    from chalicelib.store.models import Account

    old = client_of(Account).get_item(
        TableName=Account.Meta.table_name, Key={"id": {"S": account_id}}, ConsistentRead=True
    )["Item"]
    record = ("MODIFY", old, {**old, "used_units": {"N": "1000"}})
    return alerts.handle_records("account", [record], sleep=lambda _: None)


def test_a_crossing_reaches_the_stacks_topic_and_bus(api: Any, stack: dict[str, Any]) -> None:
    # GIVEN an account alerting at 100 % to the stack's topic and bus, and no webhook
    body = {"thresholds": [100], "sns_topic_arn": TOPIC, "event_bus": NAME}
    account_id, answer = _account(api, body)

    # WHEN its usage reaches its quota
    run = _use_up(account_id)

    # THEN the settings show both targets, and each got the body once
    assert (answer["sns_topic_arn"], answer["event_bus"], answer["webhook_url"]) == (
        TOPIC,
        NAME,
        None,
    )
    assert run.as_json() == {"delivered": 1, "dead_lettered": 0, "duplicates": 0}
    [published] = _received(stack, "sns")
    [event] = _received(stack, "events")
    assert published["type"] == "budget.threshold_crossed" and published["threshold"] == 100
    assert event["source"] == "sluice" and event["detail-type"] == "budget.threshold_crossed"
    assert event["detail"] == published and published["account_id"] == account_id
    # AND the audit names the targets (not secrets: the stack's own ARNs)
    status, trail = api.admin("GET", f"/audit?account_id={account_id}&action=alerts.update")
    assert status == 200
    changes = trail["data"][0]["changes"]
    assert changes["sns_topic_arn"] == {"old": None, "new": TOPIC}
    assert changes["event_bus"] == {"old": None, "new": NAME}


def test_a_target_that_fails_is_a_dead_letter_naming_it(api: Any, stack: dict[str, Any]) -> None:
    # GIVEN alerts to the topic and the bus, and then the topic gone
    account_id, _ = _account(api, {"thresholds": [100], "sns_topic_arn": TOPIC, "event_bus": NAME})
    stack["sns"].delete_topic(TopicArn=TOPIC)

    # WHEN a crossing is handled
    run = _use_up(account_id)

    # THEN the bus got it, and the dead letter says the topic did not
    from chalicelib.services import alerts

    assert run.as_json()["dead_lettered"] == 1
    assert len(_received(stack, "events")) == 1
    [dead] = alerts.list_dead_letters(10, None)["data"]
    assert dead["last_error"].startswith("sns: ") and "eventbridge" not in dead["last_error"]


BAD_TARGETS: list[tuple[dict[str, Any], str]] = [
    ({"sns_topic_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:someone-elses"}, "sns_topic_arn"),
    ({"sns_topic_arn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:{NAME}"}, "sns_topic_arn"),
    ({"sns_topic_arn": NAME}, "sns_topic_arn"),
    ({"sns_topic_arn": 7}, "sns_topic_arn"),
    ({"event_bus": "default"}, "event_bus"),
    ({"event_bus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/other"}, "event_bus"),
    ({"event_bus": ""}, "event_bus"),
    ({"thresholds": [50]}, "webhook_url"),  # no target at all
]


def test_only_the_stacks_own_topic_and_bus_are_taken_and_nothing_is_written(
    api: Any, stack: dict[str, Any]
) -> None:
    # GIVEN an account without alerts
    created = api.new_account("acme")

    # WHEN each bad target is PUT
    answers = [
        api.call("PUT", "/account/alerts", key=created["management_key"], body=body)
        for body, _ in BAD_TARGETS
    ]

    # THEN each is a 400 naming its field, and no settings were stored
    assert [(s, b["error"]["param"]) for s, b in answers] == [(400, p) for _, p in BAD_TARGETS]
    _, read = api.call("GET", "/account/alerts", key=created["management_key"])
    assert read["enabled"] is False


def test_a_stage_without_the_stacks_targets_refuses_them(api: Any) -> None:
    # GIVEN a local stage (no topic or bus)  WHEN alerts name them
    created = api.new_account("acme")
    mk = created["management_key"]
    topic = api.call("PUT", "/account/alerts", key=mk, body={"sns_topic_arn": TOPIC})
    bus = api.call("PUT", "/account/alerts", key=mk, body={"event_bus": NAME})

    # THEN both are refused, naming the field
    assert (topic[0], topic[1]["error"]["param"]) == (400, "sns_topic_arn")
    assert (bus[0], bus[1]["error"]["param"]) == (400, "event_bus")
    assert "deployed" in topic[1]["error"]["message"]
