"""Images and audio through the relay (Starlette test client + moto): answered, charged exactly
from the demo upstream's deterministic answers, uploads relayed byte for byte, and bad input
refused with an OpenAI-shaped 4xx that charges nothing."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.core import pricing
from chalicelib.relay.app import MAX_BODY_BYTES
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord
from devtools.mock_media import IMAGE_INPUT_TOKENS, IMAGE_OUTPUT_TOKENS, transcript_text

BOUNDARY = "sluice-test-boundary"
# Bytes that look like multipart syntax and are not UTF-8: they must arrive unchanged.
AWKWARD = b"\x00\xff\r\n--not-the-boundary\r\n\r\n" + bytes(range(256)) * 40


def units(usd: str) -> int:
    return math.ceil(Decimal(usd) * pricing.UNITS_PER_USD)


def form(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    parts = []
    for name, value in fields.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + value.encode() + b"\r\n")
    for name, data in files.items():
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def _setup(relay_api: Any) -> tuple[str, dict[str, Any]]:
    created = relay_api.new_account("acme", quota_usd="10")
    return created["account"]["id"], created["default_token"]


def _spent(token: dict[str, Any], account_id: str) -> tuple[int, int, int, int]:
    key = token_store.get(token["id"])
    account = account_store.get(account_id)
    assert key is not None and account is not None
    return key.used_units, key.reserved_units, account.used_units, account.reserved_units


def _post(relay_api: Any, path: str, token: dict[str, Any], body: Any = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token['key']}"}
    if "content_type" in kw:
        headers["Content-Type"] = kw.pop("content_type")
        raw = kw.pop("raw")
    else:
        headers["Content-Type"] = "application/json"
        raw = json.dumps(body).encode()
    return relay_api.client.http.post(path, headers=headers, body=raw)


def _record() -> Any:
    [record] = list(UsageRecord.scan())
    return record


# Images -------------------------------------------------------------------------------------
def test_image_generation_charges_each_image_returned(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    body = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 3}
    response = _post(relay_api, "/v1/images/generations", token, body)
    assert response.status_code == 200
    assert len(response.json_body["data"]) == 3
    cost = units("0.12")  # 3 x US$0.04
    assert _spent(token, account_id) == (cost, 0, cost, 0)
    assert int(response.headers["X-Sluice-Cost-Units"]) == cost
    record = _record()
    assert (record.state, record.reserved_units, record.cost_units) == ("settled", cost, cost)


def test_image_generation_charges_only_the_images_that_came_back(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    body = {"model": "dall-e-3", "prompt": "two cats [fewer]", "n": 2}
    response = _post(relay_api, "/v1/images/generations", token, body)
    assert response.status_code == 200 and len(response.json_body["data"]) == 1
    assert _spent(token, account_id) == (units("0.04"), 0, units("0.04"), 0)
    assert _record().reserved_units == units("0.08")


def test_token_priced_image_model_is_charged_per_image_and_by_usage(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "n": 2}
    response = _post(relay_api, "/v1/images/generations", token, body)
    assert response.status_code == 200
    usd = (
        Decimal("0.02")
        + Decimal(IMAGE_INPUT_TOKENS) * Decimal("5") / 10**6
        + Decimal(IMAGE_OUTPUT_TOKENS * 2) * Decimal("40") / 10**6
    )
    cost = math.ceil(usd * pricing.UNITS_PER_USD)
    assert _spent(token, account_id) == (cost, 0, cost, 0)
    record = _record()
    assert (record.prompt_tokens, record.completion_tokens) == (50, 544)
    assert record.reserved_units > cost  # the bound: prompt bytes and 6,240 tokens an image


def test_image_edit_reaches_the_provider_byte_for_byte(relay_api: Any, upstream: Any) -> None:
    account_id, token = _setup(relay_api)
    raw, content_type = form(
        {"model": "dall-e-3", "prompt": "add a moon", "n": "1"},
        {"image": AWKWARD, "mask": AWKWARD[::-1]},
    )
    response = _post(relay_api, "/v1/images/edits", token, raw=raw, content_type=content_type)
    assert response.status_code == 200, response.body
    assert upstream.last_files == {"image": AWKWARD, "mask": AWKWARD[::-1]}
    assert _spent(token, account_id) == (units("0.04"), 0, units("0.04"), 0)


# Speech -------------------------------------------------------------------------------------
def test_speech_returns_the_providers_audio_and_charges_its_characters(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    text = "Héllo from Sluice! " * 10  # 190 characters, more UTF-8 bytes
    body = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"}
    response = _post(relay_api, "/v1/audio/speech", token, body)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.body.startswith(b"ID3")
    cost = math.ceil(Decimal(len(text)) * Decimal("15") / 10**6 * pricing.UNITS_PER_USD)
    assert _spent(token, account_id) == (cost, 0, cost, 0)
    assert _record().reserved_units == cost  # exact before the call


# Transcription and translation ----------------------------------------------------------------
def _transcribe(relay_api: Any, token: dict[str, Any], path: str = "transcriptions", **fields: str):
    audio = AWKWARD[:30_000] if len(AWKWARD) >= 30_000 else (AWKWARD * 3)[:30_000]
    raw, content_type = form({"model": "whisper-1", **fields}, {"file": audio})
    response = _post(relay_api, f"/v1/audio/{path}", token, raw=raw, content_type=content_type)
    return response, audio


MINUTE_COST = units("0.003")  # 30 s of audio (30,000 bytes in the demo) at US$0.006 a minute


def test_transcription_is_charged_by_the_reported_duration(relay_api: Any, upstream: Any) -> None:
    account_id, token = _setup(relay_api)
    response, audio = _transcribe(relay_api, token)
    assert response.status_code == 200
    assert response.json_body["text"] == transcript_text(len(audio))
    assert upstream.last_files == {"file": audio}
    assert _spent(token, account_id) == (MINUTE_COST, 0, MINUTE_COST, 0)
    assert _record().reserved_units == units("0.18")  # 30 minutes, the default maximum


def test_a_models_own_max_audio_seconds_bounds_its_reservation(relay_api: Any) -> None:
    # GIVEN whisper-1 priced with a maximum of 60 s, not the default 30 minutes
    status, _ = relay_api.admin(
        "PUT", "/admin/models/whisper-1", body={"usd_per_minute": "0.006", "max_audio_seconds": 60}
    )
    assert status == 200
    account_id, token = _setup(relay_api)
    # WHEN 30 s of audio is transcribed
    response, _audio = _transcribe(relay_api, token)
    # THEN it was reserved for one minute and charged the 30 s reported
    assert response.status_code == 200
    assert _record().reserved_units == units("0.006")
    assert _spent(token, account_id) == (MINUTE_COST, 0, MINUTE_COST, 0)


def test_formats_without_a_duration_are_asked_as_verbose_json_and_rendered(
    relay_api: Any, upstream: Any
) -> None:
    account_id, token = _setup(relay_api)
    said = transcript_text(30_000)
    expected = {
        "srt": f"1\n00:00:00,000 --> 00:00:30,000\n{said}\n\n",
        "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:30.000\n{said}\n\n",
        "text": said + "\n",
    }
    for wanted, rendered in expected.items():
        response, _audio = _transcribe(relay_api, token, response_format=wanted)
        assert response.status_code == 200
        assert upstream.last_body["response_format"] == "verbose_json"
        assert response.body.decode() == rendered
        assert response.headers["Content-Type"].startswith("text/plain")
    assert _spent(token, account_id) == (3 * MINUTE_COST, 0, 3 * MINUTE_COST, 0)


def test_translation_and_verbose_json_are_charged_by_duration(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    response, _audio = _transcribe(relay_api, token, "translations", response_format="verbose_json")
    assert response.status_code == 200 and response.json_body["duration"] == 30.0
    assert _spent(token, account_id) == (MINUTE_COST, 0, MINUTE_COST, 0)


def _token_cost(input_tokens: int, output_tokens: int) -> int:
    usd = (Decimal(input_tokens) * 6 + Decimal(output_tokens) * 10) / 10**6
    return math.ceil(usd * pricing.UNITS_PER_USD)


@pytest.mark.parametrize("stream", [False, True])
def test_token_priced_transcription_is_charged_by_its_usage(
    relay_api: Any, upstream: Any, stream: bool
) -> None:
    account_id, token = _setup(relay_api)
    fields = {"model": "gpt-4o-transcribe", "response_format": "text"}
    if stream:
        fields = {"model": "gpt-4o-transcribe", "stream": "true"}
    raw, content_type = form(fields, {"file": b"a" * 12_000})
    response = _post(
        relay_api, "/v1/audio/transcriptions", token, raw=raw, content_type=content_type
    )
    assert response.status_code == 200
    text = transcript_text(12_000)
    if stream:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert '"transcript.text.done"' in response.body.decode()
        record = _record()
        assert record.stream is True and record.state == "settled"
    else:
        assert upstream.last_body["response_format"] == "json"
        assert response.body.decode() == text + "\n"
    cost = _token_cost(120, math.ceil(len(text) / 4))
    assert _spent(token, account_id) == (cost, 0, cost, 0)


# Limits and bad input -------------------------------------------------------------------------
def test_an_upload_above_the_limit_is_413_with_the_limit(relay_api: Any) -> None:
    account_id, token = _setup(relay_api)
    raw, content_type = form({"model": "whisper-1"}, {"file": b"x" * (MAX_BODY_BYTES + 1)})
    response = _post(
        relay_api, "/v1/audio/transcriptions", token, raw=raw, content_type=content_type
    )
    assert response.status_code == 413
    error = response.json_body["error"]
    assert "4 MB" in error["message"] and error["type"] == "invalid_request_error"
    assert _spent(token, account_id) == (0, 0, 0, 0)


GOOD_FILE = {"file": b"RIFF...."}
BAD_INPUT = [
    ("/v1/images/generations", {"prompt": "x"}, "model"),
    ("/v1/images/generations", {"model": 3, "prompt": "x"}, "model"),
    ("/v1/images/generations", {"model": "dall-e-3"}, "prompt"),
    ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "n": "two"}, "n"),
    ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "n": 11}, "n"),
    ("/v1/images/generations", {"model": "no-such-model", "prompt": "x"}, "model"),
    ("/v1/audio/speech", {"input": "hi", "voice": "alloy"}, "model"),
    ("/v1/audio/speech", {"model": "tts-1", "input": 5, "voice": "alloy"}, "input"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "hi"}, "voice"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "x" * 4097, "voice": "a"}, "input"),
    ("/v1/images/edits", ({"prompt": "x"}, GOOD_FILE), "model"),
    ("/v1/images/edits", ({"model": "dall-e-3", "prompt": "x"}, {}), "image"),
    ("/v1/audio/transcriptions", ({}, GOOD_FILE), "model"),
    ("/v1/audio/transcriptions", ({"model": "whisper-1"}, {}), "file"),
    (
        "/v1/audio/transcriptions",
        ({"model": "whisper-1", "response_format": "mp3"}, GOOD_FILE),
        "response_format",
    ),
    ("/v1/audio/translations", ({"model": "whisper-1", "stream": "maybe"}, GOOD_FILE), "stream"),
]


UNREADABLE = [
    ("/v1/images/generations", b"{not json", "application/json"),
    ("/v1/audio/speech", b"[1, 2]", "application/json"),
    ("/v1/images/edits", b"model=dall-e-3", "application/x-www-form-urlencoded"),
    ("/v1/audio/transcriptions", b"--x\r\nno headers", "multipart/form-data; boundary=x"),
]


def test_bad_input_is_an_openai_4xx_that_charges_nothing(relay_api: Any) -> None:
    # GIVEN one key; WHEN every kind of bad body is sent to each route (one setup, many cases)
    account_id, token = _setup(relay_api)
    for path, body, param in BAD_INPUT:
        if isinstance(body, tuple):
            raw, content_type = form(*body)
            response = _post(relay_api, path, token, raw=raw, content_type=content_type)
        else:
            response = _post(relay_api, path, token, body)
        # THEN an OpenAI-shaped 4xx naming the parameter
        assert 400 <= response.status_code < 500, (path, body, response.body)
        error = response.json_body["error"]
        assert (error["param"], bool(error["message"])) == (param, True), (path, body)
    for path, raw, content_type in UNREADABLE:
        response = _post(relay_api, path, token, raw=raw, content_type=content_type)
        assert response.status_code == 400, (path, raw)
        assert response.json_body["error"]["type"] == "invalid_request_error"
    # AND nothing was charged or reserved, and no call was logged as anything but rejected
    assert _spent(token, account_id) == (0, 0, 0, 0)
    assert {r.state for r in UsageRecord.scan()} <= {"rejected"}
