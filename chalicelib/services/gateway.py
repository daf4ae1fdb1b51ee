"""One relayed call, in four steps: admit -> reserve -> forward -> settle.

* ``admit``: the key, the body, and what this key may do with it (model, client IP, group);
  the price and the worst case the call can cost.
* ``reserve``: the worst case, held on the key and on its account (``store.ledger``).
* ``forward``: the call upstream (``upstream``), refunded in full if nothing came back.
* ``settle``: the real cost charged, the rest released, the call logged.

A ``stream: true`` chat takes ``relay_stream`` after ``reserve``: the events are handed on as
they arrive (``StreamDelivery``) and the call settles, through the same ``_finish``, once the
stream ends, breaks or the client hangs up, charged for what was delivered.

Round trips on a warm container: one before upstream (token reservation, account reservation
and the pending usage record, in parallel) and one after (both settles and the record's final
state, in parallel). Key and account metadata are cached per container for a few seconds; the
cache is never trusted for anything that must be current: the reservation's condition re-checks
the key's hash, revision (so an edit of its models, IPs or group counts at once), status, expiry,
reset due and remaining quota, and the account's status, granted groups and balance.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from chalicelib import upstream
from chalicelib.core import errors, keys, limits, observe, payloads, quota
from chalicelib.core.deadline import Deadline
from chalicelib.core.payloads import Kind
from chalicelib.core.pricing import ModelPrice, cost_units
from chalicelib.core.records import AccountRecord, TokenRecord
from chalicelib.core.settings import get_settings
from chalicelib.core.token_count import estimate_completion_tokens
from chalicelib.services import resets
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


def key_for_route(authorization: str | None, source_ip: str) -> TokenRecord:
    """For /v1/key, /v1/models and billing: the key as stored now, from an allowed client IP."""
    context = authenticate(authorization)
    token = fresh_token(context)
    if not ip_allowed(token.allow_ips, source_ip):
        raise errors.IpNotAllowed()
    return token


def models_for(token: TokenRecord) -> list[str]:
    served = upstream.list_models(token.group)
    return [m for m in served if not token.models or m in token.models]


# The call ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallResult:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Call:
    """An admitted call: the key as checked, the body, its price and its prompt's bound."""

    kind: Kind
    key: KeyContext
    payload: dict[str, Any]
    model: str
    price: ModelPrice
    ratio: Decimal
    prompt_bound: int
    stream: bool
    started: float
    deadline: Deadline

    @property
    def token(self) -> TokenRecord:
        return self.key.token

    def plan(self, budget: int | None) -> quota.Plan:
        """The reservation for ``budget`` (the smaller balance of key and account)."""
        produces_output = self.kind == "chat"
        return quota.plan(
            self.price,
            self.ratio,
            self.prompt_bound,
            payloads.requested_output(self.payload) if produces_output else None,
            budget,
            produces_output=produces_output,
        )

    def key_check(self) -> ledger.KeyCheck:
        token = self.token
        return ledger.KeyCheck(
            token.id,
            self.key.key_hash,
            token.revision,
            token.group,
            rpm_limit=token.rpm_limit,
            tpm_limit=token.tpm_limit,
            max_concurrency=token.max_concurrency,
            known_minutes=(*token.requests_by_minute, *token.tokens_by_minute),
        )

    def seconds_left(self) -> float:
        return self.deadline.left()


@dataclass(frozen=True)
class Held:
    """A reservation that landed on both items, and the call's record (written at the end)."""

    reservation: ledger.Reservation
    plan: quota.Plan
    record: usage_store.Usage
    # The key's minute as the reservation left it, for the rate-limit headers.
    counted: ledger.Counted = field(default_factory=ledger.Counted)


def call_deadline(arrived: float) -> Deadline:
    """When a call that arrived at ``arrived`` (monotonic) must be settled by: the relay's
    timeout minus a margin to settle and log in."""
    return Deadline(arrived + get_settings().relay_timeout_seconds - SETTLE_MARGIN_SECONDS)


