"""The relay reads and writes raw items (``store/items.py``), without PynamoDB: they must read
as PynamoDB's models read them, and fail as the store's other calls fail."""

from __future__ import annotations

from typing import Any

import pytest

KEY_ITEM = {
    "id": {"S": "tok_1"},
    "account_id": {"S": "acct_1"},
    "name": {"S": "older key"},
    "key_hash": {"S": "h"},
    "key_preview": {"S": "sk-...abcd"},
    "created_at": {"N": "1700000000"},
}


@pytest.mark.parametrize(
    "extra",
    [{}, {"unlimited": {"NULL": True}, "status": {"NULL": True}}, {"unlimited": {"BOOL": False}}],
    ids=["absent", "null", "set"],
)
def test_a_key_item_missing_attributes_reads_as_the_model_reads_it(
    tables: Any, extra: dict[str, Any]
) -> None:
    from chalicelib.store import token_reads, tokens
    from chalicelib.store.models import Token

    # GIVEN a key item written before some attributes existed (or with them NULL)
    raw = {**KEY_ITEM, **extra}

    # WHEN the relay decodes it THEN it reads as PynamoDB's model does, defaults included
    relayed = token_reads.record(raw)
    assert relayed == tokens.to_record(Token.from_raw_data(raw))
    assert relayed.status == "enabled"


def test_a_botocore_failure_without_an_answer_is_unavailable_not_an_error(
    tables: Any,
) -> None:
    from botocore.exceptions import EndpointConnectionError
    from support import on_dynamodb

    from chalicelib.core.errors import ServiceUnavailable
    from chalicelib.store import token_reads

    # GIVEN botocore carrying the calls (moto; SLUICE_DYNAMODB_CLIENT=botocore), and DynamoDB
    # out of reach
    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    # WHEN the relay reads a key THEN it is a 503 to retry, not an unhandled 500
    with (
        on_dynamodb("before-call.dynamodb.GetItem", unreachable, "unreachable"),
        pytest.raises(ServiceUnavailable),
    ):
        token_reads.get("tok_1")
