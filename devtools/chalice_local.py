"""``chalice local``, corrected in three places where it differs from API Gateway.

1. Backlog. Chalice's local server is a ``ThreadingMixIn`` HTTP server (one thread per request,
   with a thread-local ``current_request``) but keeps socketserver's default listen backlog of 5:
   when 32 clients connect at once, the overflowing ones are dropped or stall for a retransmit.
2. Nagle. The dev server writes headers and body in separate small sends; with Nagle's
   algorithm on, each response then waits ~40 ms for the client's delayed ACK. API Gateway has
   no such pause, so local latency would mislead; the handler sets TCP_NODELAY.
3. Greedy paths. API Gateway routes ``/{proxy+}`` to any depth; chalice local matches it one
   segment deep only, and answers deeper unknown paths itself with a message that quotes the
   caller's Authorization header, i.e. their key. Sluice's catch-all route relies on the greedy
   match, so it is emulated here as API Gateway does it.

    python -m devtools.chalice_local --host 127.0.0.1 --port 8000 --stage dev --no-autoreload
"""

from __future__ import annotations

import sys
from typing import Any

from chalice import local

BACKLOG = 512
GREEDY = "/{proxy+}"


def patch() -> None:
    """Apply the corrections to chalice's local server (idempotent)."""
    local.ThreadedHTTPServer.request_queue_size = BACKLOG
    local.ChaliceRequestHandler.disable_nagle_algorithm = True
    matcher = local.RouteMatcher
    if getattr(matcher, "_sluice_greedy", False):
        return
    exact = matcher.match_route

    def match_route(self: Any, url: str) -> Any:
        try:
            return exact(self, url)
        except ValueError:
            if GREEDY not in self.route_urls:
                raise
            parsed = local.urlparse(url)
            query = local.parse_qs(parsed.query, keep_blank_values=True)
            return local.MatchResult(GREEDY, {"proxy": parsed.path.strip("/")}, query)

    matcher.match_route = match_route  # type: ignore[method-assign]
    matcher._sluice_greedy = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    from chalice.cli import main as chalice_main

    patch()
    sys.argv = ["chalice", "local", *(sys.argv[1:] if argv is None else argv)]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