SETTLE_MARGIN_SECONDS = 5.0


def relay_call(
    kind: Kind,
    raw_body: bytes,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None = None,
) -> CallResult | StreamedCall:
    """One call: a complete answer, or (``stream: true``) a stream to hand on as it comes."""
    started = time.monotonic()
    call = admit(
        kind,
        raw_body,
        authorization,
        source_ip,
        started=started,
        deadline=deadline,
    )
    held = reserve(call, source_ip)
    if call.stream:
        return relay_stream(call, held)
    reply = forward(call, held)
    return settle(call, held, reply)


def admit(
    kind: Kind,
    raw_body: bytes,
    authorization: str | None,
    source_ip: str,
    *,
    started: float,
    deadline: Deadline | None = None,
) -> Call:
    """Who calls, with what, and may they: every refusal here happens before money moves.

    ``deadline`` defaults to the relay's timeout from ``started``, less the settle margin.
    """
    context = authenticate(authorization)
    payload = payloads.parse(kind, raw_body)
    model = payload["model"]
    price = config_store.price(model)
    try:
        try:
            ratio = check_key(context.token, model, source_ip, _account(context.token.account_id))
        except (errors.Forbidden, errors.ModelNotFound):
            # Refusing on a cached copy would make a widened key wait for the cache: decide
            # again on the key and account as stored now (only refusals pay this read).
            context = _reread(context)
            ratio = check_key(context.token, model, source_ip, _account(context.token.account_id))
        if price is None:
            raise _not_served(model)
    except (errors.Forbidden, errors.ModelNotFound) as refused:
        _log_rejected(_record(context.token, model, kind, payload, 0), refused)
        raise
    return Call(
        kind=kind,
        key=context,
        payload=payload,
        model=model,
        price=price,
        ratio=ratio,
        prompt_bound=upstream.prompt_tokens_upper_bound(kind, payload),
        stream=bool(payload.get("stream")) if kind == "chat" else False,
        started=started,
        deadline=deadline or call_deadline(started),
    )


def _reread(context: KeyContext) -> KeyContext:
    token = fresh_token(context)
    cache().put("t:" + token.id, token)
    cache().drop("a:" + token.account_id)
    return replace(context, token=token)


def check_key(
    token: TokenRecord, model: str, source_ip: str, account: AccountRecord | None
) -> Decimal:
    """Refuse what this key may not do; the price ratio of its group if it may."""
    if token.models and model not in token.models:
        raise errors.ModelNotAllowed(
            f"This API key may not use the model '{model}'.", param="model"
        )
    if not ip_allowed(token.allow_ips, source_ip):
        raise errors.IpNotAllowed()
    if account is not None and token.group not in account.groups:
        raise quota.group_refusal(token.group)
    if model not in upstream.list_models(token.group):
        raise _not_served(model)
    return config_store.group_ratio(token.group)


def _not_served(model: str) -> errors.ModelNotFound:
    return errors.ModelNotFound(
        f"The model '{model}' does not exist or is not served for this key.", param="model"
    )


def reserve(call: Call, source_ip: str) -> Held:
    """Hold the worst case on key and account: retried after a lazy reset, an edit of the key,
    or with a fresh budget; raises the precise refusal otherwise (logged as rejected)."""
    now = int(time.time())
    account = _account(call.token.account_id)
    plan = call.plan(quota.budget(call.token, account))
    record = _record(call.token, call.model, call.kind, call.payload, plan.reserve_units)
    for _ in range(MAX_RESERVE_ATTEMPTS):
        reservation = ledger.Reservation(
            record.request_id,
            call.token.id,
            call.token.account_id,
            plan.reserve_units,
            call.model,
            meters_tokens=call.token.tpm_limit is not None,
            account_meters_tokens=account is not None and account.tpm_limit is not None,
        )
        refusal = ledger.reserve_counted(
            reservation, call.key_check(), now, _account_limits(account)
        )
        if isinstance(refusal, ledger.Counted):
            reserved = replace(record, reserved_units=plan.reserve_units)
            return Held(reservation, plan, reserved, refusal)
        cache().drop("t:" + call.token.id)
        cache().drop("a:" + call.token.account_id)
        retry = _after_refusal(call, plan, refusal, source_ip, now)
        if isinstance(retry, errors.GatewayError):
            _log_rejected(record, retry)
            raise retry
        call, plan = retry
    busy = errors.TooManyRequests(
        "The key was being reset or edited while this request was admitted; retry."
    )
    _log_rejected(record, busy)
    raise busy


