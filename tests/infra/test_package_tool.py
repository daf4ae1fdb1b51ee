"""devtools/package.py's own steps, without running chalice or reaching AWS."""

from __future__ import annotations

import pytest
from infra_checks import INFRA

from devtools import package
from devtools.package import infra_template, load_template, merge_templates, pin_to_stack


def test_merged_infra_template_holds_every_file_and_can_only_deploy_its_stage() -> None:
    # GIVEN the infra templates
    tables, alarms = load_template(INFRA / "tables.yaml"), load_template(INFRA / "alarms.yaml")
    relay = load_template(INFRA / "relay.yaml")

    # WHEN they are merged for prod
    merged = infra_template("prod")

    # THEN every resource of each is there, and Stage accepts prod alone
    assert set(merged["Resources"]) == (
        set(tables["Resources"]) | set(alarms["Resources"]) | set(relay["Resources"])
    )
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
