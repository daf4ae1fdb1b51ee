"""Upstream's refusals of a request, passed on to the client without secrets (pure).

When a provider answers 4xx because the request itself is wrong (a bad parameter, a context that
is too long), the client should see that answer: it is what it would have got from the provider.
But provider messages sometimes quote the credentials or the address they were called with, and
those belong to the operator. So the message is rebuilt in our error shape (``error_body``), with
the channel's key, URL and host and anything shaped like a key replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from chalicelib.core.errors import InvalidRequest, error_body

MAX_MESSAGE_CHARS = 1_000
REDACTED = "[redacted]"
# Bearer credentials and the usual provider key shapes (sk-…, sk-proj-…, sk-ant-…, AIza…).
KEY_PATTERN = re.compile(
    r"(?i:bearer\s+\S+)|\b(?:sk|rk|pk|mk|key)-[A-Za-z0-9_\-*.]{8,}|\bAIza[0-9A-Za-z_\-]{20,}"
)


def upstream_error(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, param, code) of an OpenAI-shaped error body, as far as it is one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None, None
    error: Any = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return None, None, None

    def text(name: str) -> str | None:
        value = error.get(name)
        return None if value is None else str(value)

    return text("message"), text("param"), text("code")


def sanitize(message: str, secrets: Iterable[str]) -> str:
    """``message`` without any of ``secrets`` nor anything shaped like a key, and not too long."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            message = message.replace(secret, REDACTED)
    return KEY_PATTERN.sub(REDACTED, message)[:MAX_MESSAGE_CHARS]


def rejection_body(status: int, raw: bytes, base_url: str, api_key: str | None) -> bytes:
    """The client's copy of upstream's 4xx body, in the OpenAI error shape."""
    message, param, code = upstream_error(raw)
    secrets = [api_key or "", base_url.rstrip("/"), urlsplit(base_url).hostname or ""]
    error = InvalidRequest(
        sanitize(
            message or f"The upstream provider rejected the request (HTTP {status}).", secrets
        ),
        param=param,
        code=code or "upstream_rejected",
    )
    return json.dumps(error_body(error), ensure_ascii=False).encode()
