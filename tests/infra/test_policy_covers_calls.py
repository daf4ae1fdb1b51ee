"""The prod IAM policy allows every AWS call the code makes, and grants nothing it never makes.

Every flow of flows.py runs on moto as the prod stage (real table and parameter names) while a
hook on botocore records each call. Each call becomes the IAM actions and resource ARNs it needs
(a TransactWriteItems needs PutItem/UpdateItem/... on each table it touches, not an action of its
own), which .chalice/policy-prod.json must allow. Conversely every (action, resource) the policy
grants must have been used by some flow, or be listed below with the reason it is not.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient
from flows import FLOWS, Driver
from infra_checks import as_list, policy

ACCOUNT = "123456789012"  # moto's account id

# Grants the code never exercises itself, with why they are needed anyway.
NOT_CALLED_BY_CODE = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs with the role",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs with the role",
    "kms:Decrypt": "SSM decrypts SecureStrings with the caller's rights (customer managed keys)",
}

# Grants for code paths no flow reaches yet. Each entry names the area whose flow will reach it;
# the test fails once a flow does, so the entry must then be removed.
NOT_YET_EXERCISED: dict[str, str] = {}

# Routes and schedules no flow drives yet, with the area that owns them.
NOT_YET_DRIVEN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Call:
    action: str  # IAM action, e.g. "dynamodb:UpdateItem"
    resource: str  # ARN


def _table_arn(region: str, table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


_TRANSACT_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def needed(service: str, operation: str, params: dict[str, Any], region: str) -> list[Call]:
    """The IAM (action, resource) pairs one API call is authorized against."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            Call(f"dynamodb:{_TRANSACT_PARTS[kind]}", _table_arn(region, part["TableName"]))
            for item in params["TransactItems"]
            for kind, part in item.items()
        ]
    if service == "dynamodb" and operation in ("BatchGetItem", "BatchWriteItem"):
        return [
            Call(f"dynamodb:{operation}", _table_arn(region, table))
            for table in params["RequestItems"]
        ]
    if service == "dynamodb" and "TableName" in params:
        arn = _table_arn(region, params["TableName"], params.get("IndexName"))
        return [Call(f"dynamodb:{operation}", arn)]
    if service == "ssm" and "Name" in params:
        name = str(params["Name"]).split(":", 1)[0]  # "name:version" selects a version
        return [Call(f"ssm:{operation}", f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{name}")]
    return [Call(f"{service}:{operation}", "*")]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every call any botocore client makes from now on (clients are created lazily, per model
    and per thread, so the hook sits on the client class rather than on one client)."""
    calls: list[Call] = []
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        meta = client.meta
        calls.extend(needed(meta.service_model.service_name, operation, params, meta.region_name))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield calls


def _statements(stage: str) -> list[dict[str, Any]]:
    return [s for s in as_list(policy(stage)["Statement"]) if s["Effect"] == "Allow"]


def _allows(statements: list[dict[str, Any]], call: Call) -> bool:
    return any(
        any(fnmatch.fnmatchcase(call.action.lower(), a.lower()) for a in as_list(s["Action"]))
        and any(fnmatch.fnmatchcase(call.resource, r) for r in as_list(s["Resource"]))
        for s in statements
    )


def _grants(statements: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (a, r) for s in statements for a in as_list(s["Action"]) for r in as_list(s["Resource"])
    ]


def _grant_name(action: str, resource: str) -> str:
    """``dynamodb:Query table/sluice-prod-x``: the action and the ARN after account and region."""
    return f"{action} {resource.split(':', 5)[5]}"


def _run_flows(prod_api: Any) -> Driver:
    driver = Driver(prod_api)
    for flow in FLOWS:
        flow(driver)
    return driver


def test_prod_policy_allows_every_call_the_flows_make(prod_api: Any, recorded: list[Call]) -> None:
    # GIVEN the app running as the prod stage on moto, and the prod policy
    statements = _statements("prod")

    # WHEN every flow runs
    _run_flows(prod_api)

    # THEN the flows made calls, and the policy allows each one of them
    assert recorded, "no AWS call was recorded: the hook is not in place"
    denied = sorted({f"{c.action} {c.resource}" for c in recorded if not _allows(statements, c)})
    assert denied == [], f"calls the prod policy would deny: {denied}"


def test_prod_policy_grants_nothing_the_flows_never_use(
    prod_api: Any, recorded: list[Call]
) -> None:
    # GIVEN the prod policy's grants, one (action, resource) pair at a time
    grants = _grants(_statements("prod"))

    # WHEN every flow runs
    _run_flows(prod_api)

    # THEN each grant was used, or is listed with its reason; and no listed one is used by now
    def used(action: str, resource: str) -> bool:
        return any(_allows([{"Action": action, "Resource": resource}], c) for c in recorded)

    unused = {
        _grant_name(a, r) for a, r in grants if a not in NOT_CALLED_BY_CODE and not used(a, r)
    }
    never_used = sorted(unused - set(NOT_YET_EXERCISED))
    assert never_used == [], f"grants no flow uses, remove them: {never_used}"
    stale = sorted(set(NOT_YET_EXERCISED) - unused)
    assert stale == [], f"exercised now (or no longer granted), remove from the list: {stale}"
    assert {a for a, _ in grants} >= set(NOT_CALLED_BY_CODE), "stale NOT_CALLED_BY_CODE entry"


def test_every_route_and_schedule_is_driven_by_a_flow(prod_api: Any) -> None:
    # GIVEN the app's routes and schedules
    from chalice.app import DynamoDBEventConfig

    from app import app

    entry_points = {(m, path) for path, by_method in app.routes.items() for m in by_method}
    # (the stream handlers run with their own role: test_alerts_policy.py drives them)
    entry_points |= {
        ("SCHEDULE", source.name)
        for source in app.event_sources
        if not isinstance(source, DynamoDBEventConfig)
    }

    # WHEN every flow runs
    driver = _run_flows(prod_api)

    # THEN each one was reached, unless listed as not yet driven (and then it is not reached)
    def reached(method: str, path: str) -> bool:
        if method == "SCHEDULE":
            return path in driver.schedules
        return driver.reached(method, path)

    missing = sorted(e for e in entry_points if not reached(*e) and e not in NOT_YET_DRIVEN)
    assert missing == [], f"entry points no flow in tests/infra/flows.py drives: {missing}"
    stale = sorted(e for e in NOT_YET_DRIVEN if e not in entry_points or reached(*e))
    assert stale == [], f"driven now (or gone), remove from NOT_YET_DRIVEN: {stale}"


def test_a_policy_missing_a_grant_is_caught(prod_api: Any, recorded: list[Call]) -> None:
    # GIVEN the prod policy without the statement for token items
    statements = [s for s in _statements("prod") if s.get("Sid") != "TokenItems"]

    # WHEN the management flow runs
    from flows import management

    management(Driver(prod_api))

    # THEN the token writes it made are reported as denied
    denied = {c.action for c in recorded if not _allows(statements, c)}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= denied