MAX_RESERVE_ATTEMPTS = 3


def _account_limits(account: AccountRecord | None) -> ledger.AccountLimits | None:
    """The account's limit clauses, from the cached account (None: it has none)."""
    if account is None or not limits.has_limits(account):
        return None
    return ledger.AccountLimits(
        rpm_limit=account.rpm_limit,
        tpm_limit=account.tpm_limit,
        max_concurrency=account.max_concurrency,
        known_minutes=(*account.requests_by_minute, *account.tokens_by_minute),
    )


def _after_refusal(
    call: Call, plan: quota.Plan, refusal: ledger.Refusal, source_ip: str, now: int
) -> errors.GatewayError | tuple[Call, quota.Plan]:
    """The refusal's error, or the call and plan to try again with."""
    if not refusal.token_refused:
        error = quota.account_refusal(refusal.account, call.token.group, plan.reserve_units, now)
    else:
        verdict = quota.token_refusal(
            refusal.token, call.key.key_hash, call.token.revision, plan.reserve_units, now
        )
        if verdict == quota.RESET_DUE and refusal.token is not None:
            resets.reset_if_due(refusal.token, now)
            return call, plan
        if verdict == quota.CHANGED and refusal.token is not None:
            return _readmitted(call, refusal.token, source_ip)
        error = verdict if isinstance(verdict, errors.GatewayError) else errors.InvalidKey()
    if isinstance(error, errors.QuotaExhausted):
        # The cached budget may have been stale: re-plan with what the items really hold.
        fresh = quota.budget(
            refusal.token or call.token, refusal.account or _account(call.token.account_id)
        )
        smaller = call.plan(fresh)
        if smaller.reserve_units < plan.reserve_units:
            return call, smaller
    return error


def _readmitted(call: Call, token: TokenRecord, source_ip: str) -> tuple[Call, quota.Plan]:
    """The key was edited since it was checked: check it again as it now is."""
    cache().put("t:" + token.id, token)
    account = _account(token.account_id)
    ratio = check_key(token, call.model, source_ip, account)
    again = replace(call, key=replace(call.key, token=token), ratio=ratio)
    return again, again.plan(quota.budget(token, account))


def _record(
    token: TokenRecord, model: str, kind: Kind, payload: dict[str, Any], reserved: int
) -> usage_store.Usage:
    """The call's log record as it starts; it is written once, when the outcome is decided."""
    return usage_store.Usage(
        request_id=f"req_{uuid.uuid4().hex}",
        account_id=token.account_id,
        token_id=token.id,
        token_name=token.name,
        created_ms=int(time.time() * 1000),
        model=model,
        reserved_units=reserved,
        stream=bool(payload.get("stream")) if kind == "chat" else False,
    )


def _capped(call: Call, held: Held) -> dict[str, Any]:
    payload = dict(call.payload)
    if held.plan.max_output_tokens is not None:
        payloads.set_output_cap(payload, held.plan.max_output_tokens)
    return payload


def forward(call: Call, held: Held) -> upstream.UpstreamReply:
    """The call upstream with the reserved output cap; refunded in full if nothing came back."""
    payload = _capped(call, held)
    try:
        return upstream.forward(
            call.kind,
            payload,
            group=call.token.group,
            stream=call.stream,
            client_wants_usage=payloads.client_wants_usage(payload),
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
        )
    except Exception as exc:
        _refund_failed(call, held, exc)
        raise


