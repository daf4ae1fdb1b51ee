"""Per-key rate limits as decisions without I/O (pure): windows, refusals and headers.

A key may carry three limits (None: none):

* ``rpm_limit``: requests per fixed UTC minute window (``epoch // 60``). The reservation counts
  itself into ``requests_by_minute[minute]`` and is refused once that count has reached the limit.
* ``tpm_limit``: tokens (prompt + completion) per fixed UTC minute window. Real tokens are only
  known at settle, so the settle adds them to ``tokens_by_minute`` of the minute the settle runs
  in (a long call's tokens count when they are reported, against the calls that follow), and a
  new call is refused while the current minute's total is at or above the limit. A single call can
  therefore take a minute past the limit; the next one waits for the next minute.
* ``max_concurrency``: calls in flight, i.e. entries in the key's ``pending`` map. A call whose
  process died holds its slot until the sweeper refunds it.

Windows are fixed, not sliding: a client may send ``rpm_limit`` requests at the end of one minute
and as many again at the start of the next. Everything is checked in the reservation's own
conditional write (``store.ledger``), so the limits are exact under any concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from chalicelib.core import errors


class Limited(Protocol):
    """A key or an account: both may carry the three limits (an account's cap all its keys)."""

    @property
    def rpm_limit(self) -> int | None: ...
    @property
    def tpm_limit(self) -> int | None: ...
    @property
    def max_concurrency(self) -> int | None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def requests_by_minute(self) -> dict[int, int]: ...
    @property
    def tokens_by_minute(self) -> dict[int, int]: ...


MAX_RPM = 1_000_000
MAX_TPM = 10_000_000_000
# Every call in flight is an entry in the key's item, which DynamoDB caps at 400 KB.
MAX_CONCURRENCY = 1_000


def minute(now: int) -> int:
    """The fixed UTC minute window ``now`` falls in."""
    return now // 60


def seconds_to_next_minute(now: int) -> int:
    """1..60: when the current window closes (what ``Retry-After`` says)."""
    return 60 - now % 60


def stale_minutes(known: Iterable[int], current: int) -> tuple[int, ...]:
    """The window keys a reservation in ``current`` removes, so the counters stay small.

    DynamoDB cannot remove "every key but this one", so the write names them: those the cached
    copy of the key saw, and the two minutes before ``current``. The cached copy is younger than
    ``key_cache_seconds`` (10 s by default; anything under a minute), so a key older than that
    was already in it: nothing older than ``current - 2`` survives a reservation. (With a longer
    cache, a leftover goes with the first reservation whose copy saw it.) Removing a key that
    is already gone is a no-op.
    """
    return tuple(sorted({m for m in known if m < current} | {current - 1, current - 2}))


def has_limits(token: Limited) -> bool:
    return any(v is not None for v in (token.rpm_limit, token.tpm_limit, token.max_concurrency))


def refusal(token: Limited, now: int, who: str = "key") -> errors.RateLimited | None:
    """Which limit refused a reservation, from the key (or account) as it was (ALL_OLD)."""
    this_minute = minute(now)
    requests = token.requests_by_minute.get(this_minute, 0)
    tokens = token.tokens_by_minute.get(this_minute, 0)
    if token.max_concurrency is not None and token.in_flight >= token.max_concurrency:
        return errors.RateLimited(
            f"Concurrency limit reached: this {who} allows {token.max_concurrency} calls in "
            "flight (max_concurrency); retry when one finishes.",
            headers={"Retry-After": "1", **rate_headers(token, now, requests, tokens)},
        )
    if token.rpm_limit is not None and requests >= token.rpm_limit:
        return errors.RateLimited(
            f"Rate limit reached for requests: this {who} allows {token.rpm_limit} requests per "
            "minute (rpm_limit, fixed UTC minutes).",
            headers=_retry(token, now, requests, tokens),
        )
    if token.tpm_limit is not None and tokens >= token.tpm_limit:
        return errors.TokenRateLimited(
            f"Rate limit reached for tokens: this {who} allows {token.tpm_limit} tokens per "
            f"minute (tpm_limit, fixed UTC minutes); {tokens} used this minute.",
            headers=_retry(token, now, requests, tokens),
        )
    return None


def _retry(token: Limited, now: int, requests: int, tokens: int) -> dict[str, str]:
    return {
        "Retry-After": str(seconds_to_next_minute(now)),
        **rate_headers(token, now, requests, tokens),
    }


def rate_headers(token: Limited, now: int, requests: int, tokens: int) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the key's limits, from the current minute's
    counts of requests and tokens as this call saw them (none for a limit the key lacks)."""
    reset = f"{seconds_to_next_minute(now)}s"
    headers: dict[str, str] = {}
    if token.rpm_limit is not None:
        headers["x-ratelimit-limit-requests"] = str(token.rpm_limit)
        headers["x-ratelimit-remaining-requests"] = str(max(token.rpm_limit - requests, 0))
        headers["x-ratelimit-reset-requests"] = reset
    if token.tpm_limit is not None:
        headers["x-ratelimit-limit-tokens"] = str(token.tpm_limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(token.tpm_limit - tokens, 0))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers
