"""Each function's prod IAM policy allows every AWS call that function makes, and nothing more.

Every flow of flows.py runs on moto as the prod stage (real table and parameter names) while a
hook on botocore records each call, with the function that made it (flows.serving(): the relay
for /v1/*, Chalice for every other route and the schedules). Each call becomes the IAM actions
and resource ARNs it needs (a TransactWriteItems needs PutItem/UpdateItem/... on each table it
touches, not an action of its own), which that function's policy must allow: Chalice's is
.chalice/policy-prod.json, the relay's its role in infra/relay.yaml. Conversely every (action,
resource) a policy grants must have been used by its own function in some flow, or be listed
below with the reason it is not: a grant only the other function uses is superfluous.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient
from flows import CHALICE, FLOWS, FUNCTIONS, RELAY, Driver, serving
from infra_checks import as_list, policy, relay_policy

ACCOUNT = "123456789012"  # moto's account id
REGION = "us-east-1"  # moto's, as tests/conftest.py sets it

# Grants the code never exercises itself, with why they are needed anyway.
NOT_CALLED_BY_CODE = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs with the role",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs with the role",
    "kms:Decrypt": "SSM decrypts SecureStrings with the caller's rights (customer managed keys)",
}

# Grants for code paths no flow reaches yet. Each entry names the area whose flow will reach it;
# the test fails once a flow does, so the entry must then be removed.
NOT_YET_EXERCISED: dict[str, str] = {
    "dynamodb:GetItem table/sluice-prod-videos": "the sweeper reads a video job (media)",
}

# Routes and schedules no flow drives yet, with the area that owns them.
NOT_YET_DRIVEN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Call:
    action: str  # IAM action, e.g. "dynamodb:UpdateItem"
    resource: str  # ARN
    function: str = CHALICE  # who made it (flows.serving())
    # The partition key value a GetItem or Query of one item's partition names (IAM's
    # dynamodb:LeadingKeys), where the call names one.
    leading_key: str | None = None


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
        return [Call(f"dynamodb:{operation}", arn, leading_key=_leading_key(operation, params))]
    if service == "ssm" and "Name" in params:
        name = str(params["Name"]).split(":", 1)[0]  # "name:version" selects a version
        return [Call(f"ssm:{operation}", f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{name}")]
    if service == "sns" and "TopicArn" in params:
        return [Call(f"sns:{operation}", str(params["TopicArn"]))]
    if service == "events" and operation == "PutEvents":
        return [
            Call("events:PutEvents", _bus_arn(region, entry.get("EventBusName", "default")))
            for entry in params["Entries"]
        ]
    return [Call(f"{service}:{operation}", "*")]


def _leading_key(operation: str, params: dict[str, Any]) -> str | None:
    """The partition key value of a GetItem (its key's first attribute, the partition key in
    this app's tables) or a Query (the value its key condition compares first)."""
    if operation == "GetItem":
        first = next(iter(params["Key"].values()))
        return str(next(iter(first.values())))
    if operation == "Query" and "IndexName" not in params:
        placeholder = re.search(r":\w+", params["KeyConditionExpression"])
        if placeholder is not None:
            value = params["ExpressionAttributeValues"][placeholder.group()]
            return str(next(iter(value.values())))
    return None


def _bus_arn(region: str, bus: str) -> str:
    return bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{bus}"


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every call any botocore client makes from now on (clients are created lazily, per model
    and per thread, so the hook sits on the client class rather than on one client)."""
    calls: list[Call] = []
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        meta = client.meta
        function = serving()
        for call in needed(meta.service_model.service_name, operation, params, meta.region_name):
            calls.append(Call(call.action, call.resource, function, call.leading_key))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield calls


def _statements(function: str, stage: str = "prod") -> list[dict[str, Any]]:
    """The Allow statements of ``function``'s policy."""
    document = policy(stage) if function == CHALICE else relay_policy(stage, REGION, ACCOUNT)
    return [s for s in as_list(document["Statement"]) if s["Effect"] == "Allow"]


def _allows(statements: list[dict[str, Any]], call: Call) -> bool:
    return any(
        any(fnmatch.fnmatchcase(call.action.lower(), a.lower()) for a in as_list(s["Action"]))
        and any(fnmatch.fnmatchcase(call.resource, r) for r in as_list(s["Resource"]))
        and _condition_holds(s.get("Condition") or {}, call)
        for s in statements
    )


def _condition_holds(condition: dict[str, Any], call: Call) -> bool:
    """The one condition these policies use: the partitions a statement is limited to."""
    unknown = set(condition) - {"ForAllValues:StringEquals"}
    assert not unknown, f"a condition this test cannot evaluate: {unknown}"
    allowed = condition.get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys")
    return allowed is None or call.leading_key in as_list(allowed)


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


def _by_function(recorded: list[Call], function: str) -> list[Call]:
    return [call for call in recorded if call.function == function]


def test_each_function_s_policy_allows_every_call_it_makes(
    prod_api: Any, recorded: list[Call]
) -> None:
    # GIVEN the app and the relay running as the prod stage on moto, and their two policies
    # WHEN every flow runs
    _run_flows(prod_api)

    # THEN both functions made calls, and each one's policy allows each of its own calls
    assert {call.function for call in recorded} >= set(FUNCTIONS), "the hook is not in place"
    denied = {
        function: sorted(
            {
                f"{c.action} {c.resource}"
                for c in _by_function(recorded, function)
                if not _allows(_statements(function), c)
            }
        )
        for function in FUNCTIONS
    }
    assert denied == {function: [] for function in FUNCTIONS}, f"calls it would deny: {denied}"


def test_each_function_s_policy_grants_nothing_that_function_never_uses(
    prod_api: Any, recorded: list[Call]
) -> None:
    # GIVEN each policy's grants, one (action, resource) pair at a time
    # WHEN every flow runs
    _run_flows(prod_api)

    # THEN each grant was used by its own function, or is listed with its reason; and no
    # listed one is used by now
    def unused(function: str) -> set[str]:
        calls = _by_function(recorded, function)
        return {
            _grant_name(action, resource)
            for action, resource in _grants(_statements(function))
            if action not in NOT_CALLED_BY_CODE
            and not any(_allows([{"Action": action, "Resource": resource}], c) for c in calls)
        }

    found = {function: unused(function) for function in FUNCTIONS}
    never_used = {f: sorted(names - set(NOT_YET_EXERCISED)) for f, names in found.items()}
    assert never_used == {f: [] for f in FUNCTIONS}, f"grants to remove: {never_used}"
    stale = sorted(set(NOT_YET_EXERCISED) - set.union(*found.values()))
    assert stale == [], f"exercised now (or no longer granted), remove from the list: {stale}"
    for function in FUNCTIONS:
        granted = {action for action, _ in _grants(_statements(function))}
        assert granted >= set(NOT_CALLED_BY_CODE), f"stale NOT_CALLED_BY_CODE entry ({function})"


def test_every_route_and_schedule_is_driven_by_a_flow(prod_api: Any) -> None:
    # GIVEN the app's routes and schedules, and the relay's routes
    from chalice.app import DynamoDBEventConfig

    from app import app
    from chalicelib.relay.app import ROUTES as RELAY_ROUTES

    entry_points = {(m, path) for path, by_method in app.routes.items() for m in by_method}
    entry_points |= {(m, path) for path, by_method in RELAY_ROUTES.items() for m in by_method}
    # (the stream handlers and the alert retry job run with their own role:
    # test_alerts_policy.py drives them)
    entry_points |= {
        ("SCHEDULE", source.name)
        for source in app.event_sources
        if not isinstance(source, DynamoDBEventConfig) and source.name != "retry_alerts"
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
    statements = [s for s in _statements(CHALICE) if s.get("Sid") != "TokenItems"]

    # WHEN the management flow runs
    from flows import management

    management(Driver(prod_api))

    # THEN the token writes it made are reported as denied
    denied = {c.action for c in recorded if not _allows(statements, c)}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= denied


def test_the_relay_reads_only_the_configuration_its_policy_names(
    prod_api: Any, recorded: list[Call]
) -> None:
    # GIVEN the relay's policy, limited to the configuration's partitions it reads
    statements = _statements(RELAY)
    config = _table_arn(REGION, "sluice-prod-config")

    # WHEN every flow runs
    _run_flows(prod_api)

    # THEN the relay read those partitions, each of its reads named one, and the policy
    # refuses it the operator keys and the alert targets kept in the same table
    read = {c.leading_key for c in _by_function(recorded, RELAY) if c.resource == config}
    assert read == {"channel", "price", "group", "auto_order", "stamp"}
    for kind in ("opkey", "alert"):
        assert not _allows(statements, Call("dynamodb:Query", config, RELAY, kind))
