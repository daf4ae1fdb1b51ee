"""core.observe: every log line is one JSON object with a level, an event and a timestamp."""

from __future__ import annotations

import json
import sys

import pytest

from chalicelib.core import observe


def test_a_warning_is_one_json_line_with_its_level(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a warning is logged
    observe.log("quota_reset_skipped", level="WARNING", token_id="t1")
    # THEN it is one JSON line carrying the level, the event and the fields
    [line] = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert (record["level"], record["event"], record["token_id"]) == (
        "WARNING",
        "quota_reset_skipped",
        "t1",
    )
    assert isinstance(record["timestamp"], int)


def test_an_error_carries_its_type_and_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an exception raised somewhere
    try:
        raise KeyError("missing")
    except KeyError as exc:
        error = exc
    # WHEN it is logged
    observe.log("unhandled_error", level="ERROR", error=error, route="/x")
    # THEN the line names the type and holds the traceback text
    record = json.loads(capsys.readouterr().out)
    assert (record["level"], record["error_type"], record["route"]) == ("ERROR", "KeyError", "/x")
    assert "Traceback (most recent call last)" in record["traceback"]
    assert "raise KeyError" in record["traceback"]


def test_diverted_lines_below_the_lowest_level_are_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN logs diverted to stderr from WARNING up (what the CLI does)
    with observe.diverted(sys.stderr, "WARNING"):
        # WHEN an INFO and a WARNING line are logged
        observe.log("quota_reset", token_id="t1")
        observe.log("quota_reset_skipped", level="WARNING", token_id="t2")
    # THEN stdout stays empty and stderr holds only the warning
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [json.loads(line)["event"] for line in captured.err.splitlines()] == [
        "quota_reset_skipped"
    ]
