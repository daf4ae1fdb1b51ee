"""The demo upstream's images, audio and video endpoints (standard library only).

Deterministic, so tests can assert exact charges and bytes:

* images: ``n`` copies of one small real PNG (a prompt containing "[fewer]" gets one less);
  ``usage`` (tokens) for models whose name contains "image-1";
* speech: playable MP3 bytes (silence) derived from the input, with the content type of
  ``response_format``;
* transcription / translation: the audio lasts one second per 1,000 bytes of the uploaded file;
  models whose name contains "transcribe" report tokens (and stream with ``stream=true``), the
  others the duration, in every OpenAI format (json, text, srt, vtt, verbose_json);
* videos: jobs held in memory, ``queued`` -> ``in_progress`` -> ``completed`` after
  ``MockUpstream.video_polls`` retrievals (its value when the job was created; a prompt
  containing "[fail]" fails instead); the content is fixed MP4-looking bytes.

Every uploaded file is kept in ``MockUpstream.last_files`` (field name -> bytes), so tests can
check that a file reached the provider byte for byte. Multipart bodies are read with the
standard library's ``email`` parser, independently of the gateway's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
import uuid
import zlib
from email import policy
from email.parser import BytesParser
from typing import Any

MEDIA_PATHS = (
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/videos",
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _demo_png(size: int = 32) -> bytes:
    """A real (decodable) PNG: a diagonal two-tone pattern, so a browser shows an image."""
    rows = b"".join(
        b"\x00"
        + b"".join(b"\x1f\x6f\xb4" if (x + y) % 16 < 8 else b"\xe8\xf1\xfa" for x in range(size))
        for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


# An MPEG-1 Layer III frame header (128 kbit/s, 44.1 kHz, mono) whose side information and
# main data are all zero: a decoder plays it as 26 ms of silence.
_MP3_SILENT_FRAME = b"\xff\xfb\x90\xc4" + bytes(413)
# Three frames (78 ms) per character of input, at most about ten seconds.
_MP3_FRAMES_PER_CHARACTER = 3
_MP3_MAX_FRAMES = 400


def demo_speech(text: str) -> bytes:
    """Playable MP3 bytes derived from ``text``: an ID3v2 tag holding the text's digest, then
    silence whose length grows with the text."""
    frame = (
        b"PRIV"
        + struct.pack(">I", 39)
        + b"\x00\x00"
        + b"sluice\x00"
        + hashlib.sha256(text.encode()).digest()
    )
    tag_size = len(frame)
    syncsafe = bytes((tag_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    frames = min(max(1, len(text)) * _MP3_FRAMES_PER_CHARACTER, _MP3_MAX_FRAMES)
    return b"ID3\x03\x00\x00" + syncsafe + frame + _MP3_SILENT_FRAME * frames


IMAGE_BYTES = _demo_png()
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + b"sluice-demo-video" * 64
BYTES_PER_AUDIO_SECOND = 1000
IMAGE_INPUT_TOKENS = 50
IMAGE_OUTPUT_TOKENS = 272
SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def handles(path: str) -> bool:
    return path in MEDIA_PATHS or path.startswith("/v1/videos/")


def form_fields(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """The text fields and the files of a multipart body (email parser, not the gateway's)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if part.get_filename() is not None:
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode("utf-8")
    return fields, files


def transcript_text(size: int) -> str:
    return f"Transcript of {size} bytes of demo audio."


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}"
        f"{separator}{millis % 1000:03d}"
    )


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("polls", "polls_needed")}


