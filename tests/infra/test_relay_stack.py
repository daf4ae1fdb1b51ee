"""The relay function in the packaged stack: Web Adapter, streaming, timeouts, least privilege.

The template is `make package STAGE=prod`'s (conftest.py); the role is checked twice: by what it
says, and against every AWS call the relay makes for a representative set of /v1 calls on moto.
"""

from __future__ import annotations

import fnmatch
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from infra_checks import as_list

pytestmark = pytest.mark.slow

STAGE = "prod"
RELAY = "RelayFunction"
ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _relay(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"][RELAY]["Properties"])


def _route(template: dict[str, Any]) -> dict[str, Any]:
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    return dict(paths["/v1/{proxy+}"])


def test_v1_goes_to_the_relay_through_a_streaming_lambda_proxy_integration(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged template  WHEN its /v1/{proxy+} route is read
    _, template = packaged_prod
    route = _route(template)

    # THEN every method goes to the relay's response-streaming invocation, in STREAM mode
    assert list(route) == ["x-amazon-apigateway-any-method"]
    integration = route["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
    assert (integration["type"], integration["httpMethod"]) == ("aws_proxy", "POST")
    assert integration["responseTransferMode"] == "STREAM"
    assert integration["uri"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/"
        "functions/${RelayFunction.Arn}/response-streaming-invocations"
    }
    # AND it waits as long as the parameter says, 10 minutes unless set, never past the function
    assert integration["timeoutInMillis"] == {"Ref": "RelayIntegrationTimeoutMillis"}
    parameter = template["Parameters"]["RelayIntegrationTimeoutMillis"]
    assert (parameter["Type"], parameter["Default"]) == ("Number", 600000)
    assert parameter["MaxValue"] <= 900_000
    assert _relay(template)["Timeout"] * 1000 > parameter["MaxValue"] >= parameter["Default"]
    # AND the relay's own deadline is that same timeout
    assert _relay(template)["Environment"]["Variables"]["SLUICE_RELAY_TIMEOUT_MS"] == {
        "Ref": "RelayIntegrationTimeoutMillis"
    }


def test_the_relay_runs_uvicorn_under_lambda_web_adapter_in_response_stream_mode(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    out_dir, template = packaged_prod
    relay = _relay(template)
    variables = relay["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["SLUICE_BEHIND_API_GATEWAY"] == "true"
    # The layer is a parameter, defaulting to the public x86_64 layer of the stack's region
    [layer] = relay["Layers"]
    condition, chosen, default = layer["Fn::If"]
    assert condition == "HasWebAdapterLayerArn" and chosen == {"Ref": "WebAdapterLayerArn"}
    assert ":layer:LambdaAdapterLayerX86:" in default["Fn::Sub"]
    assert relay["Architectures"] == ["x86_64"]
    # AND its writes go over the lean DynamoDB client unless the stack says botocore
    assert variables["SLUICE_DYNAMODB_CLIENT"] == {"Ref": "DynamoDBClient"}
    parameter = template["Parameters"]["DynamoDBClient"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("lean", ["lean", "botocore"])
    # The handler is the script that starts uvicorn on the relay's app, shipped executable
    assert relay["Handler"] == "chalicelib/relay/run.sh"
    with zipfile.ZipFile(out_dir / "deployment.zip") as archive:
        script = archive.getinfo(relay["Handler"])
        assert stat.S_IMODE(script.external_attr >> 16) & stat.S_IXUSR
        started = archive.read(script).decode()
        assert "uvicorn chalicelib.relay.app:app" in started
        # and takes no client's X-Forwarded-For for the caller (client_ip reads sourceIp)
        assert "--no-proxy-headers" in started
        names = set(archive.namelist())
    assert {"starlette/__init__.py", "uvicorn/__init__.py", "chalicelib/relay/app.py"} <= names


def test_api_gateway_may_invoke_the_relay_for_v1_paths_of_this_api_only(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    _, template = packaged_prod
    permission = template["Resources"]["RelayInvokePermission"]
    assert permission["Type"] == "AWS::Lambda::Permission"
    properties = permission["Properties"]
    assert properties["FunctionName"] == {"Ref": RELAY}
    assert (properties["Action"], properties["Principal"]) == (
        "lambda:InvokeFunction",
        "apigateway.amazonaws.com",
    )
    arn, names = properties["SourceArn"]["Fn::Sub"]
    assert arn.endswith(":${RestAPIId}/*/*/v1/*") and names == {"RestAPIId": {"Ref": "RestAPI"}}


def _resolved(value: Any) -> Any:
    """A role's Fn::Sub written out for moto's account and region."""
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"]
        for name, written in (
            ("${AWS::Partition}", "aws"),
            ("${AWS::Region}", REGION),
            ("${AWS::AccountId}", ACCOUNT),
            ("${AWS::URLSuffix}", "amazonaws.com"),
        ):
            text = text.replace(name, written)
        return text
    if isinstance(value, dict):
        return {key: _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    return value


def _relay_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = template["Resources"]["RelayRole"]["Properties"]
    assert _relay(template)["Role"] == {"Fn::GetAtt": ["RelayRole", "Arn"]}
    return [
        _resolved(statement)
        for policy in role["Policies"]
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def test_the_relay_role_reads_keys_and_config_and_writes_only_the_ledger_usage_and_owners(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    _, template = packaged_prod
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sluice-{STAGE}-"
    grants = {
        (action, resource)
        for statement in _relay_statements(template)
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    dynamodb = {(a, r.removeprefix(table)) for a, r in grants if a.startswith("dynamodb:")}
    assert dynamodb == {
        ("dynamodb:GetItem", "tokens"),
        ("dynamodb:UpdateItem", "tokens"),
        ("dynamodb:GetItem", "accounts"),
        ("dynamodb:UpdateItem", "accounts"),
        ("dynamodb:GetItem", "usage"),
        ("dynamodb:PutItem", "usage"),
        ("dynamodb:GetItem", "config"),
        ("dynamodb:Query", "config"),
        # Video jobs: their owners, and each account's list of them.
        ("dynamodb:GetItem", "videos"),
        ("dynamodb:PutItem", "videos"),
        ("dynamodb:DeleteItem", "videos"),
        ("dynamodb:Query", "videos/index/video_jobs_by_account"),
    }
    ssm = {(a, r) for a, r in grants if a.startswith("ssm:")}
    assert ssm == {
        ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/sluice/{STAGE}/channels/*")
    }
    logs = {r for a, r in grants if a.startswith("logs:")}
    assert logs == {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/sluice-{STAGE}-relay:*"}


class Recorder:
    """(IAM action, resource ARN) of every AWS call made while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[tuple[str, str]] = []

    def add(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if not self.on:
            return
        if service == "dynamodb":
            resource = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
            if params.get("IndexName"):
                resource += f"/index/{params['IndexName']}"
        elif service == "ssm":
            name = str(params["Name"]).split(":", 1)[0]  # "name:version" selects a version
            resource = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
        else:
            resource = "*"
        self.calls.append((f"{service}:{operation}", resource))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """Hooked on the client class: clients are made lazily, per model and per thread."""
    found = Recorder()
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        found.add(client.meta.service_model.service_name, operation, params)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield found


def test_the_relay_reads_only_the_configuration_s_own_partitions(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged template  WHEN its grants on the config table are read
    _, template = packaged_prod
    config = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sluice-{STAGE}-config"
    on_config = [s for s in _relay_statements(template) if config in as_list(s["Resource"])]
    # THEN each is limited to the partitions the relay reads (not the operator keys' hashes
    # nor the alert targets the table also holds)
    from chalicelib.store import config_reads

    kinds = {config_reads.CHANNEL, config_reads.PRICE, config_reads.GROUP}
    kinds |= {config_reads.AUTO_ORDER, config_reads.STAMP}
    assert on_config
    for statement in on_config:
        limited = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        assert set(limited) == kinds


def test_the_relay_role_allows_every_call_the_relay_makes(
    packaged_prod: tuple[Path, dict[str, Any]], prod_api: Any, recorder: Recorder
) -> None:
    # GIVEN a channel whose provider key is in SSM (as deployed) and a fresh key
    from chalicelib.services import gateway
    from chalicelib.store import config as config_store
    from devtools.demo_seed import register_demo
    from devtools.mock_upstream import MockUpstream

    _, template = packaged_prod
    statements = [s for s in _relay_statements(template) if s["Effect"] == "Allow"]
    with MockUpstream(api_key="relay-role-upstream-" + "u" * 20).start() as upstream:
        register_demo(upstream.base_url, upstream.api_key)
        config_store.invalidate()
        gateway.cache().entries.clear()
        created = prod_api.new_account("relay-role", quota_usd="5")
        key = created["default_token"]["key"]

        # WHEN the relay serves every kind of call (buffered, streamed, embeddings, reads)
        recorder.on = True
        responses = [
            prod_api.call("POST", "/v1/chat/completions", key=key, body=HELLO),
            prod_api.call("POST", "/v1/chat/completions", key=key, body={**HELLO, "stream": True}),
            prod_api.call(
                "POST",
                "/v1/embeddings",
                key=key,
                body={"model": "text-embedding-3-small", "input": "hi"},
            ),
            prod_api.call(
                "POST", "/v1/responses", key=key, body={"model": "gpt-4.1-mini", "input": "hi"}
            ),
            prod_api.call("GET", "/v1/models", key=key),
            prod_api.call("GET", "/v1/key", key=key),
            prod_api.call("GET", "/v1/dashboard/billing/subscription", key=key),
            prod_api.call("GET", "/v1/dashboard/billing/usage", key=key),
        ]
        # A stored response is read through its owner record (store/owned.py).
        response_id = responses[3][1]["id"]
        responses.append(prod_api.call("GET", f"/v1/responses/{response_id}", key=key))
        recorder.on = False

    # THEN each call succeeded and the relay's role allows every AWS call it made
    assert [status for status, _ in responses] == [200] * len(responses), responses
    assert recorder.calls
    denied = [
        call
        for call in recorder.calls
        if not any(
            any(fnmatch.fnmatchcase(call[0].lower(), a.lower()) for a in as_list(s["Action"]))
            and any(fnmatch.fnmatchcase(call[1], r) for r in as_list(s["Resource"]))
            for s in statements
        )
    ]
    assert denied == []


def test_the_sweeper_never_refunds_a_call_the_relay_may_still_be_serving(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the relay function's hard limit  WHEN compared with the age the sweeper waits for
    from chalicelib.core.settings import Settings

    _, template = packaged_prod
    # THEN a reservation is only swept once no invocation that holds it can be alive
    assert Settings().reservation_max_age_seconds > _relay(template)["Timeout"]
