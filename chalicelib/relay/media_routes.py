"""The relay's image, audio and video routes (thin), mounted by ``relay.app``.

Uploads arrive as bytes (API Gateway hands binary bodies on base64-encoded, Web Adapter decodes
them) and go to ``services.media`` / ``services.videos`` as they came, with their content
type. Bodies above ``app.MAX_BODY_BYTES`` are refused with 413 before they are read whole.
Video files are handed on chunk by chunk as the provider sends them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from chalicelib.services import gateway

# The media and video services are imported by the handlers, on a container's first call of
# theirs: one that serves only chat never loads them (about a fifth of the relay's own import).

Handler = Callable[[Request], Any]


def _app() -> Any:
    from chalicelib.relay import app

    return app


async def _relayed(
    request: Request, use_case: Callable[..., Any], *leading: Any, typed: bool = False
) -> Response:
    """``use_case(*leading, body, [content type,] authorization, client ip, deadline=...)``."""
    from chalicelib.services.media import TranscriptStream

    relay = _app()
    deadline = gateway.call_deadline(time.monotonic())  # the clock starts when the call arrives
    body = await relay.raw_body(request)
    content_type = (request.headers.get("content-type"),) if typed else ()
    result = await run_in_threadpool(
        gateway.one_call(use_case),
        *leading,
        body,
        *content_type,
        relay.authorization(request),
        relay.client_ip(request),
        deadline=deadline,
    )
    if isinstance(result, TranscriptStream):
        return relay.BodyStream(result, result.status, result.content_type, result.headers)  # type: ignore[no-any-return]
    return relay.relayed(result)  # type: ignore[no-any-return]


async def image_generations(request: Request) -> Response:
    from chalicelib.services import media

    return await _relayed(request, media.image_generation)


async def image_edits(request: Request) -> Response:
    from chalicelib.services import media

    return await _relayed(request, media.image_edit, typed=True)


async def speech(request: Request) -> Response:
    from chalicelib.services import media

    return await _relayed(request, media.speech)


def _transcribing(path: str) -> Handler:
    async def handler(request: Request) -> Response:
        from chalicelib.services import media

        return await _relayed(request, media.transcription, path, typed=True)

    return handler


async def create_video(request: Request) -> Response:
    from chalicelib.services import videos

    return await _relayed(request, videos.create, typed=True)


def list_videos(request: Request) -> Response:
    from chalicelib.services import videos

    relay = _app()
    listed = videos.list_jobs(
        dict(request.query_params), relay.authorization(request), relay.client_ip(request)
    )
    return relay.json_response(listed)


def _on_video(video_id: str, action: str) -> dict[str, Handler]:
    """The methods of ``/v1/videos/{id}`` and its sub-paths, bound to the id."""
    from chalicelib.services import videos

    def retrieve(request: Request) -> Response:
        relay = _app()
        return relay.relayed(
            videos.retrieve(video_id, relay.authorization(request), relay.client_ip(request))
        )

    def delete(request: Request) -> Response:
        relay = _app()
        return relay.relayed(
            videos.delete(video_id, relay.authorization(request), relay.client_ip(request))
        )

    def content(request: Request) -> Response:
        relay = _app()
        opened = videos.content(
            video_id,
            dict(request.query_params),
            relay.authorization(request),
            relay.client_ip(request),
        )
        if isinstance(opened, gateway.CallResult):
            return relay.relayed(opened)
        return relay.BodyStream(  # type: ignore[no-any-return]
            opened.chunks, opened.status, opened.content_type, opened.headers, close=opened.close
        )

    async def remix(request: Request) -> Response:
        return await _relayed(request, videos.remix, video_id)

    if action == "":
        return {"GET": retrieve, "DELETE": delete}
    if action == "content":
        return {"GET": content}
    return {"POST": remix}


ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/images/generations": {"POST": image_generations},
    "/v1/images/edits": {"POST": image_edits},
    "/v1/audio/speech": {"POST": speech},
    "/v1/audio/transcriptions": {"POST": _transcribing("/audio/transcriptions")},
    "/v1/audio/translations": {"POST": _transcribing("/audio/translations")},
    "/v1/videos": {"POST": create_video, "GET": list_videos},
}
_VIDEO_PATH = re.compile(r"/v1/videos/([^/]+)(?:/(content|remix))?")


def match(path: str) -> dict[str, Handler] | None:
    """The methods serving ``path``: one of ``ROUTES``, or a video id's."""
    if path in ROUTES:
        return ROUTES[path]
    found = _VIDEO_PATH.fullmatch(path)
    if found is None:
        return None
    return _on_video(found.group(1), found.group(2) or "")
