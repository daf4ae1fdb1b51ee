"""One relayed call, in four steps: admit -> reserve -> forward -> settle.

* ``admit``: the key, the body, and what this key may do with it (model, client IP, group --
  for an ``auto`` key the group it picks, see ``core.groups``); the price and the worst case the
  call can cost; for a Responses follow-up, the one channel that holds what it continues.
* ``reserve``: the worst case, held on the key and on its account (``store.ledger``).
* ``forward``: the call upstream (``upstream``), refunded in full if nothing came back.
* ``settle``: the real cost charged, the rest released, the call logged.

The kinds (chat, embeddings, responses, completions, moderations) share every step; the few
ways they differ are data in ``core.payloads``. A ``stream: true`` call takes
``streaming.relay_stream`` after ``reserve``: the events are handed
on as they arrive (``streaming.StreamDelivery``) and the call settles, through the same
``finish``, once the stream ends, breaks or the client hangs up, charged for what was delivered.

Round trips on a warm container: one before upstream (token reservation, account reservation
and the pending usage record, in parallel) and one after (both settles and the record's final
state, in parallel). Key and account metadata are cached per container for a few seconds, and
after a quiet spell a call is admitted on the expired copies (refreshed in the background): the
cache is never trusted for anything that must be current. The reservation's condition re-checks
the key's hash, revision (so an edit of its models, IPs or group counts at once), status, expiry,
reset due and remaining quota, and the account's revision (an edit of its limits, groups or
status), status, granted groups and balance; a refusal is decided again on the items as stored.
What no condition covers is decided on them too when the copies were expired: a balance that
caps the call's output (``_reserved``), and a refusal of the request before it reserved, which
gives way to the key's or account's own (``one_call``).

A Responses call adds a round trip where it must: a follow-up reads its owner record before the
reservation (``continued_object``), and an answer that left a stored response writes one before
it goes out (``remember_objects``), so the client's next call finds it.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from chalicelib import upstream
from chalicelib.core import errors, groups, keys, limits, observe, payloads, quota
from chalicelib.core.channels import Channel, endpoints_by_model
from chalicelib.core.deadline import Deadline
from chalicelib.core.groups import AUTO_GROUP
from chalicelib.core.payloads import Kind
from chalicelib.core.pricing import Metered, ModelPrice, metered_cost_units
from chalicelib.core.records import DEFAULT_GROUP, AccountRecord, TokenRecord
from chalicelib.core.settings import get_settings
from chalicelib.store import account_reads as account_store
from chalicelib.store import config_reads as config_store
from chalicelib.store import ledger, owned
from chalicelib.store import token_reads as token_store
from chalicelib.store import usage as usage_store
from chalicelib.store.cache import AheadCache, refreshes_held, start_held_refreshes

if TYPE_CHECKING:
    from chalicelib.services.streaming import StreamOpening

# The kinds of provider-kept objects this module remembers owners of (store/owned.py).
RESPONSE, CONVERSATION = "response", "conversation"


# token id -> TokenRecord and account id -> AccountRecord, for a few seconds, refreshed ahead
# of their expiry while the key is in use (store/cache.py).
_cache: AheadCache | None = None


def cache() -> AheadCache:
    global _cache
    if _cache is None:
        _cache = AheadCache(get_settings().key_cache_seconds)
    return _cache


# Authentication ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyContext:
    token: TokenRecord
    key_hash: str


def authenticate(authorization: str | None) -> KeyContext:
    """The token behind ``Authorization: Bearer sk-…``; 401 for anything else.

    A cached record whose hash does not match is re-read once: the key may have been regenerated
    since. Whatever the cache says, the reservation's condition checks the hash again, and the
    revision the copy was at: so an expired copy is used too (``AheadCache.lasting``), and
    refreshed in the background, rather than read before a call after a quiet spell.
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
    owner_id = parsed.owner_id
    entry = "t:" + owner_id

    def load() -> TokenRecord | None:
        return token_store.get(owner_id)

    token = cache().stale(entry)
    if token is None:
        # No copy at all (a new container): the configuration is read beside the key. One read
        # for all the calls that find no copy at once (a burst), the others waiting for it.
        config_store.read_ahead()
        token = cache().fetch(entry, load)
    elif keys.hashes_match(presented, token.key_hash):
        token = cache().lasting(entry, refresh=load) or cache().fetch(entry, load)
    else:
        token = load()
        if token is not None:
            cache().put(entry, token)
    if token is None or not keys.hashes_match(presented, token.key_hash):
        raise errors.InvalidKey()
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
    account: AccountRecord | None = cache().fetch(
        "a:" + account_id, lambda: account_store.get(account_id)
    )
    return account


