"""What the infra tests compare: table specs from the models and from templates, IAM statements.

A table spec is the part of a table that code and template must agree on, in one normal form
(key order HASH then RANGE, dicts instead of lists), so a comparison is a plain ``==`` whose
failure message shows the difference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHALICE_DIR = ROOT / ".chalice"
STAGES = ("dev", "prod")
_TABLE_NAME = re.compile(r"^sluice-\$\{Stage\}-([a-z_]+)$")


def _keys(key_schema: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(((k["AttributeName"], k["KeyType"]) for k in key_schema), key=lambda k: k[1])
    )


def _projection(projection: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    return projection["ProjectionType"], tuple(sorted(projection.get("NonKeyAttributes", ())))


def model_specs() -> dict[str, dict[str, Any]]:
    """Per table suffix: what the pynamodb models declare."""
    from chalicelib.store.models import TABLES

    specs = {}
    for suffix, model in TABLES.items():
        schema = model._get_schema()
        ttl = model._ttl_attribute()
        specs[suffix] = {
            "keys": _keys(schema["key_schema"]),
            "attributes": {
                a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]
            },
            "global_indexes": {
                index["index_name"]: (_keys(index["key_schema"]), _projection(index["projection"]))
                for index in schema["global_secondary_indexes"]
            },
            "local_indexes": {
                index["index_name"]: (_keys(index["key_schema"]), _projection(index["projection"]))
                for index in schema["local_secondary_indexes"]
            },
            "ttl": None if ttl is None else ttl.attr_name,
            "stream": getattr(model.Meta, "stream_view_type", None),
        }
    return specs


def table_suffix(properties: dict[str, Any]) -> str:
    """``accounts`` for a table named ``!Sub "sluice-${Stage}-accounts"``."""
    name = properties.get("TableName")
    match = _TABLE_NAME.match(name.get("Fn::Sub", "")) if isinstance(name, dict) else None
    assert match, f"table name must be !Sub 'sluice-${{Stage}}-<suffix>', got {name!r}"
    return match.group(1)


def table_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per table suffix: the template's AWS::DynamoDB::Table resource (whole, with policies)."""
    tables: dict[str, dict[str, Any]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            suffix = table_suffix(resource["Properties"])
            assert suffix not in tables, f"{logical_id}: a second table named {suffix}"
            tables[suffix] = resource
    return tables


def template_specs(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per table suffix: what the template declares, in the same form as ``model_specs``."""
    specs = {}
    for suffix, resource in table_resources(template).items():
        properties = resource["Properties"]
        ttl = properties.get("TimeToLiveSpecification")
        specs[suffix] = {
            "keys": _keys(properties["KeySchema"]),
            "attributes": {
                a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]
            },
            "global_indexes": {
                index["IndexName"]: (_keys(index["KeySchema"]), _projection(index["Projection"]))
                for index in properties.get("GlobalSecondaryIndexes", [])
            },
            "local_indexes": {
                index["IndexName"]: (_keys(index["KeySchema"]), _projection(index["Projection"]))
                for index in properties.get("LocalSecondaryIndexes", [])
            },
            "ttl": ttl["AttributeName"] if ttl and ttl.get("Enabled") is True else None,
            "stream": properties.get("StreamSpecification", {}).get("StreamViewType"),
        }
    return specs


def durability_problems(template: dict[str, Any]) -> list[str]:
    """Every way a table falls short of on-demand, PITR, encryption and retention."""
    problems = []
    for suffix, resource in table_resources(template).items():
        properties = resource["Properties"]
        if properties.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{suffix}: BillingMode is not PAY_PER_REQUEST")
        pitr = properties.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{suffix}: point-in-time recovery is off")
        if properties.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{suffix}: SSESpecification.SSEEnabled is not true")
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy) != "Retain":
                problems.append(f"{suffix}: {policy} is not Retain")
        if properties.get("DeletionProtectionEnabled") is not True:
            problems.append(f"{suffix}: deletion protection is off")
    return problems


def chalice_config() -> dict[str, Any]:
    return json.loads((CHALICE_DIR / "config.json").read_text())


def stage_environment(stage: str) -> dict[str, str]:
    return dict(chalice_config()["stages"][stage]["environment_variables"])


def policy(stage: str) -> dict[str, Any]:
    return json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role logical id, statement) for every inline policy statement of every IAM role."""
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for inline in resource["Properties"].get("Policies", []):
                for statement in as_list(inline["PolicyDocument"]["Statement"]):
                    found.append((logical_id, statement))
    return found


def written_out(value: Any, stage: str, region: str, account: str) -> Any:
    """A template value with its ``Fn::Sub`` strings written out for one stage, region and
    account (the pseudo parameters of the standard partition)."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"]
        for name, written in (
            ("${Stage}", stage),
            ("${AWS::Partition}", "aws"),
            ("${AWS::Region}", region),
            ("${AWS::AccountId}", account),
            ("${AWS::URLSuffix}", "amazonaws.com"),
        ):
            text = text.replace(name, written)
        return text
    if isinstance(value, dict):
        return {key: written_out(item, stage, region, account) for key, item in value.items()}
    if isinstance(value, list):
        return [written_out(item, stage, region, account) for item in value]
    return value


def relay_policy(stage: str, region: str, account: str) -> dict[str, Any]:
    """The relay function's role (infra/relay.yaml) as one policy document, written out."""
    from devtools.package import load_template

    role = load_template(INFRA / "relay.yaml")["Resources"]["RelayRole"]["Properties"]
    statements = [
        statement
        for inline in role["Policies"]
        for statement in as_list(inline["PolicyDocument"]["Statement"])
    ]
    return {"Statement": written_out(statements, stage, region, account)}
