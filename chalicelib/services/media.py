"""Images and audio: one relayed call each, through the gateway's admit -> reserve -> settle.

What differs from chat is only the body (JSON, or a multipart upload relayed byte for byte with
at most the ``model`` and ``response_format`` fields changed), the answer (base64 images, audio
bytes, transcripts in five formats) and the cost, which ``core.media`` bounds before the call
and computes from the answer after it. The money path is the gateway's own: the worst case is
reserved on key and account, a call that brings nothing back is refunded in full, an answer is
settled (record first) at its real cost, never above the reservation.

Transcripts in text, srt or vtt carry no duration. A model priced by the minute is asked for
verbose_json instead and its answer rendered back in the format the client asked for, so the
call is charged by the duration the provider reports; one priced by tokens is asked for json
(its ``usage``) when the client wants text. An answer that still reports nothing (a provider
ignoring the format asked for) is charged the reservation, and its log record says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from chalicelib.core import errors, media, multipart, payloads, quota
from chalicelib.core.deadline import Deadline
from chalicelib.core.pricing import Metered, ModelPrice, metered_cost_units
from chalicelib.core.settings import get_settings
from chalicelib.services import gateway
from chalicelib.upstream import UpstreamReply
from chalicelib.upstream import media as upstream_media

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def _json_object(raw_body: bytes) -> dict[str, Any]:
    payload = payloads.load_json(raw_body or b"")
    if not isinstance(payload, dict):
        raise errors.InvalidRequest("The request body must be a JSON object.")
    return payload


def _with_model(payload: dict[str, Any]) -> Callable[[str], bytes]:
    def body_for(upstream_model: str) -> bytes:
        return json.dumps({**payload, "model": upstream_model}, ensure_ascii=False).encode()

    return body_for


def _form_body(form: multipart.Form, changes: dict[str, str]) -> Callable[[str], bytes]:
    def body_for(upstream_model: str) -> bytes:
        wanted = {**changes}
        if upstream_model != form.field("model"):
            wanted["model"] = upstream_model
        return multipart.replace_fields(form, wanted) if wanted else form.body

    return body_for


def _is_json_object(reply: upstream_media.MediaReply) -> bool:
    return isinstance(upstream_media.loads(reply), dict)


def _relay(
    call: gateway.Call,
    source_ip: str,
    path: str,
    *,
    body_for: Callable[[str], bytes],
    content_type: str,
    accepted: Callable[[upstream_media.MediaReply], bool],
    settle_from: Callable[[upstream_media.MediaReply], tuple[int, Metered, UpstreamReply | None]],
) -> gateway.CallResult:
    """Reserve, send, settle: ``settle_from`` turns a 2xx answer into its cost, what it used
    and (optionally) the answer to give the client instead of the provider's."""
    held = gateway.reserve(call, source_ip)
    with gateway.refunded_on_error(call, held):
        reply = upstream_media.send(
            path,
            model=call.model,
            group=call.group,
            body_for=body_for,
            content_type=content_type,
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
            accepted=accepted,
        )
    cost, used, answer = 0, Metered(), None
    if reply.status < 400:
        with gateway.refunded_on_error(call, held):
            cost, used, answer = settle_from(reply)
    upstream_reply = answer or UpstreamReply(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        prompt_tokens=0,
        completion_tokens=0,
        usage_estimated=False,
        channel=reply.channel,
        model=call.model,
    )
    upstream_reply = UpstreamReply(
        status=upstream_reply.status,
        body=upstream_reply.body,
        content_type=upstream_reply.content_type,
        prompt_tokens=used.input_tokens,
        completion_tokens=used.output_tokens,
        usage_estimated=False,
        channel=reply.channel,
        model=call.model,
    )
    return gateway.settle(call, held, upstream_reply, cost=cost)


def _admit(
    kind: Any,
    authorization: str | None,
    source_ip: str,
    payload: dict[str, Any],
    deadline: Deadline | None,
    worst_case: Callable[[ModelPrice, Decimal], int],
) -> gateway.Call:
    return gateway.admit_payload(
        kind,
        gateway.usable_context(authorization, source_ip),
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=worst_case,
    )


def _restored_model(reply: upstream_media.MediaReply, model: str, data: Any) -> bytes:
    """The answer with the client's model name where the channel maps it to another one."""
    if (
        isinstance(data, dict)
        and reply.upstream_model
        and reply.upstream_model != model
        and data.get("model") == reply.upstream_model
    ):
        return json.dumps({**data, "model": model}, ensure_ascii=False).encode()
    return reply.body


