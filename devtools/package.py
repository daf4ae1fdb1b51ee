"""Build the CloudFormation stack for a stage, and deploy it when asked.

    python -m devtools.package --stage prod            # make package STAGE=prod
    python -m devtools.package --stage prod --deploy   # make deploy STAGE=prod

Packaging never calls AWS (no account or credentials needed): it runs ``chalice package`` with
``infra/tables.yaml``, ``infra/alarms.yaml``, ``infra/invokers.yaml``, ``infra/alerts.yaml`` and
``infra/relay.yaml`` merged in, then gives the
generated template the names the rest of the stack relies on:

* every Lambda is named as ``chalice deploy`` would name it (``sluice-prod`` for the API,
  ``sluice-prod-<function>`` for the others), so the log-group ARNs in ``.chalice/policy-*.json``
  and the alarms in ``infra/alarms.yaml`` can name them exactly;
* the REST API is named ``sluice-<stage>``, the name API Gateway's metrics carry;
* a Lambda permission in ``infra/`` names its function as deployed; it is pointed at the
  function's resource instead, so CloudFormation creates it after the function;
* the ``Stage`` parameter of the infra templates is pinned to the packaged stage, so the tables
  a template creates are always the ones its Lambdas' ``SLUICE_TABLE_PREFIX`` points at;
* ``/v1/{proxy+}`` goes to the relay function (``wire_relay``): a streaming Lambda proxy
  integration, with the stage's settings and log retention, and API Gateway allowed to invoke it;
* a stream handler's ``Stream`` (app.py names a placeholder, ``.../table/<suffix>/stream/
  wired-by-package``) becomes the ``StreamArn`` of the table ``infra/tables.yaml`` creates, with a
  bounded number of retries (``wire_streams``);
* the policy files say ``arn:aws:<service>:*:*:...`` (valid for ``chalice deploy`` too); here the
  region and account are pinned to the stack's own with ``Fn::Sub``;
* the zip carries compiled bytecode beside every module (``add_bytecode``).

``--deploy`` then runs ``aws cloudformation package`` (uploads the zip to S3) and
``aws cloudformation deploy``; see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import compileall
import copy
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from py_compile import PycInvalidationMode
from typing import Any

import yaml
from chalice.utils import to_cfn_resource_name

ROOT = Path(__file__).resolve().parent.parent
INFRA_TEMPLATES = ("tables.yaml", "alarms.yaml", "invokers.yaml", "relay.yaml", "alerts.yaml")
APP_NAME = "sluice"
API_HANDLER = "api_handler"
DEFAULT_REGION = "us-east-1"
ZIP_LIMIT_BYTES = 50 * 1024 * 1024  # Lambda's limit for a directly uploaded zip
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda's limit for the unpacked function

_LOOSE_ARN = re.compile(r"^arn:aws:([a-z0-9-]+):\*:\*:(.+)$")
_LOOSE_SERVICE_HOST = re.compile(r"^([a-z0-9-]+)\.\*\.amazonaws\.com$")
_LOG_GROUP_OF = re.compile(r"/aws/lambda/\$\{(\w+)\}")


# Templates --------------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short tags (!Sub, !Ref...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation template (YAML or JSON) as plain data, intrinsics in long form."""
    with path.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return loaded


def merge_templates(templates: list[dict[str, Any]]) -> dict[str, Any]:
    """Union of the templates' sections; a name defined twice must be defined identically."""
    merged: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09"}
    for template in templates:
        for section, entries in template.items():
            if not isinstance(entries, dict):
                continue  # version and description: the stack gets its own
            target = merged.setdefault(section, {})
            for name, definition in entries.items():
                if name in target and target[name] != definition:
                    raise ValueError(f"{section}.{name} is defined differently in two templates")
                target[name] = definition
    return merged


def infra_template(stage: str, infra_dir: Path = ROOT / "infra") -> dict[str, Any]:
    """The infra templates merged, with ``Stage`` pinned: this file can only deploy ``stage``."""
    merged = merge_templates([load_template(infra_dir / name) for name in INFRA_TEMPLATES])
    merged["Description"] = f"Sluice {stage}: API and schedules (chalice), tables, alarms."
    merged["Parameters"]["Stage"] = {
        "Type": "String",
        "Default": stage,
        "AllowedValues": [stage],
        "Description": "Fixed at packaging time: the Lambdas' table prefix and IAM policy name it.",
    }
    return merged


