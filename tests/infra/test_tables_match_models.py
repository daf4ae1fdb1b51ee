"""infra/tables.yaml declares exactly the tables, keys, indexes and TTL the models use."""

from __future__ import annotations

import copy

from infra_checks import INFRA, durability_problems, model_specs, template_specs

from devtools.package import load_template


def test_tables_template_declares_exactly_the_models_keys_indexes_and_ttl() -> None:
    # GIVEN the tables template and the pynamodb models
    template = load_template(INFRA / "tables.yaml")

    # WHEN both are reduced to the same form
    declared, expected = template_specs(template), model_specs()

    # THEN they are equal, table by table: no extra table, index or attribute, none missing
    assert sorted(declared) == sorted(expected)
    for suffix in expected:
        assert declared[suffix] == expected[suffix], suffix


def test_every_table_is_on_demand_recoverable_encrypted_and_retained() -> None:
    # GIVEN the tables template
    template = load_template(INFRA / "tables.yaml")

    # WHEN its tables are checked for durability settings
    problems = durability_problems(template)

    # THEN there is nothing to report
    assert problems == []


def test_a_drifted_template_is_caught_by_the_comparison() -> None:
    # GIVEN the tables template with one index's projection and one TTL changed
    template = copy.deepcopy(load_template(INFRA / "tables.yaml"))
    tokens = template["Resources"]["TokensTable"]["Properties"]
    tokens["GlobalSecondaryIndexes"][1]["Projection"] = {"ProjectionType": "ALL"}
    del template["Resources"]["UsageTable"]["Properties"]["TimeToLiveSpecification"]
    del template["Resources"]["EventsTable"]["Properties"]["PointInTimeRecoverySpecification"]

    # WHEN it is compared with the models
    declared, expected = template_specs(template), model_specs()

    # THEN exactly the changed tables differ, and the durability check names the lost PITR
    assert [s for s in expected if declared[s] != expected[s]] == ["tokens", "usage"]
    assert durability_problems(template) == ["events: point-in-time recovery is off"]
