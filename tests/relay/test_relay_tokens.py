"""The prompt-token upper bound is never below what a provider counts; estimates err high."""

from __future__ import annotations

import random
import string

import pytest

from chalicelib.core.token_count import (
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW_DETAIL,
    estimate_completion_tokens,
    prompt_tokens_upper_bound,
)
from devtools.mock_upstream import count_tokens, embedding_inputs, prompt_tokens

ALPHABETS = [
    string.ascii_letters + " .,!?\n",
    "日本語のテキストと中文字符",
    "émojis 🎉🚀 ñ ü ß",
    string.printable,
]


def random_text(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def test_chat_bound_is_never_below_the_demo_upstreams_count_for_random_conversations() -> None:
    # GIVEN 300 random conversations (seeded) in several scripts, with empty and long messages
    rng = random.Random(20240611)
    for _ in range(300):
        messages = [
            {
                "role": rng.choice(["system", "user", "assistant"]),
                "content": random_text(rng, rng.choice(ALPHABETS), rng.randint(0, 400)),
            }
            for _ in range(rng.randint(1, 6))
        ]
        # WHEN the bound is computed
        bound = prompt_tokens_upper_bound("chat", {"model": "m", "messages": messages})
        # THEN it is at least the demo upstream's count (3 per message + ceil(chars / 4))
        assert bound >= prompt_tokens(messages)
        # AND at least a quarter of the UTF-8 bytes (any real tokenizer's floor for text)
        text_bytes = sum(len(m["content"].encode()) for m in messages)
        assert bound >= text_bytes / 4


def test_chat_bound_covers_every_byte_of_text_plus_per_message_overhead() -> None:
    # GIVEN two messages whose UTF-8 size differs from their length
    messages = [
        {"role": "system", "content": "Réponds en français."},
        {"role": "user", "content": "日本"},
    ]
    # WHEN the bound is computed
    bound = prompt_tokens_upper_bound("chat", {"model": "m", "messages": messages})
    # THEN every byte counts as a token (tokens never exceed bytes) plus template overhead
    text_bytes = len("Réponds en français.".encode()) + len("日本".encode())
    assert bound >= text_bytes + 2 * 3


def test_tools_and_response_format_are_counted_in_the_bound() -> None:
    # GIVEN the same message with and without a large tool definition
    messages = [{"role": "user", "content": "weather?"}]
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "description": "x" * 2_000, "parameters": {}},
    }
    # WHEN both bounds are computed
    plain = prompt_tokens_upper_bound("chat", {"model": "m", "messages": messages})
    with_tools = prompt_tokens_upper_bound(
        "chat", {"model": "m", "messages": messages, "tools": [tool]}
    )
    # THEN the tool's 2,000-character description is inside the bound
    assert with_tools >= plain + 2_000


def test_tool_calls_in_assistant_messages_are_counted() -> None:
    # GIVEN an assistant message with no content but long tool-call arguments
    arguments = '{"city": "' + "a" * 500 + '"}'
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
            ],
        }
    ]
    # WHEN the bound is computed
    bound = prompt_tokens_upper_bound("chat", {"model": "m", "messages": messages})
    # THEN the arguments are in it
    assert bound >= len(arguments)


def test_images_count_a_fixed_allowance_not_the_bytes_of_a_data_url() -> None:
    # GIVEN one message with a 1 MB base64 image and one with a low-detail image URL
    huge = "data:image/png;base64," + "A" * 1_000_000
    high = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": huge}}]}]
    low = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        }
    ]
    # WHEN the bounds are computed
    high_bound = prompt_tokens_upper_bound("chat", {"model": "m", "messages": high})
    low_bound = prompt_tokens_upper_bound("chat", {"model": "m", "messages": low})
    # THEN the image costs its allowance, not a million tokens
    assert IMAGE_TOKENS <= high_bound < IMAGE_TOKENS + 100
    assert IMAGE_TOKENS_LOW_DETAIL + len("what is this?") <= low_bound < IMAGE_TOKENS


@pytest.mark.parametrize(
    "raw_input",
    [
        "one string input",
        ["first", "second input", "日本語"],
        [101, 2023, 2003, 1037],
        [[1, 2, 3], [4, 5]],
        "",
    ],
)
def test_embedding_bound_is_never_below_the_demo_upstreams_count(raw_input: object) -> None:
    # GIVEN an embeddings input in one of the accepted shapes
    payload = {"model": "text-embedding-3-small", "input": raw_input}
    # WHEN the bound is computed
    bound = prompt_tokens_upper_bound("embeddings", payload)
    # THEN it covers the demo upstream's count for the same input
    assert bound >= sum(n for _, n in embedding_inputs(raw_input))


def test_malformed_messages_fall_back_to_the_size_of_the_whole_payload() -> None:
    # GIVEN a payload whose messages are not a list
    payload = {"model": "m", "messages": {"content": "x" * 300}}
    # WHEN the bound is computed
    bound = prompt_tokens_upper_bound("chat", payload)
    # THEN it still covers the text
    assert bound >= 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("abcd", 1), ("abcde", 2), ("日本語", 3), ("ab日本", 3)],
)
def test_completion_estimate_is_a_quarter_of_ascii_and_one_per_other_character(
    text: str, expected: int
) -> None:
    # GIVEN generated text  WHEN estimated  THEN ASCII counts 1/4 per char, the rest 1 each
    assert estimate_completion_tokens(text) == expected


def test_completion_estimate_is_never_below_the_demo_upstreams_count() -> None:
    # GIVEN random texts in several scripts (seeded, bounded)
    rng = random.Random(7)
    for _ in range(200):
        text = random_text(rng, rng.choice(ALPHABETS), rng.randint(0, 300))
        # WHEN estimated  THEN at least what the demo upstream reports
        assert estimate_completion_tokens(text) >= count_tokens(text)
