"""multipart/form-data bodies, read without copying their files (pure).

Uploads (image edits, audio transcriptions, video references) are relayed byte for byte: the
gateway only needs a few text fields (``model``, ``response_format``, ``stream``...) and, at
most, to change one of them (the channel's name for the model, the answer format it asks for).
``parse`` therefore records where each part's value lies in the original body, and
``replace_fields`` splices new values in, leaving every other byte, file parts included, as
the client sent it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.core.errors import InvalidRequest

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^;,\s]{1,200}))', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(
    r'\b(name|filename)="((?:[^"\\]|\\.)*)"|\b(name|filename)=([^;\s]+)'
)
MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    start: int  # where the value starts in the body
    end: int  # where it ends (exclusive)

    @property
    def is_file(self) -> bool:
        return self.filename is not None


@dataclass(frozen=True)
class Form:
    body: bytes
    parts: tuple[Part, ...]

    def value(self, part: Part) -> bytes:
        return self.body[part.start : part.end]

    def field(self, name: str) -> str | None:
        """The text of the first non-file part called ``name`` (None if absent)."""
        for part in self.parts:
            if part.name == name and not part.is_file:
                raw = self.value(part)
                if len(raw) > MAX_FIELD_BYTES:
                    raise InvalidRequest(f"'{name}' is too long.", param=name)
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidRequest(f"'{name}' is not UTF-8 text.", param=name) from exc
        return None

    def files(self, name: str | None = None) -> list[Part]:
        return [p for p in self.parts if p.is_file and (name is None or _base(p.name) == name)]


def _base(name: str) -> str:
    """``image[]`` is how clients send a list of files; it is the same field as ``image``."""
    return name[:-2] if name.endswith("[]") else name


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "multipart/form-data"


def parse(body: bytes, content_type: str | None) -> Form:
    """The parts of a multipart/form-data body; a 400 naming what is wrong otherwise."""
    match = _BOUNDARY.search(content_type or "")
    if not is_multipart(content_type) or match is None:
        raise InvalidRequest("The request must be multipart/form-data with a boundary.")
    delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
    position = body.find(delimiter)
    if position < 0:
        raise _malformed()
    parts: list[Part] = []
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            return Form(body, tuple(parts))
        if body[position : position + 2] != b"\r\n":
            raise _malformed()
        headers_end = body.find(b"\r\n\r\n", position + 2)
        if headers_end < 0:
            raise _malformed()
        name, filename = _disposition(body[position + 2 : headers_end])
        start = headers_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise _malformed()
        parts.append(Part(name, filename, start, end))
        if len(parts) > MAX_PARTS:
            raise InvalidRequest(f"The form has more than {MAX_PARTS} parts.")
        position = end + 2


def _disposition(raw_headers: bytes) -> tuple[str, str | None]:
    for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() != "content-disposition":
            continue
        params: dict[str, str] = {}
        for quoted_key, quoted, bare_key, bare in _DISPOSITION_PARAM.findall(value):
            params.setdefault(quoted_key or bare_key, quoted or bare)
        if "name" in params:
            return params["name"], params.get("filename")
    raise _malformed()


def _malformed() -> InvalidRequest:
    return InvalidRequest("The multipart/form-data body is malformed.")


def replace_fields(form: Form, values: dict[str, str]) -> bytes:
    """The body with the named (non-file) fields' values replaced; nothing else changes.

    A field that is not in the form is left out: callers only replace what the client sent.
    """
    pieces: list[bytes] = []
    cursor = 0
    for part in form.parts:
        if part.is_file or part.name not in values:
            continue
        pieces += [form.body[cursor : part.start], values[part.name].encode("utf-8")]
        cursor = part.end
    pieces.append(form.body[cursor:])
    return b"".join(pieces)
