"""Video jobs (OpenAI's asynchronous ``/v1/videos``): owned, routed and charged once.

A job outlives the call that creates it, so its reservation does too. The ledger is the one
every call uses (``store.ledger``); only the entry's life is longer::

    POST /v1/videos ─► reserve seconds x price (entry marked "video") ─► provider creates job
        ─► remember: video#<id> (account, channel, what settling needs) and
           video-request#<rid> (the same, for the sweeper) ─► answer the job
    GET /v1/videos/{id}, the list, DELETE, the sweeper: each look at the job on its channel
        completed ─► decide "settled" at the job's seconds x price (record first, then both
                     items; a record already there is followed: charged once, however many
                     polls race)
        failed, or deleted before completing ─► decide "refunded"
        still running ─► nothing; the entry stays pending
    sweeper, for an entry whose call is long gone (older than the reservation max age):
        record there      ─► follow it (the usual rule)
        no video-request  ─► the create died before the job was remembered: refunded
        job completed / failed / gone ─► decided as above
        still running     ─► kept, asked again on a later run, until ``video_job_max_seconds``
                             after the create: then refunded (the job outlived its deadline)

Every decision goes through ``gateway.finish``, so a crash at any line is finished by the sweeper
at the cost decided (or refunded when nothing was). Another account asking for a job, or any
id the gateway did not create, gets 404 whatever the provider knows.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from chalicelib.core import errors, media, multipart, payloads, quota
from chalicelib.core.deadline import Deadline
from chalicelib.core.pricing import ModelPrice
from chalicelib.core.records import TokenRecord
from chalicelib.core.settings import get_settings
from chalicelib.services import gateway
from chalicelib.store import ledger, video_jobs
from chalicelib.store import usage as usage_store
from chalicelib.store.ledger import PendingEntry
from chalicelib.upstream import UpstreamReply
from chalicelib.upstream import media as upstream_media

KIND = "video"
REQUEST_KIND = "video-request"  # keyed by the create's request id: what the sweeper reads
# How long the provider keeps a finished video's files, on top of the job's own deadline.
CONTENT_DAYS = 7
POLL_SECONDS = 30.0
VARIANTS = ("video", "thumbnail", "spritesheet")
MAX_LIST = 100
LIST_QUERY = ("limit", "after", "order")
FINISHED_OK = "completed"
FINISHED_FAILED = "failed"


@dataclass(frozen=True)
class Job:
    video_id: str
    account_id: str
    channel_id: str
    request_id: str
    token_id: str
    token_name: str
    model: str
    channel: str
    seconds: int
    reserved_units: int
    price: ModelPrice
    ratio: Decimal
    created_ms: int

    def attributes(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "request_id": self.request_id,
            "token_id": self.token_id,
            "token_name": self.token_name,
            "model": self.model,
            "channel": self.channel,
            "seconds": self.seconds,
            "reserved_units": self.reserved_units,
            "price": self.price.to_json(),
            "ratio": str(self.ratio),
        }

    @classmethod
    def from_owned(cls, found: video_jobs.Owned) -> Job:
        a = found.attributes
        return cls(
            video_id=str(a["video_id"]),
            account_id=found.account_id,
            channel_id=found.channel_id,
            request_id=str(a["request_id"]),
            token_id=str(a["token_id"]),
            token_name=str(a.get("token_name", "")),
            model=str(a["model"]),
            channel=str(a.get("channel", "")),
            seconds=int(a["seconds"]),
            reserved_units=int(a["reserved_units"]),
            price=ModelPrice.from_json(dict(a["price"])),
            ratio=Decimal(str(a["ratio"])),
            created_ms=found.created_ms,
        )

    def held(self) -> gateway.Held:
        """The job's reservation as the create left it, to settle or refund it."""
        reservation = ledger.Reservation(
            self.request_id,
            self.token_id,
            self.account_id,
            self.reserved_units,
            self.model,
            job=KIND,
        )
        record = usage_store.Usage(
            request_id=self.request_id,
            account_id=self.account_id,
            token_id=self.token_id,
            token_name=self.token_name,
            created_ms=self.created_ms,
            model=self.model,
            channel=self.channel,
            reserved_units=self.reserved_units,
        )
        return gateway.Held(reservation, quota.Plan(self.reserved_units, None), record)


