"""cfn-lint finds nothing in infra/*.yaml nor in the packaged, merged prod template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from infra_checks import INFRA

CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def _lint(*templates: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CFN_LINT, "--format", "parseable", *map(str, templates)],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_infra_templates_pass_cfn_lint() -> None:
    # GIVEN every template under infra/
    templates = sorted(INFRA.glob("*.yaml"))
    assert [t.name for t in templates] == [
        "alarms.yaml",
        "alerts.yaml",
        "invokers.yaml",
        "relay.yaml",
        "tables.yaml",
    ]

    # WHEN cfn-lint checks them
    result = _lint(*templates)

    # THEN it reports nothing (errors, warnings or informational findings)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.slow
def test_packaged_prod_template_passes_cfn_lint(packaged_prod: tuple[Path, dict[str, Any]]) -> None:
    # GIVEN the template `make package STAGE=prod` wrote (chalice's resources, SAM transform
    # included, merged with infra/)
    out_dir, _ = packaged_prod

    # WHEN cfn-lint checks it
    result = _lint(out_dir / "sam.json")

    # THEN it reports nothing
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.slow
def test_the_packaged_template_translated_offline_passes_cfn_lint(
    packaged_prod: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN the packaged prod template, through the SAM transform here (as CloudFormation would)
    import json

    from devtools.package import translated_offline

    _, template = packaged_prod
    translated = translated_offline(template)
    plain = tmp_path / "translated.json"
    plain.write_text(json.dumps(translated))

    # THEN only plain CloudFormation is left, and cfn-lint reports nothing in it
    kinds = {resource["Type"] for resource in translated["Resources"].values()}
    assert not [kind for kind in kinds if kind.startswith("AWS::Serverless::")]
    assert {"AWS::ApiGateway::RestApi", "AWS::Lambda::Function"} <= kinds
    result = _lint(plain)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cfn_lint_reports_a_broken_template(tmp_path: Path) -> None:
    # GIVEN the tables template with an index keyed on an undeclared attribute
    broken = tmp_path / "broken.yaml"
    text = (INFRA / "tables.yaml").read_text()
    broken.write_text(
        text.replace("{AttributeName: kind, KeyType: HASH}", "{AttributeName: nope, KeyType: HASH}")
    )

    # WHEN cfn-lint checks it
    result = _lint(broken)

    # THEN it fails and says where
    assert result.returncode != 0
    assert "broken.yaml" in result.stdout