def _account_copy(account_id: str) -> AccountRecord | None:
    """A call's account, for its admission and reservation: the copy, expired or not (the
    reservation's condition checks its status, grants and balance), read only if there is
    none. What no condition checks (the model list's groups) reads ``_account``."""
    copy: AccountRecord | None = cache().lasting(
        "a:" + account_id, lambda: account_store.get(account_id)
    )
    return copy if copy is not None else _account(account_id)


def _copies_expired(token: TokenRecord, account: AccountRecord | None) -> bool:
    """Whether the copies of key and account a call was decided on are out of date: expired,
    or replaced since (another call's refresh)."""
    copies = cache()
    return not all(
        copies.fresh(entry) and copies.stale(entry) is copy
        for entry, copy in (("t:" + token.id, token), ("a:" + token.account_id, account))
    )


def ip_allowed(allow_ips: tuple[str, ...], source_ip: str) -> bool:
    if not allow_ips:
        return True
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allow_ips)


def key_for_route(authorization: str | None, source_ip: str) -> TokenRecord:
    """For /v1/key and billing: the key as stored now, from an allowed client IP (a disabled or
    expired key may read itself there: it is how its owner sees why its calls are refused)."""
    context = authenticate(authorization)
    token = fresh_token(context)
    if not ip_allowed(token.allow_ips, source_ip):
        raise errors.IpNotAllowed()
    return token


def usable_key(authorization: str | None, source_ip: str) -> TokenRecord:
    """For the routes that reserve nothing (the model list, stored objects, video jobs): the
    key as stored now, from an allowed IP, if it could call (``unusable``). No conditional
    write re-checks them, so key and account are read as stored now: a key or an account
    disabled a moment ago stops them at once."""
    token = key_for_route(authorization, source_ip)
    refused = unusable(token, account_store.get(token.account_id), int(time.time()))
    if refused is not None:
        raise refused
    return token


def usable_context(authorization: str | None, source_ip: str) -> KeyContext:
    """For a call: ``authenticate``, then refuse a key that cannot call from here at all
    (``_refusal``) before anything of the request is looked at, so a disabled key hears that
    it is disabled (an SDK's ``AuthenticationError``) whatever else is wrong with the request.
    Decided on the cached copies; a refusal is decided again on the key and account as stored
    now (so a key enabled a moment ago is not refused for the cache's life) and logged as
    rejected. A key the copies wrongly let through is still refused by its reservation; and
    if the copies were expired (``_admitted_on_copies``), any refusal of its request before
    the reservation gives way to the key's or account's own, as stored (``one_call``)."""
    context = authenticate(authorization)
    now = int(time.time())
    account = _account_copy(context.token.account_id)
    if _refusal(context.token, source_ip, now, account) is not None:
        context = _reread(context)
        refused = _refusal(context.token, source_ip, now)
        if refused is not None:
            _log_rejected(_record(context.token, "", "chat", {}, 0), refused)
            raise refused
    elif _copies_expired(context.token, account):
        _admitted_on_copies.call = (context, source_ip)
    return context


# Per thread: the call admitted on expired copies of its key or account (``usable_context``),
# until its reservation decides on the items as stored, or it is decided again on them.
_admitted_on_copies = threading.local()


def _as_stored(error: errors.GatewayError) -> errors.GatewayError:
    """``error``, a refusal of a call admitted on expired copies before it reserved; or, if the
    key or account as stored now refuses the call, that refusal instead (logged as rejected):
    a key disabled meanwhile hears that it is disabled, whatever else is wrong with its
    request, and a revoked secret learns nothing of what its request names."""
    admitted = getattr(_admitted_on_copies, "call", None)
    _admitted_on_copies.call = None
    if admitted is None or error.status >= 500:
        return error
    context, source_ip = admitted
    try:
        context = _reread(context)
    except errors.GatewayError as gone:  # deleted, or regenerated: not this key any more
        return gone
    refused = _refusal(context.token, source_ip, int(time.time()))
    if refused is None:
        return error
    _log_rejected(_record(context.token, "", "chat", {}, 0), refused)
    return refused