# Who asks -------------------------------------------------------------------------------------
def _not_found(video_id: str) -> errors.NotFound:
    return errors.NotFound(f"No video found with id '{video_id}'.", param="video_id")


def _owned_job(video_id: str, token: TokenRecord) -> Job:
    try:
        payloads.check_id(video_id, "video_id")
    except errors.NotFound as exc:
        raise errors.NotFound("No video found with this id.", param="video_id") from exc
    found = video_jobs.owner(KIND, video_id)
    if found is None or found.account_id != token.account_id:
        raise _not_found(video_id)
    return Job.from_owned(found)


# Creating a job -------------------------------------------------------------------------------
def create(
    raw_body: bytes,
    content_type: str | None,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None,
) -> gateway.CallResult:
    """``POST /v1/videos`` (JSON, or multipart with an ``input_reference`` file)."""
    context = gateway.usable_context(authorization, source_ip)
    if multipart.is_multipart(content_type):
        form = multipart.parse(raw_body, content_type)
        payload: dict[str, Any] = {
            name: form.field(name) for name in ("model", "prompt", "seconds", "size")
        }
        seconds = media.check_video_request(payload)

        def body_for(upstream_model: str) -> bytes:
            if upstream_model == form.field("model"):
                return form.body
            return multipart.replace_fields(form, {"model": upstream_model})

        sent_type = content_type or ""
    else:
        payload = _json_object(raw_body)
        seconds = media.check_video_request(payload)

        def body_for(upstream_model: str) -> bytes:
            return json.dumps({**payload, "model": upstream_model}, ensure_ascii=False).encode()

        sent_type = "application/json"
    call = _admitted(context, payload, source_ip, seconds, deadline)
    held = gateway.reserve(call, source_ip)
    with gateway.refunded_on_error(call, held):
        reply = upstream_media.send(
            "/videos",
            model=call.model,
            group=call.group,
            body_for=body_for,
            content_type=sent_type,
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
            accepted=_is_job,
        )
    return _started(call, held, reply, seconds)


def remix(
    video_id: str,
    raw_body: bytes,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None,
) -> gateway.CallResult:
    """``POST /v1/videos/{id}/remix``: a new job on the source's channel, as long as it."""
    token = gateway.usable_key(authorization, source_ip)
    source = _owned_job(video_id, token)
    payload = _json_object(raw_body)
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise errors.InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    context = gateway.usable_context(authorization, source_ip)
    call = _admitted(
        context, {"model": source.model, "prompt": prompt}, source_ip, source.seconds, deadline
    )
    held = gateway.reserve(call, source_ip)
    with gateway.refunded_on_error(call, held):
        reply = upstream_media.send_to(
            source.channel_id,
            "POST",
            f"/videos/{video_id}/remix",
            content=json.dumps(payload, ensure_ascii=False).encode(),
            content_type="application/json",
            budget_seconds=call.seconds_left(),
        )
        if reply.status < 400 and not _is_job(reply):
            raise errors.UpstreamError("The upstream provider answered with an unexpected body.")
    return _started(call, held, reply, source.seconds)


def _json_object(raw_body: bytes) -> dict[str, Any]:
    payload = payloads.load_json(raw_body or b"")
    if not isinstance(payload, dict):
        raise errors.InvalidRequest("The request body must be a JSON object.")
    return payload


def _admitted(
    context: gateway.KeyContext,
    payload: dict[str, Any],
    source_ip: str,
    seconds: int,
    deadline: Deadline | None,
) -> gateway.Call:
    return gateway.admit_payload(
        "video",
        context,
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=lambda price, ratio: media.video_cost(price, ratio, seconds),
        job=KIND,
    )


def _is_job(reply: upstream_media.MediaReply) -> bool:
    data = upstream_media.loads(reply)
    return isinstance(data, dict) and isinstance(data.get("id"), str) and bool(data["id"])