# The generated template -------------------------------------------------------------------------
def deployed_name(stage: str, function: str) -> str:
    """The Lambda's name, as ``chalice deploy`` names it."""
    if function == API_HANDLER:
        return f"{APP_NAME}-{stage}"
    return f"{APP_NAME}-{stage}-{function}"


def cfn_name(function: str) -> str:
    """The logical id ``chalice package`` gives a function (chalice.utils.to_cfn_resource_name)."""
    return "APIHandler" if function == API_HANDLER else to_cfn_resource_name(function)


def app_functions() -> list[str]:
    """Every Lambda function the chalice app declares, by its chalice name."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    app: Any = importlib.import_module("app").app
    names = [API_HANDLER] if app.routes else []
    names += [source.name for source in app.event_sources]
    names += [function.name for function in app.pure_lambda_functions]
    return names


def pin_to_stack(value: Any) -> Any:
    """Replace ``arn:aws:<svc>:*:*:`` and ``<svc>.*.amazonaws.com`` with this stack's own."""
    if isinstance(value, dict):
        return {key: pin_to_stack(item) for key, item in value.items()}
    if isinstance(value, list):
        return [pin_to_stack(item) for item in value]
    if not isinstance(value, str):
        return value
    arn = _LOOSE_ARN.match(value)
    if arn:
        service, rest = arn.groups()
        if "${" in rest:
            raise ValueError(f"policy resource {value!r} would be read as a Fn::Sub variable")
        return {
            "Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"
            + rest
        }
    host = _LOOSE_SERVICE_HOST.match(value)
    if host:
        return {"Fn::Sub": f"{host.group(1)}.${{AWS::Region}}.${{AWS::URLSuffix}}"}
    return value


# The relay function (infra/relay.yaml) and its place in the REST API.
RELAY_FUNCTION = "RelayFunction"
RELAY_NAME = "relay"
RELAY_PATH = "/v1/{proxy+}"
# Lambda's response-streaming invocation (InvokeWithResponseStream), as API Gateway calls it.
RELAY_URI = (
    "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/"
    "${RelayFunction.Arn}/response-streaming-invocations"
)
# Settings the relay has no use for: it never reads the admin key (its role cannot either).
NOT_FOR_THE_RELAY = ("SLUICE_ADMIN_KEY_SSM_PARAMETER",)


def wire_relay(template: dict[str, Any], stage: str) -> None:
    """Route ``/v1/*`` to the relay function, streaming; give it its name and settings (in place).

    API Gateway picks the most specific path, so ``/v1/{proxy+}`` wins over Chalice's greedy
    ``/{proxy+}`` for every /v1 path, and only there. The route is part of the API's definition
    (not a separate Method resource), so each deployment of the API carries it.
    """
    resources = template["Resources"]
    relay = resources[RELAY_FUNCTION]["Properties"]
    relay["FunctionName"] = deployed_name(stage, RELAY_NAME)
    staged = dict(resources["APIHandler"]["Properties"]["Environment"]["Variables"])
    for name in NOT_FOR_THE_RELAY:
        staged.pop(name, None)
    relay["Environment"]["Variables"] = {**staged, **relay["Environment"]["Variables"]}
    group = resources["RelayLogGroup"]["Properties"]
    group["LogGroupName"] = "/aws/lambda/" + deployed_name(stage, RELAY_NAME)
    group["RetentionInDays"] = resources["ApiHandlerLogGroup"]["Properties"]["RetentionInDays"]
    role = resources["RelayRole"]["Properties"]
    role["Policies"] = _with_stage(role["Policies"], stage)
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    paths[RELAY_PATH] = {
        "x-amazon-apigateway-any-method": {
            "parameters": [{"name": "proxy", "in": "path", "required": True, "type": "string"}],
            "responses": {},
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": {"Fn::Sub": RELAY_URI},
                "responseTransferMode": "STREAM",
                "timeoutInMillis": {"Ref": "RelayIntegrationTimeoutMillis"},
                "passthroughBehavior": "when_no_match",
            },
        }
    }
    resources["RelayInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": {"Ref": RELAY_FUNCTION},
            "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            # This API only, /v1 paths only, any stage and method.
            "SourceArn": {
                "Fn::Sub": [
                    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                    "${RestAPIId}/*/*/v1/*",
                    {"RestAPIId": {"Ref": "RestAPI"}},
                ]
            },
        },
    }