# Images -------------------------------------------------------------------------------------
def _image_settle(
    call: gateway.Call, n: int
) -> Callable[[upstream_media.MediaReply], tuple[int, Metered, UpstreamReply | None]]:
    def settle_from(reply: upstream_media.MediaReply) -> tuple[int, Metered, UpstreamReply | None]:
        cost, used = media.image_cost(call.price, call.ratio, upstream_media.loads(reply), n)
        return cost, used, None

    return settle_from


def image_generation(
    raw_body: bytes, authorization: str | None, source_ip: str, *, deadline: Deadline | None
) -> gateway.CallResult:
    """``POST /v1/images/generations``: ``n`` images, charged by the images returned."""
    context = gateway.usable_context(authorization, source_ip)
    payload = _json_object(raw_body)
    n = media.check_image_request(payload)
    prompt = payload["prompt"]
    call = gateway.admit_payload(
        "images",
        context,
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=lambda price, ratio: media.image_bound(price, ratio, prompt, n),
    )
    return _relay(
        call,
        source_ip,
        "/images/generations",
        body_for=_with_model(payload),
        content_type=JSON,
        accepted=_is_json_object,
        settle_from=_image_settle(call, n),
    )


def image_edit(
    raw_body: bytes,
    content_type: str | None,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None,
) -> gateway.CallResult:
    """``POST /v1/images/edits`` (multipart): the images and mask reach the provider intact."""
    context = gateway.usable_context(authorization, source_ip)
    form = multipart.parse(raw_body, content_type)
    payload = {name: form.field(name) for name in ("model", "prompt", "n")}
    n = media.check_image_request(payload)
    images = len(form.files("image"))
    if not images:
        raise errors.InvalidRequest("Missing required parameter: 'image'.", param="image")
    prompt = str(payload["prompt"])
    call = gateway.admit_payload(
        "images",
        context,
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=lambda price, ratio: media.image_bound(price, ratio, prompt, n, images),
    )
    return _relay(
        call,
        source_ip,
        "/images/edits",
        body_for=_form_body(form, {}),
        content_type=content_type or "",
        accepted=_is_json_object,
        settle_from=_image_settle(call, n),
    )


# Speech -------------------------------------------------------------------------------------
def speech(
    raw_body: bytes, authorization: str | None, source_ip: str, *, deadline: Deadline | None
) -> gateway.CallResult:
    """``POST /v1/audio/speech``: audio bytes back; the cost is known before the call."""
    context = gateway.usable_context(authorization, source_ip)
    payload = _json_object(raw_body)
    text = media.check_speech_request(payload)
    call = gateway.admit_payload(
        "speech",
        context,
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=lambda price, ratio: media.speech_cost(price, ratio, text),
    )
    exact = media.speech_cost(call.price, call.ratio, text)

    def settle_from(reply: upstream_media.MediaReply) -> tuple[int, Metered, UpstreamReply | None]:
        return exact, Metered(characters=len(text)), None

    return _relay(
        call,
        source_ip,
        "/audio/speech",
        body_for=_with_model(payload),
        content_type=JSON,
        accepted=lambda reply: True,
        settle_from=settle_from,
    )