def _started(
    call: gateway.Call, held: gateway.Held, reply: upstream_media.MediaReply, seconds: int
) -> gateway.CallResult:
    """The provider's answer to a create: a refusal is refunded now; a job is remembered and its
    reservation left pending (a failure to remember it refunds it: nobody could settle it)."""
    if reply.status >= 400:
        return gateway.settle(call, held, _as_reply(call, reply, reply.body), cost=0)
    data = upstream_media.loads(reply)
    job = Job(
        video_id=str(data["id"]),
        account_id=call.token.account_id,
        channel_id=reply.channel_id,
        request_id=held.record.request_id,
        token_id=call.token.id,
        token_name=call.token.name,
        model=call.model,
        channel=reply.channel,
        seconds=seconds,
        reserved_units=held.plan.reserve_units,
        price=call.price,
        ratio=call.ratio,
        created_ms=held.record.created_ms,
    )
    try:
        payloads.check_id(job.video_id, "id", creates=True)
        _remember(job)
    except Exception as exc:
        gateway.refund_failed(call, held, exc)
        raise errors.UpstreamError(
            "The video job could not be recorded; it was not charged."
        ) from exc
    body = _client_view(job, data)
    if data.get("status") in (FINISHED_OK, FINISHED_FAILED):
        _observe(job, data)
    return gateway.CallResult(
        status=reply.status,
        body=body,
        content_type="application/json",
        headers={
            "X-Request-Id": job.request_id,
            "X-Sluice-Reserved-Units": str(job.reserved_units),
        },
    )


def _remember(job: Job) -> None:
    """The sweeper's copy first: once it lands, the reservation can always be finished."""
    ttl = get_settings().video_job_max_seconds + CONTENT_DAYS * 86400
    at = job.created_ms / 1000
    attributes = job.attributes()
    for kind, object_id in ((REQUEST_KIND, job.request_id), (KIND, job.video_id)):
        video_jobs.remember(
            kind,
            object_id,
            job.account_id,
            job.channel_id,
            ttl,
            attributes=attributes,
            listed=kind == KIND,
            now=at,
        )


def _as_reply(call: gateway.Call, reply: upstream_media.MediaReply, body: bytes) -> UpstreamReply:
    return UpstreamReply(
        reply.status, body, reply.content_type, 0, 0, False, reply.channel, call.model
    )


def _client_view(job: Job, data: dict[str, Any]) -> bytes:
    """The provider's job object, with the client's model name."""
    if isinstance(data.get("model"), str) and data["model"] != job.model:
        data = {**data, "model": job.model}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


# Watching a job -------------------------------------------------------------------------------
def _observe(job: Job, data: Any) -> None:
    """Settle or refund the job if the provider says it is finished (once, whoever sees it)."""
    status = data.get("status") if isinstance(data, dict) else None
    if status == FINISHED_OK:
        cost = media.video_cost(job.price, job.ratio, media.job_seconds(data, job.seconds))
        decide(job, cost, "ok", None)
    elif status == FINISHED_FAILED:
        decide(job, 0, "upstream_error", "video job failed")


def decide(job: Job, cost: int, status: str, detail: str | None) -> int:
    """Settle the job at ``cost`` (never above its reservation), or refund it (0); idempotent:
    a job already decided is left as it was. Returns what it is charged."""
    decided = usage_store.get(job.request_id)
    if decided is not None:
        return decided.cost_units if decided.state == "settled" else 0
    charged = quota.charge(job.reserved_units, cost)
    if detail is None and charged != cost:
        detail = f"cost {cost} capped at reservation"
    started = time.monotonic() - max(time.time() - job.created_ms / 1000, 0)
    return gateway.finish(job.held(), started, charged=charged, status=status, detail=detail)


def _poll(job: Job) -> upstream_media.MediaReply:
    reply = upstream_media.send_to(
        job.channel_id, "GET", f"/videos/{job.video_id}", budget_seconds=POLL_SECONDS
    )
    if reply.status == 200:
        _observe(job, upstream_media.loads(reply))
    return reply


def _job_answer(job: Job, reply: upstream_media.MediaReply) -> gateway.CallResult:
    data = upstream_media.loads(reply)
    body = _client_view(job, data) if reply.status == 200 and isinstance(data, dict) else reply.body
    return gateway.CallResult(reply.status, body, reply.content_type, {})


def retrieve(video_id: str, authorization: str | None, source_ip: str) -> gateway.CallResult:
    """``GET /v1/videos/{id}``: the job as the provider has it now (settled if completed)."""
    job = _owned_job(video_id, gateway.usable_key(authorization, source_ip))
    return _job_answer(job, _poll(job))


