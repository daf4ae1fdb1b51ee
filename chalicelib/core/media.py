"""Images, audio and video: what a request asks for, its worst case and its real cost (pure).

Each kind is reserved at a bound the call can never exceed and settled from the answer:

* images: ``n`` x ``usd_per_image``, plus tokens for models priced by tokens (the prompt by its
  UTF-8 bytes, each input and output image by ``IMAGE_TOKENS_BOUND``); settled by the number of
  images returned and the answer's ``usage`` when it has one;
* speech: the input's characters at ``usd_per_mchar`` (exact before the call: the audio answer
  carries no usage, so a token price is charged on the input's bytes bound);
* transcription / translation: ``max_audio_seconds`` at ``usd_per_minute`` (tokens: audio and
  text bounds per second), settled by the reported duration (``usage.seconds``, verbose_json
  ``duration``) or tokens (``usage.input_tokens`` / ``output_tokens``); an answer reporting
  neither is charged the reservation;
* video: ``seconds`` x ``usd_per_second``, settled from the finished job's ``seconds``.

Costs go through ``pricing.metered_cost_units`` like every other call, and a settle never charges
more than was reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.pricing import Metered, ModelPrice, metered_cost_units

# What API Gateway must pass through as binary (wildcards as API Gateway accepts them).
UPLOAD_MEDIA_TYPES = ("multipart/form-data", "audio/*", "image/*", "video/*")
MAX_IMAGES = 10
# gpt-image-1's largest image (1536x1024, high quality) is 6,240 output tokens, and an input
# image is billed at most as much: the bound for each image a call can make or send.
IMAGE_TOKENS_BOUND = 6_240
MAX_SPEECH_CHARS = 4_096
# Token-priced transcription (gpt-4o-transcribe) bills about 10 audio tokens and writes a few
# text tokens per second of speech; these bounds sit well above both.
AUDIO_TOKENS_PER_SECOND_BOUND = 40
TEXT_TOKENS_PER_SECOND_BOUND = 20
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
DEFAULT_VIDEO_SECONDS = 4
MAX_VIDEO_SECONDS = 60


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_model(value: Any) -> str:
    if value is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if not isinstance(value, str):
        raise InvalidRequest("'model' must be a string.", param="model")
    if not value.strip() or len(value) > 256:
        raise InvalidRequest("'model' must be 1 to 256 characters.", param="model")
    return value


def _text(payload: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=name)
    if required and not value:
        raise InvalidRequest(f"'{name}' must not be empty.", param=name)
    return value


def image_count(value: Any) -> int:
    """``n`` as JSON gives it, or as a form field's text; 1 when absent."""
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not _is_int(value) or not 1 <= value <= MAX_IMAGES:
        raise InvalidRequest(f"'n' must be an integer from 1 to {MAX_IMAGES}.", param="n")
    return int(value)


def check_image_request(payload: dict[str, Any]) -> int:
    """A generation (JSON) or edit (form fields) request: its model and prompt; returns ``n``."""
    check_model(payload.get("model"))
    _text(payload, "prompt", required=True)
    return image_count(payload.get("n"))


def check_speech_request(payload: dict[str, Any]) -> str:
    """The text to speak (model, input and voice are required, as OpenAI has them)."""
    check_model(payload.get("model"))
    text = _text(payload, "input", required=True) or ""
    _text(payload, "voice", required=True)
    if len(text) > MAX_SPEECH_CHARS:
        raise InvalidRequest(
            f"'input' must be at most {MAX_SPEECH_CHARS} characters.", param="input"
        )
    return text


def transcript_format(value: str | None) -> str:
    if value is None:
        return "json"
    if value not in TRANSCRIPT_FORMATS:
        raise InvalidRequest(
            "'response_format' must be one of " + ", ".join(TRANSCRIPT_FORMATS) + ".",
            param="response_format",
        )
    return value