_STREAM_PLACEHOLDER = re.compile(r"^arn:aws:dynamodb:::table/([a-z]+)/stream/wired-by-package$")
# A batch whose handler fails (DynamoDB unavailable) is retried this many times, then skipped:
# a stuck batch must not hold up the shard's later changes for the stream's 24 hours.
STREAM_MAX_RETRIES = 10


def wire_streams(template: dict[str, Any]) -> None:
    """Point every DynamoDB event of a function at its table's stream (in place)."""
    tables = {
        table_suffix: logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::DynamoDB::Table"
        for table_suffix in [_suffix_of(resource)]
    }
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            placeholder = _STREAM_PLACEHOLDER.match(str(event["Properties"]["Stream"]))
            if placeholder is None or placeholder.group(1) not in tables:
                raise ValueError(f"{logical_id}: its stream names no table of infra/tables.yaml")
            table = tables[placeholder.group(1)]
            event["Properties"]["Stream"] = {"Fn::GetAtt": [table, "StreamArn"]}
            event["Properties"]["MaximumRetryAttempts"] = STREAM_MAX_RETRIES


def _suffix_of(table: dict[str, Any]) -> str:
    """``tokens`` for a table named ``sluice-${Stage}-tokens``."""
    name = table["Properties"]["TableName"]
    return str(name.get("Fn::Sub", name) if isinstance(name, dict) else name).rsplit("-", 1)[-1]


def _with_stage(value: Any, stage: str) -> Any:
    """``${Stage}`` written out in every ``Fn::Sub`` string: the names are final, like the
    policy files' (the Stage parameter can only be this stage anyway)."""
    if isinstance(value, dict):
        return {
            key: item.replace("${Stage}", stage)
            if key == "Fn::Sub" and isinstance(item, str)
            else _with_stage(item, stage)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_stage(item, stage) for item in value]
    return value


def _gateway_error(
    error_type: str, code: str, message: str = "$context.error.messageString"
) -> dict[str, Any]:
    """A gateway response's body in OpenAI's error shape. ``messageString`` is API Gateway's
    own message, already quoted as a JSON string; any other ``message`` is ours, quoted here."""
    quoted = message if message.startswith("$") else json.dumps(message)
    body = f'{{"error":{{"message":{quoted},"type":"{error_type}","param":null,"code":"{code}"}}}}'
    return {
        "responseTemplates": {"application/json": body},
        # A browser chat UI reads these as it reads the relay's answers (relay.app's CORS).
        "responseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
    }


# Errors API Gateway answers itself, before any function runs (an unknown path or method, its
# own throttling, a body over its limit, an integration that timed out): in the same shape as
# every error of the app, so an SDK raises its own class for them too.
GATEWAY_RESPONSES: dict[str, dict[str, Any]] = {
    "DEFAULT_4XX": _gateway_error("invalid_request_error", "invalid_request"),
    "DEFAULT_5XX": _gateway_error("server_error", "server_error"),
    # What REST APIs answer for a path or method they do not define.
    "MISSING_AUTHENTICATION_TOKEN": {
        "statusCode": "404",
        **_gateway_error(
            "invalid_request_error",
            "not_found",
            "Unknown path or method. See /openapi.json for the routes Sluice serves.",
        ),
    },
    "THROTTLED": {"statusCode": "429", **_gateway_error("rate_limit_error", "rate_limited")},
    "REQUEST_TOO_LARGE": {
        "statusCode": "413",
        **_gateway_error("invalid_request_error", "payload_too_large"),
    },
    "INTEGRATION_TIMEOUT": {
        "statusCode": "504",
        **_gateway_error("server_error", "upstream_timeout"),
    },
}


