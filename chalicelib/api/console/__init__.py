"""The web console: static HTML, CSS and JavaScript served by Chalice at ``/console``.

The console is a client of the public API and nothing more: the browser calls the same routes
as curl, with the key the user signed in with. Serving it from the API's own origin keeps every
call same-origin, so the strict Content-Security-Policy below (no inline code, connections to
``'self'`` only) holds and no CORS is needed.

Only files that ship in ``static/`` with an allow-listed extension are served. The lookup is a
dictionary built once from the directory listing, so the request's ``asset`` never
becomes part of a filesystem path and traversal (``..``, encoded slashes) cannot reach anything.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.api import web
from chalicelib.core.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Images answered as base64 are shown from data: URLs, speech from a blob: URL of the answer's
# bytes; nothing is loaded from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# On every console response, errors included: the page must never run foreign code or be framed.
CONSOLE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # A deploy must show the new console at once; the files are small.
    "Cache-Control": "no-cache",
}
INDEX = "index.html"


@cache
def assets() -> dict[str, tuple[str, str]]:
    """File name -> (content type, text) for every servable file, read once per container."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and content_type and not path.name.startswith("."):
            found[path.name] = (content_type, path.read_text(encoding="utf-8"))
    return found


def _asset_response(name: str) -> Response:
    found = assets().get(name)
    if found is None:
        raise NotFound("No such console file.", headers=dict(CONSOLE_HEADERS))
    content_type, text = found
    return Response(
        body=text, status_code=200, headers={**CONSOLE_HEADERS, "Content-Type": content_type}
    )


def _trailing_slash(blueprint: Blueprint) -> bool:
    request = blueprint.current_request
    context = (request.context if request is not None else None) or {}
    return str(context.get("path") or "").endswith("/")


def blueprint() -> Blueprint:
    """A fresh blueprint serving the console.

    A Blueprint reads the current request from the last app it was registered on, so an app of
    its own (as in tests) takes a fresh one rather than re-registering ``bp``.
    """
    console = Blueprint(__name__)
    route = web.routes(console)

    @route("/console")
    def console_index() -> Response:
        # API Gateway and ``chalice local`` route "/console/" here too, but then the page's
        # relative asset URLs would resolve one level too deep. A relative redirect fixes that
        # without knowing the stage prefix the API is mounted under.
        if _trailing_slash(console):
            return Response(
                body="", status_code=308, headers={**CONSOLE_HEADERS, "Location": "../console"}
            )
        return _asset_response(INDEX)

    @route("/console/{asset}")
    def console_asset(asset: str) -> Response:
        # The index is only served at /console, where its relative URLs resolve correctly.
        if asset == INDEX:
            raise NotFound("No such console file.", headers=dict(CONSOLE_HEADERS))
        return _asset_response(asset)

    return console


bp = blueprint()
