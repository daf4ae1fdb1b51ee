"""Video jobs through the relay (Starlette test client + moto): reserved at create, pending while
the job runs, settled once when it completes (refunded when it fails or is deleted first), seen
only by the account that created it, and finished by the sweeper when nobody polls."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.services import ledger_verify, sweeper, videos
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord
from devtools.mock_media import VIDEO_BYTES

JOB_UNITS = 200_000  # 4 s of sora-2 at US$0.10 a second
CREATE = {"model": "sora-2", "prompt": "a lighthouse at dusk", "seconds": "4"}


def _setup(relay_api: Any, name: str = "acme") -> tuple[str, dict[str, Any]]:
    created = relay_api.new_account(name, quota_usd="10")
    return created["account"]["id"], created["default_token"]


def _spent(token: dict[str, Any], account_id: str) -> tuple[int, int, int, int]:
    key = token_store.get(token["id"])
    account = account_store.get(account_id)
    assert key is not None and account is not None
    return key.used_units, key.reserved_units, account.used_units, account.reserved_units


def _call(relay_api: Any, method: str, path: str, token: dict[str, Any], body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token['key']}", "Content-Type": "application/json"}
    raw = json.dumps(body).encode() if body is not None else b""
    return relay_api.client.http.request(method, path, headers=headers, body=raw)


def _create(relay_api: Any, token: dict[str, Any], **fields: str) -> str:
    response = _call(relay_api, "POST", "/v1/videos", token, {**CREATE, **fields})
    assert response.status_code == 200, response.body
    return str(response.json_body["id"])


def _records() -> list[Any]:
    return list(UsageRecord.scan())


def test_a_job_is_reserved_at_create_and_charged_once_when_it_completes(
    relay_api: Any, upstream: Any
) -> None:
    # GIVEN a job just created (the demo completes it on its second retrieval)
    account_id, token = _setup(relay_api)
    video_id = _create(relay_api, token)
    assert _spent(token, account_id) == (0, JOB_UNITS, 0, JOB_UNITS)
    assert _records() == []  # pending: nothing decided yet

    # WHEN it is polled until it completes, then polled and listed again
    statuses = [
        _call(relay_api, "GET", f"/v1/videos/{video_id}", token).json_body["status"]
        for _ in range(4)
    ]
    listed = _call(relay_api, "GET", "/v1/videos", token).json_body
    content = _call(relay_api, "GET", f"/v1/videos/{video_id}/content", token)

    # THEN it was charged exactly once, at its seconds x price
    assert statuses == ["in_progress", "completed", "completed", "completed"]
    assert _spent(token, account_id) == (JOB_UNITS, 0, JOB_UNITS, 0)
    [record] = _records()
    assert (record.state, record.cost_units, record.model) == ("settled", JOB_UNITS, "sora-2")
    # AND the list and the file are there
    assert [v["id"] for v in listed["data"]] == [video_id] and listed["has_more"] is False
    assert content.status_code == 200 and content.body == VIDEO_BYTES
    assert content.headers["Content-Type"] == "video/mp4"


def test_a_job_is_invisible_to_another_account(relay_api: Any, upstream: Any) -> None:
    # GIVEN a job of one account, and another account's key
    _account_id, token = _setup(relay_api)
    video_id = _create(relay_api, token)
    other_account, other = _setup(relay_api, "other")
    _create(relay_api, other)  # the other account has a job of its own

    # WHEN the other account calls every route on the first account's job
    answers = [
        _call(relay_api, "GET", f"/v1/videos/{video_id}", other),
        _call(relay_api, "GET", f"/v1/videos/{video_id}/content", other),
        _call(relay_api, "DELETE", f"/v1/videos/{video_id}", other),
        _call(relay_api, "POST", f"/v1/videos/{video_id}/remix", other, {"prompt": "again"}),
        _call(relay_api, "GET", f"/v1/videos?after={video_id}", other),
    ]
    listed = _call(relay_api, "GET", "/v1/videos", other).json_body

    # THEN each is the same 404 an unknown id gets, and the list holds only its own job
    unknown = _call(relay_api, "GET", "/v1/videos/video_nope", other)
    for answer in [*answers, unknown]:
        assert answer.status_code == 404, answer.body
        assert answer.json_body["error"]["param"] == "video_id"
    assert video_id not in [v["id"] for v in listed["data"]] and len(listed["data"]) == 1
    # AND the job is untouched upstream, nothing of it charged to the other account
    assert upstream.video_jobs[video_id]["status"] == "queued"
    assert _spent(other, other_account) == (0, JOB_UNITS, 0, JOB_UNITS)


def test_a_failed_job_is_refunded(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    video_id = _create(relay_api, token, prompt="this one breaks [fail]")
    answer = _call(relay_api, "GET", f"/v1/videos/{video_id}", token).json_body
    assert answer["status"] == "failed"
    assert _spent(token, account_id) == (0, 0, 0, 0)
    [record] = _records()
    assert (record.state, record.cost_units) == ("refunded", 0)


def test_a_job_deleted_before_it_completes_is_refunded_and_gone(
    relay_api: Any, upstream: Any
) -> None:
    account_id, token = _setup(relay_api)
    upstream.video_polls = 10
    video_id = _create(relay_api, token)
    deleted = _call(relay_api, "DELETE", f"/v1/videos/{video_id}", token)
    assert deleted.status_code == 200 and deleted.json_body["deleted"] is True
    assert _spent(token, account_id) == (0, 0, 0, 0)
    assert _call(relay_api, "GET", f"/v1/videos/{video_id}", token).status_code == 404


def test_a_remix_runs_on_the_same_channel_and_is_charged_like_its_source(
    relay_api: Any, upstream: Any
) -> None:
    account_id, token = _setup(relay_api)
    upstream.video_polls = 1
    source = _create(relay_api, token, seconds="8")
    _call(relay_api, "GET", f"/v1/videos/{source}", token)  # completes: 8 s charged
    remix = _call(relay_api, "POST", f"/v1/videos/{source}/remix", token, {"prompt": "at dawn"})
    assert remix.status_code == 200, remix.body
    assert remix.json_body["remixed_from_video_id"] == source
    _call(relay_api, "GET", f"/v1/videos/{remix.json_body['id']}", token)
    assert _spent(token, account_id) == (4 * JOB_UNITS, 0, 4 * JOB_UNITS, 0)


def test_the_sweeper_settles_a_completed_job_nobody_polled(relay_api: Any, upstream: Any) -> None:
    # GIVEN a job that completes as soon as someone asks, and a long-running one
    account_id, token = _setup(relay_api)
    upstream.video_polls = 1
    done = _create(relay_api, token)
    upstream.video_polls = 1_000
    running = _create(relay_api, token)

    # WHEN the sweeper runs long after both creates ended (past the reservation max age)
    later = int(time.time()) + 3_600
    sweeper.sweep(later)

    # THEN the completed job is settled at its price, the running one still reserved
    assert _spent(token, account_id) == (JOB_UNITS, JOB_UNITS, JOB_UNITS, JOB_UNITS)
    [record] = _records()
    assert (record.state, record.cost_units) == ("settled", JOB_UNITS)
    assert upstream.video_jobs[done]["status"] == "completed"
    # AND the verifier does not take the running job's reservation for a crashed call's
    assert ledger_verify.verify(later).drift == []

    # AND once the running job outlives its deadline (6 h), the sweeper refunds it
    sweeper.sweep(int(time.time()) + 7 * 3_600)
    assert _spent(token, account_id) == (JOB_UNITS, 0, JOB_UNITS, 0)
    states = sorted((r.state, r.detail or "") for r in _records())
    assert states == [("refunded", "video job outlived its deadline"), ("settled", "")]
    assert upstream.video_jobs[running]["status"] == "in_progress"


def test_bad_video_requests_are_openai_4xx_and_charge_nothing(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    cases = [
        ("POST", "/v1/videos", {"prompt": "x"}, "model"),
        ("POST", "/v1/videos", {"model": "sora-2"}, "prompt"),
        ("POST", "/v1/videos", {"model": "sora-2", "prompt": "x", "seconds": "long"}, "seconds"),
        ("POST", "/v1/videos", {"model": ["sora-2"], "prompt": "x"}, "model"),
        ("POST", "/v1/videos", {"model": "no-such-model", "prompt": "x"}, "model"),
        ("GET", "/v1/videos/video_unknown", None, "video_id"),
        ("GET", "/v1/videos/video_unknown/content", None, "video_id"),
        ("DELETE", "/v1/videos/video_unknown", None, "video_id"),
        ("POST", "/v1/videos/video_unknown/remix", {"prompt": "x"}, "video_id"),
        ("GET", "/v1/videos?limit=0", None, "limit"),
        ("GET", "/v1/videos?limit=1&colour=blue", None, "colour"),
        ("GET", "/v1/videos?order=asc", None, "order"),
    ]
    for method, path, body, param in cases:
        response = _call(relay_api, method, path, token, body)
        assert 400 <= response.status_code < 500, (method, path, response.body)
        assert response.json_body["error"]["param"] == param, (method, path)
    video_id = _create(relay_api, token)
    bad_variant = _call(relay_api, "GET", f"/v1/videos/{video_id}/content?variant=x", token)
    assert bad_variant.status_code == 400 and bad_variant.json_body["error"]["param"] == "variant"
    assert _spent(token, account_id) == (0, JOB_UNITS, 0, JOB_UNITS)  # only the one real job


class Killed(BaseException):
    """The process dying: nothing in Sluice catches a BaseException."""


def test_a_create_that_dies_before_remembering_its_job_is_refunded_by_the_sweeper(
    relay_api: Any, monkeypatch: Any
) -> None:
    # GIVEN a create whose process dies right after the provider made the job
    from chalicelib.store import video_jobs

    account_id, token = _setup(relay_api)

    def dies(*args: Any, **kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(video_jobs, "remember", dies)
    with pytest.raises(Killed):
        videos.create(
            json.dumps(CREATE).encode(),
            "application/json",
            f"Bearer {token['key']}",
            "127.0.0.1",
            deadline=None,
        )
    assert _spent(token, account_id) == (0, JOB_UNITS, 0, JOB_UNITS)

    # WHEN the sweeper runs past the reservation max age
    sweeper.sweep(int(time.time()) + 3_600)

    # THEN nobody can ever fetch that job: it is refunded, and logged as swept
    assert _spent(token, account_id) == (0, 0, 0, 0)
    [record] = _records()
    assert (record.state, record.detail) == ("refunded", "swept")