@dataclass(frozen=True)
class Delivered:
    """The tokens a call's answer used, and whether they are an estimate."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool


def _charge(
    call: Call,
    held: Held,
    used: Delivered,
    *,
    paid: bool,
    channel: str,
    answer: bytes,
    status: str,
    detail: Any,
) -> int:
    """Settle a call that was answered (whole, or streamed in part): charge what ``used`` costs
    if it is ``paid`` for, never more than was reserved, and log it. Returns the charge."""
    real_cost = (
        cost_units(call.price, used.prompt_tokens, used.completion_tokens, call.ratio)
        if paid
        else 0
    )
    charged = quota.charge(held.plan.reserve_units, real_cost)
    answered = replace(
        held.record,
        channel=channel,
        prompt_tokens=used.prompt_tokens,
        completion_tokens=used.completion_tokens,
        usage_estimated=used.estimated,
        content=_content(call.payload, answer) if get_settings().store_content else None,
    )
    if detail is None and charged != real_cost:
        detail = f"cost {real_cost} capped at reservation"
    _finish(replace(held, record=answered), call.started, charged=charged, status=status,
            detail=detail)  # fmt: skip
    observe.metric("RelayedCalls")
    return charged


def _refund_failed(call: Call, held: Held, error: BaseException) -> None:
    """Nothing was delivered: give the reservation back now rather than leave it to the
    sweeper."""
    _finish(held, call.started, charged=0, status="upstream_error", detail=error)
    observe.metric("UpstreamFailures")


def settle(call: Call, held: Held, reply: upstream.UpstreamReply) -> CallResult:
    """Charge the real cost (never more than was reserved), release the rest, log the call.

    Past the call's deadline the answer can no longer reach the client (its gateway has given
    up): it is refunded instead of charged, and answered 504.
    """
    if call.deadline.passed():
        _finish(held, call.started, charged=0, status="deadline_exceeded", detail=None)
        raise errors.UpstreamTimeout("The call did not finish within its deadline.")
    ok = reply.status < 400
    charged = _charge(
        call,
        held,
        Delivered(reply.prompt_tokens, reply.completion_tokens, reply.usage_estimated),
        paid=ok,
        channel=reply.channel,
        answer=reply.body,
        status="ok" if ok else "upstream_error",
        detail=None,
    )
    return CallResult(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers={
            "X-Request-Id": held.record.request_id,
            "X-Sluice-Cost-Units": str(charged),
            **_rate_headers(call, held, reply.prompt_tokens + reply.completion_tokens),
        },
    )


def _rate_headers(call: Call, held: Held, tokens: int) -> dict[str, str]:
    """The key's ``x-ratelimit-*`` headers as this call left its minute (none without limits);
    a call that outlived the minute it was reserved in reports the new one, where its own
    tokens went."""
    now, counted = int(time.time()), held.counted
    if limits.minute(now) != counted.minute:
        counted = ledger.Counted(minute=limits.minute(now))
    return limits.rate_headers(
        call.token, now, counted.requests or 0, (counted.tokens or 0) + tokens
    )


# Streaming ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamedCall:
    """A stream under way: the response's headers, then ``chunks`` as they come."""

    headers: dict[str, str]
    chunks: StreamDelivery
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"


KEEPALIVE = b": keepalive\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
# How long one ``next()`` waits for upstream before it returns an empty chunk: the edge gets
# control back that often, to notice a client that hung up.
TICK_SECONDS = 0.5
# A stream that outlives its deadline by this much is ended here, whatever the reader does.
DEADLINE_GRACE_SECONDS = 2.0


