"""Quota arithmetic for one relayed call, as decisions without I/O (pure).

A call's life as the ledger sees it: an entry keyed by the request id in the ``pending`` map of
the token item and of the account item, and one ``UsageRecord`` written when the outcome is
decided::

    arrive ─► admit ─► reserve ─► upstream ─► decide ─► settle ─► done
                 │         │                     │         └─ token ADD used +c, remaining R-c,
                 │         │                     │            reserved -R; REMOVE pending[rid]
                 │         │                     │            IF pending[rid]   ‖ the same on
                 │         │                     │            the account (in parallel)
                 │         │                     └─ record PUT state=settled cost=c (or refunded
                 │         │                        c=0) IF no record: the decision, first
                 │         └─ token  ADD remaining -R, reserved +R; SET pending[rid]=[R, t, model,
                 │            token], sweep mark IF the rule & no pending[rid]  ‖ the same on the
                 │            account (in parallel); a refused half is undone, record "rejected"
                 └─ 403/404 refusals (model, IP, group) write the record "rejected" (one write)

    sweeper  : items whose sweep mark is due -> each entry older than the sweep age: settle it
               at the record's cost if the record says settled, else refund it (writing the
               record "refunded" first when there is none); then move or clear the mark

What is guaranteed wherever the process dies (each row is a test in tests/accounting/):

    dies ...                                  key and account end up  log record
    before either reservation lands           nothing reserved        none (nothing happened)
    after one reservation, before the other   refunded by sweeper     refunded (swept)
    after both, before/during upstream        refunded by sweeper     refunded (swept)
    after the answer, before the record       refunded by sweeper     refunded (swept)
    after the record, before the settles      settled at c by sweeper settled, cost c
    between the token and account settle      the rest settled at c   settled, cost c
    after both settles                        settled at c            settled, cost c

Why it holds:
- Never overspend: the reservation is the only write that lowers ``remaining_units`` before the
  answer is known, and its condition is ``remaining_units >= R``. A settle never charges more
  than R, so remaining can only go up at settle time.
- Never double-apply: every money write is keyed by the request id. A reservation retried after
  a lost response finds ``pending[rid]`` already there and is recognised as ours; a settle or
  refund retried finds it gone and does nothing; a record is never overwritten.
- Never leak: an entry carries what the sweeper needs (units, time, model, key), and its item
  carries a sweep mark no later than the entry's deadline, so every entry whose process died is
  found (the sparse ``tokens_pending``/``accounts_pending`` indexes) and finished once.
- Key, account and log agree: the record is written before either settle, and the sweeper
  follows it, so both items are charged the same c (or nothing) and the record says which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final, Literal

from chalicelib.core import errors, limits
from chalicelib.core.pricing import ModelPrice, cost_units, max_affordable_output
from chalicelib.core.records import AccountRecord, TokenRecord

DEFAULT_MAX_OUTPUT_TOKENS = 4096


@dataclass(frozen=True)
class Plan:
    """What to reserve for a call, and the output cap to send upstream (None: leave as is)."""

    reserve_units: int
    max_output_tokens: int | None


def plan(
    price: ModelPrice,
    ratio: Decimal,
    prompt_tokens_bound: int,
    requested_output: int | None,
    budget_units: int | None,
    *,
    produces_output: bool = True,
    default_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
) -> Plan:
    """The worst case this call can cost, capped to what the key and account can pay.

    ``budget_units`` is the smaller of the key's and the account's remaining units (None when
    both are unlimited). The output cap is the client's ``max_tokens`` (or the model default),
    lowered to what the budget affords, so a rich request never gets a false 429 (it is capped
    instead) and a poor key can never run past its quota.
    """
    if price.is_flat:
        return Plan(cost_units(price, 0, 0, ratio), None)
    price = _worst_input_rate(price)
    if not produces_output:
        return Plan(cost_units(price, prompt_tokens_bound, 0, ratio), None)
    wanted = requested_output if requested_output is not None else default_output
    if budget_units is not None:
        wanted = min(wanted, max_affordable_output(price, prompt_tokens_bound, budget_units, ratio))
    wanted = max(wanted, 1)
    return Plan(cost_units(price, prompt_tokens_bound, wanted, ratio), wanted)


def _worst_input_rate(price: ModelPrice) -> ModelPrice:
    """The price the reservation sizes the input with: the dearer of the input and cached-input
    rates, since the provider decides which prompt tokens it serves from its cache."""
    cached, fresh = price.cached_input_usd_per_mtok, price.input_usd_per_mtok
    if cached is not None and (fresh is None or cached > fresh):
        return replace(price, input_usd_per_mtok=cached)
    return price


def budget(token: TokenRecord, account: AccountRecord | None) -> int | None:
    """The smaller remaining balance of key and account, as last seen (None: both unlimited)."""
    limits = []
    if not token.unlimited:
        limits.append(token.remaining_units)
    if account is not None and not account.unlimited:
        limits.append(account.remaining_units)
    return max(min(limits), 0) if limits else None


def charge(reserved: int, real_cost: int) -> int:
    """What a settle charges: the real cost, never more than was reserved (never overspend)."""
    return max(0, min(real_cost, reserved))


# Why a reservation was refused, from the item as it was (ReturnValuesOnConditionCheckFailure).
# Two refusals are not final: the key was due for a reset (reset it and try again), or it was
# edited since its permissions were checked (check them again on the item as it now is).
RESET_DUE: Final = "reset_due"
CHANGED: Final = "changed"
Retry = Literal["reset_due", "changed"]


def token_refusal(
    token: TokenRecord | None, key_hash: str, revision: int, reserve_units: int, now: int
) -> errors.GatewayError | Retry:
    """The precise error for a refused token reservation, or why it may be tried again."""
    if token is None or token.key_hash != key_hash:
        return errors.InvalidKey()
    if token.status != "enabled":
        return errors.KeyDisabled()
    if token.is_expired(now):
        return errors.KeyExpired()
    if token.revision != revision:
        return CHANGED
    if token.next_reset_at is not None and token.next_reset_at <= now:
        return RESET_DUE
    if not token.unlimited and token.remaining_units < reserve_units:
        return errors.KeyQuotaExhausted(
            f"This API key's quota is exhausted: {max(token.remaining_units, 0)} units left, "
            f"this request needs up to {reserve_units}."
        )
    rate_limited = limits.refusal(token, now)
    if rate_limited is not None:
        return rate_limited
    return errors.Conflict("This request id is already in use.")


def account_refusal(
    account: AccountRecord | None, group: str, reserve_units: int, now: int | None = None
) -> errors.GatewayError:
    if account is None:
        return errors.InvalidKey()
    if account.status != "enabled":
        return errors.AccountDisabled()
    if group not in account.groups:
        return group_refusal(group)
    if not account.unlimited and account.remaining_units < reserve_units:
        return errors.AccountQuotaExhausted(
            f"The account's balance is exhausted: {max(account.remaining_units, 0)} units left, "
            f"this request needs up to {reserve_units}."
        )
    rate_limited = limits.refusal(account, now, who="account") if now is not None else None
    if rate_limited is not None:
        return rate_limited
    return errors.Conflict("This request id is already in use.")


def group_refusal(group: str) -> errors.GroupNotAllowed:
    return errors.GroupNotAllowed(
        f"This account may not use the channel group '{group}'; the operator grants groups.",
        param="group",
    )