def _refusal(
    token: TokenRecord, source_ip: str, now: int, account: AccountRecord | None = None
) -> errors.GatewayError | None:
    """The IP allow-list first (a caller from elsewhere learns nothing of the key's state),
    then ``unusable`` (on ``account``, else the account's copy): the order ``usable_key``
    refuses in too."""
    if not ip_allowed(token.allow_ips, source_ip):
        return errors.IpNotAllowed()
    return unusable(token, account or _account_copy(token.account_id), now)


def unusable(
    token: TokenRecord, account: AccountRecord | None, now: int
) -> errors.GatewayError | None:
    """Why a key cannot call at all, whatever it asks: disabled, expired, or of a disabled
    account (in that order, as ``quota.token_refusal`` and ``account_refusal`` say it)."""
    if token.status != "enabled":
        return errors.KeyDisabled()
    if token.is_expired(now):
        return errors.KeyExpired()
    if account is None or account.status != "enabled":
        return errors.AccountDisabled() if account is not None else errors.InvalidKey()
    return None


def models_for(token: TokenRecord) -> list[str]:
    served = sorted({m for group in _groups_of(token) for m in upstream.list_models(group)})
    return [m for m in served if not token.models or m in token.models]


def model_list(token: TokenRecord) -> list[dict[str, Any]]:
    """``GET /v1/models``: the models this key's groups serve, each with its endpoints."""
    served = endpoints_by_model(config_store.channels(), _groups_of(token))
    return [
        {"id": model, "object": "model", "created": 0, "owned_by": "sluice", "endpoints": ends}
        for model, ends in served.items()
        if not token.models or model in token.models
    ]


def one_model(token: TokenRecord, model: str) -> dict[str, Any]:
    """``GET /v1/models/{model}``: the model as ``model_list`` shows it, or OpenAI's 404."""
    for listed in model_list(token):
        if listed["id"] == model:
            return listed
    raise _not_served(model)


def _groups_of(token: TokenRecord) -> list[str]:
    """The groups a key's calls can use: its own, or for ``auto`` the ordered granted ones."""
    if token.group != AUTO_GROUP:
        return [token.group]
    account = _account(token.account_id)
    granted = account.groups if account is not None else (DEFAULT_GROUP,)
    return groups.candidate_groups(config_store.auto_order(), granted)


