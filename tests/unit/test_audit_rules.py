"""The audit trail's pure rules: diffs, month partitions, who is acting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.core import audit


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_a_diff_names_only_the_fields_that_changed() -> None:
    old = {"name": "a", "status": "enabled", "models": ["x"]}
    new = {"name": "a", "status": "disabled", "models": ["x", "y"]}
    assert audit.diff(old, new) == {
        "status": {"old": "enabled", "new": "disabled"},
        "models": {"old": ["x"], "new": ["x", "y"]},
    }


def test_months_are_walked_back_across_a_year_boundary() -> None:
    assert audit.months_back(_ms(2027, 2, 3), _ms(2026, 11, 30)) == [
        "2027-02",
        "2027-01",
        "2026-12",
        "2026-11",
    ]
    assert audit.month_of(_ms(2026, 12, 31, 23, 59, 59)) == "2026-12"


def test_inside_a_request_nobody_acts_until_named_and_nobody_after() -> None:
    # GIVEN a request scope  WHEN nobody was named  THEN an entry cannot be made
    with audit.request_scope():
        with pytest.raises(audit.Unattributed):
            audit.entry("token.update", "t1")
        # WHEN the edge names the caller  THEN entries carry it
        audit.act_as(audit.Actor("acct1", "203.0.113.7", "req-1"))
        made = audit.entry("token.update", "t1", account_id="acct1")
        assert (made.actor, made.target_type) == (
            audit.Actor("acct1", "203.0.113.7", "req-1"),
            "token",
        )
    # AND outside any request the in-process caller is the admin, with a request id of its own
    outside = audit.entry("group.update", "vip").actor
    assert outside.actor == "admin" and outside.request_id.startswith("local-")


def test_a_line_shows_its_time_in_utc_to_the_millisecond() -> None:
    line = audit.AuditLine(
        _ms(2026, 12, 1) + 7, "admin", "group.update", "group", "vip", None, {}, "", "r"
    )
    assert audit.line_json(line)["at"] == "2026-12-01T00:00:00.007Z"
