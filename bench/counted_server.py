"""``devtools.front`` with two meters inside: DynamoDB calls and the relay's own time.

    python -m bench.counted_server --stats FILE -- --host 127.0.0.1 --port P --stage dev ...

The server is the very same front ``make run`` serves (the relay in this process, the management
API on ``chalice local`` behind it); this wrapper only

* registers a ``CallCounter`` on the store's shared botocore client once the app configures the
  store, so calls, botocore retries, the store's own retries and Scans made while serving HTTP
  are counted where they happen;
* times every request the relay's ASGI app serves, which is what the relay's Lambda bills
  (uvicorn's HTTP parsing around it stands in for Web Adapter and API Gateway and is not part
  of it), and every upstream call (``relay.forward``), so the relay's time splits into upstream,
  DynamoDB and the rest. Only the relay is metered: the management API runs in chalice local's
  own process.

``kill -USR1 <pid>`` writes what was measured since the previous signal to FILE (atomically)
and starts afresh, so the caller gets per-phase figures without a route in the app.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.ddb_calls import CallCounter

_lock = threading.Lock()
_durations_ms: list[float] = []
_forward_ms: list[float] = []
_counter = CallCounter(phase="serve")


def _instrument_store() -> None:
    from chalicelib.store import models

    original = models.configure

    def configure_and_count(settings: Any) -> None:
        original(settings)
        _counter.register()

    models.configure = configure_and_count  # type: ignore[assignment]


def _instrument_handler() -> None:
    """Time the relay's app per request, from its call to its return (the body included)."""
    from devtools import front

    original_init = front.Front.__init__

    def metered_init(self: front.Front, relay: Any, backend_url: str) -> None:
        async def timed_relay(scope: Any, receive: Any, send: Any) -> None:
            started = time.perf_counter()
            try:
                await relay(scope, receive, send)
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                with _lock:
                    _durations_ms.append(elapsed)

        original_init(self, timed_relay, backend_url)

    front.Front.__init__ = metered_init  # type: ignore[method-assign]


def _instrument_upstream() -> None:
    """Time ``relay.forward`` (the upstream call), to split the handler's time into parts."""
    from chalicelib import upstream as relay

    original = relay.forward

    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with _lock:
                _forward_ms.append(elapsed)

    relay.forward = timed_forward  # type: ignore[assignment]


def _dump(path: Path) -> None:
    with _lock:
        durations, forwards = list(_durations_ms), list(_forward_ms)
        _durations_ms.clear()
        _forward_ms.clear()
    stats = {"handler_ms": durations, "forward_ms": forwards, "dynamodb": _counter.summary()}
    _counter.reset("serve")
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(stats), encoding="utf-8")
    os.replace(scratch, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stats", type=Path, required=True, help="where SIGUSR1 writes figures")
    parser.add_argument("front_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    front_args = [a for a in args.front_args if a not in ("--", "--no-autoreload")]
    _instrument_store()
    _instrument_handler()
    _instrument_upstream()
    signal.signal(signal.SIGUSR1, lambda signum, frame: _dump(args.stats))
    from devtools import front

    return front.main(front_args)


if __name__ == "__main__":
    sys.exit(main())