def delete(video_id: str, authorization: str | None, source_ip: str) -> gateway.CallResult:
    """``DELETE /v1/videos/{id}``: refunded unless the job had completed (then charged)."""
    job = _owned_job(video_id, gateway.usable_key(authorization, source_ip))
    _poll(job)
    reply = upstream_media.send_to(
        job.channel_id, "DELETE", f"/videos/{video_id}", budget_seconds=POLL_SECONDS
    )
    if reply.status < 400 or reply.status == 404:
        decide(job, 0, "refunded", "video deleted before it completed")
        video_jobs.forget(KIND, video_id)
        video_jobs.forget(REQUEST_KIND, job.request_id)
    return _job_answer(job, reply)


def content(
    video_id: str, query: dict[str, str], authorization: str | None, source_ip: str
) -> upstream_media.OpenedBody | gateway.CallResult:
    """``GET /v1/videos/{id}/content``: the file, handed on as the provider sends it."""
    job = _owned_job(video_id, gateway.usable_key(authorization, source_ip))
    variant = query.get("variant", "video")
    if variant not in VARIANTS:
        raise errors.InvalidRequest(
            "'variant' must be one of " + ", ".join(VARIANTS) + ".", param="variant"
        )
    path = f"/videos/{video_id}/content?" + urlencode({"variant": variant})
    opened = upstream_media.open_to(job.channel_id, path, budget_seconds=gateway_budget())
    if isinstance(opened, upstream_media.MediaReply):
        return gateway.CallResult(opened.status, opened.body, opened.content_type, {})
    return opened


def gateway_budget() -> float:
    return get_settings().relay_timeout_seconds - gateway.SETTLE_MARGIN_SECONDS


def list_jobs(query: dict[str, str], authorization: str | None, source_ip: str) -> dict[str, Any]:
    """``GET /v1/videos``: this account's jobs, newest first (``limit``, ``after``)."""
    token = gateway.usable_key(authorization, source_ip)
    for name in query:
        if name not in LIST_QUERY:
            raise errors.InvalidRequest(
                f"Unknown query parameter '{name}'; known: " + ", ".join(LIST_QUERY) + ".",
                param=name,
            )
    if query.get("order", "desc") != "desc":
        raise errors.InvalidRequest("Jobs are listed newest first: order=desc.", param="order")
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST:
        raise errors.InvalidRequest(
            f"'limit' must be an integer from 1 to {MAX_LIST}.", param="limit"
        )
    limit = int(raw_limit)
    before = None
    if query.get("after"):
        before = _owned_job(query["after"], token).created_ms
    found = video_jobs.owned_by(token.account_id, KIND, limit + 1, before=before)
    jobs = [Job.from_owned(item) for item in found[:limit]]
    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        replies = list(pool.map(_poll_quietly, jobs))
    data = [
        json.loads(_client_view(job, upstream_media.loads(reply)))
        for job, reply in zip(jobs, replies, strict=True)
        if reply is not None and reply.status == 200 and _is_job(reply)
    ]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(found) > limit,
    }


def _poll_quietly(job: Job) -> upstream_media.MediaReply | None:
    try:
        return _poll(job)
    except errors.GatewayError:
        return None


# The sweeper's side ---------------------------------------------------------------------------
def still_running(entry: PendingEntry, now: int) -> bool:
    """For a job's entry whose create call is long gone and that no record decides yet: ask
    the provider, decide the job if it is finished (or past its deadline), and say whether it
    is still legitimately running (then its entry stays pending)."""
    found = video_jobs.owner(REQUEST_KIND, entry.request_id)
    if found is None:
        return False  # the create died before remembering the job: the usual refund
    job = Job.from_owned(found)
    try:
        reply: upstream_media.MediaReply | None = upstream_media.send_to(
            job.channel_id, "GET", f"/videos/{job.video_id}", budget_seconds=POLL_SECONDS
        )
    except errors.GatewayError:
        reply = None  # the provider cannot say now: ask again on the next run
    data = upstream_media.loads(reply) if reply is not None and reply.status == 200 else None
    status = data.get("status") if isinstance(data, dict) else None
    if status == FINISHED_OK:
        _observe(job, data)
    elif status == FINISHED_FAILED or (reply is not None and reply.status == 404):
        decide(job, 0, "upstream_error", "video job failed or is gone")
    elif now >= job.created_ms // 1000 + get_settings().video_job_max_seconds:
        decide(job, 0, "deadline_exceeded", "video job outlived its deadline")
    else:
        return True
    return False