def granted_groups(token: TokenRecord) -> list[str]:
    """``_groups_of`` less those the key's account is not granted (no call could use them)."""
    account = _account(token.account_id)
    granted = account.groups if account is not None else (DEFAULT_GROUP,)
    return [group for group in _groups_of(token) if group in granted]


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
    # The channel group the call uses: the key's, or the one ``auto`` picked for it.
    group: str = DEFAULT_GROUP
    # Set when the call continues an object only one channel's provider holds.
    channel_id: str | None = None
    # A call whose worst case is known up front (images, audio, video: ``services.media``)
    # reserves exactly that, whatever the budget (a budget below it is refused, not capped).
    reserve_units: int | None = None
    # Set when an upstream job holds the reservation past the call (``ledger.Reservation.job``).
    job: str = ""

    @property
    def token(self) -> TokenRecord:
        return self.key.token

    def plan(self, budget: int | None) -> quota.Plan:
        """The reservation for ``budget`` (the smaller balance of key and account)."""
        if self.reserve_units is not None:
            return quota.Plan(self.reserve_units, None)
        produces_output = payloads.produces_output(self.kind)
        return quota.plan(
            self.price,
            self.ratio,
            self.prompt_bound,
            payloads.requested_output(self.payload, self.kind) if produces_output else None,
            budget,
            produces_output=produces_output,
            default_output=payloads.DEFAULT_OUTPUT.get(self.kind, quota.DEFAULT_MAX_OUTPUT_TOKENS),
        )

    def key_check(self) -> ledger.KeyCheck:
        token = self.token
        return ledger.KeyCheck(
            token.id,
            self.key.key_hash,
            token.revision,
            self.group,
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


P = ParamSpec("P")
T = TypeVar("T")


def one_call(function: Callable[P, T]) -> Callable[P, T]:
    """``function`` run as one client call on its thread: the cache refreshes it finds due (key,
    account, configuration) wait until its reservation was answered (``reserve``), then read
    while it waits for the provider (``store/cache.py``)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        _admitted_on_copies.call = None
        with refreshes_held():
            try:
                return function(*args, **kwargs)
            except errors.GatewayError as error:
                decided = _as_stored(error)
                if decided is error:
                    raise
                raise decided from None
            finally:
                _admitted_on_copies.call = None

    return run


def relay_call(
    kind: Kind,
    raw_body: bytes,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None = None,
) -> CallResult | StreamOpening:
    """One call: a complete answer, or (``stream: true``) a stream opened upstream, whose
    ``answer()`` is the stream to hand on as it comes."""
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
        # Imported here: the streaming module builds on this one's steps (it imports them).
        from chalicelib.services import streaming

        return streaming.relay_stream(call, held)
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
    context = usable_context(authorization, source_ip)
    payload = payloads.parse(kind, raw_body)
    return admit_payload(kind, context, payload, source_ip, started=started, deadline=deadline)


def admit_payload(
    kind: Kind,
    context: KeyContext,
    payload: dict[str, Any],
    source_ip: str,
    *,
    started: float,
    deadline: Deadline | None = None,
    worst_case: Callable[[ModelPrice, Decimal], int] | None = None,
    job: str = "",
) -> Call:
    """``admit`` for a body already checked (``payload["model"]`` a valid name).

    ``worst_case(price, ratio)`` is the reservation of a call whose cost does not depend on an
    output cap (images, audio, video); without it the call is sized as chat and embeddings are.
    """
    model = payload["model"]
    price = config_store.price(model)
    continued = continued_object(kind, payload, context.token.account_id)
    where = continued_param(payload)
    pinned = _pinned_channel(continued, where)
    try:
        try:
            group, ratio = check_key(
                context.token, model, source_ip, _account_copy(context.token.account_id),
                pinned, pinned_param=where,
            )  # fmt: skip
        except (errors.Forbidden, errors.ModelNotFound):
            # Refusing on a cached copy would make a widened key wait for the cache: decide
            # again on the key and account as stored now (only refusals pay this read).
            context = _reread(context)
            _admitted_on_copies.call = None  # decided on what is stored from here
            unable = _refusal(context.token, source_ip, int(time.time()))
            if isinstance(unable, errors.Unauthenticated):  # (a Forbidden one is logged below)
                _log_rejected(_record(context.token, model, kind, payload, 0), unable)
            if unable is not None:
                raise unable from None
            group, ratio = check_key(
                context.token, model, source_ip, _account(context.token.account_id), pinned,
                pinned_param=where,
            )  # fmt: skip
        if price is None:
            raise _not_served(model)
    except (errors.Forbidden, errors.ModelNotFound) as refused:
        decided = _as_stored(refused)  # (logged there if the key or account refuses instead)
        if decided is not refused:
            raise decided from None
        _log_rejected(_record(context.token, model, kind, payload, 0), refused)
        raise
    carried = continued.tokens if continued is not None else 0
    return Call(
        kind=kind,
        key=context,
        payload=payload,
        model=model,
        price=price,
        ratio=ratio,
        prompt_bound=0
        if worst_case
        else upstream.prompt_tokens_upper_bound(kind, payload) + carried,
        stream=False if worst_case else payloads.is_stream(kind, payload),
        started=started,
        deadline=deadline or call_deadline(started),
        group=group,
        channel_id=continued.channel_id if continued is not None else None,
        reserve_units=worst_case(price, ratio) if worst_case else None,
        job=job,
    )


def continued_object(kind: Kind, payload: dict[str, Any], account_id: str) -> owned.Owner | None:
    """The stored response (or conversation) a Responses call continues, if it names one.

    Only its channel's provider holds it, so the call must go there; an id this account did not
    make is a 404 whether it exists or not (nothing is charged, nothing written).
    """
    if kind != "responses":
        return None
    previous = payload.get("previous_response_id")
    conversation = payload.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if previous:
        found = owned.owned_by(RESPONSE, previous, account_id)
        if found is None:
            raise errors.NotFound(
                f"Previous response with id '{previous}' not found.", param="previous_response_id"
            )
        return found
    if isinstance(conversation, str) and conversation:
        found = owned.owned_by(CONVERSATION, conversation, account_id)
        if found is None:
            raise errors.NotFound(
                f"Conversation with id '{conversation}' not found.", param="conversation"
            )
        return found
    return None


def continued_param(payload: dict[str, Any]) -> str:
    """The field that names what a Responses call continues (for the 404 when it cannot)."""
    return "conversation" if payload.get("conversation") else "previous_response_id"


def _pinned_channel(continued: owned.Owner | None, param: str) -> Channel | None:
    if continued is None:
        return None
    for channel in config_store.channels():
        if channel.id == continued.channel_id and channel.enabled:
            return channel
    # The channel that holds it was removed or disabled: nothing else can continue it.
    what = "conversation" if param == "conversation" else "stored response"
    raise errors.NotFound(f"The {what} can no longer be reached.", param=param)


def _reread(context: KeyContext) -> KeyContext:
    token = fresh_token(context)
    cache().put("t:" + token.id, token)
    cache().drop("a:" + token.account_id)
    return replace(context, token=token)


def check_key(
    token: TokenRecord,
    model: str,
    source_ip: str,
    account: AccountRecord | None,
    pinned: Channel | None = None,
    *,
    pinned_param: str = "previous_response_id",
) -> tuple[str, Decimal]:
    """Refuse what this key may not do; if it may, the group the call uses and its ratio.

    ``pinned``: the call continues an object on that channel (named by ``pinned_param``), so
    only its group will do.
    """
    if token.models and model not in token.models:
        raise errors.ModelNotAllowed(
            f"This API key may not use the model '{model}'.", param="model"
        )
    if not ip_allowed(token.allow_ips, source_ip):
        raise errors.IpNotAllowed()
    group = token.group
    if group == AUTO_GROUP:
        group = _auto_group(token, model, account, pinned)
    if account is not None and group not in account.groups:
        raise quota.group_refusal(group)
    if model not in upstream.list_models(group):
        raise _not_served(model)
    if pinned is not None and pinned.group != group:
        what = "conversation" if pinned_param == "conversation" else "stored response"
        raise errors.NotFound(f"The {what} is not reachable with this key.", param=pinned_param)
    return group, config_store.group_ratio(group)


def _auto_group(
    token: TokenRecord, model: str, account: AccountRecord | None, pinned: Channel | None
) -> str:
    """The group an ``auto`` key's call uses (core/groups.py), or the refusal if none fits."""
    granted = account.groups if account is not None else (DEFAULT_GROUP,)
    order = config_store.auto_order()
    if pinned is not None:
        order = tuple(g for g in order if g == pinned.group)
    chosen = groups.auto_choice(order, granted, lambda g: model in upstream.list_models(g))
    if chosen is not None:
        return chosen
    if not groups.candidate_groups(order, granted):
        raise quota.group_refusal(AUTO_GROUP)
    raise _not_served(model)


def _not_served(model: str) -> errors.ModelNotFound:
    return errors.ModelNotFound(
        f"The model '{model}' does not exist or is not served for this key.", param="model"
    )


def reserve(call: Call, source_ip: str) -> Held:
    """Hold the worst case on key and account: retried after a lazy reset, an edit of the key,
    or with a fresh budget; raises the precise refusal otherwise (logged as rejected)."""
    try:
        return _reserved(call, source_ip)
    finally:
        start_held_refreshes()  # answered: the reads ``one_call`` held may go out now


def _reserved(call: Call, source_ip: str) -> Held:
    _admitted_on_copies.call = None  # the reservation decides on the items as stored
    now = int(time.time())
    account = _account_copy(call.token.account_id)
    plan = call.plan(quota.budget(call.token, account))
    if plan != call.plan(None) and _copies_expired(call.token, account):
        # A balance caps this call, as an expired copy has it: one topped up since would cap
        # it for nothing. Decided again on the key and account as stored.
        call, plan = _decided_on_stored(call, source_ip)
        account = _account(call.token.account_id)
    record = _record(
        call.token, call.model, call.kind, call.payload, plan.reserve_units, call.group
    )
    for _ in range(MAX_RESERVE_ATTEMPTS):
        reservation = ledger.Reservation(
            record.request_id,
            call.token.id,
            call.token.account_id,
            plan.reserve_units,
            call.model,
            meters_tokens=call.token.tpm_limit is not None,
            job=call.job,
            account_meters_tokens=account is not None and account.tpm_limit is not None,
        )
        refusal = ledger.reserve_counted(
            reservation,
            call.key_check(),
            now,
            _account_limits(account),
            account_revision=account.revision if account is not None else None,
        )
        if isinstance(refusal, ledger.Counted):
            reserved = replace(record, reserved_units=plan.reserve_units)
            return Held(reservation, plan, reserved, refusal)
        cache().drop("t:" + call.token.id)
        cache().drop("a:" + call.token.account_id)
        try:
            retry = _after_refusal(call, plan, refusal, source_ip, now, account)
        except errors.GatewayError as refused:  # the key as edited may not make this call
            _log_rejected(replace(record, token_name=(refusal.token or call.token).name), refused)
            raise
        if isinstance(retry, errors.GatewayError):
            _log_rejected(record, retry)
            raise retry
        call, plan = retry
        # Logged as the call now admitted: an edit may have renamed the key or moved its group.
        record = replace(record, token_name=call.token.name, group=call.group)
        account = _account(call.token.account_id)  # (as stored: its entry was dropped)
    busy = errors.TooManyRequests(
        "The key was being reset or edited while this request was admitted; retry."
    )
    _log_rejected(record, busy)
    raise busy


MAX_RESERVE_ATTEMPTS = 3


def _decided_on_stored(call: Call, source_ip: str) -> tuple[Call, quota.Plan]:
    token = call.token
    try:
        token = _reread(call.key).token
        return _readmitted(call, token, source_ip)
    except errors.GatewayError as refused:
        _log_rejected(_record(token, call.model, call.kind, call.payload, 0), refused)
        raise


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
    call: Call,
    plan: quota.Plan,
    refusal: ledger.Refusal,
    source_ip: str,
    now: int,
    account: AccountRecord | None = None,
) -> errors.GatewayError | tuple[Call, quota.Plan]:
    """The refusal's error, or the call and plan to try again with (``account``: the copy the
    call was admitted on)."""
    edited = (
        refusal.account is not None
        and account is not None
        and refusal.account.revision != account.revision
    )

    def again_as_stored() -> tuple[Call, quota.Plan]:
        # On the account as the refusal carries it, and the key as it does if it refused too.
        token, stored = (refusal.token, True) if refusal.token else (call.token, False)
        return _readmitted(call, token, source_ip, refusal.account, stored_token=stored)

    if edited and not refusal.token_refused:
        # The account was edited since its copy (its limits, groups or status): decide again
        # on it as stored, which the refusal carries (an ``auto`` key may take another group).
        return again_as_stored()
    if not refusal.token_refused:
        error = quota.account_refusal(refusal.account, call.group, plan.reserve_units, now)
    else:
        verdict = quota.token_refusal(
            refusal.token, call.key.key_hash, call.token.revision, plan.reserve_units, now
        )
        if verdict == quota.RESET_DUE and refusal.token is not None:
            # Imported here: a key found due for its reset is the rare call, and the reset
            # job's code is a part of the relay's import (its cold start) no other call needs.
            from chalicelib.services import resets

            resets.reset_if_due(refusal.token, now)
            if edited:
                return _readmitted(call, call.token, source_ip, refusal.account, stored_token=False)
            return call, plan
        if verdict == quota.CHANGED and refusal.token is not None:
            return _readmitted(call, refusal.token, source_ip, refusal.account)
        error = verdict if isinstance(verdict, errors.GatewayError) else errors.InvalidKey()
    if edited and isinstance(error, errors.QuotaExhausted):
        return again_as_stored()  # short, on an account edited since its copy
    if edited and not isinstance(error, errors.Unauthenticated):
        # The key's own limits refused it, on an account edited since its copy: the account's
        # refusal as stored, if any, comes first (a fresh container meets it before the key's).
        again_as_stored()
    if isinstance(error, errors.QuotaExhausted):
        # The cached budget may have been stale: re-plan with what the items really hold.
        fresh = quota.budget(
            refusal.token or call.token, refusal.account or _account(call.token.account_id)
        )
        smaller = call.plan(fresh)
        if smaller.reserve_units < plan.reserve_units:
            return call, smaller
    return error