def finish_template(template: dict[str, Any], stage: str, functions: list[str]) -> None:
    """Name the functions and the API, and pin the role policies to the stack (in place)."""
    if RELAY_FUNCTION in template["Resources"]:
        wire_relay(template, stage)
    wire_streams(template)
    by_logical_id = {cfn_name(function): function for function in functions}
    # chalice's log groups say /aws/lambda/${ApiHandler} after renaming that function APIHandler.
    by_logical_id |= {to_cfn_resource_name(function): function for function in functions}
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        properties = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function" and logical_id == RELAY_FUNCTION:
            continue  # named by wire_relay
        if kind == "AWS::Serverless::Function":
            if logical_id not in by_logical_id:
                raise ValueError(f"{logical_id}: no chalice function of the app maps to it")
            properties["FunctionName"] = deployed_name(stage, by_logical_id[logical_id])
        elif kind == "AWS::Serverless::Api":
            properties["Name"] = f"{APP_NAME}-{stage}"
            properties.get("DefinitionBody", {}).get("info", {})["title"] = f"{APP_NAME}-{stage}"
            properties["DefinitionBody"]["x-amazon-apigateway-gateway-responses"] = copy.deepcopy(
                GATEWAY_RESPONSES
            )
        elif kind == "AWS::Logs::LogGroup" and isinstance(properties["LogGroupName"], str):
            continue  # already literal (the relay's)
        elif kind == "AWS::Logs::LogGroup":
            # A literal name: the group no longer waits for the function, so it exists (with its
            # retention) before the first invocation could create it without one.
            function = _LOG_GROUP_OF.fullmatch(properties["LogGroupName"].get("Fn::Sub", ""))
            if function is None or function.group(1) not in by_logical_id:
                raise ValueError(f"{logical_id}: unexpected LogGroupName")
            properties["LogGroupName"] = "/aws/lambda/" + deployed_name(
                stage, by_logical_id[function.group(1)]
            )
        elif kind == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                policy["PolicyDocument"] = pin_to_stack(policy["PolicyDocument"])
    # Permissions last: every function has its deployed name by now.
    deployed = {deployed_name(stage, function): cfn_name(function) for function in functions}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::Permission":
            continue
        properties = resource["Properties"]
        named = properties.get("FunctionName")
        if isinstance(named, dict) and isinstance(named.get("Fn::Sub"), str):
            named = named["Fn::Sub"].replace("${Stage}", stage)
        if not isinstance(named, str):
            continue  # chalice's own permissions refer to their function's resource already
        if named not in deployed:
            raise ValueError(f"{logical_id}: FunctionName names no function of the app")
        properties["FunctionName"] = {"Ref": deployed[named]}


def set_integration_timeout(template: dict[str, Any], timeout_ms: int) -> None:
    """Give every API route ``timeout_ms`` before API Gateway answers 504 (default 29,000).

    Above 29,000 the region's "Maximum integration timeout in milliseconds" quota must have been
    raised first (REGIONAL endpoints only). The API handler's Lambda timeout must stay above it,
    or API Gateway would wait for a function that was already stopped.
    """
    resources = template["Resources"]
    lambda_ms = int(resources["APIHandler"]["Properties"]["Timeout"]) * 1000
    if not 50 <= timeout_ms < lambda_ms:
        raise ValueError(
            f"the integration timeout must be 50 ms or more and below the API handler's Lambda "
            f"timeout ({lambda_ms} ms): raise lambda_timeout in .chalice/config.json first"
        )
    for path, methods in resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"].items():
        if path == RELAY_PATH:
            continue  # the relay's own timeout: the RelayIntegrationTimeoutMillis parameter
        for operation in methods.values():
            integration = operation.get("x-amazon-apigateway-integration")
            if integration is not None:
                integration["timeoutInMillis"] = timeout_ms


def translated_offline(template: dict[str, Any], region: str = DEFAULT_REGION) -> dict[str, Any]:
    """The template as CloudFormation receives it after the SAM transform, made here, offline.

    ``aws cloudformation package`` would upload the zip and point ``CodeUri`` at S3; a
    placeholder S3 URI stands in for it. No call leaves the machine: the roles are inline, so
    the translator's managed-policy loader is never asked.
    """
    from samtranslator.translator.transform import transform

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://sluice-offline/deployment.zip"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        translated: dict[str, Any] = transform(packaged, {}, _NoManagedPolicies())
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    return translated


