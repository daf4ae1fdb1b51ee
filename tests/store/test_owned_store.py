"""object id -> owner account and channel (store/owned.py), on moto."""

from __future__ import annotations

from typing import Any

from chalicelib.store import owned, usage


def test_a_remembered_object_is_found_with_its_account_and_channel(tables: Any) -> None:
    # GIVEN a response remembered for account A on channel c1
    owned.remember("response", "resp_1", "acct_a", "c1", ttl=3600, tokens=42)

    # WHEN it is looked up
    found = owned.owner("response", "resp_1")

    # THEN its owner is A on c1 (with the tokens it carries), and only A sees it
    assert found is not None
    assert (found.account_id, found.channel_id, found.tokens) == ("acct_a", "c1", 42)
    assert owned.owned_by("response", "resp_1", "acct_a") is not None
    assert owned.owned_by("response", "resp_1", "acct_b") is None


def test_unknown_expired_or_malformed_ids_have_no_owner(tables: Any) -> None:
    owned.remember("video", "vid_1", "acct_a", "c1", ttl=60, now=1_700_000_000)

    assert owned.owner("video", "vid_2") is None
    assert owned.owner("response", "vid_1") is None  # kinds do not share ids
    assert owned.owner("video", "vid_1", now=1_700_000_060) is None  # TTL not yet applied
    assert owned.owner("video", "") is None
    assert owned.owner("video", "x" * 300) is None


def test_owned_records_stay_out_of_the_accounts_usage_log(tables: Any) -> None:
    # GIVEN an owned record in the usage table
    owned.remember("response", "resp_1", "acct_a", "c1", ttl=3600)

    # WHEN the account's log is listed
    page = usage.list_for_account("acct_a", 10, None, start_ms=0, end_ms=2**41)

    # THEN it is not there
    assert page.items == []


def test_tokens_added_to_a_record_sum_even_when_another_write_lands_in_between(
    tables: Any, monkeypatch: Any
) -> None:
    # GIVEN a conversation carrying 10 tokens, and a response's record landing (tokens = 50)
    # between the first read and the first put of an add
    owned.remember("conversation", "conv_1", "acct_a", "c1", ttl=3600, tokens=10)
    real_read = owned._read
    raced = []

    def read_then_race(kind: str, object_id: str) -> dict[str, Any] | None:
        item = real_read(kind, object_id)
        if not raced:
            raced.append(True)
            owned.remember("conversation", "conv_1", "acct_a", "c1", ttl=3600, tokens=50)
        return item

    monkeypatch.setattr(owned, "_read", read_then_race)

    # WHEN 7 tokens are added, and then some to an unknown conversation
    added = owned.add_tokens("conversation", "conv_1", 7)
    unknown = owned.add_tokens("conversation", "conv_2", 7)

    # THEN the add was retried on the newer count, and nothing was made for the unknown id
    found = owned.owner("conversation", "conv_1")
    assert added and found is not None and found.tokens == 57
    assert not unknown and owned.owner("conversation", "conv_2") is None