def _readmitted(
    call: Call,
    token: TokenRecord,
    source_ip: str,
    account: AccountRecord | None = None,
    *,
    stored_token: bool = True,
) -> tuple[Call, quota.Plan]:
    """The key or its account was edited since the call was checked: check it again as they
    now are (``token`` as stored unless not ``stored_token``; ``account`` as stored, else read),
    from the refusals any call meets first (disabled, expired) to what this one asks."""
    if stored_token:
        cache().put("t:" + token.id, token)
    if account is None:
        account = _account(token.account_id)
    else:
        cache().put("a:" + account.id, account)
    unable = _refusal(token, source_ip, int(time.time()), account)
    if unable is not None:
        raise unable
    group, ratio = check_key(token, call.model, source_ip, account, _pinned_by(call),
                             pinned_param=continued_param(call.payload))  # fmt: skip
    again = replace(call, key=replace(call.key, token=token), ratio=ratio, group=group)
    return again, again.plan(quota.budget(token, account))


def _pinned_by(call: Call) -> Channel | None:
    if call.channel_id is None:
        return None
    return next((c for c in config_store.channels() if c.id == call.channel_id), None)


def _record(
    token: TokenRecord,
    model: str,
    kind: Kind,
    payload: dict[str, Any],
    reserved: int,
    group: str | None = None,
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
        stream=payloads.is_stream(kind, payload),
        group=group or token.group,
    )


