"""One POST of a signed webhook body: delivered (2xx) or why not, never an exception.

A client of its own, not the providers' one: a tenant's URL must never share a connection pool
(or its keep-alive connections) with the provider keys. Proxies from the environment are
ignored and redirects are not followed, so a delivery goes to the URL that was checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from chalicelib.core.alerts import DELIVERY_HEADER, SIGNATURE_HEADER


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status: int | None = None
    error: str | None = None  # the failure, as a short class name or "HTTP <status>"


_client: httpx.Client | None = None


def _http() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(trust_env=False, follow_redirects=False)
    return _client


def post(
    url: str, body: bytes, signature: str, timeout_seconds: float, delivery_id: str = ""
) -> Attempt:
    """``delivery_id`` is the same on every resend of one crossing: receivers drop copies by it."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "sluice-alerts/1",
        SIGNATURE_HEADER: signature,
    }
    if delivery_id:
        headers[DELIVERY_HEADER] = delivery_id
    try:
        response = _http().post(url, content=body, headers=headers, timeout=timeout_seconds)
    except httpx.HTTPError as exc:
        return Attempt(delivered=False, error=type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Attempt(delivered=True, status=response.status_code)
    return Attempt(
        delivered=False, status=response.status_code, error=f"HTTP {response.status_code}"
    )
