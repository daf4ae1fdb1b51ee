"""Quota arithmetic for one relayed call, as decisions without I/O (pure).

A call's life as the ledger sees it (one ``UsageRecord`` per call, plus an entry keyed by the
request id in the ``pending`` map of the token item and of the account item)::

    reserve ──► pending ──► settled    charge = real cost (capped at the reservation)
                       └──► refunded   charge = 0 (upstream failed, or the sweeper found it stale)

    reserve  : token   ADD remaining -R, reserved +R; SET pending[rid]   IF rule & no pending[rid]
               account ADD remaining -R, reserved +R; SET pending[rid]   IF rule & no pending[rid]
               record  PUT state=pending, sweep_at=now+max_age            (all three in parallel)
    settle   : token   ADD remaining R-c, reserved -R, used +c; REMOVE pending[rid] IF pending[rid]
               account (same)                                             (in parallel)
               record  SET state=settled, cost=c; REMOVE sweep_at          IF state=pending
    refund   : settle with c = 0, record state=refunded
    sweeper  : records with sweep_at <= now and state=pending -> refund   (idempotent)

Why it holds:
- Never overspend: the reservation is the only write that lowers ``remaining_units`` before the
  answer is known, and its condition is ``remaining_units >= R``. A settle never charges more
  than R, so remaining can only go up at settle time.
- Never double-apply: every money write is keyed by the request id. A reservation retried after
  a lost response finds ``pending[rid]`` already there and is recognised as ours; a settle or
  refund retried finds it gone and does nothing.
- Never leak: a reservation whose process died stays ``pending`` in its record, which the sparse
  ``usage_pending`` index hands to the sweeper once it is older than any live request can be.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from chalicelib.core import errors
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
    if not produces_output:
        return Plan(cost_units(price, prompt_tokens_bound, 0, ratio), None)
    wanted = requested_output if requested_output is not None else default_output
    if budget_units is not None:
        wanted = min(wanted, max_affordable_output(price, prompt_tokens_bound, budget_units, ratio))
    wanted = max(wanted, 1)
    return Plan(cost_units(price, prompt_tokens_bound, wanted, ratio), wanted)


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
    return errors.Conflict("This request id is already in use.")


def account_refusal(
    account: AccountRecord | None, group: str, reserve_units: int
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
    return errors.Conflict("This request id is already in use.")


def group_refusal(group: str) -> errors.GroupNotAllowed:
    return errors.GroupNotAllowed(
        f"This account may not use the channel group '{group}'; the operator grants groups.",
        param="group",
    )