# Transcription and translation ----------------------------------------------------------------
def transcription(
    path: str,
    raw_body: bytes,
    content_type: str | None,
    authorization: str | None,
    source_ip: str,
    *,
    deadline: Deadline | None,
) -> gateway.CallResult | TranscriptStream:
    """``POST /v1/audio/transcriptions`` or ``/translations`` (multipart, the file intact).

    Reserved for the model's ``max_audio_seconds`` of audio (its price's, else the setting's),
    settled by what the answer reports. A streamed transcription (``stream=true``) is handed on
    event by event as the provider sends them (``TranscriptStream``) and settled by the usage of
    its ``transcript.text.done`` event.
    """
    context = gateway.usable_context(authorization, source_ip)
    form = multipart.parse(raw_body, content_type)
    model = media.check_model(form.field("model"))
    if not form.files("file"):
        raise errors.InvalidRequest("Missing required parameter: 'file'.", param="file")
    wanted = media.transcript_format(form.field("response_format"))
    stream = media.form_flag(form.field("stream"), "stream")
    prompt = form.field("prompt") or ""
    default_seconds = get_settings().max_audio_seconds
    payload = {"model": model, "response_format": wanted, "stream": stream}
    call = gateway.admit_payload(
        "transcription",
        context,
        payload,
        source_ip,
        started=time.monotonic(),
        deadline=deadline,
        worst_case=lambda price, ratio: media.transcription_bound(
            price, ratio, price.audio_seconds_bound(default_seconds), prompt
        ),
    )
    asked = wanted if stream else media.upstream_transcript_format(call.price, wanted)
    changes = {"response_format": asked} if asked != wanted else {}
    if stream:
        return _stream_transcript(call, source_ip, path, _form_body(form, {}), content_type)

    def settle_from(reply: upstream_media.MediaReply) -> tuple[int, Metered, UpstreamReply | None]:
        reserved = call.plan(None).reserve_units
        if "text/event-stream" in reply.content_type:
            used = _streamed_usage(reply.body)
            cost = metered_cost_units(call.price, used, call.ratio) if used else reserved
            return cost, used or Metered(), None
        data = upstream_media.loads(reply) if asked in ("json", "verbose_json") else None
        used = media.transcription_used(data)
        cost = metered_cost_units(call.price, used, call.ratio) if used else reserved
        if asked == wanted or not isinstance(data, dict):
            body = _restored_model(reply, call.model, data)
            return cost, used or Metered(), _answer(reply, body, reply.content_type)
        rendered = media.render_transcript(data, wanted).encode()
        return cost, used or Metered(), _answer(reply, rendered, TEXT)

    return _relay(
        call,
        source_ip,
        path,
        body_for=_form_body(form, changes),
        content_type=content_type or "",
        accepted=lambda reply: (
            asked not in ("json", "verbose_json") or stream or _is_json_object(reply)
        ),
        settle_from=settle_from,
    )


def _answer(reply: upstream_media.MediaReply, body: bytes, content_type: str) -> UpstreamReply:
    return UpstreamReply(reply.status, body, content_type, 0, 0, False, reply.channel, "")


def _streamed_usage(body: bytes) -> Metered | None:
    """The usage of a streamed transcription: its ``transcript.text.done`` event's."""
    used = None
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[5:].strip())
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "transcript.text.done":
            used = media.transcription_used(event) or used
    return used


def _stream_transcript(
    call: gateway.Call,
    source_ip: str,
    path: str,
    body_for: Callable[[str], bytes],
    content_type: str | None,
) -> gateway.CallResult | TranscriptStream:
    held = gateway.reserve(call, source_ip)
    with gateway.refunded_on_error(call, held):
        opened = upstream_media.open_stream(
            path,
            model=call.model,
            group=call.group,
            body_for=body_for,
            content_type=content_type or "",
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
        )
    if isinstance(opened, upstream_media.MediaReply):  # refused: passed on, not charged
        return gateway.settle(call, held, _answer(opened, opened.body, JSON), cost=0)
    return TranscriptStream(call, held, opened)


class TranscriptStream:
    """A streamed transcription handed on as it arrives; settled exactly once, when it ends,
    breaks or the client hangs up (``close``), before the response body ends.

    Charged by the usage of the ``transcript.text.done`` event; a stream that delivered bytes
    without one (cut short, or a provider that sends none) is charged its reservation, which the
    log says; one that delivered nothing is refunded.
    """

    def __init__(
        self, call: gateway.Call, held: gateway.Held, opened: upstream_media.OpenedBody
    ) -> None:
        self.call = call
        self.held = held
        self.opened = opened
        self.status = opened.status
        self.content_type = opened.content_type
        self.headers = {"X-Request-Id": held.record.request_id}
        self._seen = bytearray()
        self._settled = False
        self._lock = threading.Lock()

    def __iter__(self) -> TranscriptStream:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self.opened.chunks)
        except StopIteration:
            self._settle("ok", None)
            raise
        except Exception as exc:
            self._settle("upstream_error", exc)
            raise
        self._seen += chunk
        return chunk

    def close(self) -> None:
        self._settle("client_closed", None)

    def _settle(self, status: str, detail: Any) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        self.opened.close()
        reserved = self.held.plan.reserve_units
        used = _streamed_usage(bytes(self._seen))
        if not self._seen:
            charged = 0
        elif used is None:
            charged, detail = reserved, detail or "no usage reported: charged the reservation"
        else:
            charged = quota.charge(
                reserved, metered_cost_units(self.call.price, used, self.call.ratio)
            )
        record = replace(
            self.held.record,
            channel=self.opened.channel,
            prompt_tokens=used.input_tokens if used else 0,
            completion_tokens=used.output_tokens if used else 0,
            stream=True,
        )
        gateway.finish(
            replace(self.held, record=record),
            self.call.started,
            charged=charged,
            status=status,
            detail=detail,
        )