def capped(call: Call, held: Held) -> dict[str, Any]:
    payload = dict(call.payload)
    if held.plan.max_output_tokens is not None:
        payloads.set_output_cap(payload, held.plan.max_output_tokens, call.kind)
    return payload


def forward(call: Call, held: Held) -> upstream.UpstreamReply:
    """The call upstream with the reserved output cap; refunded in full if nothing came back."""
    payload = capped(call, held)
    with refunded_on_error(call, held):
        return upstream.forward(
            call.kind,
            payload,
            group=call.group,
            stream=call.stream,
            client_wants_usage=payloads.client_wants_usage(payload),
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
            channel_id=call.channel_id,
        )


@dataclass(frozen=True)
class Delivered:
    """The tokens a call's answer used, and whether they are an estimate."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cached_tokens: int = 0  # the part of prompt_tokens billed at the cached-input price


def charge(
    call: Call,
    held: Held,
    used: Delivered,
    *,
    paid: bool,
    channel: str,
    answer: bytes,
    status: str,
    detail: Any,
    cost: int | None = None,
) -> int:
    """Settle a call that was answered (whole, or streamed in part): charge what ``used`` costs
    (or ``cost``, computed by the caller for what tokens do not price) if it is ``paid`` for,
    never more than was reserved, and log it. Returns the charge."""
    metered = Metered(
        input_tokens=used.prompt_tokens,
        output_tokens=used.completion_tokens,
        cached_input_tokens=used.cached_tokens,
    )
    if not paid:
        real_cost = 0
    elif cost is not None:
        real_cost = cost
    else:
        real_cost = metered_cost_units(call.price, metered, call.ratio)
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
    finish(replace(held, record=answered), call.started, charged=charged, status=status,
            detail=detail)  # fmt: skip
    observe.metric("RelayedCalls")
    return charged


@contextmanager
def refunded_on_error(call: Call, held: Held) -> Iterator[None]:
    """Refund ``held`` in full if the block raises (upstream never answered, or its answer could
    not be used), then re-raise: a live call never leaves its reservation to the sweeper."""
    try:
        yield
    except Exception as exc:
        refund_failed(call, held, exc)
        raise


def refund_failed(call: Call, held: Held, error: BaseException) -> None:
    """Nothing was delivered: give the reservation back now rather than leave it to the
    sweeper."""
    finish(held, call.started, charged=0, status="upstream_error", detail=error)
    observe.metric("UpstreamFailures")


def settle(
    call: Call, held: Held, reply: upstream.UpstreamReply, *, cost: int | None = None
) -> CallResult:
    """Charge the real cost (never more than was reserved), release the rest, log the call.

    The cost is the reply's tokens at the model's price, or ``cost`` when the caller priced the
    answer itself (images, audio). Past the call's deadline the answer can no longer reach the
    client (its gateway has given up): it is refunded instead of charged, and answered 504.
    """
    if call.deadline.passed():
        finish(held, call.started, charged=0, status="deadline_exceeded", detail=None)
        raise errors.UpstreamTimeout("The call did not finish within its deadline.")
    ok = reply.status < 400
    if ok:
        remember_objects(call, reply.channel_id, reply.object_id, reply.conversation_id,
                         reply.prompt_tokens + reply.completion_tokens)  # fmt: skip
    charged = charge(
        call,
        held,
        Delivered(
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.usage_estimated,
            reply.cached_tokens,
        ),
        paid=ok,
        channel=reply.channel,
        answer=reply.body,
        status="ok" if ok else "upstream_error",
        detail=None,
        cost=cost,
    )
    return CallResult(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers={
            "X-Request-Id": held.record.request_id,
            "X-Sluice-Cost-Units": str(charged),
            **rate_headers(call, held, reply.prompt_tokens + reply.completion_tokens),
        },
    )


def remember_objects(
    call: Call, channel_id: str, object_id: str, conversation_id: str, tokens: int
) -> None:
    """Remember who owns the response (and conversation) an answer left at the provider, so
    follow-ups reach its channel and other accounts get 404. Written before the answer goes
    out, so the client's next call finds it; a failed write only costs the follow-up (404),
    never the answer."""
    account_id = call.token.account_id
    try:
        if object_id:
            owned.remember(RESPONSE, object_id, account_id, channel_id,
                           owned.RESPONSE_TTL_SECONDS, tokens=tokens)  # fmt: skip
        if conversation_id:
            owned.remember(CONVERSATION, conversation_id, account_id, channel_id,
                           owned.CONVERSATION_TTL_SECONDS, tokens=tokens)  # fmt: skip
    except errors.GatewayError as exc:
        observe.log("owner_not_recorded", level="WARNING", object_id=object_id,
                    code=exc.instance_code)  # fmt: skip


def rate_headers(call: Call, held: Held, tokens: int) -> dict[str, str]:
    """The key's ``x-ratelimit-*`` headers as this call left its minute (none without limits);
    a call that outlived the minute it was reserved in reports the new one, where its own
    tokens went."""
    now, counted = int(time.time()), held.counted
    if limits.minute(now) != counted.minute:
        counted = ledger.Counted(minute=limits.minute(now))
    return limits.rate_headers(
        call.token, now, counted.requests or 0, (counted.tokens or 0) + tokens
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
    asked = payload.get("messages", payload.get("input", payload.get("prompt")))
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


def finish(held: Held, started: float, *, charged: int, status: str, detail: Any) -> int:
    """Decide the call's outcome, then apply it: the record first, then both items' settles.

    The record is the decision. Written first, it lets the sweeper finish a call whose process
    dies before (or between) the settles, at exactly this cost; a call that dies before it is
    written is refunded whole by the sweeper. Either way key, account and log agree. A write
    that fails here is left to the sweeper the same way (logged, never raised at the client,
    who already has the answer). A record already there was decided first (a retried write,
    the sweeper, or, for a video job, another poll that saw it finish): it is followed, so the
    items are settled at its cost whoever gets there. Returns the cost applied.
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
        if not usage_store.put(final, get_settings().log_retention_days):
            decided = usage_store.get(final.request_id)
            if decided is not None:
                final = decided
                charged = decided.cost_units if decided.state == "settled" else 0
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
    return charged
