"""One relayed call, start to finish: key -> checks -> reserve -> upstream -> settle -> log.

Round trips on a warm container: one before upstream (token reservation, account reservation
and the pending usage record, in parallel) and one after (both settles and the record's final
state, in parallel). Key and account metadata are cached per container for a few seconds; that
is safe because the reservation's condition re-checks everything that must be current (the key's
hash, status, expiry, reset due, remaining quota, account status and balance).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import upstream as relay
from chalicelib.core import errors, keys, observe, payloads, quota
from chalicelib.core.payloads import Kind
from chalicelib.core.pricing import cost_units
from chalicelib.core.records import AccountRecord, TokenRecord
from chalicelib.core.settings import get_settings
from chalicelib.services import resets as jobs
from chalicelib.store import accounts as account_store
from chalicelib.store import config as config_store
from chalicelib.store import ledger
from chalicelib.store import tokens as token_store
from chalicelib.store import usage as usage_store


@dataclass
class _Cached:
    value: Any
    until: float


@dataclass
class MetadataCache:
    """token id -> TokenRecord and account id -> AccountRecord, for a few seconds."""

    seconds: float
    entries: dict[str, _Cached] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        hit = self.entries.get(key)
        return hit.value if hit and hit.until > time.monotonic() else None

    def put(self, key: str, value: Any) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key] = _Cached(value, time.monotonic() + self.seconds)

    def drop(self, key: str) -> None:
        self.entries.pop(key, None)


_cache: MetadataCache | None = None


def cache() -> MetadataCache:
    global _cache
    if _cache is None:
        _cache = MetadataCache(get_settings().key_cache_seconds)
    return _cache


# Authentication ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyContext:
    token: TokenRecord
    key_hash: str


def authenticate(authorization: str | None) -> KeyContext:
    """The token behind ``Authorization: Bearer sk-…``; 401 for anything else.

    A cached record whose hash does not match is re-read once: the key may have been regenerated
    since. Whatever the cache says, the reservation's condition checks the hash again.
    """
    presented = keys.bearer_token(authorization)
    if presented is None:
        raise errors.Unauthenticated(
            "You didn't provide an API key. Send 'Authorization: Bearer sk-…'."
        )
    parsed = keys.parse_key(presented)
    if parsed is None or parsed.kind != "token":
        raise errors.InvalidKey()
    key_hash = keys.hash_key(presented)
    token = cache().get("t:" + parsed.owner_id)
    if token is None or not keys.hashes_match(presented, token.key_hash):
        token = token_store.get(parsed.owner_id)
        if token is None or not keys.hashes_match(presented, token.key_hash):
            raise errors.InvalidKey()
        cache().put("t:" + token.id, token)
    return KeyContext(token=token, key_hash=key_hash)


def fresh_token(context: KeyContext) -> TokenRecord:
    """For /v1/key and billing: the stored record, read now, if the key is still this key.

    A disabled, expired or exhausted key may still read itself: its effective status is what
    the answer shows.
    """
    token = token_store.get(context.token.id)
    if token is None or token.key_hash != context.key_hash:
        raise errors.InvalidKey()
    return token


def _account(account_id: str) -> AccountRecord | None:
    account = cache().get("a:" + account_id)
    if account is None:
        account = account_store.get(account_id)
        if account is not None:
            cache().put("a:" + account_id, account)
    return account


def ip_allowed(allow_ips: tuple[str, ...], source_ip: str) -> bool:
    if not allow_ips:
        return True
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allow_ips)


def models_for(token: TokenRecord) -> list[str]:
    served = relay.list_models(token.group)
    return [m for m in served if not token.models or m in token.models]


# The call ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallResult:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


def relay_call(
    kind: Kind, raw_body: bytes, authorization: str | None, source_ip: str, request_id: str
) -> CallResult:
    started = time.monotonic()
    context = authenticate(authorization)
    token = context.token
    payload = payloads.parse(kind, raw_body)
    model = payload["model"]
    if token.models and model not in token.models:
        raise errors.ModelNotAllowed(
            f"This API key may not use the model '{model}'.", param="model"
        )
    if not ip_allowed(token.allow_ips, source_ip):
        raise errors.IpNotAllowed()
    price = config_store.price(model)
    if price is None or model not in relay.list_models(token.group):
        raise errors.ModelNotFound(
            f"The model '{model}' does not exist or is not served for this key.", param="model"
        )
    ratio = config_store.group_ratio(token.group)
    stream = bool(payload.get("stream")) if kind == "chat" else False
    prompt_bound = relay.prompt_tokens_upper_bound(kind, payload)
    rid = f"req_{uuid.uuid4().hex}"
    now = int(time.time())

    def plan_for(budget: int | None) -> quota.Plan:
        return quota.plan(
            price,
            ratio,
            prompt_bound,
            payloads.requested_output(payload) if kind == "chat" else None,
            budget,
            produces_output=kind == "chat",
        )

    plan = plan_for(quota.budget(token, _account(token.account_id)))
    record = usage_store.Usage(
        request_id=rid,
        account_id=token.account_id,
        token_id=token.id,
        token_name=token.name,
        created_ms=int(time.time() * 1000),
        model=model,
        reserved_units=plan.reserve_units,
        stream=stream,
    )
    plan = _reserve(context, record, plan, plan_for, now)
    record = replace(record, reserved_units=plan.reserve_units)
    reservation = ledger.Reservation(rid, token.id, token.account_id, plan.reserve_units)
    if plan.max_output_tokens is not None:
        payloads.set_output_cap(payload, plan.max_output_tokens)
    try:
        reply = relay.forward(
            kind,
            payload,
            group=token.group,
            stream=stream,
            client_wants_usage=payloads.client_wants_usage(payload),
            request_id=rid,
        )
    except Exception as exc:
        # Whatever went wrong, nothing was delivered: give the reservation back now rather
        # than leave it to the sweeper.
        _finish(reservation, record, started, charged=0, status="upstream_error", detail=exc)
        observe.metric("UpstreamFailures")
        raise
    real_cost = (
        0
        if reply.status >= 400
        else cost_units(price, reply.prompt_tokens, reply.completion_tokens, ratio)
    )
    charged = quota.charge(plan.reserve_units, real_cost)
    _finish(
        reservation,
        replace(
            record,
            channel=reply.channel,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            usage_estimated=reply.usage_estimated,
            content=_content(payload, reply.body) if get_settings().store_content else None,
        ),
        started,
        charged=charged,
        status="ok" if reply.status < 400 else "upstream_error",
        detail=None if charged == real_cost else f"cost {real_cost} capped at reservation",
    )
    observe.metric("RelayedCalls")
    return CallResult(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers={
            "X-Request-Id": rid,
            "X-Sluice-Cost-Units": str(charged),
        },
    )


def _reserve(
    context: KeyContext,
    record: usage_store.Usage,
    plan: quota.Plan,
    plan_for: Any,
    now: int,
) -> quota.Plan:
    """Reserve, retrying once after a lazy reset or with a fresh budget; raise if refused."""
    settings = get_settings()
    token = context.token
    sweep_at = now + settings.reservation_max_age_seconds
    record_written = False
    for attempt in range(3):
        reservation = ledger.Reservation(
            record.request_id, token.id, token.account_id, plan.reserve_units
        )
        side = None
        if not record_written:
            pending = replace(record, reserved_units=plan.reserve_units)
            side = functools.partial(
                usage_store.put, pending, settings.log_retention_days, sweep_at
            )
            record_written = True
        refusal = ledger.reserve(reservation, context.key_hash, now, side_write=side)
        if refusal is None:
            return plan
        cache().drop("t:" + token.id)
        cache().drop("a:" + token.account_id)
        error: errors.GatewayError | None
        if refusal.token_refused:
            error = quota.token_refusal(refusal.token, context.key_hash, plan.reserve_units, now)
            if error is None and refusal.token is not None and attempt < 2:
                jobs.reset_if_due(refusal.token, now)
                continue
        else:
            error = quota.account_refusal(refusal.account, plan.reserve_units)
        if isinstance(error, errors.QuotaExhausted) and attempt < 2:
            # The cached budget may have been stale: re-plan with what the items really hold.
            fresh = quota.budget(
                refusal.token or token, refusal.account or _account(token.account_id)
            )
            smaller = plan_for(fresh)
            if smaller.reserve_units < plan.reserve_units:
                plan = smaller
                continue
        error = error or errors.InvalidKey()
        _finish_rejected(record, error)
        raise error
    busy = errors.TooManyRequests()
    _finish_rejected(record, busy)
    raise busy


def _finish_rejected(record: usage_store.Usage, error: errors.GatewayError) -> None:
    usage_store.finish(
        replace(record, state="rejected", status="rejected", detail=error.instance_code)
    )
    if isinstance(error, errors.QuotaExhausted):
        observe.metric("QuotaRejections")


MAX_CONTENT_BYTES = 64 * 1024  # well inside DynamoDB's 400 KB item limit


def _content(payload: dict[str, Any], answer: bytes) -> str:
    """What was asked and answered, for operators who enabled SLUICE_STORE_CONTENT."""
    asked = payload.get("messages", payload.get("input"))
    text = json.dumps({"request": asked, "response": answer.decode("utf-8", "replace")})
    return text.encode()[:MAX_CONTENT_BYTES].decode("utf-8", "ignore")


def _describe(detail: Any) -> str | None:
    """A short, secret-free reason for the log: an error code or a class name."""
    if detail is None or isinstance(detail, str):
        return detail
    if isinstance(detail, errors.GatewayError):
        return detail.instance_code
    return type(detail).__name__


def _finish(
    reservation: ledger.Reservation,
    record: usage_store.Usage,
    started: float,
    *,
    charged: int,
    status: str,
    detail: Any,
) -> None:
    """Settle (or refund when ``charged`` is 0) and close the record, in one round trip."""
    final = replace(
        record,
        state="settled" if charged else "refunded",
        status=status,
        cost_units=charged,
        latency_ms=int((time.monotonic() - started) * 1000),
        detail=_describe(detail),
    )
    record_future = ledger.pool().submit(usage_store.finish, final)
    ledger.release(reservation, charged)
    record_future.result()
    if not charged:
        observe.metric("Refunds")
    observe.log(
        "relay",
        request_id=final.request_id,
        account_id=final.account_id,
        token_id=final.token_id,
        model=final.model,
        channel=final.channel,
        status=final.status,
        prompt_tokens=final.prompt_tokens,
        completion_tokens=final.completion_tokens,
        cost_units=final.cost_units,
        reserved_units=final.reserved_units,
        latency_ms=final.latency_ms,
        stream=final.stream,
        usage_estimated=final.usage_estimated,
        detail=final.detail,
    )
