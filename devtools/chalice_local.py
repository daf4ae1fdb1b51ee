"""``chalice local`` with a listen backlog that does not drop concurrent clients.

Chalice's local server is a ``ThreadingMixIn`` HTTP server (one thread per request, with a
thread-local ``current_request``), but it keeps socketserver's default backlog of 5: a burst of
32 simultaneous connections gets some of them reset before a thread accepts them. This runs the
very same ``chalice local`` command after raising the backlog.

    python -m devtools.chalice_local --host 127.0.0.1 --port 8000 --stage dev --no-autoreload
"""

from __future__ import annotations

import sys

from chalice import local
from chalice.cli import main as chalice_main

BACKLOG = 512


def main(argv: list[str] | None = None) -> int:
    local.ThreadedHTTPServer.request_queue_size = BACKLOG
    sys.argv = ["chalice", "local", *(sys.argv[1:] if argv is None else argv)]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