def form_flag(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("false", "0", ""):
        return False
    if value.strip().lower() in ("true", "1"):
        return True
    raise InvalidRequest(f"'{name}' must be true or false.", param=name)


def video_seconds(value: Any) -> int:
    """``seconds`` of a video request: OpenAI sends a string ("4", "8", "12"); ints are taken."""
    if value is None:
        return DEFAULT_VIDEO_SECONDS
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not _is_int(value) or not 1 <= value <= MAX_VIDEO_SECONDS:
        raise InvalidRequest(
            f"'seconds' must be a whole number of seconds from 1 to {MAX_VIDEO_SECONDS}.",
            param="seconds",
        )
    return int(value)


def check_video_request(payload: dict[str, Any]) -> int:
    check_model(payload.get("model"))
    _text(payload, "prompt", required=True)
    return video_seconds(payload.get("seconds"))


# Worst cases and real costs ---------------------------------------------------------------
def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def image_bound(price: ModelPrice, ratio: Decimal, prompt: str, n: int, inputs: int = 0) -> int:
    """What an image call can cost at most: ``n`` images, and tokens if the model has them."""
    tokens = 0 if price.is_flat else 1
    return metered_cost_units(
        price,
        Metered(
            input_tokens=tokens * (utf8_len(prompt) + inputs * IMAGE_TOKENS_BOUND),
            output_tokens=tokens * n * IMAGE_TOKENS_BOUND,
            images=n,
        ),
        ratio,
    )


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


def token_usage(usage: Any) -> TokenUsage | None:
    """``usage`` of an image or transcription answer, when it counts tokens."""
    if not isinstance(usage, dict):
        return None
    values = [usage.get("input_tokens"), usage.get("output_tokens", 0)]
    if not all(_is_int(v) and v >= 0 for v in values):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return TokenUsage(int(values[0]), int(values[1]), int(cached) if _is_int(cached) else 0)


def image_cost(price: ModelPrice, ratio: Decimal, answer: Any, n: int) -> tuple[int, Metered]:
    """The real cost of an image answer: the images it holds (at most ``n``), and its usage."""
    data = answer.get("data") if isinstance(answer, dict) else None
    images = min(len(data), n) if isinstance(data, list) else 0
    usage = token_usage(answer.get("usage")) if isinstance(answer, dict) else None
    used = Metered(images=images)
    if usage is not None:
        used = Metered(
            images=images,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_tokens,
        )
    return metered_cost_units(price, used, ratio), used


def speech_cost(price: ModelPrice, ratio: Decimal, text: str) -> int:
    """Exact before the call: characters are what speech is billed by."""
    return metered_cost_units(
        price, Metered(characters=len(text), input_tokens=utf8_len(text)), ratio
    )


def transcription_bound(price: ModelPrice, ratio: Decimal, max_seconds: int, prompt: str) -> int:
    tokens = 0 if price.is_flat else 1
    return metered_cost_units(
        price,
        Metered(
            audio_seconds=Decimal(max_seconds),
            input_tokens=tokens * (max_seconds * AUDIO_TOKENS_PER_SECOND_BOUND + utf8_len(prompt)),
            output_tokens=tokens * max_seconds * TEXT_TOKENS_PER_SECOND_BOUND,
        ),
        ratio,
    )


def _seconds(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = Decimal(str(value))
    except InvalidOperation:
        return None
    return seconds if seconds.is_finite() and seconds >= 0 else None


def transcription_used(answer: Any) -> Metered | None:
    """What a transcription answer reports having used; None when it reports nothing."""
    if not isinstance(answer, dict):
        return None
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = _seconds(usage.get("seconds"))
        if seconds is not None:
            return Metered(audio_seconds=seconds)
    tokens = token_usage(usage)
    if tokens is not None:
        return Metered(
            input_tokens=tokens.input_tokens,
            output_tokens=tokens.output_tokens,
            cached_input_tokens=tokens.cached_tokens,
        )
    duration = _seconds(answer.get("duration"))
    return Metered(audio_seconds=duration) if duration is not None else None


def upstream_transcript_format(price: ModelPrice, wanted: str) -> str:
    """The format to ask the provider for, so that the answer reports what it costs.

    text, srt and vtt carry no duration: a model priced by the minute is asked for verbose_json
    (rendered back by ``render_transcript``), one priced by tokens for json (its usage).
    """
    if wanted in ("json", "verbose_json"):
        return wanted
    if price.usd_per_minute is not None:
        return "verbose_json"
    return "json" if wanted == "text" else wanted


def _timestamp(seconds: Any, separator: str) -> str:
    value = _seconds(seconds) or Decimal(0)
    millis = int((value * 1000).to_integral_value())
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_transcript(answer: dict[str, Any], wanted: str) -> str:
    """verbose_json or json rendered as the text, srt or vtt answer the client asked for."""
    text = str(answer.get("text", ""))
    if wanted == "text":
        return text + "\n"
    segments = answer.get("segments")
    if not isinstance(segments, list) or not segments:
        segments = [{"start": 0, "end": answer.get("duration", 0), "text": text}]
    separator = "," if wanted == "srt" else "."
    cues = []
    for number, segment in enumerate(s for s in segments if isinstance(s, dict)):
        times = (
            f"{_timestamp(segment.get('start'), separator)} --> "
            f"{_timestamp(segment.get('end'), separator)}"
        )
        line = str(segment.get("text", "")).strip()
        cues.append(f"{number + 1}\n{times}\n{line}\n" if wanted == "srt" else f"{times}\n{line}\n")
    body = "\n".join(cues)
    return body + "\n" if wanted == "srt" else "WEBVTT\n\n" + body + "\n"


def video_cost(price: ModelPrice, ratio: Decimal, seconds: int | Decimal) -> int:
    return metered_cost_units(price, Metered(video_seconds=Decimal(seconds)), ratio)


def job_seconds(job: Any, requested: int) -> Decimal:
    """The seconds a finished job generated, as it reports them (the request's if it does not)."""
    reported = _seconds(job.get("seconds")) if isinstance(job, dict) else None
    return reported if reported is not None else Decimal(requested)
