"""devtools/package.py's own steps, without running chalice or reaching AWS."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_checks import INFRA

from devtools import package
from devtools.package import infra_template, load_template, merge_templates, pin_to_stack


def test_merged_infra_template_holds_every_file_and_can_only_deploy_its_stage() -> None:
    # GIVEN the infra templates
    files = [
        load_template(INFRA / name)
        for name in ("tables.yaml", "alarms.yaml", "invokers.yaml", "relay.yaml", "alerts.yaml")
    ]

    # WHEN they are merged for prod
    merged = infra_template("prod")

    # THEN every resource of each is there, and Stage accepts prod alone
    assert set(merged["Resources"]) == {name for file in files for name in file["Resources"]}
    assert merged["Parameters"]["Stage"]["AllowedValues"] == ["prod"]
    assert merged["Parameters"]["Stage"]["Default"] == "prod"


def test_merging_refuses_a_name_defined_differently_twice() -> None:
    # GIVEN two templates defining the same resource differently
    first = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    second = {"Resources": {"Topic": {"Type": "AWS::SQS::Queue"}}}

    # WHEN they are merged THEN the conflict is reported, not silently resolved
    with pytest.raises(ValueError, match=r"Resources\.Topic"):
        merge_templates([first, second])


def test_policy_arns_are_pinned_to_the_stacks_region_and_account() -> None:
    # GIVEN a policy statement written for any region and account
    statement = {
        "Action": ["dynamodb:GetItem"],
        "Resource": ["arn:aws:dynamodb:*:*:table/sluice-prod-accounts"],
        "Condition": {"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}},
    }

    # WHEN it is pinned
    pinned = pin_to_stack(statement)

    # THEN ARNs and service hosts name the stack's own, and actions are untouched
    assert pinned == {
        "Action": ["dynamodb:GetItem"],
        "Resource": [
            {
                "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:"
                "table/sluice-prod-accounts"
            }
        ],
        "Condition": {
            "StringLike": {"kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.${AWS::URLSuffix}"}}
        },
    }


def test_deploy_without_a_bucket_stops_before_packaging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no artifact bucket, and packaging that must not run
    monkeypatch.delenv("SLUICE_DEPLOY_BUCKET", raising=False)

    def must_not_package(*args: object) -> None:
        raise AssertionError("packaged without a bucket")

    monkeypatch.setattr(package, "package", must_not_package)

    # WHEN a deploy is asked for
    with pytest.raises(SystemExit) as exited:
        package.main(["--stage", "prod", "--deploy"])

    # THEN it stops with a usage error that names the missing bucket
    assert exited.value.code == 2
    assert "SLUICE_DEPLOY_BUCKET" in capsys.readouterr().err


def test_a_lambda_permission_is_pointed_at_its_functions_resource() -> None:
    # GIVEN the merged infra (the reset invoker's permission names the function as deployed) and
    # the reset function as chalice package declares it
    template = infra_template("prod")
    template["Resources"]["ResetQuotas"] = {"Type": "AWS::Serverless::Function", "Properties": {}}
    # (the relay's resources are wired by their own test: leave them out here)
    for name in [name for name in template["Resources"] if name.startswith("Relay")]:
        del template["Resources"][name]

    # WHEN the template is finished
    package.finish_template(template, "prod", ["reset_quotas"])

    # THEN the permission refers to the function's resource (created first), still optional
    permission = template["Resources"]["ResetQuotasInvokePermission"]
    assert permission["Properties"]["FunctionName"] == {"Ref": "ResetQuotas"}
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"
    assert permission["Properties"]["Principal"] == {"Ref": "ResetInvokerPrincipal"}
    assert permission["Condition"] == "HasResetInvoker"
    assert template["Parameters"]["ResetInvokerPrincipal"]["Default"] == ""


def test_a_permission_for_no_function_of_the_app_is_refused() -> None:
    # GIVEN a permission naming a function the app does not declare
    template = {
        "Resources": {
            "Stray": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {"FunctionName": {"Fn::Sub": "sluice-${Stage}-nope"}},
            }
        }
    }

    # WHEN the template is finished  THEN packaging stops and names it
    with pytest.raises(ValueError, match="Stray"):
        package.finish_template(template, "prod", ["reset_quotas"])


def test_deploy_passes_the_reset_invoker_as_a_parameter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN an aws CLI that records its commands
    commands: list[list[str]] = []

    class Ran:
        stdout = "1"

    def record(command: list[str], **kwargs: object) -> Ran:
        commands.append(command)
        return Ran()

    monkeypatch.setattr(package.shutil, "which", lambda name: "/usr/bin/aws")
    monkeypatch.setattr(package.subprocess, "run", record)

    # WHEN a stack is deployed with a reset invoker
    principal = "arn:aws:iam::210987654321:role/nightly-jobs"
    package.deploy("prod", tmp_path, "bucket", "sluice-prod", "", principal)

    # THEN the deploy command sets the template parameter
    deploy = commands[-1]
    assert deploy[1:3] == ["cloudformation", "deploy"]
    overrides = deploy[deploy.index("--parameter-overrides") + 1 :]
    assert overrides == [f"ResetInvokerPrincipal={principal}"]