def relay_stream(call: Call, held: Held) -> CallResult | StreamedCall:
    """The answer handed on event by event; charged, at the end, for what was delivered.

    Until the response starts, a failure is an HTTP error like any call's (refunded in full)
    and an upstream rejection is passed on. The response starts with the first event, or with
    a keepalive once the provider was silent for ``stream_keepalive_seconds``; from then on the
    stream can only end with an error event (see ``StreamDelivery``).
    """
    payload = _capped(call, held)
    try:
        source = upstream.open_stream(
            payload,
            group=call.token.group,
            client_wants_usage=payloads.client_wants_usage(payload),
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
        )
    except Exception as exc:
        _refund_failed(call, held, exc)
        raise
    first = source.next_item(get_settings().stream_keepalive_seconds)
    if first is not None and first.kind == "failed" and first.error is not None:
        source.close()
        _refund_failed(call, held, first.error)
        raise first.error
    if first is not None and first.kind == "rejected" and first.reply is not None:
        return settle(call, held, first.reply)
    delivery = StreamDelivery(call, held, source, first)
    # The rate-limit headers go out before the answer: its tokens are not known yet.
    headers = {"X-Request-Id": held.record.request_id, **_rate_headers(call, held, 0)}
    return StreamedCall(headers=headers, chunks=delivery)


class StreamDelivery:
    """The client's side of a stream: an iterator of bytes that settles exactly once.

    ::

        event ... ──> upstream [DONE] ──> "data: [DONE]" ──> next(): settle "ok" ──> end
                  ──> upstream breaks ──> error event + "data: [DONE]" ──> next(): settle
                      "upstream_error" at the cost of what was delivered ──> end
        close() before the end (the client hung up) ──> upstream hung up on, settle
                      "client_closed" at the cost of what was delivered

    The settle runs inside ``next()`` after the last bytes were handed on, so it lands before
    the response body ends (a Lambda is frozen once it does). ``next()`` returns ``b""`` when
    upstream is silent for a moment, so the edge regains control to notice a hang-up. The cost
    of what was delivered is upstream's usage if it sent one, else an estimate from the text
    handed on (flagged ``usage_estimated``); the sweeper is never left to refund it.
    """

    def __init__(
        self, call: Call, held: Held, source: upstream.ChatStream, first: Any | None
    ) -> None:
        self.call = call
        self.held = held
        self.source = source
        self._pending = first
        self._keepalive_now = first is None
        self._last_sent = time.monotonic()
        self._text: list[str] = []
        self._usage: tuple[int, int] | None = None
        self._estimate: tuple[int, int] | None = None
        self._channel = ""
        self._delivered = False
        self._ending: tuple[str, Any] | None = None
        self._settled = False
        self._lock = threading.Lock()

    def __iter__(self) -> StreamDelivery:
        return self

    def __next__(self) -> bytes:
        if self._ending is not None:
            self._settle(*self._ending)
        if self._settled:
            raise StopIteration
        try:
            return self._next_bytes()
        except Exception as exc:
            self._settle("relay_error", exc)
            raise

    def close(self) -> None:
        """End the stream now (idempotent): the client hung up, or the response was dropped."""
        self._settle(*(self._ending or ("client_closed", None)))

    def _next_bytes(self) -> bytes:
        if self._keepalive_now:
            self._keepalive_now = False
            return self._sent(KEEPALIVE)
        item, self._pending = self._pending or self.source.next_item(TICK_SECONDS), None
        if item is None:
            return self._silence()
        self._channel = item.channel or self._channel
        if item.kind == "event":
            self._text.append(item.text)
            self._usage = item.usage or self._usage
            self._delivered = self._delivered or bool(item.data)
            return self._sent(item.data) if item.data else b""
        if item.kind == "done":
            self._estimate = item.estimated_usage
            self._ending = ("ok", None)
            return self._sent(item.data)
        if item.kind == "rejected" and item.reply is not None:
            # Upstream refused the request after keepalives had started the response.
            self._ending = ("upstream_error", f"upstream answered HTTP {item.reply.status}")
            return self._sent(b"data: " + item.reply.body + b"\n\n" + DONE_EVENT)
        return self._end_with(item.error or errors.UpstreamError())

    def _silence(self) -> bytes:
        if self.call.seconds_left() < -DEADLINE_GRACE_SECONDS:
            self.source.close()
            return self._end_with(errors.UpstreamTimeout("The call ran out of time."))
        keepalive = get_settings().stream_keepalive_seconds
        if not self._delivered and time.monotonic() - self._last_sent >= keepalive:
            return self._sent(KEEPALIVE)
        return b""

    def _end_with(self, error: errors.GatewayError) -> bytes:
        """The OpenAI-shaped error event, then [DONE]: how a started stream reports failure."""
        self._ending = ("upstream_error", error)
        body = json.dumps(errors.error_body(error), separators=(",", ":"))
        return self._sent(f"data: {body}\n\n".encode() + DONE_EVENT)

    def _sent(self, data: bytes) -> bytes:
        self._last_sent = time.monotonic()
        return data

    def _delivered_usage(self) -> tuple[int, int, bool]:
        if self._usage is not None:
            return (*self._usage, False)
        if self._estimate is not None:
            return (*self._estimate, True)
        text = "".join(self._text)
        return self.call.prompt_bound, estimate_completion_tokens(text), True

    def _settle(self, status: str, detail: Any) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        self.source.close()
        prompt, completion, estimated = (
            self._delivered_usage() if self._delivered else (0, 0, False)
        )
        _charge(
            self.call,
            self.held,
            Delivered(prompt, completion, estimated),
            paid=self._delivered,
            channel=self._channel,
            answer="".join(self._text).encode(),
            status=status,
            detail=detail,
        )


