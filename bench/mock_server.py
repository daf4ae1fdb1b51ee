"""``devtools.mock_upstream`` with a listen backlog that does not drop bursts of new connections.

The mock keeps socketserver's default backlog of 5. A gateway serving 64 clients opens dozens of
upstream connections at once; the kernel drops the SYNs that overflow the queue and those calls
stall for a 1 s retransmit (or fail), which would be charged to the gateway. A real provider
does not do that, so the benchmark's upstream listens like ``devtools.chalice_local`` does.

    python -m bench.mock_server --port P --delay-ms 20 --api-key K
"""

from __future__ import annotations

import sys

from devtools import mock_upstream

BACKLOG = 512


def main(argv: list[str] | None = None) -> int:
    mock_upstream._Server.request_queue_size = BACKLOG
    return mock_upstream.main(argv)


if __name__ == "__main__":
    sys.exit(main())