class MediaEndpoints:
    """Serves the media paths for one ``_Handler`` request (see ``mock_upstream``)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.owner = handler.owner

    def error(self, status: int, message: str) -> None:
        self.handler._send_json(
            status, {"error": {"message": message, "type": "invalid_request_error"}}
        )

    def serve(self, method: str, path: str, raw: bytes) -> None:
        content_type = self.handler.headers.get("Content-Type", "")
        fields: dict[str, Any]
        if content_type.startswith("multipart/form-data"):
            fields, files = form_fields(content_type, raw)
            with self.owner._lock:
                self.owner.last_files = files
        else:
            files = {}
            try:
                fields = json.loads(raw) if raw else {}
            except ValueError:
                fields = {}
        self.owner._remember(fields)
        if path.startswith("/v1/videos"):
            self._videos(method, path, fields, files)
        elif method != "POST":
            self.error(405, "Use POST.")
        elif path.startswith("/v1/images/"):
            self._images(fields, files if path.endswith("edits") else None)
        elif path == "/v1/audio/speech":
            self._speech(fields)
        else:
            self._transcription(fields, files)

    # --- images ---------------------------------------------------------------------------
    def _images(self, fields: dict[str, Any], edited: dict[str, bytes] | None) -> None:
        n = int(fields.get("n") or 1)
        prompt = str(fields.get("prompt", ""))
        if "[fewer]" in prompt:
            n = max(n - 1, 1)
        if edited is not None:
            # An edit names what it received, so a client can check its file arrived intact.
            digests = ", ".join(
                f"{name} sha256 {hashlib.sha256(data).hexdigest()}"
                for name, data in sorted(edited.items())
            )
            prompt = f"{prompt} ({digests})"
        item = {"b64_json": base64.b64encode(IMAGE_BYTES).decode(), "revised_prompt": prompt}
        answer: dict[str, Any] = {"created": int(time.time()), "data": [item] * n}
        if "image-1" in str(fields.get("model", "")):
            answer["usage"] = {
                "input_tokens": IMAGE_INPUT_TOKENS,
                "output_tokens": IMAGE_OUTPUT_TOKENS * n,
                "total_tokens": IMAGE_INPUT_TOKENS + IMAGE_OUTPUT_TOKENS * n,
                "input_tokens_details": {"text_tokens": IMAGE_INPUT_TOKENS, "image_tokens": 0},
            }
        self.handler._send_json(200, answer)

    # --- audio ----------------------------------------------------------------------------
    def _speech(self, fields: dict[str, Any]) -> None:
        text = str(fields.get("input", ""))
        audio = demo_speech(text)
        kind = SPEECH_TYPES.get(str(fields.get("response_format") or "mp3"), "audio/mpeg")
        self.handler._send_bytes(200, audio, kind)

    def _transcription(self, fields: dict[str, str], files: dict[str, bytes]) -> None:
        audio = files.get("file")
        if audio is None:
            self.error(400, "Missing required parameter: 'file'.")
            return
        model = fields.get("model", "")
        seconds = len(audio) / BYTES_PER_AUDIO_SECOND
        text = transcript_text(len(audio))
        tokens = {
            "type": "tokens",
            "input_tokens": math.ceil(seconds * 10),
            "output_tokens": math.ceil(len(text) / 4),
            "total_tokens": math.ceil(seconds * 10) + math.ceil(len(text) / 4),
        }
        by_tokens = "transcribe" in model
        usage = tokens if by_tokens else {"type": "duration", "seconds": math.ceil(seconds)}
        if by_tokens and fields.get("stream") == "true":
            self._stream_transcript(text, tokens)
            return
        wanted = fields.get("response_format", "json")
        segment = {"id": 0, "start": 0.0, "end": seconds, "text": text}
        if wanted == "json":
            self.handler._send_json(200, {"text": text, "usage": usage})
        elif wanted == "verbose_json":
            self.handler._send_json(
                200,
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": seconds,
                    "text": text,
                    "segments": [segment],
                    "usage": usage,
                },
            )
        elif wanted == "text":
            self.handler._send_bytes(200, (text + "\n").encode(), "text/plain; charset=utf-8")
        elif wanted in ("srt", "vtt"):
            separator = "," if wanted == "srt" else "."
            cue = f"{_timestamp(0, separator)} --> {_timestamp(seconds, separator)}\n{text}\n"
            body = f"1\n{cue}\n" if wanted == "srt" else f"WEBVTT\n\n{cue}\n"
            self.handler._send_bytes(200, body.encode(), "text/plain; charset=utf-8")
        else:
            self.error(400, f"Unsupported response_format {wanted!r}.")

    def _stream_transcript(self, text: str, usage: dict[str, Any]) -> None:
        events: list[dict[str, Any]] = [
            {"type": "transcript.text.delta", "delta": word + " "} for word in text.split()
        ]
        events.append({"type": "transcript.text.done", "text": text, "usage": usage})
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        self.handler._send_bytes(200, body, "text/event-stream")

    # --- videos ---------------------------------------------------------------------------
    def _videos(
        self, method: str, path: str, fields: dict[str, Any], files: dict[str, bytes]
    ) -> None:
        rest = path[len("/v1/videos") :].strip("/").split("/")
        video_id, action = [*rest, "", ""][:2]
        if not video_id:
            if method == "POST":
                self._created(self._new_job(fields, None))
            else:
                with self.owner._lock:
                    data = [_public(job) for job in self.owner.video_jobs.values()]
                self.handler._send_json(200, {"object": "list", "data": data, "has_more": False})
            return
        with self.owner._lock:
            job = self.owner.video_jobs.get(video_id)
        if job is None:
            self.error(404, f"Video {video_id} not found.")
        elif action == "remix" and method == "POST":
            self._created(self._new_job({**job, **fields}, video_id))
        elif action == "content" and method == "GET":
            if job["status"] != "completed":
                self.error(400, "The video is not ready yet.")
            else:
                self.handler._send_bytes(200, VIDEO_BYTES, "video/mp4")
        elif action == "" and method == "GET":
            self.handler._send_json(200, self._advanced(video_id))
        elif action == "" and method == "DELETE":
            with self.owner._lock:
                self.owner.video_jobs.pop(video_id, None)
            self.handler._send_json(
                200, {"id": video_id, "object": "video.deleted", "deleted": True}
            )
        else:
            self.error(404, f"Unknown path {path}")

    def _new_job(self, fields: dict[str, Any], remixed_from: str | None) -> dict[str, Any]:
        job = {
            "id": "video_" + uuid.uuid4().hex,
            "object": "video",
            "model": str(fields.get("model") or "sora-2"),
            "status": "queued",
            "progress": 0,
            "created_at": int(time.time()),
            "seconds": str(fields.get("seconds") or "4"),
            "size": str(fields.get("size") or "720x1280"),
            "prompt": str(fields.get("prompt", "")),
            "remixed_from_video_id": remixed_from,
            "polls": 0,
            "polls_needed": self.owner.video_polls,
        }
        with self.owner._lock:
            self.owner.video_jobs[job["id"]] = job
        return job

    def _created(self, job: dict[str, Any]) -> None:
        self.handler._send_json(200, _public(job))

    def _advanced(self, video_id: str) -> dict[str, Any]:
        """One more retrieval: the job moves on (completed after ``video_polls`` of them)."""
        with self.owner._lock:
            job = self.owner.video_jobs[video_id]
            job["polls"] += 1
            if job["status"] in ("queued", "in_progress"):
                if "[fail]" in job["prompt"]:
                    job["status"] = "failed"
                    job["error"] = {"code": "generation_failed", "message": "Demo failure."}
                elif job["polls"] >= job["polls_needed"]:
                    job.update(status="completed", progress=100, completed_at=int(time.time()))
                else:
                    job.update(status="in_progress", progress=50)
            return _public(job)
