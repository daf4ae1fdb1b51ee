"""UTC reset calendar for API-key quotas (pure: no clock, no I/O, no AWS).

A key with a reset period has its usage counters zeroed at calendar boundaries:

* ``daily``   - every day at 00:00 UTC;
* ``weekly``  - every Monday at 00:00 UTC;
* ``monthly`` - the 1st of every month at 00:00 UTC;
* ``never``   - no boundary at all.

Why UTC: the gateway runs in many Lambda instances and regions, and a key's owner may be
anywhere. A single fixed zone gives every instance the same answer for the same instant, and UTC
has no daylight-saving jumps, so a day is always 86,400 seconds and no boundary is ever skipped
or repeated. Internally every ``datetime`` is timezone-aware (``datetime.UTC``, the same object as
``timezone.utc``); naive datetimes are never built, so the host's local zone cannot leak in.

Why "strictly after": ``next_boundary`` returns the first boundary *greater than* ``now``. A key
created (or reset) exactly at midnight has therefore just begun a full period instead of being due
again at once, and ``due(next_reset_at, now)`` is true at the boundary instant itself, so a
period is the half-open interval ``[period_start, next_boundary)``. Every instant belongs to
exactly one period.

Why one reset after missed periods: resets are applied lazily, when a key is next used. If a
daily key sat idle for five days, its counters must be zeroed once, and its new ``next_reset_at``
must be the boundary after *now*, not the boundary after the stale one (which would leave it
still due and replay four more pointless resets). ``after_reset`` guarantees exactly that.

Time is always passed in as integer epoch seconds, which keeps these functions deterministic and
trivially testable; callers read the clock once and pass the same ``now`` to every call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal

ResetPeriod = Literal["never", "daily", "weekly", "monthly"]
RESET_PERIODS: Final[tuple[ResetPeriod, ...]] = ("never", "daily", "weekly", "monthly")

_DAY: Final = timedelta(days=1)
_WEEK: Final = timedelta(days=7)


def check_period(period: str) -> ResetPeriod:
    """Return ``period`` typed as a ``ResetPeriod``; raise ``ValueError`` if it is not one."""
    for known in RESET_PERIODS:
        if period == known:
            return known
    raise ValueError(f"unknown reset period {period!r}; expected one of {', '.join(RESET_PERIODS)}")


def _to_utc(epoch: int) -> datetime:
    """Aware UTC datetime for integer epoch seconds (``ValueError`` when not representable)."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise TypeError(f"time must be integer epoch seconds, got {type(epoch).__name__}")
    try:
        return datetime.fromtimestamp(epoch, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"epoch seconds out of range: {epoch}") from exc


def _to_epoch(moment: datetime) -> int:
    """Integer epoch seconds of an aware datetime (boundaries are whole seconds, so exact)."""
    return int(moment.timestamp())


def _floor(period: ResetPeriod, moment: datetime) -> datetime:
    """The last boundary at or before ``moment`` (``period`` must not be ``never``)."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return midnight
    if period == "weekly":
        return midnight - timedelta(days=midnight.weekday())  # Monday is weekday 0
    return midnight.replace(day=1)


def _step(period: ResetPeriod, boundary: datetime) -> datetime:
    """The boundary one period after ``boundary`` (which must itself be a boundary)."""
    if period == "daily":
        return boundary + _DAY
    if period == "weekly":
        return boundary + _WEEK
    if boundary.month == 12:
        return boundary.replace(year=boundary.year + 1, month=1)
    return boundary.replace(month=boundary.month + 1)


def _bounds(period: str, now: int) -> tuple[datetime, datetime] | None:
    """``(start, end)`` of the period holding ``now``: ``start <= now < end``; None for never."""
    checked = check_period(period)
    moment = _to_utc(now)
    if checked == "never":
        return None
    start = _floor(checked, moment)
    try:
        end = _step(checked, start)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"no {checked} boundary after {now} is representable") from exc
    return start, end


def next_boundary(period: str, now: int) -> int | None:
    """Epoch seconds of the first boundary strictly after ``now``; None for ``never``.

    Guaranteed for the other periods: ``now < result``, the result is 00:00:00 UTC (on a Monday
    for ``weekly``, on the 1st for ``monthly``), and no boundary lies strictly between the two.
    Raises ``ValueError`` for an unknown period.
    """
    bounds = _bounds(period, now)
    return None if bounds is None else _to_epoch(bounds[1])


def period_start(period: str, now: int) -> int | None:
    """Epoch seconds of the last boundary at or before ``now`` (the "used since" instant).

    None for ``never``. Guaranteed: ``period_start <= now < next_boundary`` and
    ``next_boundary(period, period_start(period, now)) == next_boundary(period, now)``.
    """
    bounds = _bounds(period, now)
    return None if bounds is None else _to_epoch(bounds[0])


def due(next_reset_at: int | None, now: int) -> bool:
    """True when a reset is scheduled and its boundary has been reached (``<= now``)."""
    return next_reset_at is not None and next_reset_at <= now


def after_reset(period: str, next_reset_at: int, now: int) -> int:
    """The new ``next_reset_at`` for a key reset at ``now`` because ``next_reset_at`` passed.

    The result is the first boundary strictly after ``now``, however many periods were missed,
    so the key is reset exactly once and is not due again until the next boundary. Raises
    ``ValueError`` if the key was not due (a reset before the boundary would wipe usage early),
    for ``never`` (such a key has no boundary to pass) and for an unknown period.
    """
    if not due(next_reset_at, now):
        raise ValueError(f"reset not due: next_reset_at {next_reset_at} is after now {now}")
    boundary = next_boundary(period, now)
    if boundary is None:
        raise ValueError("a key with reset period 'never' has no reset to perform")
    return boundary