# Running the tools ------------------------------------------------------------------------------
def tool_environment() -> dict[str, str]:
    """The caller's environment with a region; chalice package needs one, never credentials."""
    env = dict(os.environ)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    env.setdefault("AWS_DEFAULT_REGION", region)
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return env


def _chalice() -> str:
    beside_python = Path(sys.executable).parent / "chalice"
    found = str(beside_python) if beside_python.exists() else shutil.which("chalice")
    if not found:
        raise SystemExit("chalice is not installed: run `make setup`")
    return found


def package(stage: str, out_dir: Path, api_timeout_ms: int | None = None) -> Path:
    """Write ``sam.json`` and ``deployment.zip`` for ``stage`` into ``out_dir``; return sam.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sluice-infra-") as scratch:
        merge_file = Path(scratch) / f"infra-{stage}.json"
        merge_file.write_text(json.dumps(infra_template(stage), indent=2), encoding="utf-8")
        command = ["package", "--stage", stage, "--merge-template", str(merge_file), str(out_dir)]
        subprocess.run([_chalice(), *command], cwd=ROOT, env=tool_environment(), check=True)
    sam_file = out_dir / "sam.json"
    template = json.loads(sam_file.read_text(encoding="utf-8"))
    finish_template(template, stage, app_functions())
    if api_timeout_ms is not None:
        set_integration_timeout(template, api_timeout_ms)
    sam_file.write_text(json.dumps(template, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    add_bytecode(out_dir / "deployment.zip", _runtimes(template))
    return sam_file


# Where Lambda unpacks the zip: compiled modules name their source there, for tracebacks.
LAMBDA_TASK_ROOT = "/var/task"


def add_bytecode(zip_file: Path, runtimes: set[str]) -> None:
    """Add ``__pycache__/*.pyc`` for every module in ``zip_file`` (in place).

    ``chalice package`` unpacks wheels without compiling them, and Lambda's ``/var/task`` is
    read-only, so without bytecode every cold start compiles botocore, pydantic and the app
    again: that was most of the relay's cold start. The bytecode is for this interpreter,
    which must be the functions' runtime (Python ignores bytecode of another version, so a
    mismatch would only waste space: it stops the build instead). ``UNCHECKED_HASH``: Lambda's
    code is immutable, so the interpreter need not compare each file's timestamp or hash.
    """
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtimes != {runtime}:
        raise SystemExit(f"packaging with {runtime}, but the functions run {sorted(runtimes)}")
    with tempfile.TemporaryDirectory(prefix="sluice-bytecode-") as scratch:
        tree = Path(scratch)
        with zipfile.ZipFile(zip_file) as archive:
            sources = [name for name in archive.namelist() if name.endswith(".py")]
            archive.extractall(tree, members=sources)
        # Some wheels ship sources that are not meant to be imported (templates, examples):
        # they fail to compile and are left without bytecode, as pip leaves them.
        compileall.compile_dir(
            tree,
            ddir=LAMBDA_TASK_ROOT,
            quiet=2,
            workers=0,
            invalidation_mode=PycInvalidationMode.UNCHECKED_HASH,
        )
        with zipfile.ZipFile(zip_file, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for compiled in sorted(tree.rglob("*.pyc")):
                archive.write(compiled, compiled.relative_to(tree).as_posix())


def _runtimes(template: dict[str, Any]) -> set[str]:
    return {
        resource["Properties"]["Runtime"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def zip_report(zip_file: Path) -> str:
    zipped = zip_file.stat().st_size
    with zipfile.ZipFile(zip_file) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return (
        f"{zip_file}: {zipped / 1e6:.1f} MB zipped ({zipped * 100 // ZIP_LIMIT_BYTES}% of "
        f"Lambda's 50 MB), {unzipped / 1e6:.1f} MB unzipped "
        f"({unzipped * 100 // UNZIPPED_LIMIT_BYTES}% of 250 MB)"
    )


def deploy(
    stage: str,
    out_dir: Path,
    bucket: str,
    stack_name: str,
    alarm_email: str,
    reset_invoker: str = "",
) -> None:
    """Upload the zip and create or update the stack (needs the aws CLI and credentials)."""
    aws = shutil.which("aws")
    if not aws:
        raise SystemExit("the aws CLI is needed to deploy: https://aws.amazon.com/cli/")
    env = tool_environment()
    env.pop("AWS_EC2_METADATA_DISABLED", None)  # deploying from EC2 may rely on its role
    admin_parameter = f"/{APP_NAME}/{stage}/admin-key"
    describe = ["ssm", "describe-parameters", "--query", "length(Parameters)", "--output", "text"]
    name_filter = ["--parameter-filters", f"Key=Name,Values={admin_parameter}"]
    found = subprocess.run([aws, *describe, *name_filter], env=env, capture_output=True, text=True)
    if found.stdout.strip() != "1":
        print(
            f"warning: SSM parameter {admin_parameter} not found; the admin API will answer 401 "
            "until it exists (see docs/deploy.md)",
            file=sys.stderr,
        )
    packaged = out_dir / "packaged.yaml"
    upload = ["cloudformation", "package", "--s3-bucket", bucket, "--s3-prefix", f"sluice/{stage}"]
    files = ["--template-file", str(out_dir / "sam.json"), "--output-template-file", str(packaged)]
    subprocess.run([aws, *upload, *files], env=env, check=True)
    # The template creates the Lambdas' roles (IAM) and uses the SAM transform (auto expand).
    create = ["cloudformation", "deploy", "--template-file", str(packaged), "--stack-name"]
    options = ["--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    options += ["--no-fail-on-empty-changeset", "--tags", "app=sluice", f"stage={stage}"]
    overrides = [f"AlarmEmail={alarm_email}"] if alarm_email else []
    if reset_invoker:
        overrides.append(f"ResetInvokerPrincipal={reset_invoker}")
    if overrides:
        options += ["--parameter-overrides", *overrides]
    subprocess.run([aws, *create, stack_name, *options], env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.package", description=__doc__)
    parser.add_argument("--stage", default="dev", help="chalice stage (dev, prod)")
    parser.add_argument("--out", type=Path, help="output directory (default: dist/<stage>)")
    parser.add_argument("--deploy", action="store_true", help="also deploy with CloudFormation")
    parser.add_argument(
        "--bucket",
        default=os.environ.get("SLUICE_DEPLOY_BUCKET", ""),
        help="S3 bucket for the zip when deploying (env SLUICE_DEPLOY_BUCKET)",
    )
    parser.add_argument(
        "--stack-name",
        default=os.environ.get("SLUICE_STACK_NAME", ""),
        help="CloudFormation stack (env SLUICE_STACK_NAME; default sluice-<stage>)",
    )
    parser.add_argument(
        "--alarm-email",
        default=os.environ.get("SLUICE_ALARM_EMAIL", ""),
        help="address subscribed to the alarm topic (env SLUICE_ALARM_EMAIL)",
    )
    parser.add_argument(
        "--reset-invoker",
        default=os.environ.get("SLUICE_RESET_INVOKER", ""),
        help="IAM principal allowed to invoke the reset job's Lambda (env SLUICE_RESET_INVOKER)",
    )
    parser.add_argument(
        "--api-timeout-ms",
        type=int,
        default=int(os.environ.get("SLUICE_API_TIMEOUT_MS", "0")) or None,
        help="API Gateway integration timeout (env SLUICE_API_TIMEOUT_MS; see docs/deploy.md)",
    )
    args = parser.parse_args(argv)
    if args.deploy and not args.bucket:
        parser.error("--deploy needs --bucket or SLUICE_DEPLOY_BUCKET (an S3 bucket you own)")
    out_dir: Path = args.out or ROOT / "dist" / args.stage
    sam_file = package(args.stage, out_dir, args.api_timeout_ms)
    print(f"{sam_file}: CloudFormation template for stage {args.stage}")
    print(zip_report(out_dir / "deployment.zip"))
    if args.deploy:
        stack_name = args.stack_name or f"sluice-{args.stage}"
        deploy(args.stage, out_dir, args.bucket, stack_name, args.alarm_email, args.reset_invoker)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
