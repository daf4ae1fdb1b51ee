"""Upstream's refusals of a request, passed on to the client without secrets (pure).

When a provider answers 4xx because the request itself is wrong (a bad parameter, a context that
is too long), the client should see that answer: it is what it would have got from the provider.
But provider messages sometimes quote the credentials or the address they were called with, and
those belong to the operator. So the message is rebuilt in our error shape (``error_body``), with
the channel's key, URL and host, anything shaped like a credential (provider keys, bearer and basic
credentials, AWS access key ids, JWTs, ``password=``-style values) and any private host (internal
DNS names, private, loopback and link-local addresses) replaced by ``[redacted]``: the tenant
learns what was wrong with its request, not how the operator's network is laid out.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from chalicelib.core.errors import InvalidRequest, error_body

MAX_MESSAGE_CHARS = 1_000
REDACTED = "[redacted]"
# Bearer and basic credentials, the usual provider key shapes (sk-…, sk-proj-…, sk-ant-…, AIza…),
# AWS access key ids (long-term AKIA…, temporary ASIA…) and JWTs (an unsigned one ends in ".").
KEY_PATTERN = re.compile(
    r"(?i:bearer\s+\S+)|(?i:authorization\s*:\s*basic\s+\S+)"
    r"|\b(?:sk|rk|pk|mk|key)-[A-Za-z0-9_\-*.]{8,}|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
)
# "Basic" followed by base64 of "user:password" (a basic requirement is no credential).
BASIC_PATTERN = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{4,}={0,2})")
# The value after a credential's name, in a query string, a DSN, JSON or prose ("secret: 'x'").
# "token" only with "=" or as a quoted JSON key: "token: 4096" is how providers count tokens.
ASSIGNMENT_PATTERN = re.compile(
    r"""(?ix)
    \b(
      (?:password|passwd|pwd|secret|client_secret|api_key|apikey)["']?\s*[=:]
      | (?:token|access_token|refresh_token|id_token)(?:\s*=|["']\s*:)
    )
    (\s*["']?)
    [^\s&"',;]+
    """
)
# Names that only resolve inside the operator's network.
INTERNAL_HOST_PATTERN = re.compile(
    r"(?i)\b(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+"
    r"(?:internal|local|localdomain|lan|intranet|corp|svc|home\.arpa)\b|\blocalhost\b"
)
IPV4_PATTERN = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
# Candidates only: ``ipaddress`` decides (a clock time such as 12:30:45 is no address).
IPV6_PATTERN = re.compile(r"(?i)(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%[\w.\-]+)?")


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


def _private_address(match: re.Match[str]) -> str:
    text = match.group()
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if address.is_private or address.is_loopback or address.is_link_local:
        return REDACTED
    return text


def _basic_credential(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match.group(1), validate=True)
    except (ValueError, binascii.Error):
        return match.group()
    return REDACTED if b":" in decoded else match.group()


def sanitize(message: str, secrets: Iterable[str]) -> str:
    """``message`` without any of ``secrets``, credential shapes or private hosts; not too long."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            message = message.replace(secret, REDACTED)
    message = KEY_PATTERN.sub(REDACTED, message)
    message = BASIC_PATTERN.sub(_basic_credential, message)
    message = ASSIGNMENT_PATTERN.sub(
        lambda match: match.group(1) + match.group(2) + REDACTED, message
    )
    message = INTERNAL_HOST_PATTERN.sub(REDACTED, message)
    message = IPV4_PATTERN.sub(_private_address, message)
    message = IPV6_PATTERN.sub(_private_address, message)
    return message[:MAX_MESSAGE_CHARS]


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
