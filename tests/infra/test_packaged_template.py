"""What `make package STAGE=prod` produces: functions, schedules, tables, IAM, API, alarms, zip.

The template is built once per session (see conftest.py) exactly as `make package` builds it:
chalice package with infra/*.yaml merged in, then devtools.package's finishing touches.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from infra_checks import (
    as_list,
    durability_problems,
    model_specs,
    role_statements,
    stage_environment,
    table_resources,
    template_specs,
)

pytestmark = pytest.mark.slow

STAGE = "prod"
API_GATEWAY_TIMEOUT_SECONDS = 29  # REST API default integration timeout
# Lambda name -> (timeout s, memory MB). The API outlives API Gateway's 29 s so a request the
# client gave up on still settles its reservation; the jobs stop cleanly before their limit.
EXPECTED_FUNCTIONS = {
    f"sluice-{STAGE}": (60, 512),
    f"sluice-{STAGE}-relay": (900, 512),  # above its integration timeout (infra/relay.yaml)
    f"sluice-{STAGE}-reset_quotas": (300, 256),
    f"sluice-{STAGE}-sweep_reservations": (300, 256),
    f"sluice-{STAGE}-verify_ledger": (300, 256),
    # The stream handlers of budget alerts (a batch with failing webhooks retries with backoff).
    f"sluice-{STAGE}-token_alerts": (120, 256),
    f"sluice-{STAGE}-account_alerts": (120, 256),
    f"sluice-{STAGE}-retry_alerts": (300, 256),  # deliveries a dead stream handler left
}
EXPECTED_SCHEDULES = {
    f"sluice-{STAGE}-reset_quotas": "cron(0 * * * ? *)",  # hourly at minute 0; EventBridge is UTC
    f"sluice-{STAGE}-sweep_reservations": "rate(5 minutes)",
    f"sluice-{STAGE}-verify_ledger": "cron(30 3 * * ? *)",
    f"sluice-{STAGE}-retry_alerts": "rate(5 minutes)",
}
# The only wildcards a resource may hold (after "arn:<partition>:<svc>:<region>:<account>:").
ALLOWED_WILDCARDS = {
    r"key/\*": "KMS: any key, but only through SSM and for this stage's parameters (conditions)",
    rf"parameter/sluice/{STAGE}/channels/\*": "one parameter per provider channel, made at run",
    rf"parameter/sluice/{STAGE}/alerts/\*": "one signing secret per account or key with alerts",
    r"log-group:/aws/lambda/sluice-[a-z_-]+:\*": "the function's log streams, one per container",
    rf"table/sluice-{STAGE}-(tokens|accounts)/stream/\*": "the table's stream, under its label",
}
_PINNED_ARN = re.compile(
    r"^arn:\$\{AWS::Partition\}:([a-z0-9-]+):\$\{AWS::Region\}:\$\{AWS::AccountId\}:(.+)$"
)


def resolve(value: Any) -> Any:
    """A template value with the Stage parameter filled in (the only one these names use)."""
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${Stage}", STAGE)
    if value == {"Ref": "Stage"}:
        return STAGE
    return value


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Lambda name -> properties."""
    functions = _of_type(template, "AWS::Serverless::Function").values()
    return {f["Properties"]["FunctionName"]: f["Properties"] for f in functions}


def _alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in _of_type(template, "AWS::CloudWatch::Alarm").values()]


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: resolve(d["Value"]) for d in alarm.get("Dimensions", [])}


