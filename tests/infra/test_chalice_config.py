""".chalice/config.json and the IAM policy files, checked without packaging anything."""

from __future__ import annotations

import json
import re

import pytest
from infra_checks import CHALICE_DIR, STAGES, as_list, chalice_config, policy, stage_environment

from chalicelib.core.settings import Settings

# Variables that hold a secret's value: only their SSM *names* may be configured for a stage.
SECRET_VALUES = {"SLUICE_ADMIN_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_uses_its_own_policy_file_and_a_regional_endpoint(stage: str) -> None:
    # GIVEN the stage's chalice configuration
    config = chalice_config()["stages"][stage]

    # WHEN the settings that decide the role and the endpoint are read
    policy_file = CHALICE_DIR / config["iam_policy_file"]

    # THEN chalice does not generate a policy, the stage's file exists, and the API is REGIONAL
    assert config["autogen_policy"] is False
    assert policy_file.name == f"policy-{stage}.json" and policy_file.is_file()
    assert config["api_gateway_endpoint_type"] == "REGIONAL"
    assert 1 <= config["log_retention_in_days"] <= 365


@pytest.mark.parametrize("stage", STAGES)
def test_stage_environment_names_the_stage_tables_and_parameters_but_holds_no_secret(
    stage: str,
) -> None:
    # GIVEN the stage's environment variables
    env = stage_environment(stage)

    # WHEN the app reads its settings from them
    settings = Settings.from_env(env)

    # THEN tables are sluice-<stage>-*, secrets are read from /sluice/<stage>/ in SSM
    assert settings.stage == stage
    assert settings.table_name("accounts") == f"sluice-{stage}-accounts"
    assert settings.admin_key is None
    assert settings.admin_key_ssm_parameter == f"/sluice/{stage}/admin-key"
    assert settings.channel_secret_ssm_prefix == f"/sluice/{stage}/channels/"
    assert settings.dynamodb_endpoint is None
    # AND no variable carries a secret's value
    assert SECRET_VALUES.isdisjoint(env)


def test_dev_policy_is_the_prod_policy_for_the_dev_stage() -> None:
    # GIVEN both policy files
    prod, dev = policy("prod"), policy("dev")

    # WHEN the prod one is rewritten for the dev stage's names
    text = json.dumps(prod).replace("sluice-prod", "sluice-dev").replace("/prod/", "/dev/")

    # THEN it is the dev one: the stages cannot drift apart
    assert json.loads(text) == dev


@pytest.mark.parametrize("stage", STAGES)
def test_policy_names_actions_and_the_stages_own_resources(stage: str) -> None:
    # GIVEN the stage's policy statements
    statements = as_list(policy(stage)["Statement"])

    # WHEN their actions and resources are listed
    actions = [a for s in statements for a in as_list(s["Action"])]
    resources = [r for s in statements for r in as_list(s["Resource"])]

    # THEN every statement allows, no action is a wildcard or a Scan
    assert {s["Effect"] for s in statements} == {"Allow"}
    assert [a for a in actions if "*" in a or a.lower() == "dynamodb:scan"] == []
    # AND every resource is an ARN naming this stage, except KMS keys (used only through SSM
    # for this stage's parameters, which the condition says)
    loose = [r for r in resources if not re.search(rf"sluice-{stage}\b|/sluice/{stage}/", r)]
    assert loose == ["arn:aws:kms:*:*:key/*"]
    [kms] = [s for s in statements if "arn:aws:kms:*:*:key/*" in as_list(s["Resource"])]
    assert kms["Condition"]["StringLike"] == {
        "kms:ViaService": "ssm.*.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": f"arn:aws:ssm:*:*:parameter/sluice/{stage}/*",
    }
