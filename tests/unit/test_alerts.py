"""The pure rules of budget alerts: crossings, the signature, the webhook URL check."""

from __future__ import annotations

import pytest

from chalicelib.core import alerts
from chalicelib.core.alerts import Budget, Sent
from chalicelib.core.errors import InvalidRequest

T = (50, 80, 100)


def b(used: int, quota: int = 100, epoch: str = "e1") -> Budget:
    return Budget(used_units=used, quota_units=quota, epoch=epoch)


def test_a_change_fires_every_threshold_it_crossed_and_only_those() -> None:
    assert alerts.crossed(T, b(40), b(85), None) == (50, 80)
    assert alerts.crossed(T, b(50), b(79), None) == ()  # 50 was crossed before this change
    assert alerts.crossed(T, b(99), b(100), None) == (100,)
    assert alerts.crossed(T, None, b(60), None) == (50,)  # a new item starts from nothing


def test_a_level_sent_in_the_same_epoch_is_not_sent_again() -> None:
    assert alerts.crossed(T, b(40), b(85), Sent("e1", 80)) == ()
    assert alerts.crossed(T, b(40), b(85), Sent("e1", 50)) == (80,)
    # A level of an earlier epoch (before a reset or a credit) does not hold back a new crossing.
    assert alerts.crossed(T, b(40), b(85), Sent("e0", 100)) == (50, 80)


def test_a_change_that_lowers_the_percentage_fires_nothing() -> None:
    # A credit (the quota grows) or a reset (usage back to 0): nothing is crossed upwards.
    assert alerts.crossed(T, b(90, 100, "100"), b(90, 200, "200"), None) == ()
    assert alerts.crossed(T, b(100, epoch="r1"), b(0, epoch="r2"), None) == ()


def test_nothing_fires_without_a_quota_to_measure_against() -> None:
    assert alerts.crossed(T, None, None, None) == ()
    assert alerts.crossed(T, b(0, 0), b(10, 0), None) == ()


def test_the_percentage_is_compared_in_integers() -> None:
    # 1/3 of 300 is exactly 33.33..%: a 34% threshold is not reached at 101 of 300 either.
    assert alerts.crossed((33, 34), b(98, 300), b(101, 300), None) == (33,)


def test_the_signature_is_an_hmac_of_timestamp_dot_body_and_verifies() -> None:
    body = alerts.payload(
        account_id="acc", token_id=None, threshold=80, budget=b(80), at="2026-12-01T12:00:00Z"
    )
    header = alerts.signature("whsec_x", body, 1_700_000_000)

    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert alerts.verify("whsec_x", body, header, now=1_700_000_100)
    assert not alerts.verify("whsec_y", body, header, now=1_700_000_100)
    assert not alerts.verify("whsec_x", body + b" ", header, now=1_700_000_100)
    assert not alerts.verify("whsec_x", body, header, now=1_700_009_999)  # replayed late
    assert b'"token_id":null' in body and b'"type":"budget.threshold_crossed"' in body


def test_backoff_doubles_and_is_bounded_by_the_attempts() -> None:
    assert alerts.backoff(4, 1.0) == (1.0, 2.0, 4.0)
    assert alerts.backoff(1, 1.0) == ()


@pytest.mark.parametrize(
    ("url", "local", "ok"),
    [
        ("https://hooks.example.com/x", False, True),
        ("http://hooks.example.com/x", True, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("http://[::1]:8080/x", True, True),
        ("http://localhost/x", True, True),
        ("http://127.0.0.1:8080/x", False, False),
        ("http://127.0.0.1.example.com/x", True, False),
        ("https://u:p@hooks.example.com/x", False, False),
        ("hooks.example.com/x", False, False),
    ],
)
def test_webhook_urls_are_https_or_loopback_on_a_local_stack(
    url: str, local: bool, ok: bool
) -> None:
    if ok:
        assert alerts.checked_webhook_url(url, allow_plain_loopback=local) == url
    else:
        with pytest.raises(InvalidRequest) as refused:
            alerts.checked_webhook_url(url, allow_plain_loopback=local)
        assert refused.value.param == "webhook_url"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("https://hooks.example.com/", "https://hooks.example.com"),
        ("https://hooks.example.com:8443/x", "https://hooks.example.com:8443/…"),
        ("https://hooks.example.com/?token=t", "https://hooks.example.com/…"),
        ("http://127.0.0.1:9/hook#frag", "http://127.0.0.1:9/…"),
    ],
)
def test_a_webhook_url_is_shown_as_its_origin_only(url: str, shown: str) -> None:
    assert alerts.shown_url(url) == shown