def _log_rejected(record: usage_store.Usage, error: errors.GatewayError) -> None:
    """One write: the log record of a call refused before anything was reserved (or after its
    reservation was undone)."""
    rejected = replace(
        record, state="rejected", status="rejected", reserved_units=0, detail=error.instance_code
    )
    try:
        usage_store.put(rejected, get_settings().log_retention_days)
    except errors.GatewayError as exc:
        _write_failed("log_record_lost", record.request_id, exc)
    if isinstance(error, errors.QuotaExhausted):
        observe.metric("QuotaRejections")
    elif isinstance(error, errors.RateLimited):
        observe.metric("RateLimitRejections")


MAX_CONTENT_BYTES = 64 * 1024  # well inside DynamoDB's 400 KB item limit


def _content(payload: dict[str, Any], answer: bytes) -> str:
    """What was asked and answered, for operators who enabled SLUICE_STORE_CONTENT."""
    asked = payload.get("messages", payload.get("input"))
    text = json.dumps({"request": asked, "response": answer.decode("utf-8", "replace")})
    return text.encode()[:MAX_CONTENT_BYTES].decode("utf-8", "ignore")


def _write_failed(event: str, request_id: str, error: errors.GatewayError) -> None:
    """A write after the answer failed even after its retries: say so, never fail the client."""
    observe.log(event, level="WARNING", request_id=request_id, code=error.instance_code)


def _describe(detail: Any) -> str | None:
    """A short, secret-free reason for the log: an error code or a class name."""
    if detail is None or isinstance(detail, str):
        return detail
    if isinstance(detail, errors.GatewayError):
        return detail.instance_code
    return type(detail).__name__


def _finish(held: Held, started: float, *, charged: int, status: str, detail: Any) -> None:
    """Decide the call's outcome, then apply it: the record first, then both items' settles.

    The record is the decision. Written first, it lets the sweeper finish a call whose process
    dies before (or between) the settles, at exactly this cost; a call that dies before it is
    written is refunded whole by the sweeper. Either way key, account and log agree. A write
    that fails here is left to the sweeper the same way (logged, never raised at the client,
    who already has the answer).
    """
    final = replace(
        held.record,
        state="settled" if charged else "refunded",
        status=status,
        cost_units=charged,
        latency_ms=int((time.monotonic() - started) * 1000),
        detail=_describe(detail),
    )
    try:
        usage_store.put(final, get_settings().log_retention_days)
        tokens = final.prompt_tokens + final.completion_tokens
        ledger.release(held.reservation, charged, tokens=tokens, now=int(time.time()))
    except errors.GatewayError as exc:
        _write_failed("settle_left_to_sweeper", final.request_id, exc)
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
