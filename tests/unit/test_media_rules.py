"""The pure rules of images, audio and video: multipart bodies, worst cases, transcripts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.core import media, multipart
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.pricing import ModelPrice

BODY = (
    b"--b\r\n"
    b'Content-Disposition: form-data; name="model"\r\n\r\n'
    b"whisper-1\r\n"
    b"--b\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    b"Content-Type: audio/wav\r\n\r\n"
    b"\x00\r\n--c\r\n\xff\r\n"
    b"--b--\r\n"
)


def test_a_form_is_read_without_copying_its_file_and_only_named_fields_change() -> None:
    form = multipart.parse(BODY, 'multipart/form-data; boundary="b"')
    assert form.field("model") == "whisper-1"
    [file] = form.files("file")
    assert form.value(file) == b"\x00\r\n--c\r\n\xff"
    changed = multipart.replace_fields(form, {"model": "whisper-large", "file": "ignored"})
    assert changed == BODY.replace(b"whisper-1", b"whisper-large")
    assert multipart.replace_fields(form, {}) == BODY


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (BODY, "application/json"),
        (BODY, "multipart/form-data"),
        (b"--b\r\nno blank line", "multipart/form-data; boundary=b"),
        (b"--b\r\nContent-Type: x\r\n\r\nvalue\r\n--b--", "multipart/form-data; boundary=b"),
        (BODY[:-10], "multipart/form-data; boundary=b"),
    ],
)
def test_a_body_that_is_not_a_form_is_a_400(body: bytes, content_type: str) -> None:
    with pytest.raises(InvalidRequest):
        multipart.parse(body, content_type)


def test_worst_cases_bound_every_priced_dimension() -> None:
    per_image = ModelPrice(usd_per_image=Decimal("0.04"))
    assert media.image_bound(per_image, Decimal(1), "a cat", 3) == 60_000
    by_tokens = ModelPrice(usd_per_image=Decimal("0.01"), output_usd_per_mtok=Decimal("40"))
    # 2 images x 6,240 output tokens at US$40/M, plus US$0.02
    assert media.image_bound(by_tokens, Decimal(1), "", 2) == 10_000 + 249_600
    per_minute = ModelPrice(usd_per_minute=Decimal("0.006"))
    assert media.transcription_bound(per_minute, Decimal(1), 1800, "") == 90_000
    assert media.video_cost(ModelPrice(usd_per_second=Decimal("0.1")), Decimal("1.5"), 4) == 300_000


def test_a_transcript_reports_duration_or_tokens_or_nothing() -> None:
    assert (
        media.transcription_used({"usage": {"type": "duration", "seconds": 7}}).audio_seconds == 7
    )
    tokens = media.transcription_used({"usage": {"type": "tokens", "input_tokens": 5}})
    assert tokens is not None and tokens.input_tokens == 5
    assert media.transcription_used({"duration": 2.5}).audio_seconds == Decimal("2.5")
    assert media.transcription_used({"text": "hi"}) is None
    assert media.transcription_used({"duration": True}) is None


def test_verbose_json_renders_as_srt_vtt_and_text() -> None:
    answer = {
        "text": "One. Two.",
        "segments": [
            {"start": 0, "end": 1.5, "text": " One."},
            {"start": 1.5, "end": 3661.25, "text": " Two."},
        ],
    }
    assert media.render_transcript(answer, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nOne.\n\n2\n00:00:01,500 --> 01:01:01,250\nTwo.\n\n"
    )
    assert media.render_transcript(answer, "vtt").startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nOne.\n"
    )
    assert media.render_transcript(answer, "text") == "One. Two.\n"


def test_the_format_asked_upstream_is_one_that_reports_the_cost() -> None:
    per_minute = ModelPrice(usd_per_minute=Decimal("0.006"))
    by_tokens = ModelPrice(input_usd_per_mtok=Decimal("6"))
    assert media.upstream_transcript_format(per_minute, "srt") == "verbose_json"
    assert media.upstream_transcript_format(per_minute, "json") == "json"
    assert media.upstream_transcript_format(by_tokens, "text") == "json"
