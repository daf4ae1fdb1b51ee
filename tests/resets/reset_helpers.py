"""Helpers for the reset tests: seed keys, spend like the relay does, read raw items.

Spending is simulated at the store level with the same write shapes as the relay's ledger
(reserve: conditional ADD; settle: ADD of the charge and release of the reservation), keeping
``remaining_units == base - used_units - reserved_units`` on every write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import keys
from chalicelib.core.records import TokenRecord
from chalicelib.store import tokens as token_store
from chalicelib.store.common import client_of
from chalicelib.store.models import Token


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def seed_tokens(
    count: int,
    *,
    period: str = "daily",
    next_reset_at: int | None,
    quota_units: int | None = 1_000_000,
    account_id: str = "acct-test",
    created_at: int = 0,
) -> list[str]:
    """Create ``count`` tokens directly in the store (no account item needed for resets)."""
    records = []
    for _ in range(count):
        token_id = keys.new_id()
        records.append(
            TokenRecord(
                id=token_id,
                account_id=account_id,
                name="seeded",
                key_hash=keys.hash_key(keys.new_key(keys.TOKEN_PREFIX, token_id)),
                key_preview="sk-…seed",
                created_at=created_at,
                unlimited=quota_units is None,
                quota_units=quota_units or 0,
                remaining_units=quota_units or 0,
                reset_period=period,
                next_reset_at=next_reset_at,
            )
        )
    for start in range(0, len(records), 100):
        token_store.create_many(records[start : start + 100])
    return [record.id for record in records]


def raw_item(token_id: str) -> dict[str, Any] | None:
    """The item exactly as stored (strongly consistent), numbers as ints."""
    response = client_of(Token).get_item(
        TableName=Token.Meta.table_name, Key={"id": {"S": token_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    if item is None:
        return None
    plain: dict[str, Any] = {}
    for name, value in item.items():
        if "N" in value:
            plain[name] = int(value["N"])
        elif "S" in value:
            plain[name] = value["S"]
        elif "BOOL" in value:
            plain[name] = value["BOOL"]
        else:
            plain[name] = value
    return plain


def assert_invariant(item: dict[str, Any]) -> None:
    base = 0 if item["unlimited"] else item["quota_units"]
    assert item["remaining_units"] == base - item["used_units"] - item["reserved_units"], item


@dataclass(frozen=True)
class Settled:
    """A settled charge and the boundary the key showed right after it (which period it hit)."""

    charged: int
    next_reset_at_after: int | None


def reserve(token_id: str, units: int) -> bool:
    """Hold ``units`` like the relay's reservation; False when the key cannot afford them."""
    try:
        client_of(Token).update_item(
            TableName=Token.Meta.table_name,
            Key={"id": {"S": token_id}},
            UpdateExpression="ADD remaining_units :neg, reserved_units :r",
            ConditionExpression=(
                "attribute_exists(id) AND (unlimited = :true OR remaining_units >= :r)"
            ),
            ExpressionAttributeValues={
                ":neg": {"N": str(-units)},
                ":r": {"N": str(units)},
                ":true": {"BOOL": True},
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def settle(token_id: str, reserved: int, charged: int) -> Settled:
    """Charge ``charged`` (<= ``reserved``) and release the reservation, in one write."""
    response = client_of(Token).update_item(
        TableName=Token.Meta.table_name,
        Key={"id": {"S": token_id}},
        UpdateExpression=(
            "ADD used_units :c, total_used_units :c,"
            " remaining_units :back, reserved_units :unreserve"
        ),
        ConditionExpression="attribute_exists(id)",
        ExpressionAttributeValues={
            ":c": {"N": str(charged)},
            ":back": {"N": str(reserved - charged)},
            ":unreserve": {"N": str(-reserved)},
        },
        ReturnValues="ALL_NEW",
    )
    boundary = response["Attributes"].get("next_reset_at")
    return Settled(charged, None if boundary is None else int(boundary["N"]))


def spend(token_id: str, units: int) -> bool:
    """Reserve then settle exactly ``units``; False (nothing written) when unaffordable."""
    if not reserve(token_id, units):
        return False
    settle(token_id, units, units)
    return True
