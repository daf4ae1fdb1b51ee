"""The pure rate-limit rules: windows, refusals from the stored key, headers."""

from __future__ import annotations

from chalicelib.core import errors, limits
from chalicelib.core.records import TokenRecord

NOW = 1_803_990_615  # 15 s into a UTC minute
MINUTE = NOW // 60


def _token(**fields: object) -> TokenRecord:
    return TokenRecord(id="t", account_id="a", name="k", key_hash="h", **fields)  # type: ignore[arg-type]


def test_windows_are_fixed_utc_minutes() -> None:
    assert limits.minute(MINUTE * 60) == limits.minute(MINUTE * 60 + 59) == MINUTE
    assert limits.seconds_to_next_minute(MINUTE * 60) == 60
    assert limits.seconds_to_next_minute(MINUTE * 60 + 59) == 1


def test_stale_minutes_never_name_the_current_one() -> None:
    stale = limits.stale_minutes([MINUTE, MINUTE - 7, MINUTE + 1], MINUTE)
    assert stale == (MINUTE - 7, MINUTE - 2, MINUTE - 1)


def test_no_limit_never_refuses() -> None:
    busy = _token(in_flight=500, requests_by_minute={MINUTE: 10**6})
    assert limits.refusal(busy, NOW) is None
    assert limits.rate_headers(busy, NOW, 10, 10) == {}


def test_each_limit_refuses_with_its_own_type_and_message() -> None:
    concurrency = limits.refusal(_token(max_concurrency=2, in_flight=2), NOW)
    requests = limits.refusal(_token(rpm_limit=5, requests_by_minute={MINUTE: 5}), NOW)
    tokens = limits.refusal(_token(tpm_limit=100, tokens_by_minute={MINUTE: 130}), NOW)

    assert isinstance(concurrency, errors.RateLimited) and concurrency.type == "requests"
    assert "max_concurrency" in concurrency.message
    assert concurrency.headers["Retry-After"] == "1"
    assert isinstance(requests, errors.RateLimited) and requests.type == "requests"
    assert requests.headers["Retry-After"] == "45"
    assert isinstance(tokens, errors.TokenRateLimited) and tokens.type == "tokens"
    assert "130 used this minute" in tokens.message
    assert tokens.headers["x-ratelimit-remaining-tokens"] == "0"
    assert {e.instance_code for e in (concurrency, requests, tokens)} == {"rate_limit_exceeded"}
    assert all(e.status == 429 for e in (concurrency, requests, tokens))


def test_last_minutes_counts_do_not_refuse() -> None:
    token = _token(rpm_limit=5, requests_by_minute={MINUTE - 1: 5})
    assert limits.refusal(token, NOW) is None


def test_headers_never_report_a_negative_remainder() -> None:
    headers = limits.rate_headers(_token(rpm_limit=2, tpm_limit=10), NOW, 3, 25)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"] == "45s"