def test_functions_have_their_names_timeouts_memory_and_stage_environment(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN its Lambda functions are listed by name
    functions = _functions(template)

    # THEN they are exactly the expected ones (reset_quotas and sweep_reservations come from
    # app.py's schedules: a missing one means app.py does not register it)
    missing = sorted(set(EXPECTED_FUNCTIONS) - set(functions))
    assert missing == [], f"not packaged: app.py (or a registered blueprint) lacks {missing}"
    unknown = sorted(set(functions) - set(EXPECTED_FUNCTIONS))
    assert unknown == [], f"new functions {unknown}: give them config, alarms and log grants"
    for name, (timeout, memory) in EXPECTED_FUNCTIONS.items():
        assert (functions[name]["Timeout"], functions[name]["MemorySize"]) == (timeout, memory)
    assert functions[f"sluice-{STAGE}"]["Timeout"] > API_GATEWAY_TIMEOUT_SECONDS
    # AND each carries the stage's settings, names only: no secret value travels in the template
    # (the relay: without the admin key's name, plus how Web Adapter runs it)
    relay = functions.pop(f"sluice-{STAGE}-relay")["Environment"]["Variables"]
    for properties in functions.values():
        assert properties["Environment"]["Variables"] == stage_environment(STAGE)
        assert properties["Runtime"] == "python3.11"
    staged = stage_environment(STAGE)
    del staged["SLUICE_ADMIN_KEY_SSM_PARAMETER"]
    assert {name: relay[name] for name in staged} == staged
    assert "SLUICE_ADMIN_KEY_SSM_PARAMETER" not in relay


def test_schedules_are_hourly_utc_resets_and_a_five_minute_sweeper(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN the schedule events of its functions are collected
    schedules = {
        name: [
            event["Properties"]["Schedule"]
            for event in properties.get("Events", {}).values()
            if event["Type"] == "Schedule"
        ]
        for name, properties in _functions(template).items()
    }

    # THEN the resets run hourly at minute 0 and the sweeper every 5 minutes, and nothing else
    expected = {
        name: [EXPECTED_SCHEDULES[name]] if name in EXPECTED_SCHEDULES else [] for name in schedules
    }
    assert schedules == expected
    missing = sorted(set(EXPECTED_SCHEDULES) - set(schedules))
    assert missing == [], f"scheduled functions not packaged (app.py lacks them): {missing}"


def test_packaged_tables_match_the_models_and_the_lambdas_table_prefix(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template, whose Stage parameter is pinned to prod
    _, template = packaged_prod
    assert template["Parameters"]["Stage"]["AllowedValues"] == [STAGE]

    # WHEN its tables are compared with the models
    declared, expected = template_specs(template), model_specs()

    # THEN keys, indexes and TTL are the models', every table is durable
    assert declared == expected
    assert durability_problems(template) == []
    # AND each table's name is the one the Lambdas compute from SLUICE_TABLE_PREFIX
    prefix = stage_environment(STAGE)["SLUICE_TABLE_PREFIX"]
    names = {resolve(t["Properties"]["TableName"]) for t in table_resources(template).values()}
    assert names == {f"{prefix}-{suffix}" for suffix in expected}


def test_roles_grant_named_actions_on_this_stacks_resources_only(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN every statement of every role is inspected
    statements = role_statements(template)

    # THEN there are some, none is a Deny-less wildcard, and there is no Scan
    assert statements
    problems = []
    for role, statement in statements:
        actions = as_list(statement["Action"])
        problems += [f"{role}: wildcard action {a}" for a in actions if "*" in a]
        problems += [f"{role}: {a}" for a in actions if a.lower() == "dynamodb:scan"]
        # AND each resource is pinned to the stack's region and account, with wildcards only
        # where the list above documents them
        for resource in as_list(statement["Resource"]):
            arn = _PINNED_ARN.match(
                resource.get("Fn::Sub", "") if isinstance(resource, dict) else ""
            )
            if arn is None:
                problems.append(f"{role}: resource not pinned to the stack: {resource}")
            elif "*" in arn.group(2) and not any(
                re.fullmatch(allowed, arn.group(2)) for allowed in ALLOWED_WILDCARDS
            ):
                problems.append(f"{role}: undocumented wildcard in {arn.group(2)}")
    assert problems == []
    # AND every role is assumable by Lambda alone, with no managed policies attached
    for role in _of_type(template, "AWS::IAM::Role").values():
        properties = role["Properties"]
        trust = properties["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
        assert "ManagedPolicyArns" not in properties


def test_decryption_is_limited_to_ssm_and_this_stages_parameters(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template's role statements
    _, template = packaged_prod

    # WHEN the ones granting KMS actions are picked
    kms = [
        s
        for _, s in role_statements(template)
        if any(a.startswith("kms:") for a in as_list(s["Action"]))
    ]

    # THEN they only decrypt, through SSM in this region, for this stage's parameters
    assert kms
    for statement in kms:
        assert as_list(statement["Action"]) == ["kms:Decrypt"]
        conditions = statement["Condition"]["StringLike"]
        assert conditions["kms:ViaService"] == {"Fn::Sub": "ssm.${AWS::Region}.${AWS::URLSuffix}"}
        context = conditions["kms:EncryptionContext:PARAMETER_ARN"]["Fn::Sub"]
        # (the relay's role: only the channels' keys; the alert handlers': only their secrets)
        assert context.endswith(
            (
                f":parameter/sluice/{STAGE}/*",
                f":parameter/sluice/{STAGE}/channels/*",
                f":parameter/sluice/{STAGE}/alerts/*",
            )
        )


def test_api_is_regional_and_named_for_its_metrics(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN its REST API is looked up
    [api] = _of_type(template, "AWS::Serverless::Api").values()

    # THEN it is a REGIONAL endpoint named sluice-prod (the ApiName its alarms use)
    properties = api["Properties"]
    assert properties["EndpointConfiguration"] == "REGIONAL"
    assert properties["Name"] == properties["DefinitionBody"]["info"]["title"] == f"sluice-{STAGE}"


def test_api_passes_uploads_and_media_through_as_binary(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN its REST API's binary media types are read
    [api] = _of_type(template, "AWS::Serverless::Api").values()
    binary = set(api["Properties"]["DefinitionBody"]["x-amazon-apigateway-binary-media-types"])

    # THEN multipart uploads, audio, images and video reach the relay as bytes, not as text
    assert {"multipart/form-data", "audio/*", "image/*", "video/*"} <= binary


def _rendered(template: str, message: str) -> Any:
    """A gateway response's body as API Gateway renders it: ``messageString`` is the message
    already quoted as a JSON string."""
    return json.loads(template.replace("$context.error.messageString", json.dumps(message)))


def test_errors_api_gateway_answers_itself_are_openai_shaped(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod
    [api] = _of_type(template, "AWS::Serverless::Api").values()
    responses = api["Properties"]["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]

    # THEN every error API Gateway makes before any function runs (an unknown path or method,
    # its throttling, a body too large, an integration that timed out...) has the shape an SDK
    # reads, {"error": {"message", "type", "param", "code"}}
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for kind, response in responses.items():
        body = _rendered(response["responseTemplates"]["application/json"], "Some message")
        assert set(body) == {"error"}, kind
        assert set(body["error"]) == {"message", "type", "param", "code"}, kind
        assert body["error"]["message"] and body["error"]["code"], kind
        # AND a browser chat UI may read it, as it reads the relay's own errors
        cors = response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert cors == "'*'", kind
    # AND an unknown path is a 404 that says where the routes are, as the relay's own 404 says
    unknown = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert unknown["statusCode"] == "404"
    error = _rendered(unknown["responseTemplates"]["application/json"], "Missing")["error"]
    assert error["code"] == "not_found" and "/openapi.json" in error["message"]
    # AND API Gateway's throttling is a 429 an SDK retries, its timeout a 504
    assert responses["THROTTLED"]["statusCode"] == "429"
    assert (
        _rendered(responses["THROTTLED"]["responseTemplates"]["application/json"], "x")["error"][
            "code"
        ]
        == "rate_limited"
    )
    assert responses["INTEGRATION_TIMEOUT"]["statusCode"] == "504"


def test_log_groups_keep_logs_for_a_bounded_time_and_are_the_ones_the_policy_names(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN its log groups and the log resources of its policies are collected
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"]["RetentionInDays"]
        for g in _of_type(template, "AWS::Logs::LogGroup").values()
    }
    granted = {
        _PINNED_ARN.match(r["Fn::Sub"]).group(2)  # type: ignore[union-attr]
        for _, s in role_statements(template)
        if any(a.startswith("logs:") for a in as_list(s["Action"]))
        for r in as_list(s["Resource"])
    }

    # THEN every function has its group, kept 90 days, and the policy names exactly the groups
    # of the expected functions
    assert groups == {f"/aws/lambda/{name}": 90 for name in _functions(template)}
    assert granted == {f"log-group:/aws/lambda/{name}:*" for name in EXPECTED_FUNCTIONS}


def test_every_function_api_and_table_has_alarms_that_notify_the_topic(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template and its alarms
    _, template = packaged_prod
    alarms = _alarms(template)

    # WHEN the alarmed metrics are collected as (namespace, metric, dimensions)
    alarmed = {
        (a["Namespace"], a["MetricName"], tuple(sorted(_dimensions(a).items())))
        for a in alarms
        if "MetricName" in a
    }
    alarmed |= {
        (
            m["MetricStat"]["Metric"]["Namespace"],
            m["MetricStat"]["Metric"]["MetricName"],
            tuple(
                sorted(
                    (d["Name"], resolve(d["Value"]))
                    for d in m["MetricStat"]["Metric"]["Dimensions"]
                )
            ),
        )
        for a in alarms
        for m in a.get("Metrics", [])
        if "MetricStat" in m
    }

    # THEN each function has Errors and Throttles alarms, the API a 5XX alarm, and each table
    # read and write throttle alarms
    [api] = _of_type(template, "AWS::Serverless::Api").values()
    api_dims = (("ApiName", api["Properties"]["Name"]), ("Stage", api["Properties"]["StageName"]))
    expected = {("AWS/ApiGateway", "5XXError", api_dims)}
    for name in _functions(template):
        expected |= {("AWS/Lambda", m, (("FunctionName", name),)) for m in ("Errors", "Throttles")}
    for table in table_resources(template).values():
        dims = (("TableName", resolve(table["Properties"]["TableName"])),)
        expected |= {
            ("AWS/DynamoDB", m, dims) for m in ("ReadThrottleEvents", "WriteThrottleEvents")
        }
    assert expected <= alarmed, sorted(expected - alarmed)
    # AND every alarm notifies the stack's topic, on alarm and on recovery
    for alarm in alarms:
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}]


def test_custom_metric_alarms_match_what_the_code_emits(
    packaged_prod: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the alarms on the app's own metrics
    from chalicelib.core import observe

    _, template = packaged_prod
    custom = [a for a in _alarms(template) if a.get("Namespace") == observe.NAMESPACE]

    # WHEN each alarmed metric is emitted the way the code emits it (no dimensions)
    emitted = {}
    for alarm in custom:
        capsys.readouterr()
        observe.metric(alarm["MetricName"])
        [line] = capsys.readouterr().out.splitlines()
        [directive] = json.loads(line)["_aws"]["CloudWatchMetrics"]
        emitted[alarm["MetricName"]] = directive["Dimensions"]

    # THEN sweeper refunds and upstream failures are alarmed, on the dimension set emitted
    assert {"SweeperRefunds", "UpstreamFailures"} <= set(emitted)
    for alarm in custom:
        assert [sorted(_dimensions(alarm))] == emitted[alarm["MetricName"]], alarm["MetricName"]


def test_deployment_zip_fits_lambda_and_carries_linux_wheels(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged deployment zip
    out_dir, template = packaged_prod
    zip_file = out_dir / "deployment.zip"
    from devtools.package import zip_report

    print(zip_report(zip_file))

    # WHEN its entries are listed
    with zipfile.ZipFile(zip_file) as archive:
        names = archive.namelist()
        unzipped = sum(info.file_size for info in archive.infolist())

    # THEN it is within Lambda's limits, has the app, pydantic's compiled core for Lambda's
    # Linux, and nothing from the developer's tree beyond the app
    assert zip_file.stat().st_size < 50 * 1024 * 1024 and unzipped < 250 * 1024 * 1024
    assert "app.py" in names and "chalicelib/store/models.py" in names
    assert any(
        re.fullmatch(r"pydantic_core/_pydantic_core\.cpython-311-x86_64-linux-gnu\.so", n)
        for n in names
    )
    assert not [n for n in names if n.split("/")[0] in {"tests", "devtools", ".venv", "infra"}]
    # AND every function is built from that zip
    for properties in _functions(template).values():
        assert properties["CodeUri"] == "./deployment.zip"


def test_deployment_zip_carries_bytecode_lambda_need_not_recompile(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged deployment zip
    out_dir, template = packaged_prod
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(out_dir / "deployment.zip") as archive:
        names = set(archive.namelist())
        # WHEN each module of the app and of the relay's hot path is looked up
        modules = [n for n in names if n.endswith(".py") and n.split("/")[0] in APP_TREES]
        compiled = {}
        for module in modules:
            folder, _, file = module.rpartition("/")
            pyc = f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc".lstrip("/")
            compiled[module] = archive.read(pyc) if pyc in names else None

    # THEN each has bytecode for the functions' runtime beside it, hash-based and unchecked
    # (flags 0b01: Lambda's read-only code is never compared with its source)
    assert {p["Runtime"] for p in _functions(template).values()} == {
        f"python{sys.version_info.major}.{sys.version_info.minor}"
    }
    assert "chalicelib/relay/app.py" in compiled and "botocore/client.py" in compiled
    missing = sorted(module for module, pyc in compiled.items() if pyc is None)
    assert not missing
    for module, pyc in compiled.items():
        assert pyc is not None and pyc[:4] == importlib.util.MAGIC_NUMBER, module
        assert int.from_bytes(pyc[4:8], "little") == 0b01, module


# The app's own tree and the libraries every relayed call imports.
APP_TREES = {"app.py", "chalicelib", "botocore", "pynamodb", "httpx", "starlette", "uvicorn"}


def test_integration_timeout_can_be_raised_but_only_below_the_lambda_timeout(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN copies of the packaged template
    from devtools.package import set_integration_timeout

    _, template = packaged_prod
    raised, too_long = copy.deepcopy(template), copy.deepcopy(template)

    # WHEN one asks for 50 s and the other for 90 s (the API handler's Lambda stops at 60 s)
    set_integration_timeout(raised, 50_000)
    with pytest.raises(ValueError, match="lambda_timeout"):
        set_integration_timeout(too_long, 90_000)

    # THEN every route of the first waits 50 s, and the refused one is left as it was
    def timeouts(t: dict[str, Any]) -> set[Any]:
        # (the relay's route has its own timeout: tests/infra/test_relay_stack.py)
        paths = t["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
        return {
            op["x-amazon-apigateway-integration"].get("timeoutInMillis")
            for path, methods in paths.items()
            if path != "/v1/{proxy+}"
            for op in methods.values()
            if "x-amazon-apigateway-integration" in op
        }

    assert timeouts(raised) == {50_000}
    assert timeouts(too_long) == timeouts(template) == {None}


def test_the_reset_job_may_be_opened_to_one_more_principal_and_is_not_by_default(
    packaged_prod: tuple[Path, dict[str, Any]],
) -> None:
    # GIVEN the packaged prod template
    _, template = packaged_prod

    # WHEN its optional grant on the reset job is read
    permission = template["Resources"]["ResetQuotasInvokePermission"]
    function = template["Resources"][permission["Properties"]["FunctionName"]["Ref"]]
    condition = template["Conditions"][permission["Condition"]]

    # THEN it lets the ResetInvokerPrincipal parameter invoke the reset function and nothing
    # else, and only when that parameter is set (empty by default)
    assert function["Properties"]["FunctionName"] == f"sluice-{STAGE}-reset_quotas"
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"
    assert permission["Properties"]["Principal"] == {"Ref": "ResetInvokerPrincipal"}
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ResetInvokerPrincipal"}, ""]}]}
    assert template["Parameters"]["ResetInvokerPrincipal"]["Default"] == ""
