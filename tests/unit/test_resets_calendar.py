"""Behaviour of the pure UTC reset calendar (chalicelib.core.calendar)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from chalicelib.core.calendar import (
    RESET_PERIODS,
    ResetPeriod,
    after_reset,
    check_period,
    due,
    next_boundary,
    period_start,
)

DAY = 86_400


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a fixed UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# --- daily ------------------------------------------------------------------------------------


def test_daily_from_mid_day_is_the_next_midnight() -> None:
    # GIVEN a time in the middle of a day
    now = at(2027, 6, 15, 13, 45, 7)
    # WHEN the next daily boundary is computed
    boundary = next_boundary("daily", now)
    # THEN it is the following midnight UTC
    assert boundary == at(2027, 6, 16)


def test_daily_exactly_at_midnight_is_the_following_midnight() -> None:
    # GIVEN a time exactly on a daily boundary
    now = at(2027, 6, 15)
    # WHEN / THEN the boundary is strictly after now: the next day's midnight
    assert next_boundary("daily", now) == at(2027, 6, 16)


def test_daily_one_second_before_new_year_is_new_year_midnight() -> None:
    # GIVEN the last second of the year
    now = at(2027, 12, 31, 23, 59, 59)
    # WHEN / THEN the boundary is 1 January of the next year, one second later
    assert next_boundary("daily", now) == at(2028, 1, 1)
    assert next_boundary("daily", now) == now + 1


# --- weekly -----------------------------------------------------------------------------------

# Monday 2027-03-29 .. Sunday 2027-04-04: a week that straddles a month end.
WEEK_DAYS = [(2027, 3, 29 + offset) if offset < 3 else (2027, 4, offset - 2) for offset in range(7)]


@pytest.mark.parametrize(
    ("day", "weekday_name"),
    list(zip(WEEK_DAYS, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], strict=True)),
    ids=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
)
def test_weekly_from_every_weekday_at_mid_day_is_the_following_monday(
    day: tuple[int, int, int], weekday_name: str
) -> None:
    # GIVEN mid-day on each day of the week starting Monday 2027-03-29
    now = at(*day, 12)
    assert utc(now).strftime("%a") == weekday_name
    # WHEN the next weekly boundary is computed
    boundary = next_boundary("weekly", now)
    # THEN it is Monday 2027-04-05 00:00 UTC (for Monday itself: 6.5 days later, not 0)
    assert boundary == at(2027, 4, 5)
    assert 0 < boundary - now < 7 * DAY


def test_weekly_exactly_monday_midnight_is_the_next_monday() -> None:
    # GIVEN exactly Monday 00:00 UTC
    now = at(2027, 3, 29)
    # WHEN / THEN the boundary is a full week later
    assert next_boundary("weekly", now) == at(2027, 4, 5)


def test_weekly_across_the_year_end_is_the_first_monday_of_january() -> None:
    # GIVEN Friday 2027-12-31
    now = at(2027, 12, 31, 18)
    # WHEN / THEN the boundary is Monday 2028-01-03
    assert next_boundary("weekly", now) == at(2028, 1, 3)


# --- monthly ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(at(2027, 1, 31, 12), at(2027, 2, 1), id="jan-31-to-feb-1"),
        pytest.param(at(2027, 2, 28, 12), at(2027, 3, 1), id="non-leap-feb-28-to-mar-1"),
        pytest.param(at(2028, 2, 29, 12), at(2028, 3, 1), id="leap-feb-29-to-mar-1"),
        pytest.param(at(2028, 2, 28, 12), at(2028, 3, 1), id="leap-feb-28-skips-feb-29"),
        pytest.param(at(2027, 12, 15, 9), at(2028, 1, 1), id="dec-15-to-next-jan-1"),
        pytest.param(at(2027, 4, 30, 23, 59, 59), at(2027, 5, 1), id="30-day-month-end"),
        pytest.param(at(2027, 8, 31, 23, 59, 59), at(2027, 9, 1), id="31-day-month-end"),
        pytest.param(at(2027, 5, 17, 8, 30), at(2027, 6, 1), id="key-created-mid-month"),
    ],
)
def test_monthly_is_the_first_of_the_next_month(now: int, expected: int) -> None:
    # GIVEN a time inside some month
    # WHEN the next monthly boundary is computed
    # THEN it is 00:00 UTC on the 1st of the following month
    assert next_boundary("monthly", now) == expected


def test_monthly_exactly_on_the_first_is_the_first_of_the_next_month() -> None:
    # GIVEN exactly 1 March 00:00 UTC
    now = at(2027, 3, 1)
    # WHEN / THEN the boundary is 1 April, not now
    assert next_boundary("monthly", now) == at(2027, 4, 1)


def test_monthly_february_29_is_not_a_boundary() -> None:
    # GIVEN the start of leap day 2028
    now = at(2028, 2, 29)
    # WHEN / THEN the current period started on 1 February and ends on 1 March
    assert period_start("monthly", now) == at(2028, 2, 1)
    assert next_boundary("monthly", at(2028, 2, 28, 23, 59, 59)) == at(2028, 3, 1)


@pytest.mark.parametrize(
    ("month", "days"), [(4, 30), (6, 30), (9, 30), (11, 30), (1, 31), (7, 31), (12, 31)]
)
def test_monthly_period_length_follows_the_month(month: int, days: int) -> None:
    # GIVEN a moment inside a 30- or 31-day month of 2027
    now = at(2027, month, 10, 10)
    # WHEN the period's start and end are computed
    start = period_start("monthly", now)
    end = next_boundary("monthly", now)
    # THEN they span exactly that month
    assert start == at(2027, month, 1)
    assert end is not None and start is not None
    assert end - start == days * DAY


# --- never and unknown periods ----------------------------------------------------------------


def test_never_has_no_boundary_and_no_period_start() -> None:
    # GIVEN any time
    now = at(2027, 6, 15, 12)
    # WHEN / THEN a "never" key has no boundary
    assert next_boundary("never", now) is None
    assert period_start("never", now) is None


@pytest.mark.parametrize("period", ["hourly", "Daily", "", "yearly", " weekly"])
def test_unknown_period_is_rejected(period: str) -> None:
    # GIVEN a period name that is not one of RESET_PERIODS
    now = at(2027, 6, 15, 12)
    # WHEN / THEN every entry point refuses it
    with pytest.raises(ValueError, match="unknown reset period"):
        next_boundary(period, now)
    with pytest.raises(ValueError, match="unknown reset period"):
        period_start(period, now)
    with pytest.raises(ValueError, match="unknown reset period"):
        after_reset(period, now - 1, now)
    with pytest.raises(ValueError, match="unknown reset period"):
        check_period(period)


def test_known_periods_are_accepted_as_is() -> None:
    assert RESET_PERIODS == ("never", "daily", "weekly", "monthly")
    assert get_args(ResetPeriod) == RESET_PERIODS
    for period in RESET_PERIODS:
        assert check_period(period) == period


def test_non_integer_time_is_rejected() -> None:
    with pytest.raises(TypeError):
        next_boundary("daily", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        next_boundary("daily", True)


# --- after_reset ------------------------------------------------------------------------------


def test_after_reset_following_missed_days_is_the_boundary_after_now() -> None:
    # GIVEN a daily key whose next_reset_at passed five days ago
    stale = at(2027, 6, 10)
    now = at(2027, 6, 15, 9, 30)
    # WHEN the key is reset now
    new = after_reset("daily", stale, now)
    # THEN the next reset is tonight's midnight: one step, not five
    assert new == at(2027, 6, 16)
    assert not due(new, now)


def test_after_reset_following_missed_months_skips_to_the_next_month_after_now() -> None:
    # GIVEN a monthly key last due on 1 November 2027, used again mid-February 2028
    stale = at(2027, 11, 1)
    now = at(2028, 2, 14, 8)
    # WHEN / THEN its next reset is 1 March 2028
    assert after_reset("monthly", stale, now) == at(2028, 3, 1)


def test_after_reset_exactly_at_the_boundary_moves_one_full_period() -> None:
    # GIVEN a weekly key processed at the very instant its boundary arrives
    boundary = at(2027, 4, 5)
    # WHEN / THEN its next reset is the following Monday
    assert after_reset("weekly", boundary, boundary) == at(2027, 4, 12)


def test_after_reset_refuses_a_key_that_is_not_due() -> None:
    # GIVEN a key whose boundary is still in the future
    now = at(2027, 6, 15, 9)
    # WHEN / THEN resetting it early is an error rather than a silent usage wipe
    with pytest.raises(ValueError, match="not due"):
        after_reset("daily", at(2027, 6, 16), now)


def test_after_reset_refuses_a_never_key() -> None:
    now = at(2027, 6, 15, 9)
    with pytest.raises(ValueError, match="never"):
        after_reset("never", now - DAY, now)


# --- due --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_reset_at", "now", "expected"),
    [
        pytest.param(None, at(2027, 6, 15), False, id="no-schedule"),
        pytest.param(at(2027, 6, 15), at(2027, 6, 15), True, id="exactly-at-boundary"),
        pytest.param(at(2027, 6, 15), at(2027, 6, 15) - 1, False, id="one-second-before"),
        pytest.param(at(2027, 6, 15), at(2027, 6, 15) + 1, True, id="one-second-after"),
        pytest.param(at(2027, 6, 15), at(2027, 7, 15), True, id="long-overdue"),
        pytest.param(0, 0, True, id="epoch-zero-is-a-real-time"),
    ],
)
def test_due_is_true_once_the_boundary_is_reached(
    next_reset_at: int | None, now: int, expected: bool
) -> None:
    assert due(next_reset_at, now) is expected


# --- calendar invariants over two full years --------------------------------------------------

MAX_LENGTH = {"daily": 1 * DAY, "weekly": 7 * DAY, "monthly": 31 * DAY}
HOURS_2027_2028 = range(at(2027, 1, 1), at(2029, 1, 1), 3600)


def brute_force_next_boundary(period: str, now: int) -> int:
    """Independent oracle: walk forward midnight by midnight until one qualifies."""
    candidate = utc(now).replace(hour=0, minute=0, second=0) + timedelta(days=1)
    while (period == "weekly" and candidate.weekday() != 0) or (
        period == "monthly" and candidate.day != 1
    ):
        candidate += timedelta(days=1)
    return int(candidate.timestamp())


def assert_is_boundary(period: str, epoch: int) -> None:
    moment = utc(epoch)
    assert (moment.hour, moment.minute, moment.second) == (0, 0, 0)
    if period == "weekly":
        assert moment.weekday() == 0
    if period == "monthly":
        assert moment.day == 1


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_every_hour_of_2027_and_2028_lies_in_exactly_one_well_formed_period(period: str) -> None:
    for now in HOURS_2027_2028:
        boundary = next_boundary(period, now)
        start = period_start(period, now)
        assert boundary is not None and start is not None

        # the boundary is strictly ahead, no more than one period away, and well formed
        assert now < boundary <= now + MAX_LENGTH[period]
        assert_is_boundary(period, boundary)
        assert boundary == brute_force_next_boundary(period, now)

        # the current period is the half-open interval [start, boundary)
        assert start <= now < boundary
        assert_is_boundary(period, start)
        assert next_boundary(period, start) == boundary
        assert period_start(period, boundary - 1) == start
        assert period_start(period, boundary) == boundary
        if period == "monthly":
            assert 28 * DAY <= boundary - start <= 31 * DAY
        else:
            assert boundary - start == MAX_LENGTH[period]

        # a reset performed now, however late, lands on that same boundary
        assert after_reset(period, start, now) == boundary
        assert not due(boundary, now)
        assert due(boundary, boundary)
